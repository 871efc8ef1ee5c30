package taskrouter

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskstore"
)

// Task status notifications of the tasks extension (SEP-2663): a
// 2026-07-28 client sends subscriptions/listen (SEP-2575) with
// params.notifications.taskIds; the server acknowledges the ids it agrees
// to watch (the requester's own tasks, nothing else) and then sends
// notifications/tasks, each a DetailedTask as tasks/get would answer it,
// on that listen stream, until every watched task is terminal or the
// client closes the stream.
//
// go-sdk v1.8.0 serves subscriptions/listen itself but knows no taskIds:
// the edge puts them in the carrier, the receiving middleware (listen)
// resolves them against the store, the sending middleware adds the agreed
// ids to the SDK's acknowledgement (a stand-in the rewriter moves into
// params.notifications.taskIds), and the notifications travel as stand-in
// progress notifications (as notifications/tasks/status do).

// maxListenTasks bounds the task ids one listen may watch.
const maxListenTasks = 100

// listenState is one subscriptions/listen request's task part.
type listenState struct {
	ids     []string // agreed: the owner's tasks that exist
	ackOnce sync.Once
	acked   chan struct{}
	subID   any // the listen request's id, as the SDK put it in the ack
}

type listenKey struct{}

func listenFrom(ctx context.Context) *listenState {
	ls, _ := ctx.Value(listenKey{}).(*listenState)
	return ls
}

// listenTaskIDs returns the task ids a subscriptions/listen request asked
// for; ok is false when it asked for none (no taskIds field).
func listenTaskIDs(ctx context.Context) (ids []string, ok bool) {
	raw := edgeOf(ctx).Listen
	if raw == nil {
		return nil, false
	}
	if json.Unmarshal(raw, &ids) != nil {
		return []string{}, true // not a list of strings: nothing to agree to
	}
	return ids, true
}

// listen serves subscriptions/listen for a 2026-07-28 request that names
// taskIds; others go to the SDK unchanged.
func (r *Router) listen(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	asked, ok := listenTaskIDs(ctx)
	if !ok {
		return next(ctx, method, req)
	}
	if !declaresTasks(req) {
		return nil, missingTasksCapability("task status notifications")
	}
	ss, _ := req.GetSession().(*mcp.ServerSession)
	owner := r.owner(ctx, req)
	release, err := r.hub.HoldWait(normOwner(owner), "close one, or poll with tasks/get")
	if err != nil {
		return nil, toWire(r.log, err)
	}
	defer release()
	ls := &listenState{ids: []string{}, acked: make(chan struct{})}
	seen := map[string]bool{}
	for _, id := range asked {
		if seen[id] || len(ls.ids) >= maxListenTasks {
			continue
		}
		seen[id] = true
		// Another owner's task answers like a missing one: not agreed.
		if _, err := r.store.Get(ctx, owner, id); err == nil {
			ls.ids = append(ls.ids, id)
		} else if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	ctx = context.WithValue(ctx, listenKey{}, ls)

	type answer struct {
		res mcp.Result
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := next(ctx, method, req) // sends the ack; blocks while the SDK has its own subscriptions
		done <- answer{res, err}
	}()
	var a *answer
	select {
	case <-ls.acked:
	case got := <-done:
		a = &got
	}
	select {
	case <-ls.acked:
		if ss != nil && len(ls.ids) > 0 {
			r.watchTasks(ctx, ss, owner, ls)
		}
	default: // the SDK failed before acknowledging
	}
	if a == nil {
		got := <-done
		a = &got
	}
	return a.res, a.err
}

// onListenAck is the sending middleware's part: it adds the agreed task ids
// to the SDK's acknowledgement (as a private _meta key that the HTTP writer
// moves into params.notifications.taskIds) and notes that the ack is out.
func (r *Router) onListenAck(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	ls := listenFrom(ctx)
	p, ok := req.GetParams().(*mcp.SubscriptionsAcknowledgedParams)
	if ls == nil || !ok || p == nil {
		return next(ctx, method, req)
	}
	if p.Meta == nil {
		p.Meta = mcp.Meta{}
	}
	ls.subID = p.Meta[mcp.MetaKeySubscriptionID]
	// The SDK's params have no field for the ids: the stand-in carries the
	// whole params with notifications.taskIds set.
	b, err := json.Marshal(p)
	if err == nil {
		ids, _ := json.Marshal(ls.ids)
		b, err = setPath(b, []string{"notifications", "taskIds"}, ids)
	}
	if err != nil {
		return nil, err
	}
	p.Meta[r.sdk.marker] = map[string]any{"method": method, "params": json.RawMessage(b)}
	res, err := next(ctx, method, req)
	ls.ackOnce.Do(func() { close(ls.acked) })
	return res, err
}

// watchTasks sends notifications/tasks for ls's tasks on ss until each is
// terminal (or gone) or ctx ends. The first round sends every task's
// current state, so a change between the client's create and its listen is
// not missed. It re-reads the tasks on every change the feed reports, and
// without a feed every poll interval, so changes made
// on other replicas are seen too, and at once after a change on this one.
func (r *Router) watchTasks(ctx context.Context, ss *mcp.ServerSession, owner string, ls *listenState) {
	wake, stop := r.hub.Listen()
	defer stop()
	poll := min(max(r.store.Config().PollInterval, r.opts.MinPollInterval), time.Second)
	last := map[string]string{}
	live := append([]string(nil), ls.ids...)
	for len(live) > 0 {
		kept := live[:0]
		for _, id := range live {
			rec, err := r.store.Get(ctx, owner, id)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				continue // expired or deleted: nothing more to say
			}
			sig := string(rec.Task.Status) + "\x00" + rec.Task.StatusMessage + "\x00" + string(rec.InputRequests)
			if sig != last[id] {
				last[id] = sig
				if err := r.sendTaskNotification(ctx, ss, rec, ls.subID); err != nil {
					return // the stream is gone
				}
			}
			if !rec.Task.Status.Terminal() {
				kept = append(kept, id)
			}
		}
		live = kept
		if len(live) == 0 {
			return
		}
		// With the change feed up every change pokes wake; without it,
		// re-read every poll interval.
		var t *time.Timer
		var tick <-chan time.Time
		if !r.hub.Pushing() {
			t = time.NewTimer(poll)
			tick = t.C
		}
		select {
		case <-ctx.Done():
		case <-wake:
		case <-tick:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// sendTaskNotification sends the 2026-07-28 view's notification of rec,
// with the subscription id in _meta.
func (r *Router) sendTaskNotification(ctx context.Context, ss *mcp.ServerSession, rec *taskstore.TaskRecord, subID any) error {
	method, params := view20260728{}.notification(rec, subID)
	return r.standIn(ctx, ss, method, params)
}
