package runcost

import (
	"context"
	"time"

	"github.com/mcptasks/mcptasks/internal/callcount"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// Checkpoints is what checkpoints of running tasks cost in backend calls.
type Checkpoints struct {
	Runs        int `json:"runs"`
	Checkpoints int `json:"checkpoints"`
	// Calls are every backend call of the Router while the checkpoints
	// were written and their changes came back, without its lease
	// keeper's per-tick Heartbeat and Runners; PerCheckpoint divides them
	// by Checkpoints. On a backend without a change feed they include the
	// polls of the running tasks' versions, which go by time, not by
	// checkpoint.
	Calls         callcount.Counts `json:"calls"`
	PerCheckpoint float64          `json:"callsPerCheckpoint"`
	// Resyncs are the change feed's resyncs meanwhile (each costs a read
	// per running task).
	Resyncs int `json:"resyncs"`
}

// Checkpoints starts runs tasks through Router.Start, and once they all
// run each writes each checkpoints (Handle.SetVariables) every every.
func (e *Env) Checkpoints(ctx context.Context, runs, each int, every time.Duration) (Checkpoints, error) {
	r, err := e.router(ctx, "checkpoints", quiet(), false)
	if err != nil {
		return Checkpoints{}, err
	}
	defer e.shutdown(r)
	started, wrote := newCountdown(runs), newCountdown(runs)
	gate, release := make(chan struct{}), make(chan struct{})
	work := func(ctx context.Context) taskrouter.Outcome {
		h := taskrouter.TaskHandle(ctx)
		started.Add()
		select {
		case <-gate:
		case <-ctx.Done():
			return taskrouter.Outcome{Err: &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: ctx.Err().Error()}}
		}
		for i := range each {
			if err := h.SetVariables(ctx, map[string]any{"step": i}); err != nil {
				return taskrouter.Outcome{Err: &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: err.Error()}}
			}
			time.Sleep(every)
		}
		wrote.Add()
		select {
		case <-release:
		case <-ctx.Done():
		}
		return taskrouter.Outcome{Result: []byte(`{"content":[]}`)}
	}
	var tasks []*taskstore.TaskRecord
	defer func() { e.deleteAll(context.WithoutCancel(ctx), tasks) }()
	for i := range runs {
		rec, err := r.Start(ctx, taskrouter.StartRequest{Owner: e.owner("checkpoints", i), Method: "tools/call", Tool: "checkpoints"}, work)
		if err != nil {
			return Checkpoints{}, err
		}
		tasks = append(tasks, rec)
	}
	if err := started.wait(ctx, e.Timeout, "runs started"); err != nil {
		return Checkpoints{}, err
	}
	time.Sleep(settle) // the creates' changes come back before counting starts
	before, resyncs := e.Calls.Snapshot(), e.Calls.Resyncs()
	close(gate)
	err = wrote.wait(ctx, e.Timeout, "runs done with their checkpoints")
	if err == nil {
		time.Sleep(settle) // the last checkpoints' changes come back
	}
	calls := e.Calls.Snapshot().Sub(before).Without(keeperOps...)
	close(release)
	if err != nil {
		return Checkpoints{}, err
	}
	c := Checkpoints{Runs: runs, Checkpoints: runs * each, Calls: calls, Resyncs: e.Calls.Resyncs() - resyncs}
	c.PerCheckpoint = float64(calls.Total()) / float64(c.Checkpoints)
	return c, e.waitIdle(ctx, r)
}

// settle is how long a change takes at most to come back on a change feed
// (it takes a millisecond or two on loopback).
const settle = 300 * time.Millisecond
