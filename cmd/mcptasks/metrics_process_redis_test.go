//go:build redis

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMetricsScrapedByPrometheus: two serve replicas share a Redis store,
// each serving its metrics (--metrics-addr), and a real Prometheus server
// (scripts/prometheus_up.sh) scrapes both every second. The test creates
// tasks on both (completed, failed, cancelled, one refused by the quota),
// kills one replica with SIGKILL while it runs a plain and a resumable
// task (the other ends the first and takes the second over), and asks
// Prometheus' HTTP API, in PromQL, for what it did.
func TestMetricsScrapedByPrometheus(t *testing.T) {
	promURL := testServerEnv(t, "MCPTASKS_TEST_PROMETHEUS_URL", "scripts/prometheus_up.sh")
	targets := testServerEnv(t, "MCPTASKS_TEST_PROMETHEUS_TARGETS", "scripts/prometheus_up.sh")
	storeURL := redisStoreURL(t, "MCPTASKS_TEST_REDIS_URL")
	bin := serveBinary(t, "redis")
	const token = "secret-m"
	args := []string{"--store", storeURL, "--token", "alice:" + token, "--max-active-tasks", "3", "--metrics-addr", "127.0.0.1:0"}
	a := startReplica(t, bin, args...)
	b := startReplica(t, bin, args...)
	if a.metrics == "" || b.metrics == "" {
		t.Fatalf("a replica printed no metrics address: %q %q", a.metrics, b.metrics)
	}
	// Series of this run only: Prometheus keeps those of earlier runs.
	run := randomSuffix()
	setTargets(t, targets, run, a.metrics, b.metrics)
	p := prom{t: t, url: promURL, run: run}

	call := func(r *replicaProc, tool string, args map[string]any) (id string, errCode int) {
		t.Helper()
		_, res := modernCall(t, r.url, token, "tools/call", map[string]any{"name": tool, "arguments": args}, tool)
		if res["error"] != nil {
			return "", field[int](t, res["error"], "code")
		}
		return field[string](t, res["result"], "taskId"), 0
	}
	mustCall := func(r *replicaProc, tool string, args map[string]any) string {
		t.Helper()
		id, code := call(r, tool, args)
		if code != 0 {
			t.Fatalf("tools/call %s: error %d", tool, code)
		}
		return id
	}
	waitStatus := func(r *replicaProc, id, want string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			s, msg, _ := taskState(t, r.url, token, id)
			if s == want {
				return
			}
			if s != "working" || time.Now().After(deadline) {
				t.Fatalf("task %s is %s %q, want %s", id, s, msg, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// On A, two tasks that outlive it: a plain one and a resumable one.
	orphan := mustCall(a, "slow_compute", map[string]any{"seconds": 120})
	report := mustCall(a, "slow_report", map[string]any{"topic": "metrics", "steps": 100, "stepSeconds": 1})
	// On B, a third active task of alice's: the quota's last one.
	cancelled := mustCall(b, "slow_compute", map[string]any{"seconds": 120})
	if _, code := call(b, "slow_compute", map[string]any{"seconds": 1}); code != -32603 {
		t.Fatalf("a fourth active task: error %d, want the quota's -32603", code)
	}
	if _, res := modernCall(t, b.url, token, "tasks/cancel", map[string]any{"taskId": cancelled}, cancelled); res["error"] != nil {
		t.Fatalf("tasks/cancel: %s", res["error"])
	}
	for _, r := range []*replicaProc{a, a, b, b} {
		waitStatus(r, mustCall(r, "slow_compute", map[string]any{"seconds": 0}), "completed")
	}
	// A tool error (isError) fails the task; 2026-07-28 shows it completed,
	// with the tool's result.
	waitStatus(b, mustCall(b, "failing_job", map[string]any{}), "completed")

	// What Prometheus scraped from both, while both run: 8 created, 6
	// ended, 2 running (on A), the refusal.
	p.want(`sum(mcptasks_tasks_created_total{RUN,mcp_protocol_version="2026-07-28"})`, "8")
	p.wantBy(`sum by (mcptasks_task_status) (mcptasks_tasks_ended_total{RUN})`, "mcptasks_task_status",
		map[string]string{"completed": "4", "failed": "1", "cancelled": "1"})
	p.want(`sum(mcptasks_task_duration_seconds_count{RUN})`, "6")
	p.wantBy(`sum by (instance) (mcptasks_tasks_running{RUN})`, "instance", map[string]string{a.metrics: "2", b.metrics: "0"})
	p.want(`sum(mcptasks_refusals_total{RUN,mcptasks_refusal_reason="quota"})`, "1")
	p.want(`sum(mcp_server_operation_duration_seconds_count{RUN,mcp_method_name="tools/call",error_type="-32603"})`, "1")
	p.want(`sum(mcp_server_operation_duration_seconds_count{RUN,mcp_method_name="tasks/cancel"})`, "1")
	p.wantBy(`sum by (mcptasks_store_outcome) (mcptasks_store_call_duration_seconds_count{RUN,mcptasks_store_operation="create"})`,
		"mcptasks_store_outcome", map[string]string{"ok": "8", "refused": "1"})
	p.wantBy(`sum by (instance) (mcptasks_feed_up{RUN})`, "instance", map[string]string{a.metrics: "1", b.metrics: "1"})
	// Each replica reports the other's heartbeat, fresh (the lease timeout
	// is 5 s).
	p.wantBy(`count by (instance) (mcptasks_replica_heartbeat_age_seconds{RUN} < 3)`, "instance", map[string]string{a.metrics: "1", b.metrics: "1"})
	aID := p.label(`mcptasks_replica_heartbeat_age_seconds{RUN,instance="`+b.metrics+`"}`, "mcptasks_replica")

	killed := time.Now()
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.cmd.Wait()
	waitStatus(b, orphan, "failed")
	t.Logf("A's orphan ended on B %v after the kill", time.Since(killed).Round(100*time.Millisecond))

	// B ended one orphan and took the resumable task over: it runs there.
	bOnly := `instance="` + b.metrics + `"`
	p.want(`sum(mcptasks_orphans_ended_total{RUN,`+bOnly+`})`, "1")
	p.want(`sum(mcptasks_tasks_taken_over_total{RUN,`+bOnly+`})`, "1")
	p.want(`sum(mcptasks_tasks_running{RUN,`+bOnly+`})`, "1")
	if _, res := modernCall(t, b.url, token, "tasks/cancel", map[string]any{"taskId": report}, report); res["error"] != nil {
		t.Fatalf("tasks/cancel of the resumed task: %s", res["error"])
	}
	// Every created task has ended once (A's last scraped counts
	// included: max_over_time reads the series of a target that is gone).
	p.want(`sum(max_over_time(mcptasks_tasks_created_total{RUN}[10m]))`, "8")
	p.want(`sum(max_over_time(mcptasks_tasks_ended_total{RUN}[10m]))`, "8")
	p.want(`sum(mcptasks_tasks_ended_total{RUN,`+bOnly+`,mcptasks_task_status="failed",gen_ai_tool_name="slow_compute"})`, "1")
	p.want(`sum(mcptasks_tasks_ended_total{RUN,`+bOnly+`,mcptasks_task_status="cancelled",gen_ai_tool_name="slow_report"})`, "1")
	p.want(`sum(mcptasks_tasks_running{RUN,`+bOnly+`})`, "0")
	// A's heartbeat age, as B saw it, grew toward the lease timeout before
	// B acted, and B stopped reporting A once A's tasks were dealt with.
	p.check(fmt.Sprintf(`max_over_time(mcptasks_replica_heartbeat_age_seconds{RUN,%s,mcptasks_replica=%q}[5m])`, bOnly, aID), func(v []promSample) bool {
		// Scraped each second, so the last sample before B acted (at 5 s)
		// may be a second short of it; a live replica's stays near 0.
		return len(v) == 1 && v[0].value >= 3
	}, "A's heartbeat age on B grew toward the lease timeout")
	p.want(`count(mcptasks_replica_heartbeat_age_seconds{RUN,`+bOnly+`}) or vector(0)`, "0")

	// Every metric docs/operations.md lists was scraped in this run (A's
	// heartbeat age on B is gone by now: the names of every series of the
	// run, live or not).
	scraped := p.names()
	for name, typ := range documentedMetrics(t) {
		if typ == "histogram" {
			name += "_count"
		}
		if !scraped[name] {
			t.Errorf("docs/operations.md lists %s, which Prometheus did not scrape (it has %v)", name, scraped)
		}
	}
}

// documentedMetrics returns the Prometheus names of the table of metrics
// in docs/operations.md, and their types.
func documentedMetrics(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `[a-z_.]+` \\| `([a-z_]+)` \\| ([a-z]+)")
	out := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		out[m[1]] = m[2]
	}
	if len(out) < 13 {
		t.Fatalf("docs/operations.md lists %d metrics: %v", len(out), out)
	}
	return out
}

// TestOperationsAlertRules: the alert rules of docs/operations.md load in
// Prometheus (promtool check rules) and name only metrics the table lists.
func TestOperationsAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("MCPTASKS_TEST_REQUIRE") == "1" {
			t.Fatal("promtool is not installed (scripts/prometheus_up.sh installs Debian's prometheus, which has it)")
		}
		t.Skip("promtool is not installed; run scripts/prometheus_up.sh")
	}
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, alerts, ok := strings.Cut(string(doc), "\n## Alerts\n")
	_, rules, ok2 := strings.Cut(alerts, "```yaml\n")
	rules, _, ok3 := strings.Cut(rules, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/operations.md has no rules under ## Alerts")
	}
	file := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
	known := documentedMetrics(t)
	for _, name := range regexp.MustCompile(`\b(?:mcp|mcptasks)_[a-z_]+`).FindAllString(rules, -1) {
		base := name
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && known[b] == "histogram" {
				base = b
			}
		}
		if known[base] == "" && !strings.HasPrefix(name, "mcptasks_store_operation") && !strings.HasPrefix(name, "mcptasks_store_outcome") &&
			!strings.HasPrefix(name, "mcptasks_replica") && !strings.HasPrefix(name, "mcptasks_refusal_reason") {
			t.Errorf("the alert rules name %s, which the table of metrics does not list", name)
		}
	}
}

