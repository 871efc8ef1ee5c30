//go:build redis

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	mg "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// TestClusterPartitionProcess: two serve replicas over a Redis Cluster in
// the network lab (netlab_linux_test.go). A runs a resumable slow_report
// and a plain sleep; A is cut from the cluster while clients still reach
// it. Clients on A get errors within their deadline; B takes the report
// over and ends the sleep as an orphan after the lease timeout; after the
// heal A's late writes (its sleep's result, timed to come right after the
// heal) are refused, the records keep B's attempt, and tasks/result on A
// and B agree. Reports how long after the partition B acted:
//
//	sudo go test -tags redis -run TestClusterPartitionProcess -v ./cmd/mcptasks/
func TestClusterPartitionProcess(t *testing.T) {
	l := newNetLab(t, netLabConfig{Replicas: 2})
	ctx := t.Context()
	const token, steps, sleepSeconds = "secret-partition", 12, 25
	a := l.StartServe(0, "--token", "alice:"+token)
	b := l.StartServe(1, "--token", "alice:"+token)
	store, err := mcptasks.Open(ctx, l.StoreURL(), taskstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	create := func(tool string, args map[string]any) string {
		t.Helper()
		_, res := modernCall(t, a.url, token, "tools/call", map[string]any{"name": tool, "arguments": args}, tool)
		if res["error"] != nil {
			t.Fatalf("tools/call %s on A: %s", tool, res["error"])
		}
		return field[string](t, res["result"], "taskId")
	}
	report := create("slow_report", map[string]any{"topic": "partitions", "steps": steps, "stepSeconds": 1})
	sleepID := create("sleep", map[string]any{"seconds": sleepSeconds})
	sleepEnds := time.Now().Add(sleepSeconds * time.Second) // on A's clock, within a few ms

	// A tasks/result blocked on A (a 2025-11-25 session) on the sleep.
	type answer struct {
		res *mg.TaskResultResult
		err error
		at  time.Time
	}
	blocked := make(chan answer, 1)
	legacyA := connect(t, a.url, token)
	go func() {
		res, err := legacyA.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: sleepID}})
		blocked <- answer{res, err, time.Now()}
	}()

	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, step, _ := reportProgress(t, b.url, token, report); step >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the report never stored step 2")
		}
	}
	rec, err := store.Get(ctx, "alice", report)
	if err != nil || rec.Lease == nil {
		t.Fatalf("the report's record: %v %+v", err, rec)
	}
	runnerA := rec.Lease.Runner

	partitioned := time.Now()
	if err := l.Partition(0); err != nil {
		t.Fatal(err)
	}

	// Clients on A: an answer within the deadline, an error, not a hang.
	const deadline = 15 * time.Second
	for _, c := range []struct {
		method string
		params map[string]any
		name   string
	}{
		{"tasks/get", map[string]any{"taskId": report}, report},
		{"tools/call", map[string]any{"name": "sleep", "arguments": map[string]any{"seconds": 1}}, "sleep"},
	} {
		res, took, err := callWithin(a.url, token, c.method, c.params, c.name, deadline)
		switch {
		case err != nil:
			t.Errorf("%s on the partitioned A: %v after %s (deadline %s)", c.method, err, took.Round(time.Millisecond), deadline)
		case res["error"] == nil:
			t.Errorf("%s on the partitioned A answered %s, want an error", c.method, res["result"])
		default:
			t.Logf("%s on the partitioned A: error %s after %s", c.method, res["error"], took.Round(time.Millisecond))
		}
	}

	// B takes the report over and ends the sleep.
	for until := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, _, rd := taskState(t, b.url, token, report)
		s, m, _ := taskState(t, b.url, token, sleepID)
		var meta map[string]json.RawMessage
		json.Unmarshal(rd["_meta"], &meta)
		if string(meta[taskstore.AttemptKey]) == "2" && s == "failed" && m == taskrouter.OrphanedMessage {
			break
		}
		if time.Now().After(until) {
			t.Fatalf("60 s after the partition B has not acted: report _meta %s, sleep %s %q", rd["_meta"], s, m)
		}
	}
	at := func(msg, field string) time.Duration {
		t.Helper()
		if !logsEventually(b, msg, 5*time.Second) {
			t.Fatalf("B did not log %q; its log:\n%s", msg, b.logs)
		}
		times := logTimes(t, b, msg, field)
		if len(times) != 1 {
			t.Fatalf("B logged %q %d times for %s; its log:\n%s", msg, len(times), field, b.logs)
		}
		return times[0].Sub(partitioned)
	}
	detected := at("replica presumed dead", "runner="+runnerA)
	takeover := at("task taken over", "task="+report)
	orphaned := at("orphaned task failed", "task="+sleepID)
	ended, err := store.Get(ctx, "alice", sleepID)
	if err != nil {
		t.Fatal(err)
	}

	// Heal just before the sleep ends on A, so that A's handler returns
	// its result right after the heal: a late write, to be refused.
	time.Sleep(time.Until(sleepEnds.Add(-200 * time.Millisecond)))
	healed := time.Now()
	if err := l.Heal(0); err != nil {
		t.Fatal(err)
	}

	// The tasks/result blocked on A: an error while A cannot read the
	// store, or the task's end once it can; after an error the client's
	// retry on A, healed, gets the end.
	var first answer
	select {
	case first = <-blocked:
	case <-time.After(30 * time.Second):
		t.Fatalf("the tasks/result blocked on A had not returned 30 s after the heal")
	}
	t.Logf("the tasks/result blocked on A answered %s after the partition (%s after the heal): %+v %v",
		first.at.Sub(partitioned).Round(time.Millisecond), first.at.Sub(healed).Round(time.Millisecond), first.res, first.err)
	for retry, until := first, time.Now().Add(30*time.Second); retry.err == nil || !strings.Contains(retry.err.Error(), taskrouter.OrphanedMessage); {
		if retry.err == nil || time.Now().After(until) {
			t.Fatalf("tasks/result on A answers %+v %v, want the orphaned error", retry.res, retry.err)
		}
		time.Sleep(200 * time.Millisecond)
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		retry.res, retry.err = legacyA.TaskResult(rctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: sleepID}})
		cancel()
	}
	if !logsEventually(a, "lease not renewed for a lease timeout; re-checking own tasks", 30*time.Second) {
		t.Errorf("A did not re-check its runs after the heal; its log:\n%s", a.logs)
	}

	// The report completes on B.
	var detail map[string]json.RawMessage
	for until := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var status string
		status, _, detail = taskState(t, b.url, token, report)
		if status == "completed" {
			break
		}
		if status != "working" || time.Now().After(until) {
			t.Fatalf("the report is %s: %s %s", status, detail["statusMessage"], detail["error"])
		}
	}
	time.Sleep(2 * time.Second) // A's late writes, if any, land or not

	// The records: the sleep as B ended it, the report B's attempt 2.
	after, err := store.Get(ctx, "alice", sleepID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != ended.Version || after.Task.Status != taskstore.StatusFailed || after.Task.StatusMessage != taskrouter.OrphanedMessage {
		t.Errorf("the sleep changed after B ended it: version %d -> %d, now %s %q", ended.Version, after.Version, after.Task.Status, after.Task.StatusMessage)
	}
	final, err := store.Get(ctx, "alice", report)
	if err != nil {
		t.Fatal(err)
	}
	if final.Lease == nil || final.Lease.Attempt != 2 || final.Lease.Runner == runnerA {
		t.Errorf("the report's lease: %+v, want attempt 2 by B", final.Lease)
	}
	byA := checkReportSteps(t, detail, steps)
	if byA < 2 {
		t.Errorf("attempt 1 wrote %d steps, but 2 were stored before the partition", byA)
	}

	// tasks/result agrees on A and B.
	legacyB := connect(t, b.url, token)
	for _, id := range []string{report, sleepID} {
		ra, ea := legacyA.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: id}})
		rb, eb := legacyB.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: id}})
		if fmt.Sprint(ea) != fmt.Sprint(eb) || legacyResultText(ra) != legacyResultText(rb) {
			t.Errorf("tasks/result %s: A %q %v, B %q %v", id, legacyResultText(ra), ea, legacyResultText(rb), eb)
		}
	}
	// How A's runs ended: no outcome of A's may be stored.
	outcome := func(id string) string {
		t.Helper()
		has := func(msg string) bool { return len(logTimes(t, a, msg, "task="+id)) > 0 }
		switch {
		case has("task finished"):
			t.Errorf("A stored an outcome of %s after B took it; A's log:\n%s", id, a.logs)
			return "stored"
		case has("task outcome not stored"):
			return "refused" // the store refused the late write (lease lost, or the task ended)
		case has("storing task outcome failed"):
			return "unsent" // the store was unreachable until A gave up
		case has("lease lost: stopping the local run"):
			return "stopped" // A re-checked its lease before the run ended
		}
		t.Errorf("no end of A's run of %s in its log:\n%s", id, a.logs)
		return "unknown"
	}
	t.Logf("REPORT test=TestClusterPartitionProcess detected_ms=%d takeover_ms=%d orphaned_ms=%d steps_by_attempt_1=%d a_sleep_outcome=%s a_report_outcome=%s (times from the partition to B's log lines; A's outcomes: refused by the fence, unsent, or stopped before written)",
		detected.Milliseconds(), takeover.Milliseconds(), orphaned.Milliseconds(), byA, outcome(sleepID), outcome(report))
}

func legacyResultText(r *mg.TaskResultResult) string {
	if r == nil {
		return ""
	}
	var s []string
	for _, c := range r.Content {
		if tc, ok := c.(mg.TextContent); ok {
			s = append(s, tc.Text)
		}
	}
	return fmt.Sprintf("isError=%v %s", r.IsError, strings.Join(s, "\n"))
}

// callWithin sends one 2026-07-28 request that must be answered within d;
// it returns the JSON-RPC answer and how long it took, or the transport
// error (the deadline among them).
func callWithin(url, token, method string, params map[string]any, name string, d time.Duration) (map[string]json.RawMessage, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	req, err := modernRequest(ctx, url, token, method, params, name, map[string]any{})
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, time.Since(start), err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, time.Since(start), err
	}
	return lastJSONRPC(body), time.Since(start), nil
}
