package storetest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

// The security properties: no owner string reaches another owner's tasks
// through any Store call, cursors are bound to their owner, and every limit
// is enforced at every entry point with nothing written.

// isolationConfig is the store configuration CheckOwnerIsolation expects:
// a quota of 2, so that it can check whose tasks a quota counts.
var isolationConfig = taskstore.Config{MaxActiveTasks: 2}

// IsolationConfig returns the configuration a store given to
// CheckOwnerIsolation must have.
func IsolationConfig() taskstore.Config { return isolationConfig }

// refused reports whether a call by a thief was turned away as it must be:
// as a missing task, or as an invalid owner.
func refused(err error) bool {
	return errors.Is(err, taskstore.ErrNotFound) || errors.Is(err, taskstore.ErrInvalidArgument)
}

// CheckOwnerIsolation checks, on a store made with IsolationConfig() and
// holding no tasks of either owner, that thief cannot read, list, count
// (quota), cancel, change or overwrite a task of victim, nor use victim's
// cursors, and the other way round. Owner strings that the store refuses
// may be given: then that owner simply has no tasks. It returns how many
// calls it made that had to be refused.
func CheckOwnerIsolation(t testing.TB, s *taskstore.Store, victim, thief string) (refusals int) {
	t.Helper()
	return checkIsolation(t, s, victim, thief, false)
}

