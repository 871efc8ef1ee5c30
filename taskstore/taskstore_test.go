package taskstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/internal/taskid"
)

func TestCheckValue(t *testing.T) {
	for _, tc := range []struct {
		in        string
		depth, sl int
		want      error
	}{
		{`1`, 0, 5, nil},
		{`[1]`, 0, 5, ErrTooDeep},
		{`[1]`, 1, 5, nil},
		{`{"a":[{"b":1}]}`, 3, 5, nil},
		{`{"a":[{"b":1}]}`, 2, 5, ErrTooDeep},
		{`"abcde"`, 1, 5, nil},
		{`"abcdef"`, 1, 5, ErrStringTooLong},
		{`{"abcdef":1}`, 1, 5, ErrStringTooLong},
		{`"a\"b]]]]"`, 0, 10, nil}, // brackets inside strings do not nest
		{`"\\"`, 0, 5, nil},
		{`["\\\"[", "x"]`, 1, 5, nil},
		{`[`, 5, 5, ErrInvalidJSON},
		{``, 5, 5, ErrInvalidJSON},
		{`1 2`, 5, 5, ErrInvalidJSON},
		{strings.Repeat("[", 50) + strings.Repeat("]", 50), -1, -1, nil},
	} {
		err := checkValue([]byte(tc.in), tc.depth, tc.sl)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("checkValue(%s, %d, %d) = %v, want %v", tc.in, tc.depth, tc.sl, err, tc.want)
		}
	}
}

// depthOf is a slow, obviously correct depth measure to check checkValue against.
func depthOf(v any) int {
	switch v := v.(type) {
	case []any:
		d := 0
		for _, e := range v {
			d = max(d, depthOf(e))
		}
		return d + 1
	case map[string]any:
		d := 0
		for _, e := range v {
			d = max(d, depthOf(e))
		}
		return d + 1
	}
	return 0
}

