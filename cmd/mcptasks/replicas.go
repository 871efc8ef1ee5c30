package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

func init() {
	register(command{
		Name:    "replicas",
		Summary: "replicas --store URL: the replicas sharing a store, their heartbeats as seen from here, and how many tasks each runs",
		Run:     replicasMain,
	})
}

const replicasUsage = `usage: mcptasks replicas --store URL [--sample D] [--watch] [--lease-timeout D] [--json] [--width N]

Lists the replicas (runners) registered in the store: each one's heartbeat
counter, when this command saw the counter last move, what that makes of the
replica, and how many active tasks hold its lease.

A counter carries no time, so no clocks are compared: as the replicas
themselves judge each other, this command reads every counter ten times a
second for --sample (longer than the replicas' heartbeat, 1s by default) and
reports how long ago, on its own clock, it saw each one move. "≥2.0s" means it
saw no move while it watched. A replica is

  beating        its counter moved while watched
  silent         it did not, for less than --lease-timeout so far
  presumed dead  silent for --lease-timeout: the other replicas end its tasks,
                 or take over the resumable ones, then forget it
  released       the id a replica shutting down handed its resumable tasks
                 to (its id and "` + taskrouter.ReleasedSuffix + `"); taken over at once

With --watch it keeps reading and reports every --sample until interrupted: the
age of a replica that stopped grows report by report until the others forget
it. Tasks are counted from the store's index of tasks by runner, at most 1000
a replica ("≥1000" when there are more).`

// replicaTaskCap bounds the tasks counted for one replica (one read of
// the runner index).
const replicaTaskCap = 1000

func replicasMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replicas", flag.ContinueOnError)
	storeURL := fs.String("store", "", "the store `URL` (as serve's --store)")
	sample := fs.Duration("sample", 2*time.Second, "how long to watch the heartbeat counters before a report (100ms to 1h)")
	watch := fs.Bool("watch", false, "keep watching, and report every --sample until interrupted")
	leaseTimeout := fs.Duration("lease-timeout", taskrouter.DefaultLeaseTimeout, "the replicas' lease timeout (serve's): a replica silent this long is presumed dead")
	asJSON := fs.Bool("json", false, "print each report as one line of JSON")
	width := fs.Int("width", -1, "cut the table to this many columns (0: no limit; default: the terminal's width when printing to one, else no limit)")
	if err := parseFlags(fs, replicasUsage, args, stdout); err != nil {
		return err
	}
	if *sample < 100*time.Millisecond || *sample > time.Hour {
		return usagef("--sample %v: want 100ms to 1h", *sample)
	}
	if *leaseTimeout <= 0 {
		return usagef("--lease-timeout %v: want more than 0", *leaseTimeout)
	}
	if *width < -1 {
		return usagef("--width %d: want 0 (no limit) or more", *width)
	}
	rt, err := openOperator(ctx, *storeURL)
	if err != nil {
		return err
	}
	defer rt.Store().Close()
	bw := beatWatch{seen: map[string]*beatSeen{}, timeout: *leaseTimeout}
	poll := time.NewTicker(min(100*time.Millisecond, *sample/2))
	defer poll.Stop()
	start := time.Now()
	next := start.Add(*sample)
	for {
		beats, err := rt.Runners(ctx)
		if err != nil {
			return watchEnd(ctx, *watch, err)
		}
		now := time.Now()
		bw.observe(beats, now)
		if !now.Before(next) {
			rep, err := bw.report(ctx, rt, now, now.Sub(start))
			if err != nil {
				return watchEnd(ctx, *watch, err)
			}
			if err := rep.write(stdout, stderr, *asJSON, outputWidth(stdout, *width), *watch); err != nil {
				return err
			}
			if !*watch {
				return nil
			}
			next = now.Add(*sample)
		}
		select {
		case <-ctx.Done():
			if *watch {
				return nil // --watch ends at the first signal
			}
			return ctx.Err()
		case <-poll.C:
		}
	}
}

// watchEnd is what a failed store call makes of the command: --watch
// ends cleanly when a signal cut the call short.
func watchEnd(ctx context.Context, watch bool, err error) error {
	if watch && ctx.Err() != nil {
		return nil
	}
	return err
}

// beatWatch follows the heartbeat counters as the lease keeper does: a
// counter's age is how long ago, on this process's monotonic clock, it
// was seen to change.
type beatWatch struct {
	seen    map[string]*beatSeen
	timeout time.Duration
}

