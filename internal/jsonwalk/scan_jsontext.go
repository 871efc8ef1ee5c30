//go:build jsonwalk_jsontext

package jsonwalk

// The Scanner built on jsontext's Decoder instead of by hand, to measure the
// two on the callers' benchmarks: build with -tags jsonwalk_jsontext.

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// Scanner is a cursor over one document. Each method reads from the cursor
// on, validating what it passes; after an error the cursor is undefined.
type Scanner struct {
	b   []byte
	pos int      // the offset while no decoder is open
	x   *decoder // open while inside a top-level value
	// peeked: the cursor is at the next token, past whitespace and a
	// separator the decoder has not consumed yet.
	peeked              bool
	maxDepth, maxString int
	over                Over
	overSet             bool
	nameStart, nameEnd  int
}

// decoder reads b[base:]; pooled, and put back when its top-level value
// ends, so a scan allocates no Decoder.
type decoder struct {
	in   bytes.Buffer
	d    *jsontext.Decoder
	base int
}

var decodeOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

var decoders = sync.Pool{New: func() any {
	x := &decoder{}
	x.d = jsontext.NewDecoder(&x.in, decodeOptions...)
	return x
}}

// New returns a Scanner at the start of b, without limits.
func New(b []byte) Scanner { return Scanner{b: b, maxDepth: -1, maxString: -1} }

// NewLimited returns a Scanner at the start of b that notes (Over) the
// first nesting deeper than maxDepth and the first string, object names
// included, longer than maxString encoded bytes; a negative limit is none.
func NewLimited(b []byte, maxDepth, maxString int) Scanner {
	return Scanner{b: b, maxDepth: maxDepth, maxString: maxString}
}

func (s *Scanner) dec() *jsontext.Decoder {
	if s.x == nil {
		x := decoders.Get().(*decoder)
		x.in = *bytes.NewBuffer(s.b[s.pos:])
		x.base = s.pos
		x.d.Reset(&x.in, decodeOptions...)
		s.x = x
	}
	s.peeked = false
	return s.x.d
}

// off is the offset after the last token read.
func (s *Scanner) off() int {
	if s.x == nil {
		return s.pos
	}
	return s.x.base + int(s.x.d.InputOffset())
}

// settle puts the decoder back once its top-level value has ended.
func (s *Scanner) settle() {
	if s.x != nil && s.x.d.StackDepth() == 0 {
		s.pos = s.off()
		s.x.in = bytes.Buffer{}
		decoders.Put(s.x)
		s.x = nil
	}
}

func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return ErrEOF
	}
	return ErrSyntax
}

// Bytes is the document.
func (s *Scanner) Bytes() []byte { return s.b }

// Pos is the offset of the next byte to read.
func (s *Scanner) Pos() int {
	p := s.off()
	if s.peeked {
		p = SkipSpace(s.b, p)
		if s.x != nil && p < len(s.b) && (s.b[p] == ',' || s.b[p] == ':') {
			p = SkipSpace(s.b, p+1)
		}
	}
	return p
}

// Seek moves the cursor to offset i: at the top level anywhere, inside a
// value only past the value at the cursor.
func (s *Scanner) Seek(i int) {
	if s.x == nil {
		s.pos, s.peeked = i, false
		return
	}
	s.dec().SkipValue()
	s.settle()
}

// Over is the first limit found exceeded, if any.
func (s *Scanner) Over() (Over, bool) { return s.over, s.overSet }

// SkipSpace moves the cursor past whitespace.
func (s *Scanner) SkipSpace() { s.peeked = true }

// Peek skips whitespace and returns the next byte, 0 at the end.
func (s *Scanner) Peek() byte {
	if s.dec().PeekKind() == 0 {
		return 0
	}
	s.peeked = true
	return s.b[s.Pos()]
}

// Value reads one value of any kind.
func (s *Scanner) Value() error {
	var err error
	if s.maxDepth >= 0 || s.maxString >= 0 {
		err = s.limitedValue()
	} else {
		err = s.dec().SkipValue()
	}
	s.settle()
	return mapErr(err)
}

// Skip passes the value at the cursor of a document already found valid.
func (s *Scanner) Skip() error { return s.Value() }