func FuzzCheckValue(f *testing.F) {
	for _, s := range []string{`1`, `[[1]]`, `{"a":{"b":[1,"x\"]"]}}`, `"\u005d"`, `[`, `"x`} {
		f.Add([]byte(s), 2)
	}
	f.Fuzz(func(t *testing.T, raw []byte, maxDepth int) {
		maxDepth = maxDepth%20 + 1
		if maxDepth < 0 {
			maxDepth = -maxDepth
		}
		err := checkValue(raw, maxDepth, -1)
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // 1E700 is valid JSON, though no float64
		if dec.Decode(&v) != nil || dec.InputOffset() != int64(len(bytes.TrimRight(raw, " \t\r\n"))) {
			if !errors.Is(err, ErrInvalidJSON) {
				t.Fatalf("invalid JSON accepted: %v", err)
			}
			return
		}
		tooDeep := depthOf(v) > maxDepth
		if tooDeep != errors.Is(err, ErrTooDeep) || (!tooDeep && err != nil) {
			t.Fatalf("depth %d, limit %d: checkValue = %v", depthOf(v), maxDepth, err)
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	rec := &TaskRecord{Task: Task{TaskID: taskid.New(time.Now()), Status: StatusWorking, CreatedAt: time.Now(), LastUpdatedAt: time.Now()},
		OwnerID: "o", Variables: map[string]json.RawMessage{"a": json.RawMessage(`1`)}, RequestMethod: "tools/call"}
	good, _ := encodeRecord(rec)
	f.Add(good)
	f.Add([]byte(`{"task":{"createdAt":"x"}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"task":null,"variables":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeRecord(Record{TaskID: "t", Data: data, Version: 3})
		if err != nil {
			if !errors.Is(err, ErrBackend) {
				t.Fatalf("decode error is not ErrBackend: %v", err)
			}
			return
		}
		if r.Version != 3 {
			t.Fatal("version lost")
		}
		// What decodes must encode again.
		if _, err := encodeRecord(r); err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
	})
}

func FuzzCursor(f *testing.F) {
	id := taskid.New(time.Now())
	f.Add("alice", encodeCursor("alice", id))
	f.Add("bob", encodeCursor("alice", id))
	f.Add("a", "")
	f.Add("a", "!!")
	f.Fuzz(func(t *testing.T, reader, cursor string) {
		got, err := decodeCursor(reader, cursor)
		if err != nil {
			if !errors.Is(err, ErrInvalidCursor) {
				t.Fatalf("cursor error is not ErrInvalidCursor: %v", err)
			}
			return
		}
		if !taskid.Valid(got) {
			t.Fatalf("decoded an invalid id %q", got)
		}
		if cursor != encodeCursor(reader, got) {
			t.Fatalf("a cursor that is not this reader's own was accepted")
		}
	})
}

// FuzzListCursor: a ListAllOwners cursor either decodes to a position
// (the start, or a key with a valid task id) whose cursor is exactly the
// one given, or fails with ErrInvalidCursor; it never panics, and only a
// cursor of the same filter decodes.
func FuzzListCursor(f *testing.F) {
	id := taskid.New(time.Now())
	tag := (&ListFilter{Owner: "alice"}).tag()
	f.Add("alice", encodeListCursor(tag, Key{Owner: "bob\x00:{x}", TaskID: id}))
	f.Add("alice", encodeListCursor(tag, Key{TaskID: id}))
	f.Add("alice", encodeListCursor(tag, Key{}))
	f.Add("bob", encodeListCursor(tag, Key{Owner: "x", TaskID: id}))
	f.Add("alice", encodeCursor("alice", id))
	f.Add("", "")
	f.Add("a", "!!")
	f.Fuzz(func(t *testing.T, owner, cursor string) {
		lf := ListFilter{Owner: owner}
		k, err := decodeListCursor(lf.tag(), cursor)
		if err != nil {
			if !errors.Is(err, ErrInvalidCursor) {
				t.Fatalf("cursor error is not ErrInvalidCursor: %v", err)
			}
			return
		}
		if k != (Key{}) && !taskid.Valid(k.TaskID) {
			t.Fatalf("decoded a key with an invalid id %q", k.TaskID)
		}
		if cursor != encodeListCursor(lf.tag(), k) {
			t.Fatalf("accepted a cursor that is not the spelling of its position")
		}
	})
}

// FuzzMergeVariables: a merge either fails with a validation error and
// leaves the record as it was, or its result obeys every limit and holds
// exactly the merged keys.
func FuzzMergeVariables(f *testing.F) {
	f.Add("a", []byte(`1`), "b", []byte(`null`))
	f.Add("a", []byte(`[[[[[[[[[[[1]]]]]]]]]]]`), "a", []byte(`"x"`))
	f.Add("", []byte(`{`), "k", []byte(` null `))
	f.Add(strings.Repeat("&", 30), []byte(`"`+strings.Repeat("<", 100)+`"`), "c", []byte(` 1 `))
	s := &Store{cfg: Config{MaxVariablesSize: 200, MaxStringLen: 30, MaxDepth: 3}.withDefaults(0)}
	f.Fuzz(func(t *testing.T, k1 string, v1 []byte, k2 string, v2 []byte) {
		rec := &TaskRecord{Variables: map[string]json.RawMessage{"keep": json.RawMessage(`true`), "b": json.RawMessage(`2`)}}
		before, _ := json.Marshal(rec.Variables)
		err := s.mergeVariables(rec, map[string]json.RawMessage{k1: v1, k2: v2})
		after, _ := json.Marshal(rec.Variables)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("merge error is not a validation error: %v", err)
			}
			if string(before) != string(after) {
				t.Fatal("a refused merge changed the variables")
			}
			return
		}
		// The limit is on the variables as the record stores them.
		if stored := appendObject(nil, rec.Variables); len(stored) > 200 {
			t.Fatalf("merged variables are %d bytes as stored, limit 200", len(stored))
		}
		for k, v := range rec.Variables {
			if checkValue(v, 3, 30) != nil || len(k) > 30 {
				t.Fatalf("stored variable %q breaks a limit", k)
			}
		}
	})
}

func TestCreateLimiter(t *testing.T) {
	l := newCreateLimiter(10, 3)
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if !l.allow("a", t0) {
			t.Fatalf("burst token %d refused", i)
		}
	}
	if l.allow("a", t0) {
		t.Fatal("fourth create in the same instant allowed")
	}
	if !l.allow("b", t0) {
		t.Fatal("another owner was limited")
	}
	if l.allow("a", t0.Add(50*time.Millisecond)) {
		t.Fatal("allowed after half a token's time")
	}
	if !l.allow("a", t0.Add(100*time.Millisecond)) {
		t.Fatal("refused after a token's time")
	}
	if newCreateLimiter(0, 5).allow("a", t0) != true {
		t.Fatal("a disabled limiter refused")
	}
	// Idle buckets are dropped once there are many; busy ones are kept.
	for i := range maxIdleBuckets {
		l.allow(fmt.Sprint("idle", i), t0)
	}
	l.allow("new", t0.Add(time.Hour))
	if len(l.byOwn) > 2 {
		t.Fatalf("%d buckets kept after an hour idle", len(l.byOwn))
	}
}