type beatSeen struct {
	beat  uint64
	since time.Time // when beat was first seen
	moved bool      // the counter changed while watched
}

func (bw *beatWatch) observe(beats []taskstore.RunnerBeat, now time.Time) {
	listed := make(map[string]bool, len(beats))
	for _, b := range beats {
		listed[b.Runner] = true
		o, ok := bw.seen[b.Runner]
		switch {
		case !ok:
			bw.seen[b.Runner] = &beatSeen{beat: b.Beat, since: now}
		case o.beat != b.Beat:
			o.beat, o.since, o.moved = b.Beat, now, true
		}
	}
	for r := range bw.seen {
		if !listed[r] {
			delete(bw.seen, r) // forgotten: removed after a sweep or a clean stop
		}
	}
}

// replicaJSON is one replica in a report.
type replicaJSON struct {
	Runner string `json:"runner"`
	Beat   uint64 `json:"beat"`
	// LastBeatAgoMs is how long ago the counter was seen to move, or,
	// with AtLeast, how long it was watched without moving.
	LastBeatAgoMs int64  `json:"lastBeatAgoMs"`
	AtLeast       bool   `json:"atLeast,omitempty"`
	State         string `json:"state"`
	Tasks         int    `json:"tasks"`
	// TasksAtLeast: the count reached the cap (replicaTaskCap); there may be more.
	TasksAtLeast bool `json:"tasksAtLeast,omitempty"`
}

type replicaReport struct {
	At        time.Time     `json:"at"`
	WatchedMs int64         `json:"watchedMs"`
	Replicas  []replicaJSON `json:"replicas"`
}

// report judges every runner seen and counts its tasks.
func (bw *beatWatch) report(ctx context.Context, rt *taskstore.Runtime, now time.Time, watched time.Duration) (*replicaReport, error) {
	rep := &replicaReport{At: now.UTC(), WatchedMs: watched.Milliseconds(), Replicas: []replicaJSON{}}
	for r, o := range bw.seen {
		ago := now.Sub(o.since)
		state := "beating"
		switch {
		case strings.HasSuffix(r, taskrouter.ReleasedSuffix):
			state = "released"
		case ago >= bw.timeout:
			state = "presumed dead"
		case !o.moved:
			state = "silent"
		}
		tasks, err := rt.RunnerTasks(ctx, r, replicaTaskCap)
		if err != nil {
			return nil, err
		}
		rep.Replicas = append(rep.Replicas, replicaJSON{Runner: r, Beat: o.beat, LastBeatAgoMs: ago.Milliseconds(),
			AtLeast: !o.moved, State: state, Tasks: len(tasks), TasksAtLeast: len(tasks) >= replicaTaskCap})
	}
	slices.SortFunc(rep.Replicas, func(a, b replicaJSON) int { return strings.Compare(a.Runner, b.Runner) })
	return rep, nil
}

func (rep *replicaReport) write(w, stderr io.Writer, asJSON bool, width int, watch bool) error {
	if asJSON {
		return writeJSON(w, rep)
	}
	if watch {
		fmt.Fprintf(w, "at %s\n", rep.At.Format(time.RFC3339))
	}
	if len(rep.Replicas) == 0 {
		_, err := fmt.Fprintln(w, "no replicas registered in this store")
		return err
	}
	t := table{header: []string{"REPLICA", "BEAT", "LAST BEAT", "STATE", "TASKS"}, shrink: []shrinkable{{0, 16}}}
	for _, r := range rep.Replicas {
		ago := fmt.Sprintf("%.1fs ago", float64(r.LastBeatAgoMs)/1000)
		if r.AtLeast {
			ago = "≥" + ago
		}
		tasks := fmt.Sprint(r.Tasks)
		if r.TasksAtLeast {
			tasks = "≥" + tasks
		}
		t.rows = append(t.rows, []string{quoteIfNeeded(r.Runner), fmt.Sprint(r.Beat), ago, r.State, tasks})
	}
	cut, err := t.write(w, width)
	if err != nil {
		return err
	}
	if cut > 0 {
		fmt.Fprintf(stderr, "mcptasks replicas: %d replica ids cut to fit %d columns (they end in …): --width 0 or --json shows them in full\n", cut, width)
	}
	return nil
}
