//go:build redis || postgres

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

// Input while a task runs, across two serve processes over one store with
// a change feed (#22): a 2025-11-25 session of user U starts ask_user or
// ask_model as a task on replica A; the tool asks (elicitation, sampling)
// as any go-sdk handler does; a second session of U, on replica B, sees
// input_required, calls tasks/result, gets the request on that call's own
// stream, answers it, and gets the tool's result. Each backend's file
// (replicas_process_<backend>_test.go) runs testReplicaInput on its server.
// The resume measurement's REPORT lines:
//
//	eval "$(scripts/redis_up.sh .tmp/redis)"; eval "$(scripts/postgres_up.sh .tmp/postgres)"
//	go test -tags redis -run TestReplicaInput -count 5 -v ./cmd/mcptasks/ | grep REPORT
//	go test -tags postgres -run TestReplicaInput -count 5 -v ./cmd/mcptasks/ | grep REPORT

const relatedTaskKey = "io.modelcontextprotocol/related-task"

// askCall is one server-to-client request a session's handler received.
type askCall struct {
	method string
	taskID string // from _meta's related-task, "" when absent
	text   string // the elicitation's message, or the sampling prompt
}

// inputSession is a go-sdk client session over streamable HTTP that
// declares elicitation and sampling. With answer set its handlers answer
// at once (elicitation: {"answer": "yes to " + message}; sampling: text
// "echo: " + prompt from model "test-model"); otherwise they only record
// the call and hold it until the test ends, so that a request sent where
// it should not be is seen, and answered by nobody.
type inputSession struct {
	url, token string
	cs         *mcp.ClientSession
	answer     bool

	mu       sync.Mutex
	calls    []askCall
	answered time.Time // when a handler last returned its answer
}

// idParams is the params of tasks/get and tasks/result.
type idParams struct {
	mcp.ParamsBase
	TaskID string `json:"taskId"`
}

type taskGetResult struct {
	mcp.ResultBase
	Status        string `json:"status"`
	StatusMessage string `json:"statusMessage"`
}

func newInputSession(t *testing.T, url, token string, answer bool) *inputSession {
	t.Helper()
	s := &inputSession{url: url, token: token, answer: answer}
	held := make(chan struct{})
	hold := func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-held:
			return errors.New("the test ended")
		}
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "replicas-input", Version: "1"}, &mcp.ClientOptions{
		ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			s.record("elicitation/create", req.Params.Meta, req.Params.Message)
			if !s.answer {
				return nil, hold(ctx)
			}
			defer s.markAnswered()
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"answer": "yes to " + req.Params.Message}}, nil
		},
		//lint:ignore SA1019 sampling is what ask_model does on 2025-11-25, deprecated only from 2026-07-28
		CreateMessageHandler: func(ctx context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			prompt := ""
			if len(req.Params.Messages) > 0 {
				if tc, ok := req.Params.Messages[0].Content.(*mcp.TextContent); ok {
					prompt = tc.Text
				}
			}
			s.record("sampling/createMessage", req.Params.Meta, prompt)
			if !s.answer {
				return nil, hold(ctx)
			}
			defer s.markAnswered()
			//lint:ignore SA1019 as above
			return &mcp.CreateMessageResult{Model: "test-model", Role: "assistant", Content: &mcp.TextContent{Text: "echo: " + prompt}}, nil
		},
	})
	// The go-sdk client has no task methods: these two are sent as custom.
	if err := errors.Join(mcp.AddSendingCustomMethod[*idParams, *taskGetResult](c, "tasks/get"),
		mcp.AddSendingCustomMethod[*idParams, *mcp.CallToolResult](c, "tasks/result")); err != nil {
		t.Fatal(err)
	}
	tr := &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearer{token}}}
	// 2025-11-25: the flow under test has sessions and tasks/result.
	cs, err := c.Connect(t.Context(), tr, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(func() { cs.Close() })
	// Before Close, which waits for the handlers.
	t.Cleanup(func() { close(held) })
	s.cs = cs
	return s
}

func (s *inputSession) record(method string, meta mcp.Meta, text string) {
	c := askCall{method: method, text: text}
	if rt, ok := meta[relatedTaskKey].(map[string]any); ok {
		c.taskID, _ = rt["taskId"].(string)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

func (s *inputSession) markAnswered() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answered = time.Now()
}

// asked returns the requests the session's handlers received, and when
// one last returned its answer.
func (s *inputSession) asked() ([]askCall, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls), s.answered
}

