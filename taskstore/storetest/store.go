package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

func runStoreTests(t *testing.T, newBackend NewBackend) {
	open := func(t *testing.T, cfg taskstore.Config) *taskstore.Store {
		return taskstore.New(newBackend(t), cfg)
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store)
	}{
		{"CreateDefaults", testStoreCreateDefaults},
		{"CreateOptions", testStoreCreateOptions},
		{"Transitions", testStoreTransitions},
		{"Variables", testStoreVariables},
		{"Limits", testStoreLimits},
		{"Owners", testStoreOwners},
		{"OwnerIsolation", testStoreOwnerIsolation},
		{"Quota", testStoreQuota},
		{"Expiry", testStoreExpiry},
		{"Results", testStoreResults},
		{"Cancel", testStoreCancel},
		{"ConcurrentMerges", testStoreConcurrentMerges},
		{"ConcurrentTerminal", testStoreConcurrentTerminal},
		{"List", testStoreList},
		{"WireJSON", testStoreWireJSON},
		{"Handle", testStoreHandle},
		{"LinearizableTransitions", testStoreLinearizableTransitions},
		{"RateLimit", testStoreRateLimit},
		{"InputFlow", testStoreInputFlow},
		{"OwnerIsolationProperty", testStoreOwnerIsolationProperty},
		{"LimitsEveryEntryPoint", testStoreLimitsEveryEntryPoint},
		{"ActiveQuota", testStoreActiveQuota},
		{"EndOrphanOnce", testStoreEndOrphanOnce},
		{"ClaimAndFence", testStoreClaimAndFence},
		{"ClaimClearsInput", testStoreClaimClearsInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

var toolCall = taskstore.CreateRequest{RequestMethod: "tools/call"}

func create(t testing.TB, s *taskstore.Store, owner string) *taskstore.TaskRecord {
	t.Helper()
	r, err := s.Create(t.Context(), owner, toolCall)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return r
}

func get(t testing.TB, s *taskstore.Store, owner, id string) *taskstore.TaskRecord {
	t.Helper()
	r, err := s.Get(t.Context(), owner, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return r
}

func dur(d time.Duration) *time.Duration { return &d }

func testStoreCreateDefaults(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{})
	before := time.Now().Add(-time.Millisecond)
	r := create(t, s, "alice")
	if !taskid.Valid(r.Task.TaskID) || r.Task.Status != taskstore.StatusWorking || r.Version != 1 {
		t.Fatalf("new task: id %q status %s v%d", r.Task.TaskID, r.Task.Status, r.Version)
	}
	if r.Task.CreatedAt.Before(before) || !r.Task.CreatedAt.Equal(r.Task.LastUpdatedAt) {
		t.Fatalf("createdAt %v lastUpdatedAt %v", r.Task.CreatedAt, r.Task.LastUpdatedAt)
	}
	if r.Task.TTL == nil || *r.Task.TTL != taskstore.DefaultTTL || r.ExpiresAt == nil || !r.ExpiresAt.Equal(r.Task.CreatedAt.Add(time.Hour)) {
		t.Fatalf("ttl %v expiresAt %v, want 1h after creation", r.Task.TTL, r.ExpiresAt)
	}
	if r.Task.PollInterval == nil || *r.Task.PollInterval != taskstore.DefaultPollInterval {
		t.Fatalf("pollInterval %v, want %v", r.Task.PollInterval, taskstore.DefaultPollInterval)
	}
	got := get(t, s, "alice", r.Task.TaskID)
	if diff := cmp.Diff(r, got); diff != "" {
		t.Fatalf("Get after Create (-want +got):\n%s", diff)
	}
	if got.OwnerID != "alice" || got.RequestMethod != "tools/call" {
		t.Fatalf("owner %q method %q", got.OwnerID, got.RequestMethod)
	}
}

func testStoreCreateOptions(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{DefaultTTL: -1, MaxTTL: 2 * time.Hour})
	ctx := t.Context()
	r, err := s.Create(ctx, "alice", taskstore.CreateRequest{
		RequestMethod: "tools/call",
		TTL:           dur(90 * time.Minute),
		PollInterval:  dur(2 * time.Second),
		Meta:          map[string]json.RawMessage{"k": json.RawMessage(`"meta"`)},
		Variables:     map[string]json.RawMessage{"tool": json.RawMessage(`"sleep"`), "gone": json.RawMessage(`null`)},
		StatusMessage: "queued",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := get(t, s, "alice", r.Task.TaskID)
	if *got.Task.TTL != 90*time.Minute || *got.Task.PollInterval != 2*time.Second || got.Task.StatusMessage != "queued" {
		t.Fatalf("ttl %v poll %v message %q", *got.Task.TTL, *got.Task.PollInterval, got.Task.StatusMessage)
	}
	if diff := cmp.Diff(map[string]json.RawMessage{"tool": json.RawMessage(`"sleep"`)}, got.Variables); diff != "" {
		t.Fatalf("variables (-want +got):\n%s", diff)
	}
	// DefaultTTL -1: no ttl asked, none given.
	r = create(t, s, "alice")
	if got := get(t, s, "alice", r.Task.TaskID); got.Task.TTL != nil || got.ExpiresAt != nil {
		t.Fatalf("unlimited task has ttl %v expiresAt %v", got.Task.TTL, got.ExpiresAt)
	}
	for _, tc := range []struct {
		req  taskstore.CreateRequest
		want error
	}{
		{taskstore.CreateRequest{RequestMethod: "tools/call", TTL: dur(3 * time.Hour)}, taskstore.ErrTTLTooLong},
		{taskstore.CreateRequest{RequestMethod: "tools/call", TTL: dur(0)}, taskstore.ErrInvalidArgument},
		{taskstore.CreateRequest{RequestMethod: "tools/call", TTL: dur(-time.Second)}, taskstore.ErrInvalidArgument},
		{taskstore.CreateRequest{RequestMethod: "tools/call", PollInterval: dur(0)}, taskstore.ErrInvalidArgument},
		{taskstore.CreateRequest{RequestMethod: ""}, taskstore.ErrInvalidRequestName},
		{taskstore.CreateRequest{RequestMethod: "tools/call", Variables: map[string]json.RawMessage{"x": json.RawMessage(`{`)}}, taskstore.ErrInvalidJSON},
	} {
		_, err := s.Create(ctx, "bob", tc.req)
		wantErr(t, fmt.Sprintf("Create(%+v)", tc.req), err, tc.want)
	}
	if p, err := s.List(ctx, "bob", "", 0); err != nil || len(p.Tasks) != 0 {
		t.Fatalf("refused creates left %d tasks (%v)", len(p.Tasks), err)
	}
}

var allStatuses = []taskstore.Status{
	taskstore.StatusWorking, taskstore.StatusInputRequired,
	taskstore.StatusCompleted, taskstore.StatusFailed, taskstore.StatusCancelled,
}

// testStoreTransitions checks every (from, to) pair against the state
// machine: working and input_required go to each other and to any terminal
// status; terminal statuses go nowhere; no status goes to itself.
func testStoreTransitions(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	ctx := t.Context()
	for _, from := range allStatuses {
		for _, to := range allStatuses {
			r := create(t, s, "alice")
			id := r.Task.TaskID
			if from != taskstore.StatusWorking {
				if _, err := s.UpdateStatus(ctx, "alice", id, from, "setup"); err != nil {
					t.Fatalf("setup to %s: %v", from, err)
				}
			}
			before := get(t, s, "alice", id)
			allowed := !from.Terminal() && from != to
			got, err := s.UpdateStatus(ctx, "alice", id, to, "msg")
			if allowed {
				if err != nil || got.Task.Status != to || got.Task.StatusMessage != "msg" || got.Version != before.Version+1 {
					t.Fatalf("%s -> %s: %v", from, to, err)
				}
				if after := get(t, s, "alice", id); after.Task.Status != to || after.Task.LastUpdatedAt.Before(before.Task.LastUpdatedAt) {
					t.Fatalf("%s -> %s: stored %s", from, to, after.Task.Status)
				}
				continue
			}
			wantErr(t, fmt.Sprintf("%s -> %s", from, to), err, taskstore.ErrInvalidTransition)
			if after := get(t, s, "alice", id); after.Version != before.Version || after.Task.Status != from {
				t.Fatalf("refused %s -> %s changed the task", from, to)
			}
		}
	}
	r := create(t, s, "alice")
	_, err := s.UpdateStatus(ctx, "alice", r.Task.TaskID, "paused", "")
	wantErr(t, "unknown status", err, taskstore.ErrInvalidStatus)
	// An empty message clears the old one.
	s.UpdateStatus(ctx, "alice", r.Task.TaskID, taskstore.StatusInputRequired, "need input")
	got, err := s.UpdateStatus(ctx, "alice", r.Task.TaskID, taskstore.StatusWorking, "")
	if err != nil || got.Task.StatusMessage != "" {
		t.Fatalf("message not cleared: %q, %v", got.Task.StatusMessage, err)
	}
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func testStoreVariables(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{})
	ctx := t.Context()
	r, err := s.Create(ctx, "alice", taskstore.CreateRequest{
		RequestMethod: "tools/call",
		Meta:          map[string]json.RawMessage{"shared": raw(`"from meta"`), "m": raw(`1`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := r.Task.TaskID
	if _, err := s.SetVariables(ctx, "alice", id, map[string]json.RawMessage{"a": raw(`1`), "b": raw(`{"x":[true]}`), "shared": raw(`"from vars"`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetVariables(ctx, "alice", id, map[string]json.RawMessage{"a": raw(`null`), "c": raw(`"s"`), "missing": raw(` null `)}); err != nil {
		t.Fatal(err)
	}
	got := get(t, s, "alice", id)
	want := map[string]json.RawMessage{"b": raw(`{"x":[true]}`), "c": raw(`"s"`), "shared": raw(`"from vars"`)}
	if diff := cmp.Diff(want, got.Variables); diff != "" {
		t.Fatalf("variables (-want +got):\n%s", diff)
	}
	wire := got.WireTask()
	wantMeta := map[string]json.RawMessage{"b": raw(`{"x":[true]}`), "c": raw(`"s"`), "shared": raw(`"from vars"`), "m": raw(`1`)}
	if diff := cmp.Diff(wantMeta, wire.Meta); diff != "" {
		t.Fatalf("_meta with variables merged (-want +got):\n%s", diff)
	}
	if string(got.Task.Meta["shared"]) != `"from meta"` {
		t.Fatal("WireTask changed the stored _meta")
	}
	// Variables may still change on a terminal task.
	s.UpdateStatus(ctx, "alice", id, taskstore.StatusCompleted, "")
	if _, err := s.SetVariables(ctx, "alice", id, map[string]json.RawMessage{"after": raw(`1`)}); err != nil {
		t.Fatalf("SetVariables on a terminal task: %v", err)
	}
}

// testStoreLimits checks that every limit gives its error and writes nothing.
func testStoreLimits(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{MaxVariablesSize: 1000, MaxResultSize: 500, MaxDepth: 3, MaxStringLen: 20})
	ctx := t.Context()
	id := create(t, s, "alice").Task.TaskID
	if _, err := s.SetVariables(ctx, "alice", id, map[string]json.RawMessage{"ok": raw(`[[[1]]]`), "s": raw(`"` + strings.Repeat("x", 20) + `"`)}); err != nil {
		t.Fatalf("values at the limits: %v", err)
	}
	before := get(t, s, "alice", id)
	bigVal := func(n int) json.RawMessage { return raw(`"` + strings.Repeat("y", n) + `"`) }
	for _, tc := range []struct {
		name string
		vars map[string]json.RawMessage
		want error
	}{
		{"too deep", map[string]json.RawMessage{"d": raw(`[[[[1]]]]`)}, taskstore.ErrTooDeep},
		{"too deep object", map[string]json.RawMessage{"d": raw(`{"a":{"b":{"c":{}}}}`)}, taskstore.ErrTooDeep},
		{"long string", map[string]json.RawMessage{"s": bigVal(21)}, taskstore.ErrStringTooLong},
		{"long nested string", map[string]json.RawMessage{"s": raw(`["` + strings.Repeat("z", 21) + `"]`)}, taskstore.ErrStringTooLong},
		{"long key", map[string]json.RawMessage{strings.Repeat("k", 21): raw(`1`)}, taskstore.ErrStringTooLong},
		{"long inner key", map[string]json.RawMessage{"o": raw(`{"` + strings.Repeat("k", 21) + `":1}`)}, taskstore.ErrStringTooLong},
		{"invalid JSON", map[string]json.RawMessage{"j": raw(`{"a":`)}, taskstore.ErrInvalidJSON},
		{"two values", map[string]json.RawMessage{"j": raw(`1 2`)}, taskstore.ErrInvalidJSON},
		{"too large after merge", func() map[string]json.RawMessage {
			m := map[string]json.RawMessage{}
			for i := range 60 {
				m[fmt.Sprint("k", i)] = bigVal(15)
			}
			return m
		}(), taskstore.ErrVariablesTooLarge},
	} {
		_, err := s.SetVariables(ctx, "alice", id, tc.vars)
		wantErr(t, tc.name, err, tc.want)
		wantErr(t, tc.name, err, taskstore.ErrInvalidArgument)
	}
	_, err := s.SetResult(ctx, "alice", id, raw(`"`+strings.Repeat("r", 500)+`"`))
	wantErr(t, "result too large", err, taskstore.ErrResultTooLarge)
	_, err = s.SetResult(ctx, "alice", id, raw(`[[[[1]]]]`))
	wantErr(t, "result too deep", err, taskstore.ErrTooDeep)
	_, err = s.CompleteWithResult(ctx, "alice", id, taskstore.StatusCompleted, "", raw(`not json`))
	wantErr(t, "result not JSON", err, taskstore.ErrInvalidJSON)
	_, err = s.UpdateStatus(ctx, "alice", id, taskstore.StatusInputRequired, strings.Repeat("m", 21))
	wantErr(t, "status message too long", err, taskstore.ErrMessageTooLong)
	_, err = s.FailWithError(ctx, "alice", id, &taskstore.RPCError{Code: -32000, Message: strings.Repeat("m", 21)})
	wantErr(t, "error message too long", err, taskstore.ErrMessageTooLong)
	if after := get(t, s, "alice", id); after.Version != before.Version {
		t.Fatalf("refused writes changed the task: v%d -> v%d", before.Version, after.Version)
	}
	// A result of many short strings within the size is fine: strings in
	// results are not capped by MaxStringLen.
	if _, err := s.SetResult(ctx, "alice", id, raw(`{"text":"`+strings.Repeat("t", 100)+`"}`)); err != nil {
		t.Fatalf("result with a long string: %v", err)
	}
}

func testStoreOwners(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	ctx := t.Context()
	strict := open(t, taskstore.Config{})
	for _, owner := range []string{"", "  ", "\t\n", taskstore.AnonymousOwner} {
		_, err := strict.Create(ctx, owner, toolCall)
		wantErr(t, fmt.Sprintf("Create as %q without AllowAnonymous", owner), err, taskstore.ErrAnonymousOwner)
		_, err = strict.List(ctx, owner, "", 0)
		wantErr(t, fmt.Sprintf("List as %q without AllowAnonymous", owner), err, taskstore.ErrAnonymousOwner)
	}
	for _, owner := range []string{strings.Repeat("o", taskstore.DefaultMaxOwnerLen+1), "bad\xffutf8"} {
		_, err := strict.Create(ctx, owner, toolCall)
		wantErr(t, "Create with an invalid owner", err, taskstore.ErrInvalidOwner)
		if strings.Contains(err.Error(), owner) {
			t.Fatalf("error text names the owner: %v", err)
		}
	}
	anon := open(t, taskstore.Config{AllowAnonymous: true})
	r, err := anon.Create(ctx, "", toolCall)
	if err != nil || r.OwnerID != taskstore.AnonymousOwner {
		t.Fatalf("anonymous Create: owner %q, %v", r.OwnerID, err)
	}
	// "", blanks and "local" are one owner.
	if _, err := anon.Get(ctx, " ", r.Task.TaskID); err != nil {
		t.Fatalf("Get as blank owner: %v", err)
	}
	if _, err := anon.Get(ctx, taskstore.AnonymousOwner, r.Task.TaskID); err != nil {
		t.Fatalf("Get as %q: %v", taskstore.AnonymousOwner, err)
	}
}

// testStoreOwnerIsolation: on every operation, another owner's task answers
// exactly as a task that does not exist.
func testStoreOwnerIsolation(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{MaxActiveTasks: 2})
	ctx := t.Context()
	mine := create(t, s, "foo:bar").Task.TaskID
	create(t, s, "foo:bar")
	missing := taskid.New(time.Now())
	ops := map[string]func(owner, id string) error{
		"Get":          func(o, id string) error { _, err := s.Get(ctx, o, id); return err },
		"UpdateStatus": func(o, id string) error { _, err := s.UpdateStatus(ctx, o, id, taskstore.StatusFailed, ""); return err },
		"SetVariables": func(o, id string) error {
			_, err := s.SetVariables(ctx, o, id, map[string]json.RawMessage{"x": raw(`1`)})
			return err
		},
		"SetResult": func(o, id string) error { _, err := s.SetResult(ctx, o, id, raw(`1`)); return err },
		"GetResult": func(o, id string) error { _, err := s.GetResult(ctx, o, id); return err },
		"CompleteWithResult": func(o, id string) error {
			_, err := s.CompleteWithResult(ctx, o, id, taskstore.StatusCompleted, "", raw(`1`))
			return err
		},
		"FailWithError": func(o, id string) error {
			_, err := s.FailWithError(ctx, o, id, &taskstore.RPCError{Code: 1, Message: "x"})
			return err
		},
		"Cancel": func(o, id string) error { _, err := s.Cancel(ctx, o, id); return err },
	}
	for name, op := range ops {
		for _, thief := range []string{"foo", "foo:", "foo:bar:baz", "FOO:BAR", "foo:bar "} {
			errTheirs := op(thief, mine)
			errMissing := op(thief, missing)
			wantErr(t, name+" of another owner's task", errTheirs, taskstore.ErrNotFound)
			if errTheirs.Error() != errMissing.Error() {
				t.Fatalf("%s: another owner's task answers %q, a missing one %q", name, errTheirs, errMissing)
			}
		}
	}
	if got := get(t, s, "foo:bar", mine); got.Version != 1 {
		t.Fatalf("other owners changed the task to v%d", got.Version)
	}
	// Lists and quotas are per owner.
	for _, o := range []string{"foo", "foo:"} {
		if p, err := s.List(ctx, o, "", 0); err != nil || len(p.Tasks) != 0 {
			t.Fatalf("List(%q) sees %d tasks (%v)", o, len(p.Tasks), err)
		}
		create(t, s, o)
		create(t, s, o)
	}
	_, err := s.Create(ctx, "foo:bar", toolCall)
	wantErr(t, "quota of foo:bar", err, taskstore.ErrQuotaExceeded)
}

func testStoreQuota(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{MaxActiveTasks: 4})
	errs := race(12, func(int) error { _, err := s.Create(context.Background(), "alice", toolCall); return err })
	if ok, _ := countErrs(t, errs, taskstore.ErrQuotaExceeded); ok != 4 {
		t.Fatalf("%d of 12 racing creates succeeded under a quota of 4", ok)
	}
	for _, err := range errs {
		if err != nil && taskstore.RPCCode(err) != taskstore.CodeInternalError {
			t.Fatalf("quota error maps to %d, want %d", taskstore.RPCCode(err), taskstore.CodeInternalError)
		}
	}
	p, err := s.List(t.Context(), "alice", "", 0)
	if err != nil || len(p.Tasks) != 4 {
		t.Fatalf("%d tasks stored (%v)", len(p.Tasks), err)
	}
}

func testStoreExpiry(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{MaxActiveTasks: 1})
	ctx := t.Context()
	r, err := s.Create(ctx, "alice", taskstore.CreateRequest{RequestMethod: "tools/call", TTL: dur(shortTTL)})
	if err != nil {
		t.Fatal(err)
	}
	id := r.Task.TaskID
	_, err = s.Create(ctx, "alice", toolCall)
	wantErr(t, "quota while the task lives", err, taskstore.ErrQuotaExceeded)
	time.Sleep(time.Until(*r.ExpiresAt) + expiryWait - shortTTL)
	for name, err := range map[string]error{
		"Get":          func() error { _, err := s.Get(ctx, "alice", id); return err }(),
		"UpdateStatus": func() error { _, err := s.UpdateStatus(ctx, "alice", id, taskstore.StatusFailed, ""); return err }(),
		"GetResult":    func() error { _, err := s.GetResult(ctx, "alice", id); return err }(),
		"Cancel":       func() error { _, err := s.Cancel(ctx, "alice", id); return err }(),
	} {
		wantErr(t, name+" of an expired task", err, taskstore.ErrNotFound)
	}
	if p, err := s.List(ctx, "alice", "", 0); err != nil || len(p.Tasks) != 0 {
		t.Fatalf("List shows %d expired tasks (%v)", len(p.Tasks), err)
	}
	if _, err := s.Create(ctx, "alice", toolCall); err != nil {
		t.Fatalf("an expired task still counts toward the quota: %v", err)
	}
	if _, err := s.CleanupExpired(ctx); err != nil {
		t.Fatal(err)
	}
}

func testStoreResults(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{})
	ctx := t.Context()
	id := create(t, s, "alice").Task.TaskID
	_, err := s.GetResult(ctx, "alice", id)
	wantErr(t, "GetResult of a working task", err, taskstore.ErrNotReady)
	if _, err := s.SetResult(ctx, "alice", id, raw(`{"partial":true}`)); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetResult(ctx, "alice", id)
	wantErr(t, "GetResult of a working task with a result", err, taskstore.ErrNotReady)
	if _, err := s.UpdateStatus(ctx, "alice", id, taskstore.StatusCompleted, "done"); err != nil {
		t.Fatal(err)
	}
	r, err := s.GetResult(ctx, "alice", id)
	if err != nil || string(r.Result) != `{"partial":true}` {
		t.Fatalf("GetResult: %s, %v", r.Result, err)
	}
	_, err = s.SetResult(ctx, "alice", id, raw(`2`))
	wantErr(t, "SetResult on a terminal task", err, taskstore.ErrInvalidTransition)

	id = create(t, s, "alice").Task.TaskID
	r, err = s.CompleteWithResult(ctx, "alice", id, taskstore.StatusFailed, "tool failed", raw(`{"isError":true}`))
	if err != nil || r.Task.Status != taskstore.StatusFailed || r.Task.StatusMessage != "tool failed" {
		t.Fatalf("CompleteWithResult: %+v, %v", r, err)
	}
	if r, err := s.GetResult(ctx, "alice", id); err != nil || string(r.Result) != `{"isError":true}` {
		t.Fatalf("GetResult: %v", err)
	}
	_, err = s.CompleteWithResult(ctx, "alice", id, taskstore.StatusCompleted, "", raw(`1`))
	wantErr(t, "CompleteWithResult twice", err, taskstore.ErrInvalidTransition)

	id = create(t, s, "alice").Task.TaskID
	rpcErr := &taskstore.RPCError{Code: -32602, Message: "bad arguments", Data: raw(`{"field":"seconds"}`)}
	if _, err := s.FailWithError(ctx, "alice", id, rpcErr); err != nil {
		t.Fatal(err)
	}
	r, err = s.GetResult(ctx, "alice", id)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rpcErr, r.Error); diff != "" || r.Task.Status != taskstore.StatusFailed || r.Task.StatusMessage != "bad arguments" {
		t.Fatalf("stored error (-want +got):\n%s", diff)
	}
	// Failed without an outcome: not ready, ever.
	id = create(t, s, "alice").Task.TaskID
	s.UpdateStatus(ctx, "alice", id, taskstore.StatusFailed, "")
	_, err = s.GetResult(ctx, "alice", id)
	wantErr(t, "GetResult of a failed task without outcome", err, taskstore.ErrNotReady)
}

func testStoreCancel(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{})
	ctx := t.Context()
	id := create(t, s, "alice").Task.TaskID
	r, err := s.Cancel(ctx, "alice", id)
	if err != nil || r.Task.Status != taskstore.StatusCancelled {
		t.Fatalf("Cancel: %v", err)
	}
	_, err = s.Cancel(ctx, "alice", id)
	wantErr(t, "Cancel of a cancelled task", err, taskstore.ErrInvalidTransition)
	if code := taskstore.RPCCode(err); code != taskstore.CodeInvalidParams {
		t.Fatalf("cancel of a terminal task maps to %d", code)
	}
	// A handler finishing after the cancel cannot undo it.
	_, err = s.CompleteWithResult(ctx, "alice", id, taskstore.StatusCompleted, "", raw(`1`))
	wantErr(t, "completing a cancelled task", err, taskstore.ErrInvalidTransition)
	if get(t, s, "alice", id).Task.Status != taskstore.StatusCancelled {
		t.Fatal("cancelled task changed status")
	}
}

// testStoreConcurrentMerges: variable merges commute, so all of them land
// even when every writer races on the same version.
func testStoreConcurrentMerges(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{})
	id := create(t, s, "alice").Task.TaskID
	const n = 12
	errs := race(n, func(i int) error {
		_, err := s.SetVariables(context.Background(), "alice", id, map[string]json.RawMessage{fmt.Sprint("v", i): raw(fmt.Sprint(i))})
		return err
	})
	countErrs(t, errs, nil)
	// A result and a status change commute too.
	errs = race(2, func(i int) error {
		if i == 0 {
			_, err := s.SetVariables(context.Background(), "alice", id, map[string]json.RawMessage{"last": raw(`true`)})
			return err
		}
		_, err := s.UpdateStatus(context.Background(), "alice", id, taskstore.StatusInputRequired, "")
		return err
	})
	countErrs(t, errs, nil)
	got := get(t, s, "alice", id)
	if len(got.Variables) != n+1 || got.Task.Status != taskstore.StatusInputRequired || got.Version != n+3 {
		t.Fatalf("after %d merges: %d variables, status %s, v%d", n+1, len(got.Variables), got.Task.Status, got.Version)
	}
}

// testStoreConcurrentTerminal: racing terminal transitions have exactly one
// winner, and the stored status is the winner's.
func testStoreConcurrentTerminal(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{})
	terminal := []taskstore.Status{taskstore.StatusCompleted, taskstore.StatusFailed, taskstore.StatusCancelled}
	for round := range 3 {
		id := create(t, s, "alice").Task.TaskID
		errs := race(9, func(i int) error {
			_, err := s.UpdateStatus(context.Background(), "alice", id, terminal[i%3], fmt.Sprint(i))
			return err
		})
		ok, _ := countErrs(t, errs, taskstore.ErrInvalidTransition)
		if ok != 1 {
			t.Fatalf("round %d: %d terminal transitions won, want 1", round, ok)
		}
		got := get(t, s, "alice", id)
		for i, err := range errs {
			if err == nil && (got.Task.Status != terminal[i%3] || got.Task.StatusMessage != fmt.Sprint(i)) {
				t.Fatalf("winner %d set %s, stored %s %q", i, terminal[i%3], got.Task.Status, got.Task.StatusMessage)
			}
		}
	}
}

func testStoreList(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	ctx := t.Context()
	var want []string
	for range 120 {
		want = append([]string{create(t, s, "alice").Task.TaskID}, want...)
	}
	create(t, s, "bob")
	var got []string
	cursor := ""
	var sizes []int
	for {
		p, err := s.List(ctx, "alice", cursor, 0)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(p.Tasks))
		for i, r := range p.Tasks {
			got = append(got, r.Task.TaskID)
			if i > 0 && r.Task.CreatedAt.After(p.Tasks[i-1].Task.CreatedAt) {
				t.Fatal("page not newest first")
			}
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("all pages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{50, 50, 20}, sizes); diff != "" {
		t.Fatalf("default page sizes (-want +got):\n%s", diff)
	}
	p, err := s.List(ctx, "alice", "", 7)
	if err != nil || len(p.Tasks) != 7 || p.NextCursor == "" {
		t.Fatalf("page of 7: %d tasks, cursor %q, %v", len(p.Tasks), p.NextCursor, err)
	}
	// A cursor is bound to its owner, and a tampered one is refused.
	_, err = s.List(ctx, "bob", p.NextCursor, 0)
	wantErr(t, "another owner's cursor", err, taskstore.ErrInvalidCursor)
	for _, bad := range []string{"x", "!!!", p.NextCursor[:len(p.NextCursor)-2], p.NextCursor + "AA", strings.ToUpper(p.NextCursor)} {
		if bad == p.NextCursor {
			continue
		}
		_, err = s.List(ctx, "alice", bad, 0)
		wantErr(t, fmt.Sprintf("cursor %q", bad), err, taskstore.ErrInvalidCursor)
		if taskstore.RPCCode(err) != taskstore.CodeInvalidParams {
			t.Fatal("invalid cursor does not map to -32602")
		}
	}
	for _, limit := range []int{-1, taskstore.DefaultMaxPageSize + 1} {
		_, err = s.List(ctx, "alice", "", limit)
		wantErr(t, fmt.Sprint("page size ", limit), err, taskstore.ErrInvalidPageSize)
	}
}

var wireTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func testStoreWireJSON(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{DefaultTTL: -1})
	ctx := t.Context()
	r := create(t, s, "alice")
	s.SetVariables(ctx, "alice", r.Task.TaskID, map[string]json.RawMessage{"tool": raw(`"sleep"`)})
	r = get(t, s, "alice", r.Task.TaskID)
	b, err := json.Marshal(r.WireTask())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	keys := []string{}
	for k := range m {
		keys = append(keys, k)
	}
	wantKeys := []string{"_meta", "createdAt", "lastUpdatedAt", "pollInterval", "status", "taskId", "ttl"}
	if diff := cmp.Diff(wantKeys, keys, cmpSorted); diff != "" {
		t.Fatalf("wire keys (-want +got):\n%s\n%s", diff, b)
	}
	if v, present := m["ttl"]; !present || v != nil {
		t.Fatalf("ttl of an unlimited task: %v (present %v), want null", v, present)
	}
	if m["pollInterval"] != float64(500) || m["status"] != "working" {
		t.Fatalf("wire task: %s", b)
	}
	for _, k := range []string{"createdAt", "lastUpdatedAt"} {
		if !wireTime.MatchString(m[k].(string)) {
			t.Fatalf("%s = %q, want RFC 3339 UTC with milliseconds", k, m[k])
		}
	}
	// The stored document is camelCase with the fields the next protocol needs.
	br, err := taskstore.NewRuntime(s).Backend().Get(ctx, "alice", r.Task.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(br.Data, &doc); err != nil {
		t.Fatal(err)
	}
	docKeys := []string{}
	for k := range doc {
		docKeys = append(docKeys, k)
	}
	if diff := cmp.Diff([]string{"expiresAt", "ownerId", "requestMethod", "result", "task", "variables"}, docKeys, cmpSorted); diff != "" {
		t.Fatalf("stored keys (-want +got):\n%s", diff)
	}
	// A task with a ttl shows it in milliseconds, and a message when set.
	r2, _ := s.Create(ctx, "alice", taskstore.CreateRequest{RequestMethod: "tools/call", TTL: dur(1500 * time.Millisecond), StatusMessage: "hi"})
	b, _ = json.Marshal(r2.WireTask())
	json.Unmarshal(b, &m)
	if m["ttl"] != float64(1500) || m["statusMessage"] != "hi" {
		t.Fatalf("wire task: %s", b)
	}
	var back taskstore.Task
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r2.WireTask(), back); diff != "" {
		t.Fatalf("Task JSON round trip (-want +got):\n%s", diff)
	}
}

var cmpSorted = cmpopts.SortSlices(func(a, b string) bool { return a < b })

func testStoreHandle(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{})
	ctx := t.Context()
	h := s.Handle("alice", create(t, s, "alice").Task.TaskID)
	if h.Owner() != "alice" || !taskid.Valid(h.ID()) {
		t.Fatalf("handle %q %q", h.Owner(), h.ID())
	}
	type point struct{ X, Y int }
	if err := h.SetVariables(ctx, map[string]any{"s": "text", "i": 42, "f": 2.5, "b": true, "p": point{1, 2}, "nil": nil}); err != nil {
		t.Fatal(err)
	}
	check := func(name string, ok bool, err error, wantOK bool) {
		t.Helper()
		if err != nil || ok != wantOK {
			t.Fatalf("%s: ok=%v err=%v, want ok=%v", name, ok, err, wantOK)
		}
	}
	sv, ok, err := taskstore.Variable[string](ctx, h, "s")
	check("string", ok && sv == "text", err, true)
	iv, ok, err := taskstore.Variable[int](ctx, h, "i")
	check("int", ok && iv == 42, err, true)
	fv, ok, err := taskstore.Variable[float64](ctx, h, "f")
	check("float", ok && fv == 2.5, err, true)
	bv, ok, err := taskstore.Variable[bool](ctx, h, "b")
	check("bool", ok && bv, err, true)
	pv, ok, err := taskstore.Variable[point](ctx, h, "p")
	check("struct", ok && pv == point{1, 2}, err, true)
	av, ok, err := taskstore.Variable[any](ctx, h, "i")
	check("any", ok && av == float64(42), err, true)
	// Type mismatches read as absent.
	_, ok, err = taskstore.Variable[int](ctx, h, "s")
	check("string as int", ok, err, false)
	_, ok, err = taskstore.Variable[int](ctx, h, "f")
	check("2.5 as int", ok, err, false)
	_, ok, err = taskstore.Variable[string](ctx, h, "i")
	check("int as string", ok, err, false)
	_, ok, err = taskstore.Variable[bool](ctx, h, "missing")
	check("missing", ok, err, false)
	_, ok, err = taskstore.Variable[any](ctx, h, "nil")
	check("nil deletes", ok, err, false)
	if err := h.DeleteVariables(ctx, "s", "i"); err != nil {
		t.Fatal(err)
	}
	_, ok, err = taskstore.Variable[string](ctx, h, "s")
	check("deleted", ok, err, false)
	// Another replica's write is visible at once: every getter re-reads.
	s.SetVariables(ctx, "alice", h.ID(), map[string]json.RawMessage{"s": raw(`"new"`)})
	sv, ok, err = taskstore.Variable[string](ctx, h, "s")
	check("fresh read", ok && sv == "new", err, true)

	steps := []struct {
		name string
		do   func() error
		want taskstore.Status
	}{
		{"RequireInput", func() error { return h.RequireInput(ctx, "need a name") }, taskstore.StatusInputRequired},
		{"Resume", func() error { return h.Resume(ctx) }, taskstore.StatusWorking},
		{"Complete", func() error { return h.Complete(ctx, map[string]any{"ok": true}) }, taskstore.StatusCompleted},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got, _ := h.Get(ctx); got.Task.Status != st.want {
			t.Fatalf("%s: status %s, want %s", st.name, got.Task.Status, st.want)
		}
	}
	if r, err := s.GetResult(ctx, "alice", h.ID()); err != nil || string(r.Result) != `{"ok":true}` {
		t.Fatalf("result after Complete: %v", err)
	}
	wantErr(t, "Fail after Complete", h.Fail(ctx, "late"), taskstore.ErrInvalidTransition)

	h2 := s.Handle("alice", create(t, s, "alice").Task.TaskID)
	if err := h2.Fail(ctx, "boom"); err != nil {
		t.Fatal(err)
	}
	h3 := s.Handle("alice", create(t, s, "alice").Task.TaskID)
	if err := h3.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := h3.Get(ctx); r.Task.Status != taskstore.StatusCancelled {
		t.Fatalf("Cancel: %s", r.Task.Status)
	}
	gone := s.Handle("bob", h.ID())
	_, _, err = taskstore.Variable[string](ctx, gone, "s")
	wantErr(t, "handle of another owner", err, taskstore.ErrNotFound)
	wantErr(t, "Complete via another owner's handle", gone.Complete(ctx, 1), taskstore.ErrNotFound)
}

