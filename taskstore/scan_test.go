package taskstore

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// checkValueTwoPass is checkValue as it was before the scanner: json.Valid,
// then a byte scan for depth and string lengths. FuzzCheckValueOnePass holds
// the one-pass checkValue to it.
func checkValueTwoPass(raw []byte, maxDepth, maxString int) error {
	if !json.Valid(raw) {
		return ErrInvalidJSON
	}
	depth, inString, escaped, strStart := 0, false, false, 0
	for i, c := range raw {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
				if exceeds(i-strStart, maxString) {
					return fmt.Errorf("%w: %d bytes, limit %d", ErrStringTooLong, i-strStart, maxString)
				}
			}
			continue
		}
		switch c {
		case '"':
			inString, strStart = true, i+1
		case '[', '{':
			depth++
			if exceeds(depth, maxDepth) {
				return fmt.Errorf("%w: limit %d", ErrTooDeep, maxDepth)
			}
		case ']', '}':
			depth--
		}
	}
	return nil
}

func FuzzCheckValueOnePass(f *testing.F) {
	for _, c := range []string{``, `nul`, `1 2`, `"abcd"`, `"\n\n"`, "\"caf\xe9\"", `[[[]]]`, `{"a":{"b":"xyz"}}`, `{"a":1,}`,
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001)} {
		f.Add([]byte(c), 3, 4)
	}
	f.Add([]byte(`{"abcde":[[["x"]]]}`), 2, 3)
	f.Add([]byte(`[[["abcdefgh"]]]`), -1, 3)
	f.Fuzz(func(t *testing.T, raw []byte, maxDepth, maxString int) {
		got, want := checkValue(raw, maxDepth, maxString), checkValueTwoPass(raw, maxDepth, maxString)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("checkValue(%.200q, %d, %d) = %v, two passes: %v", raw, maxDepth, maxString, got, want)
		}
	})
}

// TestParseMillisUTC: the allocation-free timestamp parser agrees with
// time.Parse on the codec's spelling, for every month of every year the
// spelling has (the ends of months, leap days), every day of some years,
// and refuses the days a month does not have.
func TestParseMillisUTC(t *testing.T) {
	check := func(y, m, d int) {
		s := fmt.Sprintf("%04d-%02d-%02dT13:07:59.123Z", y, m, d)
		want, werr := time.Parse(time.RFC3339Nano, s)
		got, ok := parseMillisUTC([]byte(s))
		if ok != (werr == nil) || (ok && (!got.Equal(want) || got.Location() != want.Location())) {
			t.Fatalf("%s: parseMillisUTC = %v, %v; time.Parse = %v, %v", s, got, ok, want, werr)
		}
	}
	for y := 0; y <= 9999; y++ {
		for m := 1; m <= 12; m++ {
			for _, d := range []int{1, 28, 29, 30, 31} {
				check(y, m, d)
			}
		}
	}
	for _, y := range []int{0, 1, 1600, 1969, 1970, 2000, 2024, 2026, 2100, 9999} {
		for m := 1; m <= 12; m++ {
			for d := 1; d <= 32; d++ {
				check(y, m, d)
			}
		}
	}
}