func checkIsolation(t testing.TB, s *taskstore.Store, victim, thief string, swapped bool) (refusals int) {
	t.Helper()
	if victim == thief || isAnonymous(victim) && isAnonymous(thief) {
		return 0 // one owner
	}
	ctx := t.Context()
	req := taskstore.CreateRequest{RequestMethod: "tools/call", Variables: map[string]json.RawMessage{"secret": raw(`"victim's"`)}}
	first, err := s.Create(ctx, victim, req)
	if err != nil {
		if !errors.Is(err, taskstore.ErrInvalidArgument) {
			t.Fatalf("Create for the victim: %v", err)
		}
		// The store refuses this owner: nothing of it to steal. The other
		// direction must still hold.
		if swapped {
			return 0
		}
		return checkIsolation(t, s, thief, victim, true)
	}
	id := first.Task.TaskID
	thiefValid := true
	// The thief's own creates: the victim's task does not count toward its
	// quota of 2, and its own do.
	var thiefIDs []string
	thiefOwner := "" // as stored
	for range 2 {
		r, err := s.Create(ctx, thief, toolCall)
		if err != nil {
			if errors.Is(err, taskstore.ErrQuotaExceeded) {
				t.Fatalf("another owner's task counts toward the thief's quota")
			}
			if !errors.Is(err, taskstore.ErrInvalidArgument) {
				t.Fatalf("Create for the thief: %v", err)
			}
			thiefValid = false
			break
		}
		thiefIDs = append(thiefIDs, r.Task.TaskID)
		thiefOwner = r.OwnerID
	}
	if thiefValid {
		_, err := s.Create(ctx, thief, toolCall)
		wantErr(t, "thief's third create", err, taskstore.ErrQuotaExceeded)
	}
	// ... and the thief's tasks do not count toward the victim's.
	second, err := s.Create(ctx, victim, toolCall)
	if err != nil {
		t.Fatalf("the victim's second create (quota 2): %v", err)
	}
	_, err = s.Create(ctx, victim, toolCall)
	wantErr(t, "victim's third create", err, taskstore.ErrQuotaExceeded)

	before, err := taskstore.NewRuntime(s).Backend().Get(ctx, first.OwnerID, id)
	if err != nil {
		t.Fatal(err)
	}
	// Every call on the victim's task, as the thief.
	ops := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := s.Get(ctx, thief, id); return err }},
		{"GetResult", func() error { _, err := s.GetResult(ctx, thief, id); return err }},
		{"UpdateStatus", func() error {
			_, err := s.UpdateStatus(ctx, thief, id, taskstore.StatusInputRequired, "mine now")
			return err
		}},
		{"SetVariables", func() error {
			_, err := s.SetVariables(ctx, thief, id, map[string]json.RawMessage{"secret": raw(`"overwritten"`)})
			return err
		}},
		{"SetResult", func() error { _, err := s.SetResult(ctx, thief, id, raw(`"forged"`)); return err }},
		{"CompleteWithResult", func() error {
			_, err := s.CompleteWithResult(ctx, thief, id, taskstore.StatusCompleted, "", raw(`"forged"`))
			return err
		}},
		{"FailWithError", func() error {
			_, err := s.FailWithError(ctx, thief, id, &taskstore.RPCError{Code: -1, Message: "forged"})
			return err
		}},
		{"Cancel", func() error { _, err := s.Cancel(ctx, thief, id); return err }},
		{"Handle.Complete", func() error { return s.Handle(thief, id).Complete(ctx, "forged") }},
	}
	for _, op := range ops {
		err := op.call()
		if !refused(err) {
			t.Fatalf("%s of another owner's task: %v, want ErrNotFound", op.name, err)
		}
		if thiefValid && !errors.Is(err, taskstore.ErrNotFound) {
			t.Fatalf("%s of another owner's task: %v, want exactly ErrNotFound", op.name, err)
		}
		refusals++
	}
	after, err := taskstore.NewRuntime(s).Backend().Get(ctx, first.OwnerID, id)
	if err != nil {
		t.Fatalf("the victim's task after the thief's calls: %v", err)
	}
	if after.Version != before.Version || string(after.Data) != string(before.Data) {
		t.Fatalf("the thief's calls changed the victim's task: v%d -> v%d", before.Version, after.Version)
	}
	// Lists: each sees exactly its own tasks.
	checkList := func(who string, want []string) {
		t.Helper()
		p, err := s.List(ctx, who, "", 0)
		if err != nil {
			if refused(err) && len(want) == 0 {
				return
			}
			t.Fatalf("List: %v", err)
		}
		var got []string
		for _, r := range p.Tasks {
			got = append(got, r.Task.TaskID)
		}
		slices.Sort(got)
		want = slices.Sorted(slices.Values(want))
		if !slices.Equal(got, want) {
			t.Fatalf("List sees %d tasks, want its own %d", len(got), len(want))
		}
	}
	checkList(victim, []string{id, second.Task.TaskID})
	checkList(thief, thiefIDs)

	// Cursors: the victim's cursor is refused to the thief; a tampered one
	// is refused or pages through the caller's own tasks only.
	p, err := s.List(ctx, victim, "", 1)
	if err != nil || p.NextCursor == "" {
		t.Fatalf("List page of 1: %v, cursor %q", err, p.NextCursor)
	}
	_, err = s.List(ctx, thief, p.NextCursor, 0)
	if thiefValid {
		wantErr(t, "another owner's cursor", err, taskstore.ErrInvalidCursor)
	} else {
		wantErr(t, "a cursor given to an invalid owner", err, taskstore.ErrInvalidArgument)
	}
	refusals++
	for _, bad := range tamperedCursors(p.NextCursor) {
		for _, who := range []string{victim, thief} {
			page, err := s.List(ctx, who, bad, 0)
			switch {
			case err != nil:
				if !errors.Is(err, taskstore.ErrInvalidArgument) {
					t.Fatalf("tampered cursor: %v, want ErrInvalidCursor", err)
				}
				refusals++
			default:
				own := first.OwnerID
				if who == thief {
					own = thiefOwner
				}
				for _, r := range page.Tasks {
					if r.OwnerID != own {
						t.Fatalf("a tampered cursor listed a task of another owner")
					}
				}
			}
		}
	}
	return refusals
}

func isAnonymous(owner string) bool {
	return strings.TrimSpace(owner) == "" || owner == taskstore.AnonymousOwner
}

// tamperedCursors returns variants of a cursor: a bit flipped in the
// owner tag and in the task id, cut short, extended, and re-encoded in
// other alphabets.
func tamperedCursors(c string) []string {
	var out []string
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return []string{c + "!"}
	}
	for _, i := range []int{0, 7, 8, len(b) - 1} {
		v := slices.Clone(b)
		v[i] ^= 1
		out = append(out, base64.RawURLEncoding.EncodeToString(v))
	}
	out = append(out,
		base64.RawURLEncoding.EncodeToString(b[:len(b)-1]),
		base64.RawURLEncoding.EncodeToString(append(slices.Clone(b), 0)),
		base64.URLEncoding.EncodeToString(b),
		base64.StdEncoding.EncodeToString(b),
		c+"\x00", " "+c, c[:4]+"\n"+c[4:], c+"\r\n", strings.Repeat(c, 100))
	return out
}

