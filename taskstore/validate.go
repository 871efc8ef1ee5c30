package taskstore

import (
	"encoding/json"
	"fmt"
)

// checkValue verifies that raw is one valid JSON value no deeper than
// maxDepth and with no string (object keys included) longer than maxString
// encoded bytes. A negative limit is no limit.
func checkValue(raw []byte, maxDepth, maxString int) error {
	if !json.Valid(raw) {
		return ErrInvalidJSON
	}
	// raw is valid JSON, so a byte scan that tracks strings is exact.
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