func (s *Scanner) limitedValue() error {
	d := s.dec()
	switch d.PeekKind() {
	case '{', '[':
		if err := s.Open(); err != nil {
			return err
		}
		for {
			switch d.PeekKind() {
			case '}', ']':
				_, err := d.ReadToken()
				return err
			case 0:
				_, err := d.ReadToken()
				return err
			}
			if err := s.limitedValue(); err != nil {
				return err
			}
		}
	case '"':
		v, err := d.ReadValue()
		if err == nil {
			s.limitString(len(v) - 2)
		}
		return err
	default:
		_, err := d.ReadValue()
		return err
	}
}

func (s *Scanner) limitString(n int) {
	if s.maxString >= 0 && n > s.maxString && !s.overSet {
		s.over, s.overSet = Over{N: n, Limit: s.maxString}, true
	}
}

// Null reads a null if one is next and reports whether it did.
func (s *Scanner) Null() bool {
	d := s.dec()
	if d.PeekKind() != 'n' {
		return false
	}
	_, err := d.ReadToken()
	s.settle()
	return err == nil
}

// Quoted reads the string whose opening quote is at the cursor and returns
// the offset of its first byte after the quote; plain reports that the
// text between the quotes is the string itself: no escape, valid UTF-8.
func (s *Scanner) Quoted() (start int, plain bool, err error) {
	v, err := s.dec().ReadValue()
	if err != nil {
		return 0, false, mapErr(err)
	}
	end := s.off()
	s.settle()
	s.limitString(len(v) - 2)
	return end - len(v) + 1, bytes.IndexByte(v, '\\') < 0 && utf8.Valid(v), nil
}

// Open reads the '{' or '[' at the cursor (which the caller has peeked).
func (s *Scanner) Open() error {
	d := s.dec()
	if _, err := d.ReadToken(); err != nil {
		return mapErr(err)
	}
	if s.maxDepth >= 0 && d.StackDepth() > s.maxDepth && !s.overSet {
		s.over, s.overSet = Over{Depth: true, Limit: s.maxDepth}, true
	}
	return nil
}

// Element reads up to element n (0, 1, …) of the array being read, the
// comma before it included, leaving the cursor before the element; ok is
// false when the array ended instead (its ']' read).
func (s *Scanner) Element(n int) (ok bool, err error) {
	d := s.dec()
	switch d.PeekKind() {
	case ']':
		_, err := d.ReadToken()
		s.settle()
		return false, mapErr(err)
	case 0:
		return false, s.Unexpected()
	}
	return true, nil
}

// Member reads the name of member n (0, 1, …) of the object being read,
// and the colon after it, leaving the cursor before the member's value; ok
// is false when the object ended instead (its '}' read). name is decoded:
// a slice of the document unless it has escapes or invalid UTF-8.
func (s *Scanner) Member(n int) (name []byte, ok bool, err error) {
	d := s.dec()
	switch d.PeekKind() {
	case '}':
		_, err := d.ReadToken()
		s.settle()
		return nil, false, mapErr(err)
	case '"':
	default:
		return nil, false, s.Unexpected()
	}
	v, err := d.ReadValue()
	if err != nil {
		return nil, false, mapErr(err)
	}
	s.nameEnd = s.off()
	s.nameStart = s.nameEnd - len(v)
	s.limitString(len(v) - 2)
	name = s.b[s.nameStart+1 : s.nameEnd-1]
	if bytes.IndexByte(v, '\\') >= 0 || !utf8.Valid(v) {
		name = Unquote(v)
	}
	return name, true, nil
}

// Name is where the name Member just read lies, quotes included.
func (s *Scanner) Name() (start, end int) { return s.nameStart, s.nameEnd }

// Unexpected is the error of a byte that does not belong at the cursor.
func (s *Scanner) Unexpected() error {
	if s.x == nil && SkipSpace(s.b, s.pos) >= len(s.b) {
		return ErrEOF
	}
	_, err := s.dec().ReadToken()
	if err == nil {
		return ErrSyntax
	}
	return mapErr(err)
}

// End checks that nothing but whitespace follows.
func (s *Scanner) End() error {
	if s.x != nil || SkipSpace(s.b, s.pos) != len(s.b) {
		return ErrSyntax
	}
	return nil
}