// generatedOwners are owner strings built from the pieces that break naive
// key schemes: separators, glob and hash-tag characters, NULs, unicode,
// prefixes of each other, and lengths up to and over the limit.
func generatedOwners(n int) []string {
	pieces := []string{"a", "b", ":", "::", "{", "}", "{a}", "*", "?", "[", "]", "#", "OWNER#", "TASK#",
		"\x00", "\\", "\"", "'", "/", "%", "%3A", " ", "\t", "é", "用户", "🙂", "\u202e", "\ufeff", "local", "=", "-", "_"}
	rng := rand.New(rand.NewPCG(6, 6))
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		var b strings.Builder
		for range 1 + rng.IntN(6) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		o := b.String()
		if rng.IntN(8) == 0 {
			// Around the length limit; a cut may split a UTF-8 sequence.
			o = strings.Repeat(o, taskstore.DefaultMaxOwnerLen/len(o)+2)[:taskstore.DefaultMaxOwnerLen-12+rng.IntN(16)]
		}
		if !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	return out
}

// testStoreOwnerIsolationProperty runs CheckOwnerIsolation over pairs of
// tricky owners: the fixed list of the backend suite, generated ones, and
// each with a prefix or an extension of itself.
func testStoreOwnerIsolationProperty(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, isolationConfig)
	owners := append(slices.Clone(trickyOwners), generatedOwners(12)...)
	type pair struct{ victim, thief string }
	var pairs []pair
	for i, o := range owners {
		pairs = append(pairs, pair{o, owners[(i+1)%len(owners)]})
		if i%3 == 0 {
			pairs = append(pairs, pair{o, o + ":"}, pair{o + "}", o})
		}
	}
	// Owners are used in several pairs; a tag keeps each pair's owners
	// fresh while keeping prefixes prefixes.
	var total int
	for i, p := range pairs {
		tag := fmt.Sprintf("p%d|", i)
		total += CheckOwnerIsolation(t, s, tag+p.victim, tag+p.thief)
	}
	Report(t, "owner_pairs", len(pairs), "isolation_refusals", total)
}

