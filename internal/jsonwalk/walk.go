// Package jsonwalk reads a JSON document held in memory in one validating
// pass without building values: a Scanner steps through it value by value
// and member by member and says where each lies, so that a caller keeps raw
// values as slices of the document, or cuts and splices the document
// without re-encoding what it keeps.
//
// It accepts exactly what encoding/json's Valid accepts, which is also what
// jsontext accepts with AllowInvalidUTF8 and AllowDuplicateNames: RFC 8259
// syntax, invalid UTF-8 inside strings kept as it is, repeated object names,
// at most MaxDepth levels of arrays and objects. FuzzWalkAgrees pins that
// agreement. A document validated once can be walked again more cheaply:
// Skip passes a value matching brackets and quotes only.
package jsonwalk

import (
	"errors"

	"github.com/go-json-experiment/json/jsontext"
)

// MaxDepth is the deepest nesting encoding/json (v1 and v2) reads.
const MaxDepth = 10000

// The errors of a document that is not JSON.
var (
	ErrSyntax  = errors.New("invalid JSON")
	ErrEOF     = errors.New("unexpected end of JSON")
	ErrTooDeep = errors.New("JSON nested too deeply")
)

// Over is the first limit a scan with limits found exceeded: a nesting
// deeper than Limit (Depth), or else a string of N encoded bytes between
// its quotes.
type Over struct {
	Depth    bool
	N, Limit int
}

// SkipSpace returns the offset of the first byte at or after i that is not
// JSON whitespace (len(b) if none).
func SkipSpace(b []byte, i int) int {
	for i < len(b) && IsSpace(b[i]) {
		i++
	}
	return i
}

// IsSpace reports whether c is JSON whitespace. Most bytes a scan meets
// here are not, so one comparison rules them out.
func IsSpace(c byte) bool { return c <= ' ' && spaceBits>>c&1 != 0 }

const spaceBits = 1<<' ' | 1<<'\t' | 1<<'\n' | 1<<'\r'

// Valid reports whether b is one JSON value (json.Valid).
func Valid(b []byte) bool {
	s := New(b)
	return s.Value() == nil && s.End() == nil
}

// Check is Valid with the reason: nil, or ErrSyntax, ErrEOF or ErrTooDeep
// and the offset where the scan stopped.
func Check(b []byte) (offset int, err error) {
	s := New(b)
	if err := s.Value(); err != nil {
		return s.Pos(), err
	}
	if err := s.End(); err != nil {
		return s.Pos(), err
	}
	return 0, nil
}

// Unquote unescapes a quoted JSON string the scanner accepted; invalid
// UTF-8, raw or escaped, becomes U+FFFD as encoding/json v1 decodes it.
func Unquote(q []byte) []byte {
	out, _ := jsontext.AppendUnquote(nil, q) // its error only reports the invalid UTF-8 it replaced
	return out
}
