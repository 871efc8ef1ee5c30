// Package taskid makes and checks task ids: 16 hex digits of a nanosecond
// timestamp, a dash, then 32 hex digits (128 bits) from crypto/rand. Fixed
// width makes byte order equal time order, which is how backends list
// newest first. Within one process the timestamp part is strictly
// increasing.
package taskid

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
	"time"
)

// Len is the length of every task id, in bytes.
const Len = 16 + 1 + 32

var lastTime atomic.Int64

// New returns a fresh task id for a task created at now.
func New(now time.Time) string {
	ts := now.UnixNano()
	for {
		last := lastTime.Load()
		if ts <= last {
			ts = last + 1
		}
		if lastTime.CompareAndSwap(last, ts) {
			break
		}
	}
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(ts))
	rand.Read(b[8:]) // crypto/rand.Read never returns an error.
	var out [Len]byte
	hex.Encode(out[:16], b[:8])
	out[16] = '-'
	hex.Encode(out[17:], b[8:])
	return string(out[:])
}

// Valid reports whether id has the shape of an id New makes.
func Valid(id string) bool {
	if len(id) != Len || id[16] != '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if i == 16 {
			continue
		}
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Time is the time an id New made carries (its creation, or a little
// later when ids made within one process had to stay increasing); ok is
// false for a string that is not such an id.
func Time(id string) (t time.Time, ok bool) {
	if !Valid(id) {
		return time.Time{}, false
	}
	var b [8]byte
	hex.Decode(b[:], []byte(id[:16])) // Valid: 16 hex digits
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[:]))), true
}
