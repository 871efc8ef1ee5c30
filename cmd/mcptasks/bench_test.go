package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/internal/callcount"
	"github.com/mcptasks/mcptasks/internal/runcost"
	"github.com/mcptasks/mcptasks/taskstore"
)

func TestBenchReportsEveryOperation(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"bench", "-duration", "50ms", "-callers", "1,3", "-list-size", "60"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("bench exited %d: %s", code, errOut.String())
	}
	for _, op := range benchOps {
		for _, callers := range []string{"1", "3"} {
			found := false
			for _, line := range strings.Split(out.String(), "\n") {
				f := strings.Fields(line)
				if len(f) == 8 && f[0] == op && f[1] == callers {
					found = true
					if f[5] != "0" || f[2] == "0" || f[6] == "0" || f[7] == "0" {
						t.Errorf("row %q: want throughput, a floor, a ratio and no errors", line)
					}
				}
			}
			if !found {
				t.Errorf("no row for %s with %s callers:\n%s", op, callers, out.String())
			}
		}
	}
}

func TestBenchRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "-ops", "get,explode"},
		{"bench", "-callers", "0"},
		{"bench", "-store", "nope://"},
		{"bench", "-list-size", "0"},
	} {
		var out, errOut bytes.Buffer
		if code := run(t.Context(), args, &out, &errOut); code == 0 {
			t.Errorf("%v succeeded", args)
		}
	}
}

// TestDynamoDBCreateTable creates a table on DynamoDB Local when the binary
// has the backend, and otherwise checks that the error names the tag.
func TestDynamoDBCreateTable(t *testing.T) {
	var out, errOut bytes.Buffer
	if !slices.Contains(mcptasks.Backends(), "dynamodb") {
		code := run(t.Context(), []string{"dynamodb", "create-table", "dynamodb://t"}, &out, &errOut)
		if code == 0 || !strings.Contains(errOut.String(), "-tags dynamodb") {
			t.Fatalf("exit %d, stderr %q: want an error naming -tags dynamodb", code, errOut.String())
		}
		return
	}
	endpoint := os.Getenv("MCPTASKS_TEST_DYNAMODB_ENDPOINT")
	if endpoint == "" {
		if os.Getenv("MCPTASKS_TEST_REQUIRE") == "1" {
			t.Fatal("MCPTASKS_TEST_DYNAMODB_ENDPOINT is not set")
		}
		t.Skip("MCPTASKS_TEST_DYNAMODB_ENDPOINT is not set")
	}
	table := fmt.Sprintf("mcptasks_cmd_%d", time.Now().UnixNano())
	u := fmt.Sprintf("dynamodb://%s?endpoint=%s&region=us-east-1", table, endpoint)
	for range 2 { // idempotent
		out.Reset()
		if code := run(t.Context(), []string{"dynamodb", "create-table", u}, &out, &errOut); code != 0 {
			t.Fatalf("create-table exited %d: %s", code, errOut.String())
		}
		if !strings.Contains(out.String(), table+" is ready") {
			t.Fatalf("output %q", out.String())
		}
	}
	s, err := mcptasks.Open(t.Context(), u, taskstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Create(t.Context(), "alice", taskstore.CreateRequest{RequestMethod: "tools/call"}); err != nil {
		t.Fatalf("the created table does not store tasks: %v", err)
	}
}

// TestBenchReplicas runs bench replicas on memory:// with a few tasks and
// checks the shape of its report and that its figures are sane (no timing
// is asserted: the machine may be slow).
func TestBenchReplicas(t *testing.T) {
	const n = 200
	args := []string{"bench", "replicas", "-n", strconv.Itoa(n), "-checkpoints", "5", "-checkpoint-every", "2ms",
		"-heartbeat", "20ms", "-lease-timeout", "100ms"}
	var out, errOut bytes.Buffer
	if code := run(t.Context(), append(args, "--json"), &out, &errOut); code != 0 {
		t.Fatalf("bench replicas exited %d: %s", code, errOut.String())
	}
	var rep replicasReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json output %q: %v", out.String(), err)
	}
	if rep.Store != "memory://" || rep.N != n || rep.Checkpoints == nil || rep.Orphans == nil || rep.Takeover == nil || len(rep.Memory) != 2 {
		t.Fatalf("report lacks a measure: %s", out.String())
	}
	// memory:// has a change feed: a checkpoint is its write alone.
	if c := rep.Checkpoints; c.Checkpoints != 50 || c.Runs != 10 || c.PerCheckpoint != 1 || c.Resyncs != 0 ||
		!cmp.Equal(c.Calls, callcount.Counts{"Update": 50}) {
		t.Errorf("checkpoints: %+v, want 50 by 10 runs, one Update each", c)
	}
	for what, s := range map[string]*runcost.Sweep{"orphans": rep.Orphans, "takeover": rep.Takeover} {
		// One page of RunnerTasks and one batch of writes, give or take a
		// sweep found again: far below the 4 calls per orphan.
		if s.Tasks != n || s.Seconds <= 0 || s.PerSecond <= 0 || s.PerTask <= 0 || s.PerTask > 4 || s.Calls["UpdateMany"] == 0 {
			t.Errorf("%s: %+v", what, s)
		}
	}
	for i, path := range []string{"Router.Start", "go-sdk tools/call"} {
		m := rep.Memory[i]
		if m.Path != path || m.Tasks != n || m.HeapPerTask <= 0 || m.HeapPerTask > 64<<10 ||
			m.StackPerTask <= 0 || m.StackPerTask > 64<<10 || m.GoroutinesPerTask < 1.5 || m.GoroutinesPerTask > 3 ||
			m.StoredPerTask <= 0 {
			t.Errorf("memory %d: %+v, want %s, some heap and stack per task and two goroutines", i, m, path)
		}
	}

	out.Reset()
	if code := run(t.Context(), append(args, "-measures", "checkpoints,memory"), &out, &errOut); code != 0 {
		t.Fatalf("bench replicas exited %d: %s", code, errOut.String())
	}
	for _, row := range []string{"backend calls per checkpoint 1.00 ", "heap per running task, Router.Start ",
		"stack per running task, go-sdk tools/call ", "stored record, "} {
		if !strings.Contains(strings.Join(strings.Fields(out.String()), " "), row) {
			t.Errorf("table has no %q:\n%s", row, out.String())
		}
	}
	if strings.Contains(out.String(), "orphans") {
		t.Errorf("table has orphans though -measures left them out:\n%s", out.String())
	}

	// Resumed runs that checkpoint: their writes are counted too.
	out.Reset()
	if code := run(t.Context(), append(args, "-measures", "takeover", "-n", "20", "-step", "10ms", "-json"), &out, &errOut); code != 0 {
		t.Fatalf("bench replicas exited %d: %s", code, errOut.String())
	}
	rep = replicasReport{}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Takeover == nil || rep.Takeover.Tasks != 20 || rep.Takeover.Calls["Update"] == 0 {
		t.Errorf("takeover with -step: %s (%v), want the checkpoints of resumed runs counted", out.String(), err)
	}
}
