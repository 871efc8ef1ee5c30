package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/internal/runcost"
	"github.com/mcptasks/mcptasks/taskstore"
)

// The measures of bench replicas, in report order.
var replicaMeasures = []string{"checkpoints", "orphans", "takeover", "memory"}

// checkpointRuns is how many tasks write checkpoints at once.
const checkpointRuns = 10

const benchReplicasHead = `usage: mcptasks bench replicas [flags]

Measures what tasks cost a replica while they run and when it inherits them, in
this process, with taskrouter Routers over the store:

  checkpoints  backend calls per checkpoint (Handle.SetVariables) of a running
               task: 10 tasks write -checkpoints each, every -checkpoint-every
  orphans      -n tasks held by a replica that beat once and stopped: how long
               a survivor takes to end them all (failed) from its "replica
               presumed dead" log line, orphans/s, backend calls per orphan
  takeover     the same with -n resumable tasks of a tool installed on a go-sdk
               server: how long until all run again on the survivor
  memory       live heap and goroutine stacks per running task, -n tasks
               blocked, through Router.Start and through a go-sdk tools/call

Backend calls are counted by a wrapper around the store's backend: on a remote
store each is one round trip (a batch call one per server node). The lease
keeper's per-tick Heartbeat and Runners are left out of the per-task figures.

The Routers it starts are replicas like any other: they end the tasks of any
replica of the store whose heartbeat stands still. Give it a store (or a key
prefix) of its own, never one in use. It deletes the tasks it made.`

