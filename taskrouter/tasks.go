package taskrouter

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
	"github.com/mcptasks/mcptasks/taskrouter/internal/rev20260728"
	"github.com/mcptasks/mcptasks/taskstore"
)

// The tasks/* methods.

// taskIDParams are the params of tasks/get, tasks/result, tasks/cancel and
// tasks/update. Fields are kept raw so that a value of the wrong JSON type
// gets a message of this package, not the decoder's Go type names.
type taskIDParams struct {
	mcp.ParamsBase
	TaskID         json.RawMessage `json:"taskId"`
	Cursor         json.RawMessage `json:"cursor"`
	InputResponses json.RawMessage `json:"inputResponses"`
}

// str reads the string parameter name (raw); a missing one is "".
func str(name string, raw json.RawMessage) (string, error) {
	var s string
	if raw == nil || string(raw) == "null" || json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	return "", rpcError(taskstore.CodeInvalidParams, "params.%s must be a string, not %s", name, jsonKind(raw))
}

// task reads params.taskId and the record it names, of the caller.
func (r *Router) task(ctx context.Context, p *taskIDParams) (string, *taskstore.TaskRecord, error) {
	if p == nil {
		p = &taskIDParams{}
	}
	id, err := str("taskId", p.TaskID)
	if err != nil {
		return "", nil, err
	}
	rec, err := r.store.Get(ctx, ownerOf(ctx), id)
	return id, rec, err
}

func (r *Router) handleGet(ctx context.Context, _ *mcp.ServerSession, p *taskIDParams) (*wireResult, error) {
	id, rec, err := r.task(ctx, p)
	noteTask(ctx, id, rec)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	return &wireResult{v: viewOf(revisionOf(ctx)).Get(rec)}, nil
}

// handleCancel marks the task cancelled in the store before answering,
// then stops its work if it runs on this replica.
func (r *Router) handleCancel(ctx context.Context, _ *mcp.ServerSession, p *taskIDParams) (*wireResult, error) {
	if p == nil {
		p = &taskIDParams{}
	}
	id, err := str("taskId", p.TaskID)
	var rec *taskstore.TaskRecord
	if err == nil {
		rec, err = r.store.Cancel(ctx, ownerOf(ctx), id)
	}
	terminal := errors.Is(err, taskstore.ErrInvalidTransition)
	if terminal {
		_, rec, err = r.task(ctx, p)
	}
	noteTask(ctx, id, rec)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	if !terminal {
		r.opts.Observer.ended(rec)
		r.log.Info("task cancelled", "task", id, "owner", logOwner(rec.OwnerID))
		r.runner.cancel(id)
		r.notifyStatus(rec)
	}
	v, err := viewOf(revisionOf(ctx)).Cancelled(rec, terminal)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	return &wireResult{v: v}, nil
}

func (r *Router) handleList(ctx context.Context, _ *mcp.ServerSession, p *taskIDParams) (*wireResult, error) {
	if p == nil {
		p = &taskIDParams{}
	}
	cursor, err := str("cursor", p.Cursor)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	page, err := r.store.List(ctx, ownerOf(ctx), cursor, 0)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	list, err := viewOf(revisionOf(ctx)).List(page)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	return &wireResult{v: list}, nil
}

// handleResult blocks until the task is terminal, then replays its outcome.
// The wait ends with its request: when the client cancels it
// (notifications/cancelled), when its session ends (the SDK keeps a request
// alive after its HTTP connection closes, for stream resumption), and,
// through HTTPHandler, when its HTTP request ends (a client that comes back
// calls tasks/result again).
//
// While the task is input_required, it sends the task's pending input
// requests to the client on its own response stream and stores the answers
// (deliveries); they end with it.
func (r *Router) handleResult(ctx context.Context, ss *mcp.ServerSession, p *taskIDParams) (*wireResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if hctx := r.edge.Request(carrierOf(ctx)); hctx != nil {
		defer context.AfterFunc(hctx, cancel)()
	}
	id, err := str("taskId", p.TaskID)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	d := &deliveries{r: r, ss: ss, owner: ownerOf(ctx), id: id, ctx: ctx}
	defer d.wg.Wait()
	defer cancel() // before the wait: the sends end with the call
	rec, err := r.runner.await(ctx, ownerOf(ctx), id, d.send)
	noteTask(ctx, id, rec)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	if infoOn(r.log) {
		r.log.Info("task result retrieved", "task", id, "owner", logOwner(rec.OwnerID), "status", rec.Task.Status)
	}
	res, err := viewOf(revisionOf(ctx)).Result(rec)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	return &wireResult{v: res}, nil
}

// handleUpdate is tasks/update (2026-07-28): it delivers input responses;
// responses to keys that are not pending are ignored, and so is an update
// of a terminal task.
func (r *Router) handleUpdate(ctx context.Context, _ *mcp.ServerSession, p *taskIDParams) (*wireResult, error) {
	if revisionOf(ctx) != protocol.Rev20260728 {
		return nil, methodNotFound(`"tasks/update" belongs to the %s extension (protocol 2026-07-28)`, ExtensionID)
	}
	var responses map[string]json.RawMessage
	if p == nil || json.Unmarshal(p.InputResponses, &responses) != nil || responses == nil {
		raw := json.RawMessage(nil)
		if p != nil {
			raw = p.InputResponses
		}
		return nil, toWire(r.log, rpcError(taskstore.CodeInvalidParams, "params.inputResponses must be an object, not %s", jsonKind(raw)))
	}
	id, err := str("taskId", p.TaskID)
	var accepted []string
	if err == nil {
		noteTask(ctx, id, nil)
		accepted, err = r.rt.SubmitInput(ctx, ownerOf(ctx), id, responses)
	}
	if err != nil {
		return nil, toWire(r.log, err)
	}
	r.opts.Observer.inputAnswered(ctx, id, accepted)
	r.hub.Changed(id, nil)
	return &wireResult{v: rev20260728.Ack}, nil
}
