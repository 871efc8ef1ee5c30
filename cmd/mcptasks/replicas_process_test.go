//go:build redis || dynamodb || postgres

package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	mg "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcptasks/mcptasks/taskrouter"
)

// Replicas as real processes: the binary is built with the test's backend
// tag, two replicas share one store, one is killed (SIGKILL) or frozen
// (SIGSTOP) while it runs a task, and the survivor must end that task and
// answer the tasks/result blocked on it. Each backend's file
// (replicas_process_<backend>_test.go) runs these against its server; with
// no backend tag there is no shared store and nothing here to run.

// testServerEnv returns the environment variable naming a test server,
// skipping the test when it is unset (failing it under
// MCPTASKS_TEST_REQUIRE=1, as matrix_test.sh sets); script starts one.
func testServerEnv(t testing.TB, env, script string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		if os.Getenv("MCPTASKS_TEST_REQUIRE") == "1" {
			t.Fatalf("%s is not set (%s sets it)", env, script)
		}
		t.Skipf("%s is not set; run %s", env, script)
	}
	return v
}

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// taskState reads a task through the 2026-07-28 tasks/get of a replica.
func taskState(t testing.TB, url, token, id string) (status, message string, detail map[string]json.RawMessage) {
	t.Helper()
	_, res := modernCall(t, url, token, "tasks/get", map[string]any{"taskId": id}, id)
	if res == nil || res["result"] == nil {
		t.Fatalf("tasks/get %s: %v", id, res)
	}
	if err := json.Unmarshal(res["result"], &detail); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(detail["status"], &status)
	json.Unmarshal(detail["statusMessage"], &message)
	return status, message, detail
}

