//lint:file-ignore SA1019 sampling and roots are deprecated from 2026-07-28 on, and 2025-11-25 clients use them: tasks support every request a handler may make

package taskrouter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
	"github.com/mcptasks/mcptasks/taskstore"
)

// Input while a task runs. A tool handler running as a task asks the
// client as any go-sdk handler does (req.Session.Elicit, CreateMessage,
// CreateMessageWithTools, ListRoots). The Router's sending middleware
// turns the request into a pending input request of the task's record
// (the task is input_required in the same write) and waits for its
// answer: the record is the one truth every replica and both revisions
// see. On 2025-11-25 the client's tasks/result, on any replica, sends each
// pending request to the client on its own response stream and stores the
// answer; on 2026-07-28 the client reads the requests in tasks/get and
// answers with tasks/update. Either way the task is working again once
// nothing is pending, and the handler gets the answer as the SDK's own
// result type.
//
// A stored request is {"method":…,"params":…}; a stored answer is the
// client's result, {"error":{code,message,data}} when the client answered
// with a JSON-RPC error, or {"failure":"…"} when the answer could not be
// taken (of the wrong shape, too large): the handler gets that JSON-RPC
// error, or a plain error with that text, as on a plain call.

// The server-to-client requests a task's handler may make.
const (
	methodElicit   = "elicitation/create"
	methodSampling = "sampling/createMessage"
	methodRoots    = "roots/list"
)

// asksClient reports whether method is a request the Router holds in the
// task's record when a task's handler makes it.
func asksClient(method string) bool {
	return method == methodElicit || method == methodSampling || method == methodRoots
}

// waitingFor is the status message of a task waiting for method's answer.
func waitingFor(method string) string {
	switch method {
	case methodElicit:
		return "waiting for the user (elicitation)"
	case methodSampling:
		return "waiting for the client's model (sampling)"
	}
	return "waiting for the client's roots"
}

// clientCaps are the client capabilities a handler's requests depend on:
// what a re-run on another replica must declare (Rerun.Client).
type clientCaps struct {
	Elicitation *mcp.ElicitationCapabilities `json:"elicitation,omitempty"`
	Sampling    *mcp.SamplingCapabilities    `json:"sampling,omitempty"`
	Roots       *mcp.RootCapabilities        `json:"roots,omitempty"`
}

// capsOf returns the capabilities of ss's client that clientCaps keeps.
func capsOf(ss *mcp.ServerSession) clientCaps {
	var c clientCaps
	if ss == nil {
		return c
	}
	if ip := ss.InitializeParams(); ip != nil && ip.Capabilities != nil {
		c.Elicitation, c.Sampling, c.Roots = ip.Capabilities.Elicitation, ip.Capabilities.Sampling, ip.Capabilities.RootsV2
	}
	return c
}

// requestCaps returns the capabilities of req's client: declared in each
// request on 2026-07-28, at initialize on 2025-11-25.
func requestCaps(rev protocol.Revision, req mcp.Request) clientCaps {
	if rev != protocol.Rev20260728 {
		ss, _ := req.GetSession().(*mcp.ServerSession)
		return capsOf(ss)
	}
	var c clientCaps
	if b, err := json.Marshal(protocol.Meta(req)[protocol.ClientCapsKey]); err == nil {
		_ = json.Unmarshal(b, &c) // a malformed declaration declares nothing
	}
	return c
}

// declared is c as a go-sdk client declares it.
func (c clientCaps) declared() *mcp.ClientCapabilities {
	return &mcp.ClientCapabilities{Elicitation: c.Elicitation, Sampling: c.Sampling, RootsV2: c.Roots}
}

// json is c as a Rerun's Client, nil when c declares nothing.
func (c clientCaps) json() json.RawMessage {
	if c == (clientCaps{}) {
		return nil
	}
	b, _ := json.Marshal(c) // flags only: it cannot fail
	return b
}

// refuse is the error a request gets at once when the client declared no
// capability for it, worded as the SDK words its own check of elicitation
// (a sampling or roots request would go out and fail at the client).
func (c clientCaps) refuse(method string) error {
	switch {
	case method == methodElicit && c.Elicitation == nil:
		return errors.New("client does not support elicitation")
	case method == methodSampling && c.Sampling == nil:
		return errors.New("client does not support sampling")
	case method == methodRoots && c.Roots == nil:
		return errors.New("client does not support roots")
	}
	return nil
}