type bearer struct{ token string }

func (b bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(req)
}

// startTask sends a task-augmented tools/call on the session (the go-sdk
// client has no task field) and returns the task's id.
func (s *inputSession) startTask(t *testing.T, tool string, args map[string]any) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": time.Now().UnixNano(), "method": "tools/call",
		"params": map[string]any{"name": tool, "arguments": args, "task": map[string]any{}}})
	status, _, out := mcpPost(t, http.DefaultClient, s.url, s.cs.ID(), s.token, string(body))
	res := lastJSONRPC([]byte(out))
	if status != http.StatusOK || res == nil || res["error"] != nil {
		t.Fatalf("tools/call %s as a task: HTTP %d %s", tool, status, out)
	}
	return field[string](t, field[json.RawMessage](t, res["result"], "task"), "taskId")
}

func (s *inputSession) get(ctx context.Context, id string) (*taskGetResult, error) {
	return mcp.CallCustomMethod[*idParams, *taskGetResult](ctx, s.cs, "tasks/get", &idParams{TaskID: id})
}

func (s *inputSession) result(ctx context.Context, id string) (*mcp.CallToolResult, error) {
	return mcp.CallCustomMethod[*idParams, *mcp.CallToolResult](ctx, s.cs, "tasks/result", &idParams{TaskID: id})
}