// setTargets points Prometheus at the replicas' metrics (the file_sd file
// prometheus_up.sh made), with a run label on every series; at the end of
// the test the file is emptied again.
func setTargets(t *testing.T, file, run string, hosts ...string) {
	t.Helper()
	write := func(v any) {
		b, _ := json.Marshal(v)
		// Rename over the file: Prometheus never reads a half-written one.
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write([]map[string]any{{"targets": hosts, "labels": map[string]string{"run": run}}})
	t.Cleanup(func() { write([]any{}) })
}

// prom asks a Prometheus server's HTTP API; RUN in a query stands for the
// test's run label.
type prom struct {
	t   *testing.T
	url string
	run string
}

type promSample struct {
	labels map[string]string
	value  float64
}

// query runs an instant query.
func (p prom) query(q string) ([]promSample, error) {
	q = strings.ReplaceAll(q, "RUN", `run="`+p.run+`"`)
	resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: %s", q, body.Error)
	}
	out := make([]promSample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: value %v", q, r.Value)
		}
		out = append(out, promSample{labels: r.Metric, value: v})
	}
	return out, nil
}

// names returns the metric names of every series of the run Prometheus
// holds.
func (p prom) names() map[string]bool {
	p.t.Helper()
	resp, err := http.Get(p.url + "/api/v1/label/__name__/values?match[]=" + url.QueryEscape(`{run="`+p.run+`"}`))
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string   `json:"status"`
		Data   []string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		p.t.Fatalf("label values: %v %v", body.Status, err)
	}
	out := map[string]bool{}
	for _, n := range body.Data {
		out[n] = true
	}
	return out
}

