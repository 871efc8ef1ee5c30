package jsonwalk

import (
	"encoding/binary"
	"math/bits"
	"testing"
)

// TestSpecial8: the word test finds the first byte that is not a
// plainByte one, for every byte value in every position, next to plain and
// to other bytes (a borrow from a lower byte is what could mislead it).
func TestSpecial8(t *testing.T) {
	for c := range 256 {
		for pos := range 8 {
			for _, fill := range []byte{'a', ' ', '~', 0x00, 0x1f, 0x21, 0x22, 0x5b, 0x5c, 0x5d, 0x80, 0xff} {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(c)
				first := 8
				for i, x := range w {
					if !plainByte[x] {
						first = i
						break
					}
				}
				m := special8(binary.LittleEndian.Uint64(w[:]))
				if got := bits.TrailingZeros64(m) >> 3; got != first {
					t.Fatalf("special8(%q) finds byte %d, want %d", w, got, first)
				}
			}
		}
	}
}
