//go:build redis || postgres || dynamodb

package main

import (
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