// check polls q until ok holds of its answer (scrapes come every second,
// so the answer catches up with what the test did within a few).
func (p prom) check(q string, ok func([]promSample) bool, what string) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := p.query(q)
		if err == nil && ok(got) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s answered %v (%v)", what, q, got, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// want checks that q answers one sample of value want.
func (p prom) want(q, want string) {
	p.t.Helper()
	p.check(q, func(v []promSample) bool {
		return len(v) == 1 && strconv.FormatFloat(v[0].value, 'f', -1, 64) == want
	}, "want "+want)
}

// wantBy checks that q answers, by the label by, exactly want.
func (p prom) wantBy(q, by string, want map[string]string) {
	p.t.Helper()
	p.check(q, func(v []promSample) bool {
		got := map[string]string{}
		for _, s := range v {
			got[s.labels[by]] = strconv.FormatFloat(s.value, 'f', -1, 64)
		}
		return fmt.Sprint(got) == fmt.Sprint(want)
	}, fmt.Sprintf("want %v", want))
}

// label returns label of the one series q answers.
func (p prom) label(q, label string) string {
	p.t.Helper()
	var v string
	p.check(q, func(s []promSample) bool {
		if len(s) == 1 {
			v = s[0].labels[label]
		}
		return v != ""
	}, "one series with "+label)
	return v
}
