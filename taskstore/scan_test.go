package taskstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// scanCases are inputs at the edges of the grammar.
var scanCases = []string{
	``, ` `, `null`, `nul`, `nullx`, `true`, `false`, `tru`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `1e`, `1e+`,
	`1E-7`, `1.5e3`, `-12.0e+10`, `.5`, `+1`, `""`, `"`, `"\"`, `"\u00e9"`, `"\u00g9"`, `"\ud800"`, `"\x"`,
	`"a` + "\x01" + `"`, "\"caf\xe9\"", "\"\xff\"", `"\/"`, `[]`, `[`, `[1,]`, `[,1]`, `[1 2]`, `[1,2]`,
	`{}`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1,"a":2}`, `{1:2}`, `{"a":1}x`, ` {"a" : [ 1 , {} ] } `,
	"\t\n\r[]\n", `[]]`, `{"a":1}}`, "\"\u2028\"", `{"\u0061":1}`,
	strings.Repeat("[", maxNestingDepth) + strings.Repeat("]", maxNestingDepth),
	strings.Repeat("[", maxNestingDepth+1) + strings.Repeat("]", maxNestingDepth+1),
	strings.Repeat(`{"":`, maxNestingDepth) + `0` + strings.Repeat("}", maxNestingDepth),
	strings.Repeat(`{"":`, maxNestingDepth+1) + `0` + strings.Repeat("}", maxNestingDepth+1),
}

// TestScanAgrees: the scanner accepts exactly what json.Valid and jsontext
// (with the options the codec used to read records) accept.
func TestScanAgrees(t *testing.T) {
	for _, c := range scanCases {
		checkScanAgrees(t, []byte(c))
	}
	for _, d := range loadCorpus(t) {
		checkScanAgrees(t, d)
	}
}

func FuzzScanAgrees(f *testing.F) {
	for _, c := range scanCases {
		f.Add([]byte(c))
	}
	for _, d := range loadCorpus(f) {
		f.Add(d)
	}
	f.Fuzz(checkScanAgrees)
}

func checkScanAgrees(t *testing.T, b []byte) {
	t.Helper()
	got := validJSON(b)
	if v1 := json.Valid(b); got != v1 {
		t.Fatalf("validJSON(%.200q) = %v, json.Valid = %v", b, got, v1)
	}
	if v2 := jsontext.Value(b).IsValid(jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true)); got != v2 {
		t.Fatalf("validJSON(%.200q) = %v, jsontext = %v", b, got, v2)
	}
}

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
	for _, c := range scanCases {
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

// TestPlain8: the word test agrees with plainByte on every byte value in
// every position, next to plain and to other bytes.
func TestPlain8(t *testing.T) {
	for c := range 256 {
		for pos := range 8 {
			for _, fill := range []byte{'a', ' ', '~', 0x21, 0x5b, 0x5d} {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(c)
				want := true
				for _, x := range w {
					want = want && plainByte[x]
				}
				if got := plain8(binary.LittleEndian.Uint64(w[:])); got != want {
					t.Fatalf("plain8(%q) = %v, want %v", w, got, want)
				}
			}
		}
	}
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
