package jsonwalk

import (
	"errors"
	"testing"
)

func TestSetPath(t *testing.T) {
	cases := []struct {
		in   string
		path []string
		v    string // "" deletes
		want string
	}{
		{``, []string{"a"}, `1`, `{"a":1}`},
		{`null`, []string{"a", "b"}, `true`, `{"a":{"b":true}}`},
		{` {"x":[1,{"y":2}], "a":{"c":3}} `, []string{"a", "b"}, `"v"`, `{"x":[1,{"y":2}],"a":{"c":3,"b":"v"}}`},
		{`{"a":1,"b":2}`, []string{"a"}, `{"n":null}`, `{"a":{"n":null},"b":2}`},
		{`{"a":1,"b":2}`, []string{"a"}, ``, `{"b":2}`},
		{`{"s":"\u00e9\"","a":1}`, []string{"z"}, `0`, `{"s":"\u00e9\"","a":1,"z":0}`},
	}
	for _, c := range cases {
		var v []byte
		if c.v != "" {
			v = []byte(c.v)
		}
		got, err := SetPath([]byte(c.in), c.path, v)
		if err != nil || string(got) != c.want {
			t.Errorf("SetPath(%s, %v, %s) = %s, %v; want %s", c.in, c.path, c.v, got, err, c.want)
		}
	}
}

func TestScanObjectRefusals(t *testing.T) {
	cases := []struct {
		in   string
		want error
	}{
		{`{"a":1,"a":2}`, ErrDuplicateName},
		{`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"e":0}`, ErrDuplicateName}, // past the map switch
		{`{"\u0061":1,"a":2}`, ErrDuplicateName},                                            // equal once decoded
		{"{\"\xff\":1}", ErrInvalidName},
		{`[1]`, ErrSyntax},
	}
	for _, c := range cases {
		if _, err := ScanObject([]byte(c.in), 0); !errors.Is(err, c.want) {
			t.Errorf("ScanObject(%q): %v, want %v", c.in, err, c.want)
		}
	}
	o, err := ScanObject([]byte(`{"k":"v","n":{"m":1}}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(`{"k":"v","n":{"m":1}}`)
	if s, ok := StringAt(b, o.Find("k")); !ok || s != "v" {
		t.Errorf("StringAt = %q, %v", s, ok)
	}
	if in, ok, err := ObjectAt(b, o.Find("n")); !ok || err != nil || in.Find("m") == nil {
		t.Errorf("ObjectAt = %+v, %v, %v", in, ok, err)
	}
	if _, ok, _ := ObjectAt(b, o.Find("k")); ok {
		t.Error("a string is not an object")
	}
}
