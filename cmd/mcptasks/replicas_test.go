package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// beatEvery beats runner until the test ends.
func beatEvery(t *testing.T, rt *taskstore.Runtime, runner string, every time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			rt.Heartbeat(ctx, runner)
			select {
			case <-ctx.Done():
			case <-time.After(every):
			}
		}
	}()
}

func replicasByRunner(t *testing.T, line string) map[string]replicaJSON {
	t.Helper()
	var rep replicaReport
	if err := json.Unmarshal([]byte(line), &rep); err != nil {
		t.Fatalf("%v: %q", err, line)
	}
	out := map[string]replicaJSON{}
	for _, r := range rep.Replicas {
		out[r.Runner] = r
	}
	return out
}

// TestReplicas: a replica that beats, one that stopped, a released id and
// one with more tasks than are counted, as the command judges them.
func TestReplicas(t *testing.T) {
	u, s := sharedStore(t)
	rt := taskstore.NewRuntime(s)
	ctx := t.Context()
	for _, r := range []string{"dead", "many", "live" + taskrouter.ReleasedSuffix} {
		if err := rt.Heartbeat(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	beatEvery(t, rt, "live", 20*time.Millisecond)
	for range 3 {
		newTask(t, s, "alice", "sleep", "live", "")
	}
	newTask(t, s, "bob", "sleep", "dead", "")
	for i := range replicaTaskCap + 1 {
		newTask(t, s, fmt.Sprintf("o%d", i%7), "sleep", "many", "")
	}
	newTask(t, s, "carol", "slow_report", "live"+taskrouter.ReleasedSuffix, "")

	code, out, errb := cli(t, "replicas", "--store", u, "--sample", "300ms", "--json")
	if code != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q, stdout %q", code, errb, out)
	}
	got := replicasByRunner(t, out)
	if len(got) != 4 {
		t.Fatalf("want 4 replicas, got %v", got)
	}
	for runner, want := range map[string]replicaJSON{
		"live":                             {State: "beating", Tasks: 3},
		"dead":                             {State: "silent", AtLeast: true, Tasks: 1, Beat: 1},
		"many":                             {State: "silent", AtLeast: true, Tasks: replicaTaskCap, TasksAtLeast: true, Beat: 1},
		"live" + taskrouter.ReleasedSuffix: {State: "released", AtLeast: true, Tasks: 1, Beat: 1},
	} {
		g := got[runner]
		if g.State != want.State || g.AtLeast != want.AtLeast || g.Tasks != want.Tasks || g.TasksAtLeast != want.TasksAtLeast {
			t.Errorf("%s: %+v, want %+v", runner, g, want)
		}
		if want.Beat != 0 && g.Beat != want.Beat {
			t.Errorf("%s: beat %d, want %d", runner, g.Beat, want.Beat)
		}
		// A counter watched without a move is at least as old as the watch.
		if g.AtLeast && g.LastBeatAgoMs < 300 {
			t.Errorf("%s: silent for only %d ms in a 300 ms watch", runner, g.LastBeatAgoMs)
		}
	}
	if got["live"].Beat < 2 || got["live"].AtLeast {
		t.Errorf("live: %+v", got["live"])
	}

	// A shorter lease timeout than the silence: presumed dead. The table
	// marks lower bounds and capped counts with ≥.
	code, out, _ = cli(t, "replicas", "--store", u, "--sample", "300ms", "--lease-timeout", "200ms", "--width", "0")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"REPLICA", "presumed dead", "≥1000", "released", "beating"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "dead ") && (!strings.Contains(line, "≥0.") || !strings.Contains(line, "presumed dead")) {
			t.Errorf("dead's line: %q", line)
		}
	}
}

// TestReplicasWatch: with --watch the age of a counter that stands still
// grows report by report, and a replica removed from the store leaves the
// reports.
func TestReplicasWatch(t *testing.T) {
	u, s := sharedStore(t)
	rt := taskstore.NewRuntime(s)
	beatEvery(t, rt, "live", 20*time.Millisecond)
	if err := rt.Heartbeat(t.Context(), "dead"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var errb strings.Builder
	go func() {
		done <- run(ctx, []string{"replicas", "--store", u, "--sample", "200ms", "--watch", "--json"}, pw, &errb)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var ages []int64
	for sc.Scan() {
		got := replicasByRunner(t, sc.Text())
		if l := got["live"]; l.State != "beating" || l.AtLeast {
			t.Errorf("live: %+v", l)
		}
		d, ok := got["dead"]
		if !ok {
			break
		}
		ages = append(ages, d.LastBeatAgoMs)
		if len(ages) == 3 {
			if err := rt.RemoveRunner(t.Context(), "dead"); err != nil {
				t.Fatal(err)
			}
		}
	}
	cancel()
	go io.Copy(io.Discard, pr)
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, errb.String())
	}
	if len(ages) < 3 {
		t.Fatalf("dead was reported %d times before it was removed: %v", len(ages), ages)
	}
	for i := 1; i < len(ages); i++ {
		if ages[i] <= ages[i-1] {
			t.Errorf("the silent replica's age did not grow: %v", ages)
		}
	}
}
