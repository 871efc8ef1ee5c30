package taskid

import (
	"strings"
	"testing"
	"time"
)

// TestNew: a million ids, no duplicate, each valid, increasing within
// the process, and the 128 random bits each set about half the time.
func TestNew(t *testing.T) {
	const n = 1_000_000
	seen := make(map[string]struct{}, n)
	var ones [128]int
	prev := ""
	now := time.Now()
	for i := range n {
		id := New(now) // the same instant: ordering must still hold
		if !Valid(id) {
			t.Fatalf("invalid id %q", id)
		}
		if id <= prev {
			t.Fatalf("ids not increasing: %q then %q", prev, id)
		}
		prev = id
		if _, dup := seen[id]; dup {
			t.Fatalf("duplicate id after %d", i)
		}
		seen[id] = struct{}{}
		if i < 100_000 {
			var r [16]byte
			for j := range 16 {
				r[j] = unhex(id[17+2*j])<<4 | unhex(id[17+2*j+1])
			}
			for j := range 128 {
				if r[j/8]>>(7-j%8)&1 == 1 {
					ones[j]++
				}
			}
		}
	}
	for j, c := range ones {
		// Binomial(100000, 0.5): 6 standard deviations is about ±950.
		if c < 49_000 || c > 51_000 {
			t.Fatalf("random bit %d set %d times in 100000 ids", j, c)
		}
	}
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

func TestValid(t *testing.T) {
	good := New(time.Now())
	for _, bad := range []string{"", "x", good[:48], good + "0", strings.ToUpper(good),
		strings.Replace(good, "-", "0", 1), "../../etc/passwd", good[:16] + ":" + good[17:]} {
		if Valid(bad) {
			t.Errorf("Valid(%q) = true", bad)
		}
	}
}

func TestTime(t *testing.T) {
	now := time.Now().Add(time.Hour) // ahead of every id made so far
	id := New(now)
	got, ok := Time(id)
	if !ok || got.UnixNano() < now.UnixNano() || got.Sub(now) > time.Second {
		t.Errorf("Time(New(%v)) = %v, %v", now, got, ok)
	}
	for _, bad := range []string{"", "nope", id[:Len-1], strings.ToUpper(id)} {
		if _, ok := Time(bad); ok {
			t.Errorf("Time(%q) ok", bad)
		}
	}
}