// ask is a task handler's request to the client: stored, then answered
// through the record (Handle.AwaitInput, which waits on the hub).
func (r *Router) ask(ctx context.Context, rn *run, method string, req mcp.Request) (mcp.Result, error) {
	ss, _ := req.GetSession().(*mcp.ServerSession)
	if err := capsOf(ss).refuse(method); err != nil {
		return nil, err
	}
	stored, err := json.Marshal(struct {
		Method string     `json:"method"`
		Params mcp.Params `json:"params"`
	}{method, req.GetParams()})
	if err != nil {
		return nil, fmt.Errorf("%s: params do not marshal: %w", method, err)
	}
	key := method + "#" + strconv.FormatInt(rn.asks.Add(1), 10)
	var end func(InputEnd)
	if r.opts.Observer.InputAsked != nil {
		stored := key // as the record keeps it (Handle.AwaitInput marks a re-run's keys)
		if a := rn.handle.Attempt(); a > 1 {
			stored += "@" + strconv.Itoa(a)
		}
		end = r.opts.Observer.InputAsked(ctx, Input{TaskID: rn.id, Key: stored, Method: method})
	}
	answers, err := rn.handle.AwaitInput(ctx, map[string]any{key: json.RawMessage(stored)}, waitingFor(method))
	var res mcp.Result
	if err == nil {
		res, err = answerOf(method, answers[key])
	}
	if end != nil {
		end(InputEnd{ErrorType: errorType(ctx, res, err)})
	}
	return res, err
}

// answerOf decodes a stored answer into the result type the SDK asserts
// for method, or the error it holds.
func answerOf(method string, raw json.RawMessage) (mcp.Result, error) {
	if err := answerError(raw); err != nil {
		return nil, err
	}
	var res mcp.Result
	switch method {
	case methodElicit:
		res = &mcp.ElicitResult{}
	case methodSampling:
		res = &mcp.CreateMessageWithToolsResult{}
	default:
		res = &mcp.ListRootsResult{}
	}
	if err := json.Unmarshal(raw, res); err != nil {
		return nil, fmt.Errorf("calling %q: the client's answer does not decode: %w", method, err)
	}
	return res, nil
}

// answerError returns the error a stored answer holds, or nil.
func answerError(raw json.RawMessage) error {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || len(m) != 1 {
		return nil
	}
	var failure string
	if json.Unmarshal(m["failure"], &failure) == nil && failure != "" {
		return errors.New(failure)
	}
	var e taskstore.RPCError
	if m["error"] == nil || json.Unmarshal(m["error"], &e) != nil {
		return nil
	}
	return &jsonrpc.Error{Code: int64(e.Code), Message: e.Message, Data: e.Data}
}

// failureAnswer is the stored answer of one that could not be taken.
func failureAnswer(text string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"failure": text})
	return b
}

