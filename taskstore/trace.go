package taskstore

import "strings"

// TraceContext is the W3C trace context (https://www.w3.org/TR/trace-context/)
// of the request that created a task, as its client sent it in
// params._meta: kept in the record so that the task's run, on whichever
// replica, belongs to the client's trace. The store keeps the two strings
// and nothing of any tracing library.
type TraceContext struct {
	// Traceparent is "00-<trace id>-<parent id>-<flags>", 55 characters.
	Traceparent string
	// Tracestate is the vendors' list, or "".
	Tracestate string
}

// Bounds of a TraceContext: a traceparent is kept as its 55 characters of
// version 00 (a higher version's extra fields are dropped, as W3C tells a
// version 00 reader to do); a tracestate of more than 32 members or
// MaxTracestateLen bytes is dropped whole.
const (
	TraceparentLen    = 55
	MaxTracestateLen  = 512
	maxTracestateList = 32
)

// NewTraceContext returns the trace context a client sent, checked: nil
// when traceparent is not a valid W3C traceparent (missing, malformed,
// all-zero ids, version ff), so hostile input is dropped rather than
// stored. A tracestate that is malformed or over the bounds is dropped
// alone: the traceparent still holds, as W3C says.
func NewTraceContext(traceparent, tracestate string) *TraceContext {
	tp, ok := parseTraceparent(traceparent)
	if !ok {
		return nil
	}
	tc := &TraceContext{Traceparent: tp}
	if validTracestate(tracestate) {
		tc.Tracestate = tracestate
	}
	return tc
}

// valid reports whether tc is what NewTraceContext returns for its strings.
func (tc *TraceContext) valid() bool {
	tp, ok := parseTraceparent(tc.Traceparent)
	return ok && tp == tc.Traceparent && (tc.Tracestate == "" || validTracestate(tc.Tracestate))
}

// parseTraceparent checks s and returns its first 55 characters: all of
// a version 00 traceparent, the fields a version 00 reader knows of a
// higher version.
func parseTraceparent(s string) (string, bool) {
	if len(s) < TraceparentLen || len(s) > 4*TraceparentLen {
		return "", false
	}
	version := s[:2]
	switch {
	case !isHex(version) || version == "ff":
		return "", false
	case version == "00" && len(s) != TraceparentLen:
		return "", false
	case len(s) > TraceparentLen && s[TraceparentLen] != '-':
		return "", false
	}
	s = s[:TraceparentLen]
	traceID, parentID, flags := s[3:35], s[36:52], s[53:55]
	if s[2] != '-' || s[35] != '-' || s[52] != '-' || !isHex(traceID) || !isHex(parentID) || !isHex(flags) ||
		strings.Trim(traceID, "0") == "" || strings.Trim(parentID, "0") == "" {
		return "", false
	}
	return s, true
}

// isHex: lowercase hexadecimal digits only, as W3C requires.
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validTracestate checks a tracestate list: at most 32 members of
// key=value, keys and values as W3C spells them, MaxTracestateLen bytes
// in all. "" is valid (none).
func validTracestate(s string) bool {
	if len(s) > MaxTracestateLen {
		return false
	}
	n := 0
	for member := range strings.SplitSeq(s, ",") {
		member = strings.Trim(member, " \t")
		if member == "" {
			continue // empty members are allowed
		}
		if n++; n > maxTracestateList {
			return false
		}
		key, value, ok := strings.Cut(member, "=")
		if !ok || !validTraceKey(key) || !validTraceValue(value) {
			return false
		}
	}
	return true
}

// validTraceKey: lcalpha then up to 255 of [a-z0-9_*/-], or
// tenant@system with a system of at most 14 characters.
func validTraceKey(k string) bool {
	tenant, system, multi := strings.Cut(k, "@")
	if !multi {
		return len(k) <= 256 && k != "" && k[0] >= 'a' && k[0] <= 'z' && keyChars(k)
	}
	return tenant != "" && len(tenant) <= 241 && keyChars(tenant) &&
		system != "" && len(system) <= 14 && system[0] >= 'a' && system[0] <= 'z' && keyChars(system)
}

func keyChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' && c != '*' && c != '/' {
			return false
		}
	}
	return true
}

// validTraceValue: 1 to 256 printable ASCII characters other than ',' and
// '=', not ending in a space.
func validTraceValue(v string) bool {
	if v == "" || len(v) > 256 || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return true
}
