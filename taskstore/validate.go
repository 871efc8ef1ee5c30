package taskstore

// checkValue verifies that raw is one valid JSON value no deeper than
// maxDepth and with no string (object keys included) longer than maxString
// encoded bytes. A negative limit is no limit. One pass: invalid JSON is
// ErrInvalidJSON; else the first string or nesting over its limit, in
// document order, is the error.
func checkValue(raw []byte, maxDepth, maxString int) error {
	s := jsonScanner{b: raw, maxString: maxString, maxDepth: maxDepth}
	if s.value() != nil || s.end() != nil {
		return ErrInvalidJSON
	}
	return s.over
}
