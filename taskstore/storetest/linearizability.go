package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

// The linearizability checks record concurrent histories and check them
// with porcupine, as etcd's robustness tests do. A call that fails with
// anything but a sentinel answer (a timeout, a dropped connection) may or
// may not have been applied, and the model allows both.

const linKeys = 3

type linSlot struct {
	exists  bool
	version uint64
	data    string
}

type linState [linKeys]linSlot

type linInput struct {
	op       string // create, get, update, delete, list
	key      int
	data     string
	expected uint64
}

type linOutput struct {
	unknown bool   // the call failed in a way that says nothing of its effect
	err     string // "", "notfound", "exists", "conflict"
	existed bool   // delete
	version uint64
	data    string
	listed  [linKeys]uint64 // list: version of each key, 0 when absent
}

func linApply(s linState, in linInput, out linOutput) (linState, bool) {
	sl := s[in.key]
	switch in.op {
	case "create":
		switch out.err {
		case "":
			if sl.exists {
				return s, false
			}
			s[in.key] = linSlot{true, 1, in.data}
			return s, true
		case "exists":
			return s, sl.exists
		}
	case "get":
		switch out.err {
		case "":
			return s, sl.exists && sl.version == out.version && sl.data == out.data
		case "notfound":
			return s, !sl.exists
		}
	case "update":
		switch out.err {
		case "":
			if !sl.exists || sl.version != in.expected || out.version != in.expected+1 {
				return s, false
			}
			s[in.key] = linSlot{true, sl.version + 1, in.data}
			return s, true
		case "conflict":
			return s, sl.exists && sl.version != in.expected
		case "notfound":
			return s, !sl.exists
		}
	case "delete":
		if out.err == "" {
			if out.existed != sl.exists {
				return s, false
			}
			s[in.key] = linSlot{}
			return s, true
		}
	case "list":
		if out.err == "" {
			for k, v := range out.listed {
				if (v != 0) != s[k].exists || (v != 0 && v != s[k].version) {
					return s, false
				}
			}
			return s, true
		}
	}
	return s, false
}

