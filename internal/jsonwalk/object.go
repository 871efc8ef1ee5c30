package jsonwalk

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Objects read and edited in place: ScanObject finds an object's members,
// PatchObject writes it again with members replaced, dropped or added, and
// SetPath sets one member at a path. What is kept is copied as received,
// never re-encoded.

// The errors of an object ScanObject refuses although it is valid JSON:
// decoders disagree about which of two equal names wins, and a name that
// is not UTF-8 may equal another once decoded.
var (
	ErrDuplicateName = errors.New("duplicate name")
	ErrInvalidName   = errors.New("name is not valid UTF-8")
)

// SyntaxError is a document that is not JSON, at Offset.
type SyntaxError struct{ Offset int }

func (e *SyntaxError) Error() string { return fmt.Sprintf("%v at offset %d", ErrSyntax, e.Offset) }

// Unwrap makes a SyntaxError match ErrSyntax.
func (e *SyntaxError) Unwrap() error { return ErrSyntax }

// Field is one member of a scanned object: offsets into the document.
type Field struct {
	Name            []byte // decoded; aliases the document unless escaped
	Start, Val, End int    // the name's opening quote, the value's start, its end
}

// Object is a scanned object: where it lies and its members.
type Object struct {
	Start, End int // '{' and one past '}'
	Fields     []Field
}

// Find returns the member named name, or nil.
func (o *Object) Find(name string) *Field {
	for i := range o.Fields {
		if string(o.Fields[i].Name) == name {
			return &o.Fields[i]
		}
	}
	return nil
}

// ScanObject reads the object at b[i] with its members' names decoded; b
// must be valid JSON (see Check): values are passed by Skip. A name held
// twice, or one that is not valid UTF-8, refuses the object.
func ScanObject(b []byte, i int) (Object, error) {
	o := Object{Start: i, Fields: make([]Field, 0, 8)}
	if i >= len(b) || b[i] != '{' {
		return o, &SyntaxError{i}
	}
	s := New(b)
	s.Seek(i)
	if err := s.Open(); err != nil {
		return o, &SyntaxError{s.Pos()}
	}
	var seen map[string]bool // past a few members, the duplicate check is a map
	for n := 0; ; n++ {
		name, ok, err := s.Member(n)
		if err != nil {
			return o, &SyntaxError{s.Pos()}
		}
		if !ok {
			break
		}
		start, end := s.Name()
		if !utf8.Valid(b[start:end]) {
			return o, ErrInvalidName
		}
		f := Field{Name: name, Start: start}
		if len(o.Fields) == 8 {
			seen = map[string]bool{}
			for _, f := range o.Fields {
				seen[string(f.Name)] = true
			}
		}
		if seen != nil && seen[string(f.Name)] || seen == nil && o.Find(string(f.Name)) != nil {
			return o, fmt.Errorf("%w %q", ErrDuplicateName, f.Name)
		}
		if seen != nil {
			seen[string(f.Name)] = true
		}
		s.SkipSpace()
		f.Val = s.Pos()
		if err := s.Skip(); err != nil {
			return o, &SyntaxError{s.Pos()}
		}
		f.End = s.Pos()
		o.Fields = append(o.Fields, f)
	}
	o.End = s.Pos()
	return o, nil
}

// ObjectAt scans f's value as an object; ok is false when it is some other
// value (or f is nil).
func ObjectAt(b []byte, f *Field) (Object, bool, error) {
	if f == nil || f.Val >= len(b) || b[f.Val] != '{' {
		return Object{}, false, nil
	}
	o, err := ScanObject(b, f.Val)
	return o, err == nil, err
}

// StringAt is f's value when it is a string.
func StringAt(b []byte, f *Field) (string, bool) {
	if f == nil || f.Val >= len(b) || b[f.Val] != '"' {
		return "", false
	}
	raw := b[f.Val:f.End]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	return string(Unquote(raw)), true
}

// Keep is the edit of PatchObject that keeps every member.
func Keep(*Field) ([]byte, bool) { return nil, false }

// PatchObject appends to dst the object o of b with each member as edit
// says (nil: kept as received; drop: left out; else the new value), then
// the members of add, each a whole "name":value.
func PatchObject(dst, b []byte, o Object, edit func(f *Field) (v []byte, drop bool), add ...[]byte) []byte {
	size := o.End - o.Start + 2
	for _, a := range add {
		size += len(a) + 1
	}
	dst = append(slices.Grow(dst, size), '{')
	n := 0
	sep := func() {
		if n++; n > 1 {
			dst = append(dst, ',')
		}
	}
	for i := range o.Fields {
		f := &o.Fields[i]
		v, drop := edit(f)
		switch {
		case drop:
		case v == nil:
			sep()
			dst = append(dst, b[f.Start:f.End]...)
		default:
			sep()
			dst = append(append(dst, b[f.Start:f.Val]...), v...)
		}
	}
	for _, a := range add {
		sep()
		dst = append(dst, a...)
	}
	return append(dst, '}')
}

// Keyed is the member "name":v; name must need no escaping.
func Keyed(name string, v []byte) []byte {
	k := append(append(append(make([]byte, 0, len(name)+3+len(v)), '"'), name...), '"', ':')
	return append(k, v...)
}

// SetPath returns the JSON object b (empty or null: {}) with the member at
// path set to v (objects on the way are created), or deleted when v is
// nil. The names of path must need no escaping.
func SetPath(b []byte, path []string, v []byte) ([]byte, error) {
	var o Object
	if t := bytes.TrimSpace(b); len(t) > 0 && string(t) != "null" {
		var err error
		if o, err = ScanObject(t, 0); err != nil {
			return nil, err
		}
		b = t
	}
	found := o.Find(path[0])
	if len(path) > 1 {
		var inner []byte
		if found != nil {
			inner = b[found.Val:found.End]
		}
		var err error
		if v, err = SetPath(inner, path[1:], v); err != nil {
			return nil, err
		}
	}
	var add [][]byte
	if found == nil && v != nil {
		add = append(add, Keyed(path[0], v))
	}
	return PatchObject(nil, b, o, func(f *Field) ([]byte, bool) {
		if f != found {
			return nil, false
		}
		return v, v == nil
	}, add...), nil
}
