//go:build redis || dynamodb || postgres

package mcptasks

import (
	"context"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
	"github.com/mcptasks/mcptasks/taskstore/storetest"
)

// The fault harness's parts for a server that is killed and restarted
// (backend_<backend>_fault_test.go): the load's phases, waiting for the
// restarted server and the verdict. restartPort is in restartport_test.go.

// setPhase moves the load to phase p (phaseDown at the kill, phaseRestart
// once the restarted server serves): its calls are counted by phase.
func (l *faultLoad) setPhase(p int) { l.phase.Store(int32(p)) }

// waitServing polls s with a create and a read until both succeed.
func waitServing(t *testing.T, s *taskstore.Store, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		r, err := s.Create(ctx, "probe", taskstore.CreateRequest{RequestMethod: "tools/call"})
		if err == nil {
			_, err = s.Get(ctx, "probe", r.Task.TaskID)
		}
		cancel()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("store does not serve %v after the restart: %v", within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// finish stops judging a fault test: it reads back every acknowledged
// write, closes the store, checks for leaked goroutines and for calls that
// panicked or outlived their deadline by more than maxOvershoot, and
// reports the figures for docs/RELIABILITY.md.
func (l *faultLoad) finish(t *testing.T, s *taskstore.Store, before map[string]int, deadline, maxOvershoot, recovery time.Duration) {
	t.Helper()
	checked, lost := l.verifyAcked(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoGoroutineLeak(t, before, 15*time.Second)

	if l.panics != 0 {
		t.Errorf("%d calls panicked", l.panics)
	}
	if l.maxOvershoot > maxOvershoot {
		t.Errorf("a %s call returned %v after its %v deadline (bound %v)", l.slowest, l.maxOvershoot, deadline, maxOvershoot)
	}
	if l.ackedInPhase[phaseUp] == 0 || l.ackedInPhase[phaseRestart] == 0 {
		t.Errorf("the store did not serve under load before the kill and after the restart: %s", l.summary())
	}
	if l.failed[phaseDown] == 0 {
		t.Errorf("no call failed while the server was down: was it?")
	}
	t.Logf("recovered %v after the restart; %d acknowledged tasks read back, %d lost", recovery.Round(time.Millisecond), checked, lost)
	storetest.Report(t, "faults_injected", 1, "faults_survived", boolInt(!t.Failed()),
		"calls", l.calls[phaseUp]+l.calls[phaseDown]+l.calls[phaseRestart],
		"calls_failed_during_fault", l.failed[phaseDown],
		"max_overshoot_ms", l.maxOvershoot.Milliseconds(),
		"recovery_ms", recovery.Milliseconds(),
		"acked_writes_before_kill", l.ackedInPhase[phaseUp],
		"acked_writes", l.ackedInPhase[phaseUp]+l.ackedInPhase[phaseDown]+l.ackedInPhase[phaseRestart],
		"acked_tasks_checked", checked, "acked_writes_lost", lost, "acked_writes_lost_unsynced", l.unsyncedLost)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
