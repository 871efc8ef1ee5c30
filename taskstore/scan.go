package taskstore

import (
	"fmt"

	"github.com/mcptasks/mcptasks/internal/jsonwalk"
)

// jsonScanner is checkValue's scan of one value under the Store's limits:
// the walking is jsonwalk's, over becomes the Store's limit error.
type jsonScanner struct {
	b                   []byte
	maxString, maxDepth int
	over                error
	w                   jsonwalk.Scanner
}

// value reads the one value of b.
func (s *jsonScanner) value() error {
	s.w = jsonwalk.NewLimited(s.b, s.maxDepth, s.maxString)
	err := s.w.Value()
	if o, ok := s.w.Over(); ok {
		s.over = limitError(o)
	}
	return err
}

// end checks that nothing but whitespace follows the value.
func (s *jsonScanner) end() error { return s.w.End() }

// limitError is the Store's error for the first limit a scan exceeded.
func limitError(o jsonwalk.Over) error {
	if o.Depth {
		return fmt.Errorf("%w: limit %d", ErrTooDeep, o.Limit)
	}
	return fmt.Errorf("%w: %d bytes, limit %d", ErrStringTooLong, o.N, o.Limit)
}