// testStoreLimitsEveryEntryPoint calls every Store entry point with every
// kind of bad input it takes and checks the error and that nothing was
// written.
func testStoreLimitsEveryEntryPoint(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	cfg := taskstore.Config{MaxVariablesSize: 1000, MaxResultSize: 500, MaxDepth: 3, MaxStringLen: 20, MaxOwnerLen: 40, MaxTTL: time.Hour}
	s := open(t, cfg)
	ctx := t.Context()
	id := create(t, s, "alice").Task.TaskID

	deep := raw(`[[[[1]]]]`)
	long := raw(`"` + strings.Repeat("x", 21) + `"`)
	bigVars := map[string]json.RawMessage{}
	for i := range 60 {
		bigVars[fmt.Sprint("k", i)] = raw(`"` + strings.Repeat("y", 15) + `"`)
	}
	bigResult := raw(`"` + strings.Repeat("r", 500) + `"`)
	longMsg := strings.Repeat("m", 21)

	type entry struct {
		name string
		call func(owner, id string) error
	}
	// Each entry point, with the owner and task id given; its other
	// inputs valid.
	entries := []entry{
		{"Create", func(o, _ string) error { _, err := s.Create(ctx, o, toolCall); return err }},
		{"Get", func(o, id string) error { _, err := s.Get(ctx, o, id); return err }},
		{"GetResult", func(o, id string) error { _, err := s.GetResult(ctx, o, id); return err }},
		{"List", func(o, _ string) error { _, err := s.List(ctx, o, "", 0); return err }},
		{"UpdateStatus", func(o, id string) error {
			_, err := s.UpdateStatus(ctx, o, id, taskstore.StatusInputRequired, "")
			return err
		}},
		{"SetVariables", func(o, id string) error {
			_, err := s.SetVariables(ctx, o, id, map[string]json.RawMessage{"v": raw(`1`)})
			return err
		}},
		{"SetResult", func(o, id string) error { _, err := s.SetResult(ctx, o, id, raw(`1`)); return err }},
		{"CompleteWithResult", func(o, id string) error {
			_, err := s.CompleteWithResult(ctx, o, id, taskstore.StatusCompleted, "", raw(`1`))
			return err
		}},
		{"FailWithError", func(o, id string) error {
			_, err := s.FailWithError(ctx, o, id, &taskstore.RPCError{Code: 1, Message: "m"})
			return err
		}},
		{"Cancel", func(o, id string) error { _, err := s.Cancel(ctx, o, id); return err }},
	}
	type bad struct {
		name string
		call func() error
		want error
	}
	var cases []bad
	for _, e := range entries {
		for _, o := range []struct {
			name, owner string
			want        error
		}{
			{"owner over MaxOwnerLen", strings.Repeat("o", 41), taskstore.ErrInvalidOwner},
			{"owner not UTF-8", "al\xffice", taskstore.ErrInvalidOwner},
			{"anonymous owner", "", taskstore.ErrAnonymousOwner},
			{"blank owner", " \t", taskstore.ErrAnonymousOwner},
		} {
			cases = append(cases, bad{e.name + ": " + o.name, func() error { return e.call(o.owner, id) }, o.want})
		}
		if e.name == "Create" || e.name == "List" {
			continue
		}
		for _, badID := range []string{"", "../" + id, strings.ToUpper(id), id + "0", id[:len(id)-1], id + "\x00",
			strings.Repeat("f", 1<<16), "*", taskid.New(time.Now())} {
			cases = append(cases, bad{e.name + ": task id " + truncate(badID), func() error { return e.call("alice", badID) }, taskstore.ErrNotFound})
		}
	}
	vars := func(m map[string]json.RawMessage) taskstore.CreateRequest {
		return taskstore.CreateRequest{RequestMethod: "tools/call", Variables: m}
	}
	meta := func(m map[string]json.RawMessage) taskstore.CreateRequest {
		return taskstore.CreateRequest{RequestMethod: "tools/call", Meta: m}
	}
	createWith := func(req taskstore.CreateRequest) func() error {
		return func() error { _, err := s.Create(ctx, "alice", req); return err }
	}
	setVars := func(m map[string]json.RawMessage) func() error {
		return func() error { _, err := s.SetVariables(ctx, "alice", id, m); return err }
	}
	cases = append(cases,
		bad{"Create: request method empty", createWith(taskstore.CreateRequest{}), taskstore.ErrInvalidRequestName},
		bad{"Create: request method too long", createWith(taskstore.CreateRequest{RequestMethod: strings.Repeat("t", 257)}), taskstore.ErrInvalidRequestName},
		bad{"Create: status message too long", createWith(taskstore.CreateRequest{RequestMethod: "tools/call", StatusMessage: longMsg}), taskstore.ErrMessageTooLong},
		bad{"Create: ttl above MaxTTL", createWith(taskstore.CreateRequest{RequestMethod: "tools/call", TTL: dur(2 * time.Hour)}), taskstore.ErrTTLTooLong},
		bad{"Create: ttl zero", createWith(taskstore.CreateRequest{RequestMethod: "tools/call", TTL: dur(0)}), taskstore.ErrInvalidArgument},
		bad{"Create: poll interval negative", createWith(taskstore.CreateRequest{RequestMethod: "tools/call", PollInterval: dur(-1)}), taskstore.ErrInvalidArgument},
		bad{"Create: variable too deep", createWith(vars(map[string]json.RawMessage{"d": deep})), taskstore.ErrTooDeep},
		bad{"Create: variable string too long", createWith(vars(map[string]json.RawMessage{"s": long})), taskstore.ErrStringTooLong},
		bad{"Create: variable key too long", createWith(vars(map[string]json.RawMessage{strings.Repeat("k", 21): raw(`1`)})), taskstore.ErrStringTooLong},
		bad{"Create: variables too large", createWith(vars(bigVars)), taskstore.ErrVariablesTooLarge},
		bad{"Create: variable not JSON", createWith(vars(map[string]json.RawMessage{"j": raw(`{`)})), taskstore.ErrInvalidJSON},
		bad{"Create: _meta too deep", createWith(meta(map[string]json.RawMessage{"d": deep})), taskstore.ErrTooDeep},
		bad{"Create: _meta string too long", createWith(meta(map[string]json.RawMessage{"s": long})), taskstore.ErrStringTooLong},
		bad{"Create: _meta too large", createWith(meta(bigVars)), taskstore.ErrVariablesTooLarge},
		bad{"Create: _meta not JSON", createWith(meta(map[string]json.RawMessage{"j": raw(`nul`)})), taskstore.ErrInvalidJSON},
		bad{"SetVariables: too deep", setVars(map[string]json.RawMessage{"d": deep}), taskstore.ErrTooDeep},
		bad{"SetVariables: string too long", setVars(map[string]json.RawMessage{"s": long}), taskstore.ErrStringTooLong},
		bad{"SetVariables: too large", setVars(bigVars), taskstore.ErrVariablesTooLarge},
		bad{"SetVariables: empty value", setVars(map[string]json.RawMessage{"e": nil}), taskstore.ErrInvalidJSON},
		bad{"UpdateStatus: message too long", func() error {
			_, err := s.UpdateStatus(ctx, "alice", id, taskstore.StatusInputRequired, longMsg)
			return err
		}, taskstore.ErrMessageTooLong},
		bad{"UpdateStatus: unknown status", func() error { _, err := s.UpdateStatus(ctx, "alice", id, "done", ""); return err }, taskstore.ErrInvalidStatus},
		bad{"SetResult: too large", func() error { _, err := s.SetResult(ctx, "alice", id, bigResult); return err }, taskstore.ErrResultTooLarge},
		bad{"SetResult: too deep", func() error { _, err := s.SetResult(ctx, "alice", id, deep); return err }, taskstore.ErrTooDeep},
		bad{"SetResult: empty", func() error { _, err := s.SetResult(ctx, "alice", id, nil); return err }, taskstore.ErrInvalidJSON},
		bad{"CompleteWithResult: result too large", func() error {
			_, err := s.CompleteWithResult(ctx, "alice", id, taskstore.StatusCompleted, "", bigResult)
			return err
		}, taskstore.ErrResultTooLarge},
		bad{"CompleteWithResult: result too deep", func() error {
			_, err := s.CompleteWithResult(ctx, "alice", id, taskstore.StatusCompleted, "", deep)
			return err
		}, taskstore.ErrTooDeep},
		bad{"CompleteWithResult: message too long", func() error {
			_, err := s.CompleteWithResult(ctx, "alice", id, taskstore.StatusCompleted, longMsg, raw(`1`))
			return err
		}, taskstore.ErrMessageTooLong},
		bad{"FailWithError: message too long", func() error {
			_, err := s.FailWithError(ctx, "alice", id, &taskstore.RPCError{Code: 1, Message: longMsg})
			return err
		}, taskstore.ErrMessageTooLong},
		bad{"FailWithError: data too large", func() error {
			_, err := s.FailWithError(ctx, "alice", id, &taskstore.RPCError{Code: 1, Message: "m", Data: bigResult})
			return err
		}, taskstore.ErrResultTooLarge},
		bad{"FailWithError: data too deep", func() error {
			_, err := s.FailWithError(ctx, "alice", id, &taskstore.RPCError{Code: 1, Message: "m", Data: deep})
			return err
		}, taskstore.ErrTooDeep},
		bad{"FailWithError: nil error", func() error { _, err := s.FailWithError(ctx, "alice", id, nil); return err }, taskstore.ErrInvalidArgument},
		bad{"List: page size -1", func() error { _, err := s.List(ctx, "alice", "", -1); return err }, taskstore.ErrInvalidPageSize},
		bad{"List: page size over max", func() error { _, err := s.List(ctx, "alice", "", taskstore.DefaultMaxPageSize+1); return err }, taskstore.ErrInvalidPageSize},
		bad{"List: cursor not base64", func() error { _, err := s.List(ctx, "alice", "%%%", 0); return err }, taskstore.ErrInvalidCursor},
		bad{"List: cursor too long", func() error { _, err := s.List(ctx, "alice", strings.Repeat("A", 1<<16), 0); return err }, taskstore.ErrInvalidCursor},
	)
	// A backend with a record size limit refuses records above it even
	// when the store's own limits are off.
	if m := taskstore.NewRuntime(s).Backend().MaxRecordSize(); m > 0 {
		unlimited := open(t, taskstore.Config{MaxVariablesSize: -1, MaxStringLen: -1, MaxResultSize: -1})
		uid := create(t, unlimited, "alice").Task.TaskID
		huge := map[string]json.RawMessage{"h": raw(`"` + strings.Repeat("h", m) + `"`)}
		cases = append(cases,
			bad{"Create: record above the backend's limit", func() error { _, err := unlimited.Create(ctx, "alice", vars(huge)); return err }, taskstore.ErrRecordTooLarge},
			bad{"SetVariables: record above the backend's limit", func() error { _, err := unlimited.SetVariables(ctx, "alice", uid, huge); return err }, taskstore.ErrRecordTooLarge},
			bad{"SetResult: record above the backend's limit", func() error {
				_, err := unlimited.SetResult(ctx, "alice", uid, raw(`"`+strings.Repeat("h", m)+`"`))
				return err
			}, taskstore.ErrRecordTooLarge},
		)
		defer func() {
			if r, err := unlimited.Get(ctx, "alice", uid); err != nil || r.Version != 1 {
				t.Errorf("refused writes changed a task of the unlimited store: %v", err)
			}
		}()
	}

	before, err := taskstore.NewRuntime(s).Backend().Get(ctx, "alice", id)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		err := c.call()
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, want %v", c.name, err, c.want)
		}
		if taskstore.RPCCode(err) != taskstore.CodeInvalidParams && !errors.Is(err, taskstore.ErrRecordTooLarge) {
			t.Fatalf("%s: maps to JSON-RPC %d, want %d", c.name, taskstore.RPCCode(err), taskstore.CodeInvalidParams)
		}
	}
	after, err := taskstore.NewRuntime(s).Backend().Get(ctx, "alice", id)
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != before.Version || string(after.Data) != string(before.Data) {
		t.Fatalf("refused calls changed the task: v%d -> v%d", before.Version, after.Version)
	}
	p, err := s.List(ctx, "alice", "", 0)
	if err != nil || len(p.Tasks) != 1 {
		t.Fatalf("refused calls left %d tasks (%v), want 1", len(p.Tasks), err)
	}
	Report(t, "bad_inputs", len(cases))
}

