package rev20260728

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter/internal/hub"
	"github.com/mcptasks/mcptasks/taskstore"
)

// Task status notifications of the tasks extension (SEP-2663): a client
// sends subscriptions/listen (SEP-2575) with params.notifications.taskIds;
// the server acknowledges the ids it agrees to watch (the requester's own
// tasks, nothing else) and then sends notifications/tasks, each a Task as
// tasks/get would answer it, on that listen stream, until every watched
// task is terminal or the client closes the stream.
//
// go-sdk v1.8.0 serves subscriptions/listen itself but knows no taskIds:
// the edge hands them over (Listen's asked), Serve resolves them against
// the store, OnAck adds the agreed ids to the SDK's acknowledgement (a
// stand-in the edge turns into the real params), and the notifications
// travel as stand-ins too.

// MaxTasks bounds the task ids one listen may watch.
const MaxTasks = 100

// Streams serves the task part of listen streams.
type Streams struct {
	Store *taskstore.Store
	Hub   *hub.Hub
	// Poll is how often a stream re-reads its tasks while the change feed
	// is down.
	Poll time.Duration
	// Send sends a stand-in for the notification method with params on ss.
	Send func(ctx context.Context, ss *mcp.ServerSession, method string, params any) error
	// StandIn is the _meta entry that makes the edge send method with
	// params instead of the message that carries it.
	StandIn func(method string, params any) (key string, value any)
}

// listenState is one subscriptions/listen request's task part.
type listenState struct {
	ids     []string // agreed: the owner's tasks that exist
	ackOnce sync.Once
	acked   chan struct{}
	subID   any // the listen request's id, as the SDK put it in the ack
}

type listenKey struct{}

// Serve serves a subscriptions/listen request of owner that asked for the
// tasks asked (raw params.notifications.taskIds): the SDK's own listen,
// with notifications/tasks for those of owner's tasks that exist, until
// each is terminal. The caller counts the wait against owner's bound.
func (s *Streams) Serve(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler, owner string, asked json.RawMessage) (mcp.Result, error) {
	var ids []string
	if json.Unmarshal(asked, &ids) != nil {
		ids = nil // not a list of strings: nothing to agree to
	}
	ss, _ := req.GetSession().(*mcp.ServerSession)
	ls := &listenState{ids: []string{}, acked: make(chan struct{})}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] || len(ls.ids) >= MaxTasks {
			continue
		}
		seen[id] = true
		// Another owner's task answers like a missing one: not agreed.
		if _, err := s.Store.Get(ctx, owner, id); err == nil {
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
			s.watch(ctx, ss, owner, ls)
		}
	default: // the SDK failed before acknowledging
	}
	if a == nil {
		got := <-done
		a = &got
	}
	return a.res, a.err
}

// ackParams is the SDK's acknowledgement with notifications.taskIds, which
// its params have no field for.
type ackParams struct {
	*mcp.SubscriptionsAcknowledgedParams
	Notifications ackNotifications `json:"notifications"`
}

type ackNotifications struct {
	mcp.NotificationSubscriptions
	TaskIDs []string `json:"taskIds"`
}

// OnAck is the sending middleware's part: it adds the agreed task ids to
// the SDK's acknowledgement of a listen that Serve serves (as a stand-in)
// and notes that the ack is out. Other messages pass unchanged.
func (s *Streams) OnAck(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	ls, _ := ctx.Value(listenKey{}).(*listenState)
	p, ok := req.GetParams().(*mcp.SubscriptionsAcknowledgedParams)
	if ls == nil || !ok || p == nil {
		return next(ctx, method, req)
	}
	if p.Meta == nil {
		p.Meta = mcp.Meta{}
	}
	ls.subID = p.Meta[mcp.MetaKeySubscriptionID]
	params, err := json.Marshal(ackParams{SubscriptionsAcknowledgedParams: p,
		Notifications: ackNotifications{NotificationSubscriptions: p.Notifications, TaskIDs: ls.ids}})
	if err != nil {
		return nil, err
	}
	key, value := s.StandIn(method, json.RawMessage(params))
	p.Meta[key] = value
	res, err := next(ctx, method, req)
	ls.ackOnce.Do(func() { close(ls.acked) })
	return res, err
}

// watch sends notifications/tasks for ls's tasks on ss until each is
// terminal (or gone) or ctx ends. The first round sends every task's
// current state, so a change between the client's create and its listen is
// not missed. It re-reads the tasks on every change the hub reports, and
// while the feed is down every poll interval, so changes made on other
// replicas are seen too, and at once after a change on this one.
func (s *Streams) watch(ctx context.Context, ss *mcp.ServerSession, owner string, ls *listenState) {
	wake, stop := s.Hub.Listen()
	defer stop()
	last := map[string]string{}
	live := append([]string(nil), ls.ids...)
	for len(live) > 0 {
		kept := live[:0]
		for _, id := range live {
			rec, err := s.Store.Get(ctx, owner, id)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				continue // expired or deleted: nothing more to say
			}
			sig := string(rec.Task.Status) + "\x00" + rec.Task.StatusMessage + "\x00" + string(rec.InputRequests)
			if sig != last[id] {
				last[id] = sig
				method, params := View{}.Notification(rec, ls.subID)
				if err := s.Send(ctx, ss, method, params); err != nil {
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
		var t *time.Timer
		var tick <-chan time.Time
		if !s.Hub.Pushing() {
			t = time.NewTimer(s.Poll)
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
