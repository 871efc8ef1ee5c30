package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/internal/rawfloor"
	"github.com/mcptasks/mcptasks/taskstore"
)

func init() {
	register(command{
		Name:    "bench",
		Summary: "measure store operations (ops/s, p50, p99, ratio to the server's raw floor) against any store URL; bench replicas: what running and inherited tasks cost",
		Run:     benchMain,
	})
}

// benchOps are the operations bench can run, in report order.
// backend-get and backend-update are the backend alone (a Get, a
// compare-and-swap with the version the caller keeps): the Store's rows
// divided by them are the Store's own cost.
var benchOps = []string{"get", "backend-get", "create", "update", "setvars", "handle", "backend-update", "list"}

func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "replicas" {
		return benchReplicasMain(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	storeURL := fs.String("store", "memory://", "store URL")
	opsFlag := fs.String("ops", strings.Join(benchOps, ","), "operations: "+strings.Join(benchOps, ","))
	callersFlag := fs.String("callers", "1,64", "numbers of concurrent callers, each measured in turn")
	duration := fs.Duration("duration", 3*time.Second, "how long each (operation, callers) pair runs")
	listSize := fs.Int("list-size", 100, "tasks the owner holds for the list operation")
	const head = "usage: mcptasks bench [flags]\n\nRuns each store operation for -duration with each number of -callers and prints\nthroughput, latency percentiles and the ratio of its throughput to a floor run\nin alternating rounds with it (so that other load on the machine slows both\nalike): a raw read of a value the size of a stored task on the same server\n(Redis GET, DynamoDB GetItem), or for list the backend's own page of 50. A\nbackend without a server (memory) is compared with its own Get. It writes\ntasks under a random owner; they expire after the store's default TTL.\n\nmcptasks bench replicas [flags] measures what running and inherited tasks cost\n(checkpoints, orphans, takeover, memory): see 'mcptasks bench replicas -h'."
	if err := parseFlags(fs, head, args, stdout); err != nil {
		return err
	}
	ops := strings.Split(*opsFlag, ",")
	for _, op := range ops {
		if !slices.Contains(benchOps, op) {
			return usagef("unknown operation %q (have %s)", op, strings.Join(benchOps, ","))
		}
	}
	var callers []int
	for _, c := range strings.Split(*callersFlag, ",") {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 {
			return usagef("-callers: %q is not a positive number", c)
		}
		callers = append(callers, n)
	}
	if *listSize < 1 || *duration <= 0 {
		return usagef("-list-size and -duration must be positive")
	}
	store, err := mcptasks.Open(ctx, *storeURL, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	if err != nil {
		return err
	}
	defer store.Close()
	owner := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	probe, err := store.Create(ctx, owner, benchCreate)
	if err != nil {
		return err
	}
	stored, err := taskstore.NewRuntime(store).Backend().Get(ctx, owner, probe.Task.TaskID)
	if err != nil {
		return err
	}
	// A Redis value is "VERSION:EXPIRY:DATA": the floor reads the same size.
	floorName, floorSize := "raw read", len(stored.Data)+len("1:1767225600000:")
	rawRead, cleanup, err := rawfloor.Open(ctx, taskstore.NewRuntime(store).Backend(), floorSize)
	switch {
	case errors.Is(err, rawfloor.ErrUnsupported):
		floorName = "backend Get"
		rawRead = func(ctx context.Context) error {
			_, err := taskstore.NewRuntime(store).Backend().Get(ctx, owner, probe.Task.TaskID)
			return err
		}
	case err != nil:
		return err
	default:
		defer cleanup(context.WithoutCancel(ctx))
	}
	fmt.Fprintf(stdout, "store %s, %v per measurement, list page of 50 over %d tasks\n", redactURL(*storeURL), *duration, *listSize)
	fmt.Fprintf(stdout, "floor: %s of %d bytes on the same server (list: the backend's own page of 50), in alternating rounds\n\n", floorName, floorSize)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tcallers\tops/s\tp50\tp99\terrors\tfloor ops/s\tratio\t")
	for _, op := range ops {
		for _, n := range callers {
			res, floor, err := benchOne(ctx, store, owner, op, n, *duration, *listSize, rawRead)
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%v\t%v\t%d\t%.0f\t%.3g\t\n", op, n, res.opsPerSec, res.p50, res.p99, res.errors,
				floor.opsPerSec, res.opsPerSec/floor.opsPerSec)
		}
	}
	return tw.Flush()
}

var benchCreate = taskstore.CreateRequest{RequestMethod: "tools/call"}

type benchResult struct {
	opsPerSec float64
	p50, p99  time.Duration
	errors    int64
}

// benchOne prepares one task per caller (or the list owner's tasks), then
// runs op and its floor from n goroutines each, in alternating rounds,
// for d each, and collects every call's latency.
func benchOne(ctx context.Context, s *taskstore.Store, owner, op string, n int, d time.Duration, listSize int,
	rawRead func(context.Context) error) (res, floor benchResult, err error) {
	req := benchCreate
	listOwner := owner + "-list"
	if op == "list" {
		if p, err := s.List(ctx, listOwner, "", 1); err != nil {
			return res, floor, err
		} else if len(p.Tasks) == 0 {
			for range listSize {
				if _, err := s.Create(ctx, listOwner, req); err != nil {
					return res, floor, err
				}
			}
		}
	}
	ids := make([]string, n)
	handles := make([]*taskstore.Handle, n)
	for i := range ids {
		r, err := s.Create(ctx, owner, req)
		if err != nil {
			return res, floor, err
		}
		ids[i] = r.Task.TaskID
		handles[i] = s.Handle(owner, ids[i])
	}
	versions := make([]taskstore.Record, n) // backend-update: the record and version each caller last wrote
	seq := make([]int, n)                   // per caller, across rounds: update alternates its two statuses
	call := func(ctx context.Context, caller, _ int) error {
		i := seq[caller]
		seq[caller]++
		var err error
		switch op {
		case "get":
			_, err = s.Get(ctx, owner, ids[caller])
		case "backend-get":
			_, err = taskstore.NewRuntime(s).Backend().Get(ctx, owner, ids[caller])
		case "backend-update":
			r := &versions[caller]
			if r.Version == 0 {
				if *r, err = taskstore.NewRuntime(s).Backend().Get(ctx, owner, ids[caller]); err != nil {
					return err
				}
			}
			r.Version, err = taskstore.NewRuntime(s).Backend().Update(ctx, *r, r.Version)
		case "create":
			_, err = s.Create(ctx, owner, req)
		case "update":
			to := [2]taskstore.Status{taskstore.StatusInputRequired, taskstore.StatusWorking}[i%2]
			_, err = s.UpdateStatus(ctx, owner, ids[caller], to, "")
		case "setvars":
			_, err = s.SetVariables(ctx, owner, ids[caller], map[string]json.RawMessage{"progress": json.RawMessage(strconv.Itoa(i))})
		case "handle":
			// What a tool handler does: a Handle's mutation of its own task.
			err = handles[caller].SetVariables(ctx, map[string]any{"progress": i})
		case "list":
			_, err = s.List(ctx, listOwner, "", 50)
		}
		return err
	}
	floorCall := func(ctx context.Context, _, _ int) error { return rawRead(ctx) }
	if op == "list" {
		floorCall = func(ctx context.Context, _, _ int) error {
			_, _, err := taskstore.NewRuntime(s).Backend().List(ctx, listOwner, "", 50)
			return err
		}
	}
	// Rounds of at most 250ms, op then floor, until each has run for d.
	round := min(d, 250*time.Millisecond)
	var opRun, floorRun benchRun
	for spent := time.Duration(0); spent < d; spent += round {
		if err := opRun.run(ctx, call, n, round); err != nil {
			return res, floor, err
		}
		if err := floorRun.run(ctx, floorCall, n, round); err != nil {
			return res, floor, err
		}
	}
	if res, err = opRun.result(); err != nil {
		return res, floor, err
	}
	floor, err = floorRun.result()
	return res, floor, err
}

// benchRun accumulates the calls of several rounds.
type benchRun struct {
	lat     []time.Duration
	elapsed time.Duration
	errs    int64
}

// run calls fn from n goroutines for d, each at least once (a goroutine
// that starts late on a busy machine still measures a call).
func (r *benchRun) run(ctx context.Context, fn func(ctx context.Context, caller, i int) error, n int, d time.Duration) error {
	var errs atomic.Int64
	lat := make([][]time.Duration, n)
	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range n {
		wg.Go(func() {
			for i := 0; i == 0 || runCtx.Err() == nil; i++ {
				t0 := time.Now()
				if err := fn(ctx, c, i); err != nil {
					errs.Add(1)
					continue
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	r.elapsed += time.Since(start)
	r.lat = append(r.lat, slices.Concat(lat...)...)
	r.errs += errs.Load()
	return nil
}

func (r *benchRun) result() (benchResult, error) {
	if len(r.lat) == 0 {
		return benchResult{}, fmt.Errorf("no call succeeded (%d errors)", r.errs)
	}
	slices.Sort(r.lat)
	pct := func(p float64) time.Duration { return r.lat[int(p*float64(len(r.lat)-1))].Round(time.Microsecond) }
	return benchResult{
		opsPerSec: float64(len(r.lat)) / r.elapsed.Seconds(),
		p50:       pct(0.50),
		p99:       pct(0.99),
		errors:    r.errs,
	}, nil
}