// awaitStatus polls tasks/get until the task is in status, for 15 s.
func (s *inputSession) awaitStatus(t *testing.T, id, status string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := s.get(t.Context(), id)
		if err != nil {
			t.Fatalf("tasks/get %s on %s: %v", id, s.url, err)
		}
		if got.Status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s is %s %q after 15 s, want %s", id, got.Status, got.StatusMessage, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inputCase is one demo tool that asks, and what it reports once answered.
type inputCase struct {
	tool, method, arg string
	want              func(asked string) string
}

var inputCases = []inputCase{
	{"ask_user", "elicitation/create", "question", func(q string) string { return "the user answered: yes to " + q }},
	{"ask_model", "sampling/createMessage", "prompt", func(p string) string { return "the model (test-model) said: echo: " + p }},
}

// askAcross runs one case: started by onA, answered through tasks/result
// by onB, which calls waiting (when not nil) once it saw the task
// input_required. It returns when onB's handler returned its answer and
// when tasks/result returned.
func askAcross(t *testing.T, tc inputCase, onA, onB *inputSession, text string, waiting func(id string)) (id string, answered, returned time.Time) {
	t.Helper()
	id = onA.startTask(t, tc.tool, map[string]any{tc.arg: text})
	onB.awaitStatus(t, id, "input_required")
	if waiting != nil {
		waiting(id)
	}
	before, _ := onB.asked()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := onB.result(ctx, id)
	returned = time.Now()
	if err != nil {
		t.Fatalf("tasks/result %s on B: %v", id, err)
	}
	calls, answered := onB.asked()
	calls = calls[len(before):]
	if len(calls) != 1 || calls[0].method != tc.method || calls[0].text != text {
		t.Fatalf("B's handlers got %+v during tasks/result, want one %s of %q", calls, tc.method, text)
	}
	if calls[0].taskID != id {
		t.Errorf("%s: _meta[%q].taskId = %q, want %q", tc.method, relatedTaskKey, calls[0].taskID, id)
	}
	if got := resultText(res); res.IsError || got != tc.want(text) {
		t.Fatalf("tasks/result %s: %q (isError %v), want %q", id, got, res.IsError, tc.want(text))
	}
	if rt, _ := res.Meta[relatedTaskKey].(map[string]any); rt == nil || rt["taskId"] != id {
		t.Errorf("tasks/result %s: _meta %v, want %s with taskId", id, res.Meta, relatedTaskKey)
	}
	return id, answered, returned
}

func resultText(res *mcp.CallToolResult) string {
	if len(res.Content) == 0 {
		return ""
	}
	tc, _ := res.Content[0].(*mcp.TextContent)
	if tc == nil {
		return ""
	}
	return tc.Text
}

// testReplicaInput: the flow for each tool, owner isolation while a task
// waits for input, and how soon the tool resumes once the answer is stored.
func testReplicaInput(t *testing.T, tags, storeURL string) {
	bin := serveBinary(t, tags)
	const tokenU, tokenV = "secret-u", "secret-v"
	args := []string{"--store", storeURL, "--token", "ursula:" + tokenU, "--token", "victor:" + tokenV}
	a := startReplica(t, bin, args...)
	b := startReplica(t, bin, args...)
	onA := newInputSession(t, a.url, tokenU, false) // must never be asked
	onB := newInputSession(t, b.url, tokenU, true)
	t.Cleanup(func() {
		if calls, _ := onA.asked(); len(calls) > 0 {
			t.Errorf("the creating session on A was asked too (its handlers must not be: the requests go out through tasks/result): %+v", calls)
		}
	})

	for _, tc := range inputCases {
		t.Run(tc.tool, func(t *testing.T) {
			text := "colour of the sky " + randomSuffix()
			id, _, _ := askAcross(t, tc, onA, onB, text, nil)
			got, err := onA.get(t.Context(), id)
			if err != nil || got.Status != "completed" {
				t.Errorf("tasks/get %s on A after the answer: %+v %v, want completed", id, got, err)
			}
		})
	}

	t.Run("owners isolated", func(t *testing.T) {
		id := onA.startTask(t, "ask_user", map[string]any{"question": "only for ursula"})
		onB.awaitStatus(t, id, "input_required")
		victor := newInputSession(t, b.url, tokenV, true)
		missing := taskid.New(time.Now())
		for _, m := range []string{"tasks/get", "tasks/result"} {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			call := func(id string) error {
				if m == "tasks/get" {
					_, err := victor.get(ctx, id)
					return err
				}
				_, err := victor.result(ctx, id)
				return err
			}
			errOther, errMissing := rpcError(call(id)), rpcError(call(missing))
			cancel()
			if errOther == nil || errMissing == nil ||
				errOther.Code != errMissing.Code || strings.ReplaceAll(errOther.Message, id, "ID") != strings.ReplaceAll(errMissing.Message, missing, "ID") {
				t.Errorf("%s by another owner: %v; of a missing task: %v; want the same error", m, errOther, errMissing)
			}
		}
		if calls, _ := victor.asked(); len(calls) > 0 {
			t.Errorf("another owner's session was asked: %+v", calls)
		}
		onB.awaitStatus(t, id, "input_required")
		// Let the task end, so that the replicas stop with nothing waiting.
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		if res, err := onB.result(ctx, id); err != nil || resultText(res) != inputCases[0].want("only for ursula") {
			t.Errorf("tasks/result by the owner after another owner's attempt: %v %v", res, err)
		}
	})

	t.Run("resume latency", func(t *testing.T) {
		testInputResume(t, tags, storeURL, onA, onB)
	})
}

// rpcError is err's JSON-RPC error; nil for nil; for any other error a
// made-up one carrying its text, so that a comparison fails and shows it.
func rpcError(err error) *jsonrpc.Error {
	var werr *jsonrpc.Error
	if errors.As(err, &werr) {
		return werr
	}
	if err == nil {
		return nil
	}
	return &jsonrpc.Error{Code: 0, Message: "not a JSON-RPC error: " + err.Error()}
}

// storeFeed watches the store's change feed from the test process and
// stamps each change of a task with the time it arrived. Every write is
// one change, in order, so a task's n-th change is its version n.
type storeFeed struct {
	b     taskstore.Backend
	mu    sync.Mutex
	owner map[string]string
	at    map[string][]time.Time
}

func watchStore(t *testing.T, storeURL string) *storeFeed {
	t.Helper()
	b, err := mcptasks.OpenBackend(t.Context(), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	n, ok := b.(taskstore.Notifier)
	if !ok {
		t.Fatalf("%T has no change feed", b)
	}
	f := &storeFeed{b: b, owner: map[string]string{}, at: map[string][]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ready := make(chan struct{})
	var once sync.Once
	go n.Subscribe(ctx, func(c taskstore.Change) {
		if c.Resync {
			once.Do(func() { close(ready) })
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.at[c.TaskID] = append(f.at[c.TaskID], time.Now())
		f.owner[c.TaskID] = c.Owner
	})
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the change feed did not start in 10 s")
	}
	return f
}

// record reads task id from the store, once its first change has arrived
// (which names its owner), and returns its version and status.
func (f *storeFeed) record(t *testing.T, id string) (uint64, string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		f.mu.Lock()
		owner, ok := f.owner[id]
		f.mu.Unlock()
		if ok {
			r, err := f.b.Get(t.Context(), owner, id)
			if err != nil {
				t.Fatalf("reading %s from the store: %v", id, err)
			}
			var doc struct {
				Task struct {
					Status string `json:"status"`
				} `json:"task"`
			}
			if err := json.Unmarshal(r.Data, &doc); err != nil {
				t.Fatalf("record %s: %v", id, err)
			}
			return r.Version, doc.Task.Status
		}
		if time.Now().After(deadline) {
			t.Fatalf("no change of task %s arrived in 5 s", id)
		}
	}
}

// answerToResume reads task id's history, given asked, its version while
// it waited for input: the next write (asked+1) stored the answer (only
// the client's answer moves a waiting task, and nothing else writes while
// it waits); the one after is the tool's replica taking the answer, the
// tool resuming; the task's last version is its end. It returns when the
// answer's change arrived and how long after it the other two arrived.
func (f *storeFeed) answerToResume(t *testing.T, id string, asked uint64) (answeredAt time.Time, next, end time.Duration, ok bool) {
	t.Helper()
	last, status := f.record(t, id)
	if status != "completed" || last < asked+2 {
		t.Logf("task %s: version %d %s after the input_required version %d: not measured", id, last, status, asked)
		return time.Time{}, 0, 0, false
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		f.mu.Lock()
		at := slices.Clone(f.at[id])
		f.mu.Unlock()
		if uint64(len(at)) == last {
			ans := at[asked] // version asked+1
			return ans, at[asked+1].Sub(ans), at[last-1].Sub(ans), true
		}
		if uint64(len(at)) > last || time.Now().After(deadline) {
			t.Logf("task %s: %d changes for %d versions: not measured", id, len(at), last)
			return time.Time{}, 0, 0, false
		}
	}
}

// inputResumeRuns is how many tasks testInputResume measures.
const inputResumeRuns = 50

// testInputResume measures, over inputResumeRuns tasks alternating
// elicitation and sampling, the store-side delay between the answer's
// write and the tool's replica's next write (it has read the answer and
// resumed the tool), and its last one (the tool's result), as seen by a
// third process on the change feed; and, from the client, how long after
// its handler answered tasks/result returned the result. A measurement,
// not an assertion: the bound is 50 ms.
func testInputResume(t *testing.T, tags, storeURL string, onA, onB *inputSession) {
	feed := watchStore(t, storeURL)
	var next, end, client []time.Duration
	for i := range inputResumeRuns {
		tc := inputCases[i%len(inputCases)]
		var asked uint64
		id, answered, returned := askAcross(t, tc, onA, onB, fmt.Sprintf("run %d", i), func(id string) {
			var status string
			if asked, status = feed.record(t, id); status != "input_required" {
				t.Fatalf("task %s is %s in the store, input_required in tasks/get", id, status)
			}
		})
		client = append(client, returned.Sub(answered))
		if _, n, e, ok := feed.answerToResume(t, id, asked); ok {
			next, end = append(next, n), append(end, e)
		}
	}
	scheme, _, _ := strings.Cut(storeURL, "://")
	slow := 0
	for _, d := range next {
		if d > 50*time.Millisecond {
			slow++
		}
	}
	t.Logf("REPORT input-resume backend=%s store=%s runs=%d measured=%d answer-stored-to-next-write median=%s p90=%s max=%s over-50ms=%d answer-stored-to-result median=%s max=%s handler-answered-to-tasks/result median=%s max=%s",
		tags, scheme, inputResumeRuns, len(next), quantile(next, 0.5), quantile(next, 0.9), quantile(next, 1), slow,
		quantile(end, 0.5), quantile(end, 1), quantile(client, 0.5), quantile(client, 1))
	if len(next) < inputResumeRuns/2 {
		t.Errorf("only %d of %d runs measured", len(next), inputResumeRuns)
	}
}

// quantile is d's q-quantile (0.5 the median, 1 the max), rounded to 0.1 ms.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(d))
	return s[int(q*float64(len(s)-1))].Round(100 * time.Microsecond)
}