// inputWait is a run's taskstore.InputWait: the request is known at once
// to this replica's waiters (a tasks/result here delivers it) and to the
// owner's sessions here (the status notification); the answer is awaited
// on the hub, woken by this replica's writes, the change feed, or the
// poller at the task's interval.
func (rr *runner) inputWait(rn *run) taskstore.InputWait {
	return func(asked *taskstore.TaskRecord) (func(context.Context, *taskstore.TaskRecord) error, func()) {
		w := rr.hub.Watch(rn.id)
		if rn.waiting.Add(1) == 1 {
			rr.obs.inputWaiting(1)
		}
		rr.hub.Changed(rn.id, nil)
		rr.notify(asked)
		wait := func(ctx context.Context, rec *taskstore.TaskRecord) error {
			rr.hub.Seen(w, rec, rn.poll)
			select {
			case <-w.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return wait, func() {
			rr.hub.Unwatch(w)
			if rn.waiting.Add(-1) == 0 {
				rr.obs.inputWaiting(-1)
			}
		}
	}
}

// maxDeliveries bounds the requests one tasks/result has out to its
// client at once; the rest go out as those are answered.
const maxDeliveries = 8

// codeRejectedByTransport is the go-sdk's error for a message it could
// not send (the stream it belongs to is gone): not an answer.
const codeRejectedByTransport = -32005

// deliveries sends a 2025-11-25 task's pending input requests to the
// client of one tasks/result, on that request's response stream, and
// stores the answers. Each request goes out once per tasks/result; one
// not answered when the tasks/result ends is pending still, and the next
// tasks/result sends it again.
type deliveries struct {
	r         *Router
	ss        *mcp.ServerSession
	owner, id string
	ctx       context.Context // the tasks/result's; its end ends the sends
	wg        sync.WaitGroup
	mu        sync.Mutex
	sent      map[string]bool // keys sent by this tasks/result
	out       int             // sends not yet returned
}

// send starts a send of each pending request of rec not yet sent.
func (d *deliveries) send(rec *taskstore.TaskRecord) {
	if rec.Task.Status != taskstore.StatusInputRequired || len(rec.InputRequests) == 0 || d.ss == nil {
		return
	}
	var pending map[string]json.RawMessage
	if json.Unmarshal(rec.InputRequests, &pending) != nil {
		return
	}
	keys := make([]string, 0, len(pending))
	for k := range pending {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range keys {
		if d.sent[k] || d.out >= maxDeliveries {
			continue
		}
		if d.sent == nil {
			d.sent = map[string]bool{}
		}
		d.sent[k] = true
		d.out++
		d.wg.Go(func() {
			d.deliver(k, pending[k])
			d.mu.Lock()
			d.out--
			d.mu.Unlock()
		})
	}
}

// deliver sends one request and stores the client's answer, if it gave
// one. First answer wins: SubmitInput ignores a key no longer pending.
func (d *deliveries) deliver(key string, stored json.RawMessage) {
	answer, ok := d.call(stored)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), storeCallTimeout)
	defer cancel()
	accepted, err := d.r.rt.SubmitInput(ctx, d.owner, d.id, map[string]json.RawMessage{key: answer})
	if errors.Is(err, taskstore.ErrInvalidArgument) {
		// Too large, too deep: the handler learns why instead of waiting.
		refused := failureAnswer("the client's answer was not stored: " + err.Error())
		accepted, err = d.r.rt.SubmitInput(ctx, d.owner, d.id, map[string]json.RawMessage{key: refused})
	}
	if err != nil {
		d.r.log.Warn("storing a client's input failed", "task", d.id, "owner", logOwner(d.owner), "error", err)
		return
	}
	if len(accepted) > 0 {
		d.r.opts.Observer.inputAnswered(d.ctx, d.id, accepted)
		d.r.hub.Changed(d.id, nil)
	}
}

// call sends a stored request to the client through the SDK's own
// method, with the related-task key in _meta, and returns the answer to
// store; ok is false when the client gave none (the tasks/result ended,
// the stream is gone, the client cannot take such a request).
func (d *deliveries) call(stored json.RawMessage) (answer json.RawMessage, ok bool) {
	var req struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if json.Unmarshal(stored, &req) != nil {
		return nil, false
	}
	if capsOf(d.ss).refuse(req.Method) != nil {
		return nil, false // this session cannot take it; a session that can will
	}
	related := map[string]string{"taskId": d.id}
	var res mcp.Result
	var err error
	switch req.Method {
	case methodElicit:
		var p mcp.ElicitParams
		if err = unmarshalParams(req.Params, &p); err == nil {
			p.Meta = withRelated(p.Meta, related)
			res, err = d.ss.Elicit(d.ctx, &p)
		}
	case methodSampling:
		var p mcp.CreateMessageWithToolsParams
		if err = unmarshalParams(req.Params, &p); err == nil {
			p.Meta = withRelated(p.Meta, related)
			res, err = d.ss.CreateMessageWithTools(d.ctx, &p)
		}
	case methodRoots:
		var p mcp.ListRootsParams
		if err = unmarshalParams(req.Params, &p); err == nil {
			p.Meta = withRelated(p.Meta, related)
			res, err = d.ss.ListRoots(d.ctx, &p)
		}
	default:
		return nil, false // another method (Handle.AwaitInput) has no 2025-11-25 form here
	}
	var we *jsonrpc.Error
	switch {
	case d.ctx.Err() != nil, errors.Is(err, mcp.ErrConnectionClosed):
		return nil, false
	case errors.As(err, &we) && we.Code == codeRejectedByTransport:
		return nil, false
	case errors.As(err, &we):
		answer, _ = json.Marshal(map[string]*taskstore.RPCError{"error": {Code: int(we.Code), Message: we.Message, Data: we.Data}})
	case err != nil:
		// An answer of the wrong shape: the error the SDK gives a plain
		// call is the handler's too.
		answer = failureAnswer(err.Error())
	default:
		if answer, err = json.Marshal(res); err != nil {
			return nil, false
		}
	}
	return answer, true
}

func unmarshalParams(raw json.RawMessage, p any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return json.Unmarshal(raw, p)
}

func withRelated(m mcp.Meta, related map[string]string) mcp.Meta {
	if m == nil {
		m = mcp.Meta{}
	}
	m[RelatedTaskKey] = related
	return m
}
