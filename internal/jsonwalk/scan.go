package jsonwalk

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// Scanner is a cursor over one document. Each method reads from the cursor
// on, validating what it passes (Skip aside); after an error the cursor is
// undefined.
type Scanner struct {
	b     []byte
	i     int // the next byte to read
	depth int // open arrays and objects
	// limits, when checking (negative: none): the scan goes on past the
	// first one exceeded, so that invalid JSON is reported as such first.
	maxDepth, maxString int
	over                Over
	overSet             bool
	nameStart           int // the opening quote of the name Member read last
}

// New returns a Scanner at the start of b, without limits.
func New(b []byte) Scanner { return Scanner{b: b, maxDepth: -1, maxString: -1} }

// NewLimited returns a Scanner at the start of b that notes (Over) the
// first nesting deeper than maxDepth and the first string, object names
// included, longer than maxString encoded bytes; a negative limit is none.
func NewLimited(b []byte, maxDepth, maxString int) Scanner {
	return Scanner{b: b, maxDepth: maxDepth, maxString: maxString}
}

// Bytes is the document.
func (s *Scanner) Bytes() []byte { return s.b }

// Pos is the offset of the next byte to read.
func (s *Scanner) Pos() int { return s.i }

// Seek moves the cursor to offset i, at the same nesting depth: a caller
// that read a value there by other means moves past it.
func (s *Scanner) Seek(i int) { s.i = i }

// Over is the first limit found exceeded, if any.
func (s *Scanner) Over() (Over, bool) { return s.over, s.overSet }

// SkipSpace moves the cursor past whitespace.
func (s *Scanner) SkipSpace() { s.i = SkipSpace(s.b, s.i) }

// Peek skips whitespace and returns the next byte, 0 at the end.
func (s *Scanner) Peek() byte {
	s.SkipSpace()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// Value reads one value of any kind.
func (s *Scanner) Value() error {
	switch c := s.Peek(); c {
	case '{':
		return s.skipObject()
	case '[':
		return s.skipArray()
	case '"':
		_, _, err := s.Quoted()
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	case 0:
		if s.i >= len(s.b) {
			return ErrEOF
		}
		return ErrSyntax
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return s.number()
		}
		return ErrSyntax
	}
}

func (s *Scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) {
		return ErrEOF
	}
	if string(s.b[s.i:s.i+len(lit)]) != lit {
		return ErrSyntax
	}
	s.i += len(lit)
	return nil
}

// Skip passes the value at the cursor of a document already found valid
// (by Valid or Check, or a decoder): it matches brackets and finds the ends
// of strings, numbers and literals, and checks nothing else. On other
// input it stops somewhere, never past the end.
func (s *Scanner) Skip() error {
	depth := 0
	for s.SkipSpace(); s.i < len(s.b); s.i++ {
		switch s.b[s.i] {
		case '"':
			if _, _, err := s.Quoted(); err != nil || depth == 0 {
				return err
			}
			s.i-- // the loop steps past the closing quote again
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return nil // the end of a number or literal
			}
			if depth--; depth == 0 {
				s.i++
				return nil
			}
		case ',', ':', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return nil // the end of a number or literal
			}
		}
	}
	if depth > 0 {
		return ErrEOF
	}
	return nil
}