var backendModel = porcupine.NondeterministicModel{
	Init: func() []any { return []any{linState{}} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(linState), input.(linInput), output.(linOutput)
		if out.unknown {
			// Not applied, or applied with any outcome it could have had.
			next := []any{s}
			if in.op == "get" || in.op == "list" {
				return next
			}
			for _, guess := range []linOutput{{}, {existed: true}, {version: in.expected + 1}} {
				if n, ok := linApply(s, in, guess); ok && n != s {
					next = append(next, n)
				}
			}
			return next
		}
		if n, ok := linApply(s, in, out); ok {
			return []any{n}
		}
		return nil
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		res := out.err
		switch {
		case out.unknown:
			res = "unknown"
		case res != "":
		case in.op == "get":
			res = fmt.Sprintf("v%d %s", out.version, out.data)
		case in.op == "update":
			res = fmt.Sprintf("v%d", out.version)
		case in.op == "delete":
			res = fmt.Sprint(out.existed)
		case in.op == "list":
			res = fmt.Sprint(out.listed)
		default:
			res = "ok"
		}
		return fmt.Sprintf("%s(k%d %s exp=%d) -> %s", in.op, in.key, in.data, in.expected, res)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%+v", state.(linState)) },
}

func errKind(err error) (kind string, unknown bool) {
	switch {
	case err == nil:
		return "", false
	case errors.Is(err, taskstore.ErrNotFound):
		return "notfound", false
	case errors.Is(err, taskstore.ErrAlreadyExists):
		return "exists", false
	case errors.Is(err, taskstore.ErrVersionConflict):
		return "conflict", false
	}
	return "", true
}

// checkHistory checks ops against model and, when they are not
// linearizable, writes porcupine's visualization to a file it names.
func checkHistory(t *testing.T, model porcupine.Model, ops []porcupine.Operation) {
	t.Helper()
	res, info := porcupine.CheckOperationsVerbose(model, ops, time.Minute)
	switch res {
	case porcupine.Ok:
		t.Logf("%d operations checked: linearizable", len(ops))
		Report(t, "linearizability_ops", len(ops))
	case porcupine.Illegal:
		f, err := os.CreateTemp("", "mcptasks-linearizability-*.html")
		if err == nil {
			porcupine.Visualize(model, info, f)
			f.Close()
		}
		t.Fatalf("history of %d operations is not linearizable; visualization: %s", len(ops), f.Name())
	default:
		t.Fatalf("linearizability check of %d operations timed out", len(ops))
	}
}

// testLinearizable runs 8 clients doing create, get, compare-and-swap,
// delete and list on three keys of one owner.
func testLinearizable(t *testing.T, b taskstore.Backend) {
	const clients, opsEach = 8, 200
	ids := [linKeys]string{}
	for k := range ids {
		ids[k] = taskid.New(time.Now())
	}
	keyOf := map[string]int{}
	for k, id := range ids {
		keyOf[id] = k
	}
	start := time.Now()
	var mu sync.Mutex
	var history []porcupine.Operation
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), uint64(start.UnixNano())))
			seen := [linKeys]uint64{}
			for n := range opsEach {
				in := linInput{key: rng.IntN(linKeys), data: fmt.Sprintf("c%d.%d", c, n)}
				switch r := rng.IntN(100); {
				case r < 15:
					in.op = "create"
				case r < 45:
					in.op = "get"
				case r < 75:
					in.op = "update"
					in.expected = seen[in.key]
					if rng.IntN(4) == 0 {
						in.expected = uint64(rng.IntN(4) + 1)
					}
				case r < 85:
					in.op = "delete"
				default:
					in.op = "list"
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				call := time.Since(start).Nanoseconds()
				var out linOutput
				var err error
				switch in.op {
				case "create":
					err = b.Create(ctx, taskstore.Record{Owner: "lin", TaskID: ids[in.key], Data: []byte(`"` + in.data + `"`)}, taskstore.Limits{})
				case "get":
					var r taskstore.Record
					r, err = b.Get(ctx, "lin", ids[in.key])
					out.version, out.data = r.Version, strings.Trim(string(r.Data), `"`)
					if err == nil {
						seen[in.key] = r.Version
					}
				case "update":
					out.version, err = b.Update(ctx, upd("lin", ids[in.key], []byte(`"`+in.data+`"`)), in.expected)
					if err == nil {
						seen[in.key] = out.version
					}
				case "delete":
					out.existed, err = b.Delete(ctx, "lin", ids[in.key])
				case "list":
					var recs []taskstore.Record
					recs, _, err = b.List(ctx, "lin", "", 10)
					for _, r := range recs {
						out.listed[keyOf[r.TaskID]] = r.Version
					}
				}
				ret := time.Since(start).Nanoseconds()
				cancel()
				out.err, out.unknown = errKind(err)
				if out.unknown {
					t.Logf("client %d: %s failed, may have applied: %v", c, in.op, err)
					ret = math.MaxInt64 // may take effect any time after the call
				}
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: c, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	checkHistory(t, backendModel.ToModel(), history)
}

// Domain level: racing status transitions on the Store never produce an
// illegal history, such as two terminal states or a way out of one.

type statusInput struct {
	task int
	to   taskstore.Status
}

type statusOutput struct {
	ok, unknown bool
}

var statusModel = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byTask := map[int][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(statusInput).task
			byTask[k] = append(byTask[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range byTask {
			out = append(out, ops)
		}
		return out
	},
	Init: func() []any { return []any{taskstore.StatusWorking} },
	Step: func(state, input, output any) []any {
		from, in, out := state.(taskstore.Status), input.(statusInput), output.(statusOutput)
		allowed := from.CanTransition(in.to)
		switch {
		case out.unknown && allowed:
			return []any{from, in.to}
		case out.unknown, !out.ok && !allowed:
			return []any{from}
		case out.ok && allowed:
			return []any{in.to}
		}
		return nil
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(statusInput), output.(statusOutput)
		return fmt.Sprintf("task%d -> %s: ok=%v unknown=%v", in.task, in.to, out.ok, out.unknown)
	},
}

func testStoreLinearizableTransitions(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	const tasks, clients, opsEach = 12, 8, 12
	ids := make([]string, tasks)
	for i := range ids {
		ids[i] = create(t, s, "alice").Task.TaskID
	}
	start := time.Now()
	var mu sync.Mutex
	var history []porcupine.Operation
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for range opsEach {
				in := statusInput{task: rng.IntN(tasks), to: allStatuses[rng.IntN(len(allStatuses))]}
				call := time.Since(start).Nanoseconds()
				_, err := s.UpdateStatus(context.Background(), "alice", ids[in.task], in.to, "")
				ret := time.Since(start).Nanoseconds()
				out := statusOutput{ok: err == nil}
				if err != nil && !errors.Is(err, taskstore.ErrInvalidTransition) {
					out.unknown, ret = true, math.MaxInt64
				}
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: c, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	checkHistory(t, statusModel.ToModel(), history)
	// The final statuses agree with some linearization too: check them as
	// one more read each.
	for i, id := range ids {
		if st := get(t, s, "alice", id).Task.Status; !st.Valid() {
			t.Fatalf("task %d ended in %q", i, st)
		}
	}
}
