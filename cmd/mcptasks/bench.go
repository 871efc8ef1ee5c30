package main

import (
	"context"
	"encoding/json"
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
	"github.com/mcptasks/mcptasks/taskstore"
)

func init() {
	register(command{
		Name:    "bench",
		Summary: "measure store operations (ops/s, p50, p99) against any store URL",
		Run:     benchMain,
	})
}

// benchOps are the operations bench can run, in report order.
var benchOps = []string{"get", "create", "update", "setvars", "list"}

func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	storeURL := fs.String("store", "memory://", "store URL")
	opsFlag := fs.String("ops", strings.Join(benchOps, ","), "operations: "+strings.Join(benchOps, ","))
	callersFlag := fs.String("callers", "1,64", "numbers of concurrent callers, each measured in turn")
	duration := fs.Duration("duration", 3*time.Second, "how long each (operation, callers) pair runs")
	listSize := fs.Int("list-size", 100, "tasks the owner holds for the list operation")
	const head = "usage: mcptasks bench [flags]\n\nRuns each store operation for -duration with each number of -callers and prints\nthroughput and latency percentiles. It writes tasks under a random owner; they\nexpire after the store's default TTL."
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
	store, err := mcptasks.Open(ctx, *storeURL, taskstore.Config{MaxTasksPerOwner: -1})
	if err != nil {
		return err
	}
	defer store.Close()
	owner := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	fmt.Fprintf(stdout, "store %s, %v per measurement, list page of 50 over %d tasks\n\n", redactURL(*storeURL), *duration, *listSize)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tcallers\tops/s\tp50\tp99\terrors\t")
	for _, op := range ops {
		for _, n := range callers {
			res, err := benchOne(ctx, store, owner, op, n, *duration, *listSize)
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%v\t%v\t%d\t\n", op, n, res.opsPerSec, res.p50, res.p99, res.errors)
		}
	}
	return tw.Flush()
}

type benchResult struct {
	opsPerSec float64
	p50, p99  time.Duration
	errors    int64
}

// benchOne prepares one task per caller (or the list owner's tasks), then
// runs op from n goroutines for d and collects every call's latency.
func benchOne(ctx context.Context, s *taskstore.Store, owner, op string, n int, d time.Duration, listSize int) (benchResult, error) {
	req := taskstore.CreateRequest{RequestMethod: "tools/call"}
	listOwner := owner + "-list"
	if op == "list" {
		if p, err := s.List(ctx, listOwner, "", 1); err != nil {
			return benchResult{}, err
		} else if len(p.Tasks) == 0 {
			for range listSize {
				if _, err := s.Create(ctx, listOwner, req); err != nil {
					return benchResult{}, err
				}
			}
		}
	}
	ids := make([]string, n)
	for i := range ids {
		r, err := s.Create(ctx, owner, req)
		if err != nil {
			return benchResult{}, err
		}
		ids[i] = r.Task.TaskID
	}
	call := func(ctx context.Context, caller, i int) error {
		var err error
		switch op {
		case "get":
			_, err = s.Get(ctx, owner, ids[caller])
		case "create":
			_, err = s.Create(ctx, owner, req)
		case "update":
			to := [2]taskstore.Status{taskstore.StatusInputRequired, taskstore.StatusWorking}[i%2]
			_, err = s.UpdateStatus(ctx, owner, ids[caller], to, "")
		case "setvars":
			_, err = s.SetVariables(ctx, owner, ids[caller], map[string]json.RawMessage{"progress": json.RawMessage(strconv.Itoa(i))})
		case "list":
			_, err = s.List(ctx, listOwner, "", 50)
		}
		return err
	}
	var errs atomic.Int64
	lat := make([][]time.Duration, n)
	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range n {
		wg.Go(func() {
			for i := 0; runCtx.Err() == nil; i++ {
				t0 := time.Now()
				if err := call(ctx, c, i); err != nil {
					errs.Add(1)
					continue
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return benchResult{}, err
	}
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return benchResult{}, fmt.Errorf("no call succeeded (%d errors)", errs.Load())
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration { return all[int(p*float64(len(all)-1))].Round(time.Microsecond) }
	return benchResult{
		opsPerSec: float64(len(all)) / elapsed.Seconds(),
		p50:       pct(0.50),
		p99:       pct(0.99),
		errors:    errs.Load(),
	}, nil
}
