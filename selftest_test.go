//go:build mcptasks_selftest

package mcptasks

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

// The self-test switches (taskstore/selftest_on.go) on every backend of the
// build: go test -tags mcptasks_selftest[,redis,…] -run '^TestSelftest' .

// TestSelftestSwitch runs TestSelftestGuarantees in a child process for
// each value of MCPTASKS_SELFTEST_BREAK: the variable is read once, at
// start.
func TestSelftestSwitch(t *testing.T) {
	for _, v := range []string{"", "fencing", "quota"} {
		t.Run("break="+v, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestSelftestGuarantees$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), "MCPTASKS_SELFTEST_BREAK="+v) // the last one wins
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("MCPTASKS_SELFTEST_BREAK=%s: %v\n%s", v, err, out)
			}
			passed := regexp.MustCompile(`(?m)^\s*--- PASS: TestSelftestGuarantees/\S+/(fencing|quota) `).FindAll(out, -1)
			if want := 2 * len(sharedTestBackends); len(passed) != want || strings.Contains(string(out), "--- SKIP") {
				t.Fatalf("MCPTASKS_SELFTEST_BREAK=%s: %d checks passed, want %d and none skipped\n%s", v, len(passed), want, out)
			}
		})
	}
}

// TestSelftestGuarantees checks each backend against what
// MCPTASKS_SELFTEST_BREAK says: "fencing" lets a superseded attempt's
// checkpoint and result land, "quota" lets an owner create active tasks
// past MaxActiveTasks; otherwise both are refused, as in every other build.
func TestSelftestGuarantees(t *testing.T) {
	broken := os.Getenv("MCPTASKS_SELFTEST_BREAK")
	forEachBackend(t, func(t *testing.T, b taskstore.Backend) {
		s := taskstore.New(b, taskstore.Config{MaxActiveTasks: 1})
		t.Run("fencing", func(t *testing.T) {
			ctx := t.Context()
			owner := "fence-" + taskid.New(time.Now())
			rec, err := s.Create(ctx, owner, taskstore.CreateRequest{RequestMethod: "tools/call", Runner: "first"})
			if err != nil {
				t.Fatal(err)
			}
			id := rec.Task.TaskID
			old := s.HandleFor(rec).WithLease(*rec.Lease)
			if _, err := taskstore.NewRuntime(s).Claim(ctx, owner, id, *rec.Lease, "second"); err != nil {
				t.Fatalf("claim: %v", err)
			}
			// The first attempt, superseded, writes a checkpoint and its result.
			errCheckpoint := old.SetVariables(ctx, map[string]any{"checkpoint": 7})
			errResult := old.Complete(ctx, "late")
			got, err := s.Get(ctx, owner, id)
			if err != nil {
				t.Fatal(err)
			}
			_, hasCheckpoint := got.Variables["checkpoint"]
			if broken == "fencing" {
				if errCheckpoint != nil || errResult != nil || !hasCheckpoint || got.Task.Status != taskstore.StatusCompleted || string(got.Result) != `"late"` {
					t.Fatalf("fencing broken: checkpoint %v, result %v; stored %s, result %s, checkpoint stored %v; want both landed",
						errCheckpoint, errResult, got.Task.Status, got.Result, hasCheckpoint)
				}
				return
			}
			if !errors.Is(errCheckpoint, taskstore.ErrLeaseLost) || !errors.Is(errResult, taskstore.ErrLeaseLost) ||
				hasCheckpoint || got.Task.Status != taskstore.StatusWorking || got.Lease.Attempt != 2 {
				t.Fatalf("checkpoint %v, result %v; stored %s, attempt %d, checkpoint stored %v; want both refused (lease lost)",
					errCheckpoint, errResult, got.Task.Status, got.Lease.Attempt, hasCheckpoint)
			}
		})
		t.Run("quota", func(t *testing.T) {
			ctx := t.Context()
			owner := "quota-" + taskid.New(time.Now())
			req := taskstore.CreateRequest{RequestMethod: "tools/call"}
			if _, err := s.Create(ctx, owner, req); err != nil {
				t.Fatal(err)
			}
			_, err := s.Create(ctx, owner, req)
			if broken == "quota" {
				if err != nil {
					t.Fatalf("quota broken: a second active task of a quota of 1: %v, want created", err)
				}
				return
			}
			if !errors.Is(err, taskstore.ErrQuotaExceeded) {
				t.Fatalf("a second active task of a quota of 1: %v, want ErrQuotaExceeded", err)
			}
		})
	})
}