func benchReplicasMain(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("bench replicas", flag.ContinueOnError)
	storeURL := fs.String("store", "memory://", "store URL")
	n := fs.Int("n", 1000, "tasks for orphans, takeover and memory")
	measuresFlag := fs.String("measures", strings.Join(replicaMeasures, ","), "what to measure: "+strings.Join(replicaMeasures, ","))
	checkpoints := fs.Int("checkpoints", 20, "checkpoints each of the 10 checkpointing tasks writes")
	every := fs.Duration("checkpoint-every", 10*time.Millisecond, "the time between a task's checkpoints")
	// The Router's defaults: shorter leases only shorten the wait before
	// the survivor presumes the replica dead, which is not measured, but
	// the lease keeper bounds each batch of claims or ends by the lease
	// timeout, and re-reads its own runs after a heartbeat late by one.
	heartbeat := fs.Duration("heartbeat", time.Second, "the survivor's heartbeat (taskrouter.Options.Heartbeat)")
	leaseTimeout := fs.Duration("lease-timeout", 5*time.Second, "the survivor's lease timeout (taskrouter.Options.LeaseTimeout)")
	step := fs.Duration("step", 0, "takeover: each resumed run checkpoints at once and then every step (0: never)")
	timeout := fs.Duration("timeout", 2*time.Minute, "the longest wait for the tasks of one measure")
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	if err := parseFlags(fs, benchReplicasHead, args, stdout); err != nil {
		return err
	}
	measures := strings.Split(*measuresFlag, ",")
	for _, m := range measures {
		if !slices.Contains(replicaMeasures, m) {
			return usagef("unknown measure %q (have %s)", m, strings.Join(replicaMeasures, ","))
		}
	}
	if *n < 1 || *checkpoints < 1 || *every < 0 || *step < 0 || *timeout <= 0 ||
		*heartbeat <= 0 || *leaseTimeout <= *heartbeat {
		return usagef("-n, -checkpoints and -timeout must be positive, -checkpoint-every and -step not negative, -lease-timeout longer than -heartbeat")
	}
	b, err := mcptasks.OpenBackend(ctx, *storeURL)
	if err != nil {
		return err
	}
	defer b.Close()
	env := runcost.NewEnv(b, taskstore.Config{})
	env.Heartbeat, env.LeaseTimeout, env.Timeout = *heartbeat, *leaseTimeout, *timeout

	rep := replicasReport{Store: redactURL(*storeURL), N: *n, Heartbeat: heartbeat.String(), LeaseTimeout: leaseTimeout.String()}
	for _, m := range measures {
		var err error
		switch m {
		case "checkpoints":
			var c runcost.Checkpoints
			c, err = env.Checkpoints(ctx, checkpointRuns, *checkpoints, *every)
			rep.Checkpoints = &c
		case "orphans":
			var s runcost.Sweep
			s, err = env.Orphans(ctx, *n)
			rep.Orphans = &s
		case "takeover":
			var s runcost.Sweep
			s, err = env.Takeover(ctx, *n, *step)
			rep.Takeover = &s
		case "memory":
			var start, sdk runcost.Memory
			if start, err = env.StartMemory(ctx, *n); err == nil {
				sdk, err = env.SDKMemory(ctx, *n)
			}
			rep.Memory = []runcost.Memory{start, sdk}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.table(stdout)
}

// replicasReport is what bench replicas prints (its JSON with --json).
type replicasReport struct {
	Store        string               `json:"store"`
	N            int                  `json:"n"`
	Heartbeat    string               `json:"heartbeat"`
	LeaseTimeout string               `json:"leaseTimeout"`
	Checkpoints  *runcost.Checkpoints `json:"checkpoints,omitempty"`
	Orphans      *runcost.Sweep       `json:"orphans,omitempty"`
	Takeover     *runcost.Sweep       `json:"takeover,omitempty"`
	Memory       []runcost.Memory     `json:"memory,omitempty"`
}

func (rep replicasReport) table(w io.Writer) error {
	fmt.Fprintf(w, "store %s, n = %d, survivor heartbeat %s, lease timeout %s\n\n", rep.Store, rep.N, rep.Heartbeat, rep.LeaseTimeout)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tvalue\tdetail")
	if c := rep.Checkpoints; c != nil {
		fmt.Fprintf(tw, "backend calls per checkpoint\t%.2f\t%d checkpoints by %d running tasks: %v%s\n", c.PerCheckpoint, c.Checkpoints, c.Runs, c.Calls, resyncs(c.Resyncs))
	}
	sweep := func(what string, s *runcost.Sweep, done string) {
		if s == nil {
			return
		}
		fmt.Fprintf(tw, "%s: all %s after\t%s\tfrom the survivor's \"replica presumed dead\" line%s\n", what, done, fmtSeconds(s.Seconds), lost(s))
		fmt.Fprintf(tw, "%s per second\t%.0f\t%d tasks\n", what, s.PerSecond, s.Tasks)
		fmt.Fprintf(tw, "backend calls per task (%s)\t%.3f\t%v%s%s\n", what, s.PerTask, s.Calls, resyncs(s.Resyncs), rechecks(s.Rechecks))
	}
	sweep("orphans", rep.Orphans, "failed")
	sweep("takeover", rep.Takeover, "running again")
	for _, m := range rep.Memory {
		fmt.Fprintf(tw, "heap per running task, %s\t%s\tlive heap after GC, %d tasks, less the stored record\n", m.Path, fmtBytes(m.HeapPerTask), m.Tasks)
		fmt.Fprintf(tw, "stack per running task, %s\t%s\t%.2f goroutines per task\n", m.Path, fmtBytes(m.StackPerTask), m.GoroutinesPerTask)
	}
	if len(rep.Memory) > 0 {
		fmt.Fprintf(tw, "stored record, this process's heap\t%s\ta task stored and not running (the memory backend's; ~0 on a remote store)\n", fmtBytes(rep.Memory[0].StoredPerTask))
	}
	return tw.Flush()
}

// lost notes the tasks a survivor acted on without knowing it (a batch
// whose reply came too late).
func lost(s *runcost.Sweep) string {
	switch {
	case s.Unlogged > 0:
		return fmt.Sprintf("; %d failed unlogged (written, but the reply came too late), the time is the last logged one's", s.Unlogged)
	case s.Stranded > 0:
		return fmt.Sprintf("; %d STRANDED: claimed but not running (written, but the reply came too late)", s.Stranded)
	}
	return ""
}

// resyncs notes the change feed's resyncs, after each of which every
// running task was read again.
func resyncs(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d change-feed resync(s)", n)
}

// rechecks notes the survivor's re-reads of its own runs after a late
// heartbeat of its own.
func rechecks(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d re-read(s) of its own runs after its heartbeat was late by a lease timeout", n)
}

func fmtSeconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(100 * time.Microsecond).String()
}

func fmtBytes(b float64) string {
	if math.Abs(b) < 0.05*1024 {
		b = 0 // not "-0.0 KB"
	}
	return fmt.Sprintf("%.1f KB", b/1024)
}
