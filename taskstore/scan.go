package taskstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// jsonScanner is a validating JSON scanner over one document in memory.
// It accepts exactly what encoding/json v1 accepts (json.Valid) and what
// jsontext accepts with AllowInvalidUTF8 and AllowDuplicateNames: RFC 8259
// syntax, invalid UTF-8 inside strings kept as it is, repeated object
// names, at most maxNestingDepth levels of arrays and objects. The record
// decoder walks a stored document with it once, validating everything
// and keeping raw values as slices of the document; checkValue uses it
// for values entering the Store. FuzzScanAgrees pins the agreement.
type jsonScanner struct {
	b     []byte
	i     int // the next byte to read
	depth int // open arrays and objects
	// limits, when checking: the first string (object names included)
	// longer than maxString encoded bytes between its quotes, or the first
	// nesting deeper than maxDepth, sets over (negative limits: none).
	// The scan goes on, so that invalid JSON is reported as such first.
	maxString, maxDepth int
	over                error
}

// maxNestingDepth is the deepest nesting encoding/json (v1 and v2) reads.
const maxNestingDepth = 10000

var (
	errSyntax  = errors.New("invalid JSON")
	errEOF     = errors.New("unexpected end of JSON")
	errTooDeep = errors.New("JSON nested too deeply")
)

func (s *jsonScanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek skips whitespace and returns the next byte, 0 at the end.
func (s *jsonScanner) peek() byte {
	s.skipSpace()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// value reads one value of any kind.
func (s *jsonScanner) value() error {
	switch c := s.peek(); c {
	case '{':
		return s.skipObject()
	case '[':
		return s.skipArray()
	case '"':
		_, _, err := s.str()
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	case 0:
		if s.i >= len(s.b) {
			return errEOF
		}
		return errSyntax
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return s.number()
		}
		return errSyntax
	}
}

func (s *jsonScanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) {
		return errEOF
	}
	if string(s.b[s.i:s.i+len(lit)]) != lit {
		return errSyntax
	}
	s.i += len(lit)
	return nil
}

// null reads a null if one is next and reports whether it did.
func (s *jsonScanner) null() bool {
	if s.peek() == 'n' && s.literal("null") == nil {
		return true
	}
	return false
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *jsonScanner) number() error {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return errEOF
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	default:
		return errSyntax
	}
	digits := func() error {
		if i >= len(b) {
			return errEOF
		}
		if b[i] < '0' || b[i] > '9' {
			return errSyntax
		}
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
		return nil
	}
	if i < len(b) && b[i] == '.' {
		i++
		if err := digits(); err != nil {
			return err
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if err := digits(); err != nil {
			return err
		}
	}
	s.i = i
	return nil
}

// str reads a string at s.i (its opening quote) and returns the offset of
// its first byte after the quote; plain reports that the text between
// the quotes is the string itself: no escape, valid UTF-8.
func (s *jsonScanner) str() (start int, plain bool, err error) {
	b, i := s.b, s.i+1
	start, plain = i, true
	ascii := true
	for {
		for i+8 <= len(b) && plain8(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && plainByte[b[i]] {
			i++
		}
		if i >= len(b) {
			return 0, false, errEOF
		}
		switch c := b[i]; {
		case c == '"':
			if s.maxString >= 0 && i-start > s.maxString && s.over == nil {
				s.over = fmt.Errorf("%w: %d bytes, limit %d", ErrStringTooLong, i-start, s.maxString)
			}
			if plain && !ascii {
				plain = utf8.Valid(b[start:i])
			}
			s.i = i + 1
			return start, plain, nil
		case c == '\\':
			plain = false
			if i+1 >= len(b) {
				return 0, false, errEOF
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 {
					return 0, false, errEOF
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return 0, false, errSyntax
					}
				}
				i += 6
			default:
				return 0, false, errSyntax
			}
		case c < ' ':
			return 0, false, errSyntax
		default: // a byte of a multi-byte sequence, or invalid UTF-8: kept
			ascii = false
			i++
		}
	}
}

// plainByte marks the bytes that stand for themselves inside a string:
// ASCII, not a control character, quote or backslash.
var plainByte = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plain8 reports whether all 8 bytes of x are plainByte ones, with the
// bit tricks of "Bit Twiddling Hacks" (determine if a word has a byte less
// than n / equal to n): exact as a yes or no.
func plain8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	control := (x - ' '*ones) & ^x & highs
	q := x ^ ('"' * ones)
	quote := (q - ones) & ^q & highs
	e := x ^ ('\\' * ones)
	escape := (e - ones) & ^e & highs
	return (control | quote | escape | x&highs) == 0
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// open reads the '{' or '[' at s.i.
func (s *jsonScanner) open() error {
	s.depth++
	if s.depth > maxNestingDepth {
		return errTooDeep
	}
	if s.maxDepth >= 0 && s.depth > s.maxDepth && s.over == nil {
		s.over = fmt.Errorf("%w: limit %d", ErrTooDeep, s.maxDepth)
	}
	s.i++
	return nil
}

func (s *jsonScanner) skipArray() error {
	if err := s.open(); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.i++
		s.depth--
		return nil
	}
	for {
		if err := s.value(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
			return nil
		default:
			return s.unexpected()
		}
	}
}

func (s *jsonScanner) skipObject() error {
	if err := s.open(); err != nil {
		return err
	}
	for n := 0; ; n++ {
		_, ok, err := s.member(n)
		if err != nil || !ok {
			return err
		}
		if err := s.value(); err != nil {
			return err
		}
	}
}

// member reads the name of member n (0, 1, …) of the object being read,
// and the colon after it, leaving s at the member's value; ok is false
// when the object ended instead (its '}' read).
func (s *jsonScanner) member(n int) (name []byte, ok bool, err error) {
	c := s.peek()
	if c == '}' {
		s.i++
		s.depth--
		return nil, false, nil
	}
	if n > 0 {
		if c != ',' {
			return nil, false, s.unexpected()
		}
		s.i++
		c = s.peek()
	}
	if c != '"' {
		return nil, false, s.unexpected()
	}
	start, plain, err := s.str()
	if err != nil {
		return nil, false, err
	}
	name = s.b[start : s.i-1]
	if !plain {
		name = unquote(s.b[start-1 : s.i])
	}
	if s.peek() != ':' {
		return nil, false, s.unexpected()
	}
	s.i++
	return name, true, nil
}

func (s *jsonScanner) unexpected() error {
	if s.i >= len(s.b) {
		return errEOF
	}
	return errSyntax
}

// end checks that nothing but whitespace follows.
func (s *jsonScanner) end() error {
	if s.skipSpace(); s.i != len(s.b) {
		return errSyntax
	}
	return nil
}

// validJSON reports whether b is one JSON value (json.Valid).
func validJSON(b []byte) bool {
	s := jsonScanner{b: b, maxString: -1, maxDepth: -1}
	return s.value() == nil && s.end() == nil
}