// Null reads a null if one is next and reports whether it did.
func (s *Scanner) Null() bool {
	return s.Peek() == 'n' && s.literal("null") == nil
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *Scanner) number() error {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return ErrEOF
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	default:
		return ErrSyntax
	}
	digits := func() error {
		if i >= len(b) {
			return ErrEOF
		}
		if b[i] < '0' || b[i] > '9' {
			return ErrSyntax
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

// Quoted reads the string whose opening quote is at the cursor and returns
// the offset of its first byte after the quote; plain reports that the
// text between the quotes is the string itself: no escape, valid UTF-8.
func (s *Scanner) Quoted() (start int, plain bool, err error) {
	b, i := s.b, s.i+1
	start, plain = i, true
	ascii := true
	for {
		for i+8 <= len(b) {
			if m := special8(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < len(b) && plainByte[b[i]] { // the last few bytes
			i++
		}
		if i >= len(b) {
			return 0, false, ErrEOF
		}
		switch c := b[i]; {
		case c == '"':
			if s.maxString >= 0 && i-start > s.maxString && !s.overSet {
				s.over, s.overSet = Over{N: i - start, Limit: s.maxString}, true
			}
			if plain && !ascii {
				plain = utf8.Valid(b[start:i])
			}
			s.i = i + 1
			return start, plain, nil
		case c == '\\':
			plain = false
			if i+1 >= len(b) {
				return 0, false, ErrEOF
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 {
					return 0, false, ErrEOF
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return 0, false, ErrSyntax
					}
				}
				i += 6
			default:
				return 0, false, ErrSyntax
			}
		case c < ' ':
			return 0, false, ErrSyntax
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

// special8 marks the high bit of each byte of x that is not a plainByte
// one, with the bit tricks of "Bit Twiddling Hacks" (determine if a word
// has a byte less than n / equal to n). A borrow can mark bytes above a
// marked one too, never below, so the lowest mark is the first such byte.
func special8(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	control := (x - ' '*ones) & ^x & highs
	q := x ^ ('"' * ones)
	quote := (q - ones) & ^q & highs
	e := x ^ ('\\' * ones)
	escape := (e - ones) & ^e & highs
	return control | quote | escape | x&highs
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// Open reads the '{' or '[' at the cursor (which the caller has peeked).
func (s *Scanner) Open() error {
	s.depth++
	if s.depth > MaxDepth {
		return ErrTooDeep
	}
	if s.maxDepth >= 0 && s.depth > s.maxDepth && !s.overSet {
		s.over, s.overSet = Over{Depth: true, Limit: s.maxDepth}, true
	}
	s.i++
	return nil
}

func (s *Scanner) skipArray() error {
	if err := s.Open(); err != nil {
		return err
	}
	if s.Peek() == ']' {
		s.i++
		s.depth--
		return nil
	}
	for { // as Element does, without a call per element
		if err := s.Value(); err != nil {
			return err
		}
		switch s.Peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
			return nil
		default:
			return s.Unexpected()
		}
	}
}

// Element reads up to element n (0, 1, …) of the array being read, the
// comma before it included, leaving the cursor before the element; ok is
// false when the array ended instead (its ']' read).
func (s *Scanner) Element(n int) (ok bool, err error) {
	c := s.Peek()
	if c == ']' {
		s.i++
		s.depth--
		return false, nil
	}
	if n > 0 {
		if c != ',' {
			return false, s.Unexpected()
		}
		s.i++
	}
	return true, nil
}

func (s *Scanner) skipObject() error {
	if err := s.Open(); err != nil {
		return err
	}
	for n := 0; ; n++ {
		_, ok, err := s.Member(n)
		if err != nil || !ok {
			return err
		}
		if err := s.Value(); err != nil {
			return err
		}
	}
}

// Member reads the name of member n (0, 1, …) of the object being read,
// and the colon after it, leaving the cursor before the member's value; ok
// is false when the object ended instead (its '}' read). name is decoded:
// a slice of the document unless it has escapes or invalid UTF-8.
func (s *Scanner) Member(n int) (name []byte, ok bool, err error) {
	c := s.Peek()
	if c == '}' {
		s.i++
		s.depth--
		return nil, false, nil
	}
	if n > 0 {
		if c != ',' {
			return nil, false, s.Unexpected()
		}
		s.i++
		c = s.Peek()
	}
	if c != '"' {
		return nil, false, s.Unexpected()
	}
	s.nameStart = s.i
	start, plain, err := s.Quoted()
	if err != nil {
		return nil, false, err
	}
	name = s.b[start : s.i-1]
	if !plain {
		name = Unquote(s.b[start-1 : s.i])
	}
	if s.Peek() != ':' {
		return nil, false, s.Unexpected()
	}
	s.i++
	return name, true, nil
}

// Name is where the name Member just read lies, quotes included; asked
// before the member's value is read (it looks back from the colon).
func (s *Scanner) Name() (start, end int) {
	end = s.i - 1
	for IsSpace(s.b[end-1]) {
		end--
	}
	return s.nameStart, end
}

// Unexpected is the error of a byte that does not belong at the cursor.
func (s *Scanner) Unexpected() error {
	if s.i >= len(s.b) {
		return ErrEOF
	}
	return ErrSyntax
}

// End checks that nothing but whitespace follows.
func (s *Scanner) End() error {
	if s.SkipSpace(); s.i != len(s.b) {
		return ErrSyntax
	}
	return nil
}
