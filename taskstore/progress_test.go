package taskstore_test

import (
	"encoding/json"
	"testing"

	"github.com/mcptasks/mcptasks/taskstore"
)

func TestRecordProgress(t *testing.T) {
	for _, c := range []struct {
		raw  string // "" for no variable
		want taskstore.Progress
		ok   bool
	}{
		{"", taskstore.Progress{}, false},
		{`{"progress":3,"total":4,"message":"step 3"}`, taskstore.Progress{Progress: 3, Total: 4, Message: "step 3"}, true},
		{` {"progress":0.5}`, taskstore.Progress{Progress: 0.5}, true},
		{`null`, taskstore.Progress{}, false},
		{`[1,2]`, taskstore.Progress{}, false},
		{`3`, taskstore.Progress{}, false},
		{`{"progress":"3"}`, taskstore.Progress{}, false},
		{`{"progress":-1,"total":4}`, taskstore.Progress{}, false},
		{`{"progress":1,"total":-4}`, taskstore.Progress{}, false},
	} {
		rec := &taskstore.TaskRecord{}
		if c.raw != "" {
			rec.Variables = map[string]json.RawMessage{taskstore.ProgressVariable: json.RawMessage(c.raw)}
		}
		got, ok := rec.Progress()
		if got != c.want || ok != c.ok {
			t.Errorf("%s: Progress() = %+v, %v; want %+v, %v", c.raw, got, ok, c.want, c.ok)
		}
	}
}