func truncate(s string) string {
	s = fmt.Sprintf("%q", s)
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// FuzzOwnerIsolation is the body of a fuzz target: CheckOwnerIsolation for
// fuzzed pairs of owner strings. open returns the store for one input,
// made with IsolationConfig(). When shared, open returns one store for
// every input, and each input's owners get a fresh tag in front (a tag
// keeps prefixes prefixes).
func FuzzOwnerIsolation(f *testing.F, open func(testing.TB) *taskstore.Store, shared bool) {
	for _, seed := range [][2]string{
		{"a", "a:b"}, {"a:b", "a"}, {"a", "a:"}, {"{a}", "a"}, {"a}", "{a"}, {"a\x00b", "a"}, {"a", "a\x00"},
		{"用户", "用户:"}, {"", "local"}, {" ", "a"}, {"OWNER#a", "a"}, {"a#TASK#b", "a"}, {"*", "a"},
		{strings.Repeat("o", 500), strings.Repeat("o", 499)}, {"a\xff", "a"}, {"é", "e\u0301"},
	} {
		f.Add(seed[0], seed[1])
	}
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, victim, thief string) {
		s := open(t)
		if shared {
			tag := fmt.Sprintf("f%d.%d|", os.Getpid(), n.Add(1))
			victim, thief = tag+victim, tag+thief
		}
		CheckOwnerIsolation(t, s, victim, thief)
	})
}