// testReplicaKilled: A runs a task and is killed with SIGKILL; B, which
// has a tasks/result blocked on it, ends the task failed within the lease
// bound and answers the blocked call with -32603.
func testReplicaKilled(t *testing.T, tags, storeURL string) {
	bin := serveBinary(t, tags)
	const token = "secret-r"
	args := []string{"--store", storeURL, "--token", "alice:" + token}
	a := startReplica(t, bin, args...)
	b := startReplica(t, bin, args...)

	_, res := modernCall(t, a.url, token, "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 120}}, "slow_compute")
	if res["error"] != nil {
		t.Fatalf("tools/call on A: %s", res["error"])
	}
	id := field[string](t, res["result"], "taskId")
	if s, _, _ := taskState(t, b.url, token, id); s != "working" {
		t.Fatalf("B sees the task as %s", s)
	}

	// A tasks/result blocked on B (2025-11-25 session).
	legacy := connect(t, b.url, token)
	type answer struct {
		err error
		at  time.Time
	}
	blocked := make(chan answer, 1)
	go func() {
		_, err := legacy.TaskResult(t.Context(), mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: id}})
		blocked <- answer{err, time.Now()}
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case ans := <-blocked:
		t.Fatalf("tasks/result on B answered before the crash: %v", ans.err)
	default:
	}

	killed := time.Now()
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.cmd.Wait()

	var status, message string
	var detail map[string]json.RawMessage
	for {
		status, message, detail = taskState(t, b.url, token, id)
		if status != "working" || time.Since(killed) > 30*time.Second {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	detected := time.Since(killed)
	if status != "failed" || message != taskrouter.OrphanedMessage {
		t.Fatalf("after the crash the task is %s %q (%s), want failed %q", status, message, detail["error"], taskrouter.OrphanedMessage)
	}
	var rpcErr struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(detail["error"], &rpcErr); err != nil || rpcErr.Code != -32603 || rpcErr.Message != taskrouter.OrphanedMessage {
		t.Errorf("2026-07-28 tasks/get error: %s", detail["error"])
	}
	// The bound: at most 10 s after the crash with default options.
	if detected > 10*time.Second {
		t.Errorf("the orphaned task ended %v after the crash, bound 10s", detected)
	}
	select {
	case ans := <-blocked:
		if ans.err == nil || !strings.Contains(ans.err.Error(), taskrouter.OrphanedMessage) {
			t.Errorf("the blocked tasks/result answered %v, want the orphaned error", ans.err)
		}
		t.Logf("REPORT replica-kill backend=%s detection=%s result-answered=%s", tags, detected.Round(10*time.Millisecond), ans.at.Sub(killed).Round(10*time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Errorf("the tasks/result blocked on B did not return within 10 s of the task's end")
	}
	// B logs the orphan once its batched end returns, which may be just
	// after the feed woke the blocked tasks/result.
	if !logsEventually(b, "orphaned task failed", 5*time.Second) {
		t.Errorf("B logged no orphan; logs:\n%s", b.logs)
	}
}

// testReplicaFrozen: A is frozen (SIGSTOP) past its lease while it runs a
// task; B ends the task; A, thawed, stops its run and writes nothing more.
func testReplicaFrozen(t *testing.T, tags, storeURL string) {
	bin := serveBinary(t, tags)
	const token = "secret-f"
	args := []string{"--store", storeURL, "--token", "alice:" + token}
	a := startReplica(t, bin, args...)
	b := startReplica(t, bin, args...)
	// The task would finish 9 s in: while A is frozen, after B ended it.
	_, res := modernCall(t, a.url, token, "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 9}}, "slow_compute")
	if res["error"] != nil {
		t.Fatalf("tools/call on A: %s", res["error"])
	}
	id := field[string](t, res["result"], "taskId")
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	var status, message string
	for {
		status, message, _ = taskState(t, b.url, token, id)
		if status != "working" || time.Since(stopped) > 30*time.Second {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status != "failed" || message != taskrouter.OrphanedMessage {
		t.Fatalf("while A is frozen the task is %s %q", status, message)
	}
	_, _, before := taskState(t, b.url, token, id)
	// Thaw A after its task's own end time has passed, so its handler
	// returns a result at once: the fence must refuse to store it.
	time.Sleep(time.Until(stopped.Add(10 * time.Second)))
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	_, _, after := taskState(t, b.url, token, id)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("the thawed replica changed the task:\nbefore %v\nafter  %v", before, after)
	}
	t.Logf("REPORT replica-freeze backend=%s ended-after=%s thawed-writes=0", tags, time.Since(stopped).Round(time.Second))
	// A is alive again and serves.
	if s, _, _ := taskState(t, a.url, token, id); s != "failed" {
		t.Errorf("A, thawed, sees the task as %s", s)
	}
}

// reportProgress reads slow_report's checkpoint (report.step in _meta).
func reportProgress(t *testing.T, url, token, id string) (status string, step int, detail map[string]json.RawMessage) {
	t.Helper()
	status, _, detail = taskState(t, url, token, id)
	var meta map[string]json.RawMessage
	json.Unmarshal(detail["_meta"], &meta)
	json.Unmarshal(meta["report.step"], &step)
	return status, step, detail
}

// checkReport checks that a resumed 8-step report has every step once,
// the first ones by attempt 1 and the rest by attempt 2, and returns how
// many attempt 1 wrote.
func checkReport(t *testing.T, detail map[string]json.RawMessage) int {
	t.Helper()
	return checkReportSteps(t, detail, 8)
}

// checkReportSteps is checkReport for a report of steps steps.
func checkReportSteps(t *testing.T, detail map[string]json.RawMessage, steps int) int {
	t.Helper()
	var result struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(detail["result"], &result); err != nil || len(result.Content) == 0 {
		t.Fatalf("report result: %s (%v)", detail["result"], err)
	}
	lines := strings.Split(result.Content[0].Text, "\n")[1:]
	if len(lines) != steps {
		t.Fatalf("report has %d steps, want %d:\n%s", len(lines), steps, result.Content[0].Text)
	}
	first := 0
	for i, l := range lines {
		attempt := 2
		if strings.HasSuffix(l, "(attempt 1)") {
			attempt = 1
			first++
		}
		if !strings.HasPrefix(l, fmt.Sprintf("%d. ", i+1)) || !strings.HasSuffix(l, fmt.Sprintf("(attempt %d)", attempt)) ||
			(attempt == 1 && first != i+1) {
			t.Fatalf("step %d: %q (want each step once, attempt 1 then 2):\n%s", i+1, l, result.Content[0].Text)
		}
	}
	return first
}

// testReplicaResumed: a resumable slow_report runs on A, which is killed
// (SIGKILL) after step 3 of 8, or shut down (SIGTERM, a rolling deploy);
// B takes the task over and continues after the last checkpoint.
func testReplicaResumed(t *testing.T, tags, storeURL string, sig syscall.Signal) {
	bin := serveBinary(t, tags)
	const token = "secret-t"
	args := []string{"--store", storeURL, "--token", "alice:" + token}
	a := startReplica(t, bin, args...)
	b := startReplica(t, bin, args...)
	_, res := modernCall(t, a.url, token, "tools/call", map[string]any{"name": "slow_report", "arguments": map[string]any{"topic": "tides", "steps": 8}}, "slow_report")
	if res["error"] != nil {
		t.Fatalf("tools/call on A: %s", res["error"])
	}
	id := field[string](t, res["result"], "taskId")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, step, _ := reportProgress(t, b.url, token, id); step >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the report never reached step 3")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopped := time.Now()
	if err := a.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	var status string
	var detail map[string]json.RawMessage
	resumedAt := time.Duration(0)
	for {
		var step int
		status, step, detail = reportProgress(t, b.url, token, id)
		if resumedAt == 0 && step >= 5 {
			resumedAt = time.Since(stopped)
		}
		if status != "working" || time.Since(stopped) > 60*time.Second {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status != "completed" {
		t.Fatalf("the resumed report ended %s: %s %s", status, detail["statusMessage"], detail["error"])
	}
	first := checkReport(t, detail)
	t.Logf("REPORT replica-takeover backend=%s signal=%s steps-by-attempt-1=%d steps-by-attempt-2=%d duplicate-steps=0 step5-after=%s",
		tags, sig, first, 8-first, resumedAt.Round(10*time.Millisecond))
	if !logsEventually(b, "task taken over", 5*time.Second) {
		t.Errorf("B logged no takeover; logs:\n%s", b.logs)
	}
	if sig == syscall.SIGTERM {
		a.cmd.Wait()
		if !strings.Contains(a.logs.String(), "task released for takeover") {
			t.Errorf("A did not release the task at shutdown; logs:\n%s", a.logs)
		}
	}
}

// logsEventually reports whether p logs line within d: a replica logs what
// it did after the store write that others may already have seen.
func logsEventually(p *replicaProc, line string, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(p.logs.String(), line) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
