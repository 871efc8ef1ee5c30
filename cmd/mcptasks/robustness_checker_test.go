//go:build redis || postgres || dynamodb

package main

import (
	"maps"
	"slices"
	"testing"
	"time"
)

// The checker counts a task apart as lost by the store only on a store
// that may lose acknowledged writes, when its create was acknowledged
// within that store's window before a store-kill and it is missing on
// every replica at the end; otherwise a missing task is a lost create.
func TestCheckerStoreLost(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	history := func(acked time.Time) []robustOp {
		ops := []robustOp{{Method: "tools/call", TaskID: "t", Start: acked.Add(-50 * time.Millisecond), End: acked, Outcome: outcomeOK, Status: "working"}}
		for i := range robustReplicas {
			ops = append(ops, robustOp{Method: "tasks/get", TaskID: "t", Replica: i, Final: true, Start: t0.Add(time.Minute),
				End: t0.Add(time.Minute), Outcome: "error", Err: "task not found", Code: -32602})
		}
		return ops
	}
	kill := []faultSpan{{Kind: faultStoreKill, Replica: -1, Start: t0, End: t0.Add(3 * time.Second)}}
	for _, tc := range []struct {
		name       string
		acked      time.Time
		lossWindow time.Duration
		lost       bool
	}{
		{"acknowledged 4 ms before the kill", t0.Add(-4 * time.Millisecond), 100 * time.Millisecond, true},
		{"acknowledged 200 ms before the kill", t0.Add(-200 * time.Millisecond), 100 * time.Millisecond, false},
		{"a store that keeps what it acknowledged", t0.Add(-4 * time.Millisecond), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tasks := []*robustTask{{id: "t", owner: "alice", tool: "sleep"}}
			vs, lost := checkInvariants(history(tc.acked), tasks, checkContext{healed: t0.Add(5 * time.Second), spans: kill, lossWindow: tc.lossWindow})
			if tc.lost && (len(lost) != 1 || len(vs) != 0) {
				t.Errorf("lost %v, violations %+v: want the task lost by the store, no violation", lost, vs)
			}
			if !tc.lost && (len(lost) != 0 || len(vs) != robustReplicas || slices.ContainsFunc(vs, func(v violation) bool { return v.Check != checkNoLostCreate })) {
				t.Errorf("lost %v, violations %+v: want a %s violation per replica", lost, vs, checkNoLostCreate)
			}
		})
	}
}

// The scenario counts: an input answer on another replica near a kill of
// the task's creator counts, one on the creator or far from the kill does
// not; a process that took over two tasks of one runner is one batch.
func TestCountScenarios(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	tasks := []*robustTask{{id: "a", created: 0}, {id: "b", created: 1}}
	spans := []faultSpan{{Kind: faultReplicaKill, Replica: 0, Start: t0, End: t0.Add(3 * time.Second)}}
	ops := []robustOp{
		{Method: "tasks/update", TaskID: "a", Replica: 2, Start: t0.Add(-time.Second), End: t0.Add(-900 * time.Millisecond), Outcome: outcomeOK},
		{Method: "tasks/update", TaskID: "a", Replica: 0, Start: t0.Add(-time.Second), End: t0.Add(-900 * time.Millisecond), Outcome: outcomeOK},
		{Method: "tasks/update", TaskID: "a", Replica: 2, Start: t0.Add(-time.Minute), End: t0.Add(-time.Minute), Outcome: outcomeOK},
		{Method: "tasks/update", TaskID: "b", Replica: 2, Start: t0, End: t0, Outcome: outcomeOK},
		{Method: "tasks/cancel", TaskID: "a", Replica: 1, Start: t0.Add(time.Second), End: t0.Add(time.Second), Outcome: "error"},
	}
	logs := `--- replica 1 (running)
time=x level=WARN msg="task taken over" task=a owner=alice from=r0 attempt=2 of=3
time=x level=WARN msg="orphaned task failed" task=c owner=bob runner=r0 attempt=1
time=x level=WARN msg="orphaned task failed" task=d owner=bob runner=r2 attempt=1
--- replica 2 (running)
time=x level=WARN msg="orphaned task failed" task=e owner=bob runner=r0 attempt=1
`
	want := map[string]int{scenarioInputRunnerDies: 1, scenarioCancelRacesTakeover: 1, scenarioBatchedTakeover: 1}
	if got := countScenarios(ops, tasks, spans, logs); !maps.Equal(got, want) {
		t.Errorf("countScenarios = %v, want %v", got, want)
	}
}
