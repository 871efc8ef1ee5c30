//go:build redis || postgres || dynamodb

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The robustness test's clients (see robustness_test.go): what they call,
// and the history of every call they make.

// Outcomes of a call as the client saw it.
const (
	outcomeOK      = "ok"      // a result
	outcomeError   = "error"   // a JSON-RPC error: the call did not do its work
	outcomeUnknown = "unknown" // no answer (the connection broke, a timeout): it may or may not have
)

// robustOp is one call in the history.
type robustOp struct {
	Client  int       `json:"client"`
	Owner   string    `json:"owner"`
	Method  string    `json:"method"`
	Replica int       `json:"replica"`
	TaskID  string    `json:"taskId,omitempty"`
	Tool    string    `json:"tool,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Outcome string    `json:"outcome"`
	Err     string    `json:"err,omitempty"`
	Code    int64     `json:"code,omitempty"` // the JSON-RPC error's code
	// What a tasks/get (or a create's answer) saw.
	Status string `json:"status,omitempty"`
	// Lines are slow_report's checkpoints by step, as tasks/get showed them.
	Lines map[int]string `json:"lines,omitempty"`
	// Text is a completed task's result text (tasks/get) or the answer of
	// tasks/result; IsError its isError.
	Text    string `json:"text,omitempty"`
	IsError bool   `json:"isError,omitempty"`
	// TaskErr is a failed task's error message, as tasks/get showed it.
	TaskErr string `json:"taskErr,omitempty"`
	// Steps is a slow_report's steps, as created.
	Steps int `json:"steps,omitempty"`
	// Final marks the reads of the end of the run, after every fault healed.
	Final bool `json:"final,omitempty"`
}

// history collects the calls of every client.
type history struct {
	mu  sync.Mutex
	ops []robustOp
}

func (h *history) add(op robustOp) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

func (h *history) snapshot() []robustOp {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]robustOp(nil), h.ops...)
}

// rpcFailure is a JSON-RPC error answer.
type rpcFailure struct {
	Code    int64  `json:"code"`
	Message string `json:"message"`
}

func (e *rpcFailure) Error() string { return fmt.Sprintf("JSON-RPC %d: %s", e.Code, e.Message) }

// classify sets op's outcome from err.
func classify(op *robustOp, err error) {
	op.End = time.Now()
	var rf *rpcFailure
	var je *jsonrpc.Error
	switch {
	case err == nil:
		op.Outcome = outcomeOK
	case errors.As(err, &rf):
		op.Outcome, op.Code, op.Err = outcomeError, rf.Code, rf.Message
	case errors.As(err, &je):
		op.Outcome, op.Code, op.Err = outcomeError, je.Code, je.Message
	default:
		op.Outcome, op.Err = outcomeUnknown, err.Error()
	}
}

// robustCallTimeout bounds a call other than a blocking tasks/result: a
// frozen replica answers nothing.
const robustCallTimeout = 10 * time.Second

var robustHTTP = &http.Client{Timeout: robustCallTimeout}

// modernRPC sends one stateless 2026-07-28 request and returns its result.
func modernRPC(ctx context.Context, url, token, method string, params map[string]any, name string) (json.RawMessage, error) {
	// Elicitation declared: ask_user asks through the task's input.
	req, err := modernRequest(ctx, url, token, method, params, name, map[string]any{"elicitation": map[string]any{}})
	if err != nil {
		return nil, err
	}
	resp, err := robustHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	msg := lastJSONRPC(b)
	if msg == nil {
		return nil, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, b)
	}
	if msg["error"] != nil {
		var rf rpcFailure
		if err := json.Unmarshal(msg["error"], &rf); err != nil {
			return nil, fmt.Errorf("undecodable error %s", msg["error"])
		}
		return nil, &rf
	}
	return msg["result"], nil
}

// taskView is what the test reads of a 2026-07-28 tasks/get answer.
type taskView struct {
	Status        string                     `json:"status"`
	Meta          map[string]json.RawMessage `json:"_meta"`
	Result        *mcp.CallToolResult        `json:"-"`
	RawResult     json.RawMessage            `json:"result"`
	Error         *rpcFailure                `json:"error"`
	InputRequests map[string]json.RawMessage `json:"inputRequests"`
}

var attemptRe = regexp.MustCompile(`\(attempt (\d+)\)`)

// lineAttempt is the attempt a slow_report line was written by (0 if none).
func lineAttempt(line string) int {
	m := attemptRe.FindStringSubmatch(line)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// reportLines are the checkpoint lines in a tasks/get's _meta, by step.
func reportLines(meta map[string]json.RawMessage) map[int]string {
	var out map[int]string
	for k, v := range meta {
		rest, ok := strings.CutPrefix(k, "report.line.")
		if !ok {
			continue
		}
		step, err := strconv.Atoi(rest)
		var line string
		if err != nil || json.Unmarshal(v, &line) != nil {
			continue
		}
		if out == nil {
			out = map[int]string{}
		}
		out[step] = line
	}
	return out
}

// resultLines are the lines of a slow_report result, by step.
func resultLines(text string) map[int]string {
	out := map[int]string{}
	for _, l := range strings.Split(text, "\n") {
		dot := strings.Index(l, ". finding ")
		if dot < 0 {
			continue
		}
		if step, err := strconv.Atoi(l[:dot]); err == nil {
			out[step] = l
		}
	}
	return out
}

func toolText(res *mcp.CallToolResult) string {
	if res == nil || len(res.Content) == 0 {
		return ""
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); ok {
		return tc.Text
	}
	return ""
}

// getTask reads a task with 2026-07-28 tasks/get into op.
func getTask(ctx context.Context, url, token, id string, op *robustOp) *taskView {
	raw, err := modernRPC(ctx, url, token, "tasks/get", map[string]any{"taskId": id}, id)
	var v taskView
	if err == nil {
		if err = json.Unmarshal(raw, &v); err == nil && len(v.RawResult) > 0 {
			v.Result = &mcp.CallToolResult{}
			err = json.Unmarshal(v.RawResult, v.Result)
		}
	}
	classify(op, err)
	if err != nil {
		return nil
	}
	op.Status = v.Status
	op.Lines = reportLines(v.Meta)
	if v.Result != nil {
		op.Text, op.IsError = toolText(v.Result), v.Result.IsError
		if op.IsError {
			// 2026-07-28 shows a stored failed task with an isError
			// result as completed (docs/mcp.md); the test checks the
			// stored status, which 2025-11-25 shows.
			op.Status = "failed"
		}
	}
	if v.Error != nil {
		op.TaskErr = v.Error.Message
	}
	return &v
}

// legacySession is a 2025-11-25 go-sdk session with a bearer token: the
// flow that has tasks/result, and a tasks/cancel that refuses a terminal
// task (2026-07-28's acknowledges it), so that an acknowledged cancel
// means the task was cancelled. Its elicitation handler answers.
func legacySession(ctx context.Context, url, token string) (*mcp.ClientSession, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: "robustness", Version: "1"}, &mcp.ClientOptions{
		ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"answer": "yes"}}, nil
		},
	})
	if err := errors.Join(mcp.AddSendingCustomMethod[*robustIDParams, *mcp.CallToolResult](c, "tasks/result"),
		mcp.AddSendingCustomMethod[*robustIDParams, *robustCancelResult](c, "tasks/cancel"),
		mcp.AddSendingCustomMethod[*robustListParams, *robustListResult](c, "tasks/list")); err != nil {
		return nil, err
	}
	tr := &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: robustBearer(token)}, MaxRetries: -1}
	cctx, cancel := context.WithTimeout(ctx, robustCallTimeout)
	defer cancel()
	return c.Connect(cctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
}

type robustIDParams struct {
	mcp.ParamsBase
	TaskID string `json:"taskId"`
}

type robustCancelResult struct {
	mcp.ResultBase
	Status string `json:"status"`
}

type robustListParams struct {
	mcp.ParamsBase
	Cursor string `json:"cursor,omitempty"`
}

type robustListResult struct {
	mcp.ResultBase
	Tasks []struct {
		TaskID string `json:"taskId"`
		Status string `json:"status"`
	} `json:"tasks"`
	NextCursor string `json:"nextCursor"`
}

// listTasks lists the owner's tasks with 2025-11-25 tasks/list (2026-07-28
// has none), every page when all is set, else the first.
func listTasks(ctx context.Context, url, token string, all bool, op *robustOp) []string {
	ctx, stop := context.WithTimeout(ctx, robustCallTimeout)
	defer stop()
	cs, err := legacySession(ctx, url, token)
	if err != nil {
		classify(op, err)
		return nil
	}
	defer cs.Close()
	var ids []string
	cursor := ""
	for {
		res, err := mcp.CallCustomMethod[*robustListParams, *robustListResult](ctx, cs, "tasks/list", &robustListParams{Cursor: cursor})
		if err != nil {
			classify(op, err)
			return nil
		}
		for _, t := range res.Tasks {
			ids = append(ids, t.TaskID)
		}
		if cursor = res.NextCursor; cursor == "" || !all {
			classify(op, nil)
			return ids
		}
	}
}

type robustBearer string

func (b robustBearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(req)
}

// awaitResult calls tasks/result on a fresh session and records it.
func awaitResult(ctx context.Context, url, token, id string, op *robustOp) {
	cs, err := legacySession(ctx, url, token)
	if err != nil {
		classify(op, err)
		return
	}
	defer cs.Close()
	res, err := mcp.CallCustomMethod[*robustIDParams, *mcp.CallToolResult](ctx, cs, "tasks/result", &robustIDParams{TaskID: id})
	classify(op, err)
	if err == nil {
		op.Text, op.IsError = toolText(res), res.IsError
	}
}

// cancelTask calls 2025-11-25 tasks/cancel on a fresh session.
func cancelTask(ctx context.Context, url, token, id string, op *robustOp) {
	ctx, stop := context.WithTimeout(ctx, robustCallTimeout)
	defer stop()
	cs, err := legacySession(ctx, url, token)
	if err != nil {
		classify(op, err)
		return
	}
	defer cs.Close()
	res, err := mcp.CallCustomMethod[*robustIDParams, *robustCancelResult](ctx, cs, "tasks/cancel", &robustIDParams{TaskID: id})
	classify(op, err)
	if err == nil {
		op.Status = res.Status
	}
}

// robustTask is a task a client's create was acknowledged for.
type robustTask struct {
	id, owner, token, tool string
	created                int // the replica that created it (and first runs it)
	// adopted: found by tasks/list at the end, its create unanswered.
	adopted bool
}

// clientWorld is what the clients share: the replicas, the history, the
// tasks created so far.
type clientWorld struct {
	replicas *replicaSet
	hist     *history
	users    []robustUser
	reports  float64 // the share of slow_report creates

	mu    sync.Mutex
	tasks []*robustTask
	live  map[string]*robustTask // not yet seen terminal
	wg    sync.WaitGroup         // followers
}

type robustUser struct{ name, token string }

func (w *clientWorld) addTask(t *robustTask) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tasks = append(w.tasks, t)
	w.live[t.id] = t
}

func (w *clientWorld) ended(id string) {
	w.mu.Lock()
	delete(w.live, id)
	w.mu.Unlock()
}

// someLive returns a random live task of owner, or nil.
func (w *clientWorld) someLive(rng *rand.Rand, owner string) *robustTask {
	w.mu.Lock()
	defer w.mu.Unlock()
	var mine []*robustTask
	for _, t := range w.live {
		if t.owner == owner {
			mine = append(mine, t)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	return mine[rng.IntN(len(mine))]
}

// runClient creates, cancels and lists until ctx ends; a follower per
// created task reads it, waits for its result and answers its input until
// it ends or followCtx ends.
func (w *clientWorld) runClient(ctx, followCtx context.Context, n int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	u := w.users[n%len(w.users)]
	for ctx.Err() == nil {
		switch p := rng.Float64(); {
		case p < 0.55:
			w.create(ctx, followCtx, rng, n, u)
		case p < 0.70:
			if t := w.someLive(rng, u.name); t != nil {
				i, url := w.replicas.pick(rng, -1)
				op := robustOp{Client: n, Owner: u.name, Method: "tasks/cancel", Replica: i, TaskID: t.id, Start: time.Now()}
				cancelTask(ctx, url, u.token, t.id, &op)
				w.hist.add(op)
			}
		default:
			i, url := w.replicas.pick(rng, -1)
			op := robustOp{Client: n, Owner: u.name, Method: "tasks/list", Replica: i, Start: time.Now()}
			listTasks(ctx, url, u.token, false, &op)
			w.hist.add(op)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(100+rng.IntN(300)) * time.Millisecond):
		}
	}
}

// create starts a task of a random demo tool on a random replica.
func (w *clientWorld) create(ctx, followCtx context.Context, rng *rand.Rand, n int, u robustUser) {
	var tool string
	var args map[string]any
	switch p := rng.Float64(); {
	case p < w.reports:
		tool, args = "slow_report", map[string]any{"steps": 3 + rng.IntN(6), "stepSeconds": 0.3 + 0.4*rng.Float64()}
	case p < w.reports+(1-w.reports)*2/3:
		tool, args = "sleep", map[string]any{"seconds": 0.5 + 3*rng.Float64()}
	default:
		tool, args = "ask_user", map[string]any{"question": fmt.Sprintf("q%d", rng.IntN(1000))}
	}
	i, url := w.replicas.pick(rng, -1)
	op := robustOp{Client: n, Owner: u.name, Method: "tools/call", Replica: i, Tool: tool, Start: time.Now()}
	if steps, ok := args["steps"].(int); ok {
		op.Steps = steps
	}
	// Not cut short when the clients stop: its task would go unfollowed.
	cctx, cancel := context.WithTimeout(followCtx, robustCallTimeout)
	raw, err := modernRPC(cctx, url, u.token, "tools/call", map[string]any{"name": tool, "arguments": args}, tool)
	cancel()
	var created struct {
		TaskID string `json:"taskId"`
		Status string `json:"status"`
	}
	if err == nil {
		if json.Unmarshal(raw, &created); created.TaskID == "" {
			err = fmt.Errorf("tools/call %s answered no task: %.200s", tool, raw)
		}
	}
	classify(&op, err)
	op.TaskID, op.Status = created.TaskID, created.Status
	w.hist.add(op)
	if op.Outcome != outcomeOK {
		return
	}
	t := &robustTask{id: created.TaskID, owner: u.name, token: u.token, tool: tool, created: i}
	w.addTask(t)
	frng := rand.New(rand.NewPCG(rng.Uint64(), 1)) // the client's rng is the client's alone
	w.wg.Go(func() { w.follow(followCtx, frng, n, t) })
}

// adopt follows the tasks a create made although its answer was lost (a
// connection cut, a timeout): tasks/list on every replica finds them.
func (w *clientWorld) adopt(ctx context.Context, urls []string, rng *rand.Rand) {
	for _, u := range w.users {
		for i, url := range urls {
			op := robustOp{Client: -1, Owner: u.name, Method: "tasks/list", Replica: i, Start: time.Now()}
			ids := listTasks(ctx, url, u.token, true, &op)
			w.hist.add(op)
			for _, id := range ids {
				w.mu.Lock()
				known := slices.ContainsFunc(w.tasks, func(t *robustTask) bool { return t.id == id })
				w.mu.Unlock()
				if known {
					continue
				}
				t := &robustTask{id: id, owner: u.name, token: u.token, created: -1, adopted: true}
				w.addTask(t)
				frng := rand.New(rand.NewPCG(rng.Uint64(), 2))
				w.wg.Go(func() { w.follow(ctx, frng, -1, t) })
			}
		}
	}
}

// follow polls a task with tasks/get on random replicas until it is seen
// terminal; it answers input on a replica other than the one that
// created the task, and sometimes blocks in tasks/result instead.
func (w *clientWorld) follow(ctx context.Context, rng *rand.Rand, n int, t *robustTask) {
	defer w.ended(t.id)
	if rng.IntN(3) == 0 {
		// A blocked tasks/result, as a 2025-11-25 client waits: it also
		// answers the task's input on its own stream.
		i, url := w.replicas.pick(rng, t.created)
		op := robustOp{Client: n, Owner: t.owner, Method: "tasks/result", Replica: i, TaskID: t.id, Start: time.Now()}
		rctx, cancel := context.WithTimeout(ctx, robustResultTimeout)
		awaitResult(rctx, url, t.token, t.id, &op)
		cancel()
		w.hist.add(op)
	}
	for ctx.Err() == nil {
		i, url := w.replicas.pick(rng, -1)
		op := robustOp{Client: n, Owner: t.owner, Method: "tasks/get", Replica: i, TaskID: t.id, Start: time.Now()}
		gctx, cancel := context.WithTimeout(ctx, robustCallTimeout)
		v := getTask(gctx, url, t.token, t.id, &op)
		cancel()
		w.hist.add(op)
		if v != nil && terminalStatus(v.Status) {
			return
		}
		if v != nil && v.Status == "input_required" && len(v.InputRequests) > 0 {
			w.answer(ctx, rng, n, t, v)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(150+rng.IntN(250)) * time.Millisecond):
		}
	}
}

// answer answers a task's pending input with 2026-07-28 tasks/update, on
// a replica other than the one that created the task.
func (w *clientWorld) answer(ctx context.Context, rng *rand.Rand, n int, t *robustTask, v *taskView) {
	resps := map[string]any{}
	for key := range v.InputRequests {
		resps[key] = map[string]any{"action": "accept", "content": map[string]any{"answer": "yes"}}
	}
	i, url := w.replicas.pick(rng, t.created)
	op := robustOp{Client: n, Owner: t.owner, Method: "tasks/update", Replica: i, TaskID: t.id, Start: time.Now()}
	cctx, cancel := context.WithTimeout(ctx, robustCallTimeout)
	_, err := modernRPC(cctx, url, t.token, "tasks/update", map[string]any{"taskId": t.id, "inputResponses": resps}, t.id)
	cancel()
	classify(&op, err)
	w.hist.add(op)
}

// robustResultTimeout bounds a blocked tasks/result: longer than any task
// of the run takes with its takeovers.
const robustResultTimeout = 90 * time.Second

func terminalStatus(s string) bool {
	return s == "completed" || s == "failed" || s == "cancelled"
}