func testStoreRateLimit(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{CreatesPerSecond: 0.5, CreateBurst: 2})
	create(t, s, "alice")
	create(t, s, "alice")
	_, err := s.Create(t.Context(), "alice", toolCall)
	wantErr(t, "third create in a burst of 2", err, taskstore.ErrRateLimited)
	if p, err := s.List(t.Context(), "alice", "", 0); err != nil || len(p.Tasks) != 2 {
		t.Fatalf("%d tasks stored (%v), want 2", len(p.Tasks), err)
	}
	create(t, s, "bob")
}

// testStoreInputFlow: the 2026-07-28 input flow. Requests make the task
// input_required; answers to unknown keys are ignored; a partial answer
// keeps it input_required; the last answer makes it working; the work takes
// the answers once; keys are never reused; a terminal task ignores updates.
func testStoreInputFlow(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	ctx := t.Context()
	s := open(t, taskstore.Config{})
	r := create(t, s, "alice")
	id := r.Task.TaskID
	reqs := map[string]json.RawMessage{
		"a": raw(`{"method":"elicitation/create","params":{"message":"A?"}}`),
		"b": raw(`{"method":"elicitation/create","params":{"message":"B?"}}`),
	}
	rec, err := taskstore.NewRuntime(s).RequestInput(ctx, "alice", id, reqs, "need a and b")
	if err != nil {
		t.Fatalf("RequestInput: %v", err)
	}
	if rec.Task.Status != taskstore.StatusInputRequired || rec.Task.StatusMessage != "need a and b" {
		t.Fatalf("after RequestInput: %s %q", rec.Task.Status, rec.Task.StatusMessage)
	}
	if _, err := taskstore.NewRuntime(s).RequestInput(ctx, "alice", id, map[string]json.RawMessage{"a": raw(`{}`)}, ""); !errors.Is(err, taskstore.ErrInvalidArgument) {
		t.Fatalf("reused pending key: got %v, want ErrInvalidArgument", err)
	}
	if _, err := taskstore.NewRuntime(s).SubmitInput(ctx, "bob", id, map[string]json.RawMessage{"a": raw(`{}`)}); !errors.Is(err, taskstore.ErrNotFound) {
		t.Fatalf("other owner: got %v, want ErrNotFound", err)
	}
	acc, err := taskstore.NewRuntime(s).SubmitInput(ctx, "alice", id, map[string]json.RawMessage{"a": raw(`{"action":"accept"}`), "zzz": raw(`{}`)})
	if err != nil {
		t.Fatalf("SubmitInput: %v", err)
	}
	if diff := cmp.Diff([]string{"a"}, acc); diff != "" {
		t.Fatalf("accepted keys (-want +got):\n%s", diff)
	}
	rec = get(t, s, "alice", id)
	if rec.Task.Status != taskstore.StatusInputRequired {
		t.Fatalf("after a partial answer: %s", rec.Task.Status)
	}
	var pending map[string]json.RawMessage
	if err := json.Unmarshal(rec.InputRequests, &pending); err != nil || len(pending) != 1 || pending["b"] == nil {
		t.Fatalf("pending after partial answer: %s (%v)", rec.InputRequests, err)
	}
	if _, ok, err := taskstore.NewRuntime(s).TakeInput(ctx, "alice", id, []string{"a", "b"}); ok || err != nil {
		t.Fatalf("TakeInput before all answered: ok=%v err=%v", ok, err)
	}
	if _, err := taskstore.NewRuntime(s).SubmitInput(ctx, "alice", id, map[string]json.RawMessage{"b": raw(`{"action":"decline"}`), "a": raw(`{"again":true}`)}); err != nil {
		t.Fatalf("SubmitInput: %v", err)
	}
	rec = get(t, s, "alice", id)
	if rec.Task.Status != taskstore.StatusWorking || len(rec.InputRequests) != 0 {
		t.Fatalf("after all answered: %s, pending %s", rec.Task.Status, rec.InputRequests)
	}
	got, ok, err := taskstore.NewRuntime(s).TakeInput(ctx, "alice", id, []string{"a", "b"})
	if err != nil || !ok {
		t.Fatalf("TakeInput: ok=%v err=%v", ok, err)
	}
	want := map[string]json.RawMessage{"a": raw(`{"action":"accept"}`), "b": raw(`{"action":"decline"}`)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("responses (-want +got):\n%s", diff)
	}
	if _, ok, _ := taskstore.NewRuntime(s).TakeInput(ctx, "alice", id, []string{"a"}); ok {
		t.Fatal("TakeInput returned the same answers twice")
	}
	if _, err := taskstore.NewRuntime(s).RequestInput(ctx, "alice", id, map[string]json.RawMessage{"a": raw(`{}`)}, ""); err != nil {
		// A taken key may not have been recorded as used; only pending and
		// undelivered answers are checked. Reuse is the work's mistake.
		t.Logf("reusing a consumed key: %v", err)
	}
	if _, err := s.Cancel(ctx, "alice", id); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if acc, err := taskstore.NewRuntime(s).SubmitInput(ctx, "alice", id, map[string]json.RawMessage{"a": raw(`{}`)}); err != nil || len(acc) != 0 {
		t.Fatalf("SubmitInput on a terminal task: %v %v, want ignored", acc, err)
	}
}
