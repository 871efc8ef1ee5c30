package taskadmin

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// The data of each page: the JSON a client that asks for it gets, and
// what the HTML templates render. Times are RFC 3339; durations are
// seconds.

// Overview is the data of /.
type Overview struct {
	Time time.Time `json:"time"`
	// Counts is the live tasks of each status (taskstore.Runtime.CountByStatus),
	// nil when the store cannot count them (CountsError says why).
	Counts      map[taskstore.Status]int64 `json:"counts"`
	CountsError string                     `json:"countsError,omitempty"`
	// Replicas are the runners registered in the store, this replica
	// first, then by runner id.
	Replicas      []Replica `json:"replicas"`
	ReplicasError string    `json:"replicasError,omitempty"`
	// Feed is the change feed's state on this replica: "up", "down",
	// "unknown" (no Router reports it here) or "none" (the backend has
	// no change feed; replicas poll).
	Feed     string `json:"feed"`
	ReadOnly bool   `json:"readOnly"`
}

// Replica is one runner registered in the store.
type Replica struct {
	Runner string `json:"runner"`
	// This marks the replica of this process (Options.Runner).
	This bool `json:"this,omitempty"`
	// Released marks the id to which a replica that shut down handed its
	// resumable tasks (it ends in "#released"); the others take them over.
	Released bool   `json:"released,omitempty"`
	Beat     uint64 `json:"beat"`
	// HeartbeatAge is how long ago its beat counter was last seen to
	// move, in seconds: as this process's Router measures it, else as this
	// page saw it across its reads; nil when not known yet.
	HeartbeatAge *float64 `json:"heartbeatAgeSeconds"`
	// Stopped: the counter has stood still for Options.LeaseTimeout.
	Stopped bool `json:"stopped,omitempty"`
	// Running are the first of the active tasks its lease holds;
	// RunningMore says that there are more.
	Running      []Task `json:"running"`
	RunningMore  bool   `json:"runningMore,omitempty"`
	RunningError string `json:"runningError,omitempty"`
}

// Task is one task in a list.
type Task struct {
	// Ref names the task in this page's URLs (/tasks/{ref}) and in a
	// cancel form.
	Ref    string `json:"ref"`
	TaskID string `json:"taskId"`
	// Owner is the task's owner, or its digest with Options.OwnerDigests.
	Owner         string           `json:"owner"`
	Tool          string           `json:"tool,omitempty"`
	Status        taskstore.Status `json:"status"`
	StatusMessage string           `json:"statusMessage,omitempty"`
	CreatedAt     time.Time        `json:"createdAt"`
	LastUpdatedAt time.Time        `json:"lastUpdatedAt"`
	// Runner and Attempt are the task's lease: the replica running it (or
	// that last ran it) and which run that is (1, then +1 per takeover).
	Runner  string `json:"runner,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	// Progress is the task's taskstore.ProgressVariable, when set.
	Progress *taskstore.Progress `json:"progress,omitempty"`
}

// TaskDetail is the data of /tasks/{ref}.
type TaskDetail struct {
	Task
	RequestMethod string     `json:"requestMethod,omitempty"`
	ExpiresAt     *time.Time `json:"expiresAt,omitempty"`
	// Variables, Result and the input requests and answers are left out
	// with Options.Redact (Redacted is then true); InputKeys are the keys
	// of the pending input requests.
	Variables      map[string]json.RawMessage `json:"variables,omitempty"`
	Result         json.RawMessage            `json:"result,omitempty"`
	Error          *taskstore.RPCError        `json:"error,omitempty"`
	InputKeys      []string                   `json:"inputKeys,omitempty"`
	InputRequests  json.RawMessage            `json:"inputRequests,omitempty"`
	InputResponses json.RawMessage            `json:"inputResponses,omitempty"`
	Redacted       bool                       `json:"redacted,omitempty"`
	ReadOnly       bool                       `json:"readOnly"`
}

// Filter is the filter of /tasks, as its query parameters spell it.
type Filter struct {
	Status string `json:"status,omitempty"`
	Tool   string `json:"tool,omitempty"`
	Owner  string `json:"owner,omitempty"`
	Runner string `json:"runner,omitempty"`
	// Older and Newer bound the task's age (time since creation), as Go
	// durations ("90s", "1h").
	Older string `json:"older,omitempty"`
	Newer string `json:"newer,omitempty"`
	// CreatedBefore and CreatedAfter are those bounds as times (before
	// and after in the next page's parameters).
	CreatedBefore *time.Time `json:"createdBefore,omitempty"`
	CreatedAfter  *time.Time `json:"createdAfter,omitempty"`
	Limit         int        `json:"limit"`
}

// TaskList is the data of /tasks: a page of tasks, oldest first.
// NextCursor continues it (the cursor parameter, with the same filter);
// "" on the last page. A page may be short, even empty, and still have a
// NextCursor when the filter is selective.
type TaskList struct {
	Filter     Filter `json:"filter"`
	Tasks      []Task `json:"tasks"`
	NextCursor string `json:"nextCursor,omitempty"`
	ReadOnly   bool   `json:"readOnly"`
	// NextURL is the next page's link, relative to the list.
	NextURL string `json:"-"`
}

// Stuck is the data of /stuck.
type Stuck struct {
	StuckAfter float64 `json:"stuckAfterSeconds"`
	// Working are tasks working since more than StuckAfter ago.
	Working []Task `json:"working"`
	// InputWaiting are tasks waiting for input, unchanged for more than
	// StuckAfter.
	InputWaiting []Task `json:"inputWaiting"`
	// Orphaned are active tasks held by replicas whose heartbeat has
	// stopped for Options.LeaseTimeout (normally another replica ends or
	// takes them over at once).
	Orphaned []Task `json:"orphaned"`
	// More names the lists cut at a page (of Options.MaxPageSize): see
	// /tasks for the rest.
	More     []string `json:"more,omitempty"`
	ReadOnly bool     `json:"readOnly"`
}

// CancelResult is the outcome of cancelling one task.
type CancelResult struct {
	Ref    string `json:"ref"`
	TaskID string `json:"taskId,omitempty"`
	// Status is the task's status after the request: cancelled, or the
	// status it had already ended in.
	Status taskstore.Status `json:"status,omitempty"`
	Error  string           `json:"error,omitempty"`
}

// CancelResults is the answer of POST /cancel.
type CancelResults struct {
	Results []CancelResult `json:"results"`
}

// entry makes the list entry of rec.
func (h *handler) entry(rec *taskstore.TaskRecord) Task {
	t := Task{
		Ref:           h.refs.encode(rec.OwnerID, rec.Task.TaskID),
		TaskID:        rec.Task.TaskID,
		Owner:         h.showOwner(rec.OwnerID),
		Tool:          rec.Tool(),
		Status:        rec.Task.Status,
		StatusMessage: rec.Task.StatusMessage,
		CreatedAt:     rec.Task.CreatedAt,
		LastUpdatedAt: rec.Task.LastUpdatedAt,
	}
	if rec.Lease != nil {
		t.Runner, t.Attempt = rec.Lease.Runner, rec.Lease.Attempt
	}
	if p, ok := rec.Progress(); ok {
		t.Progress = &p
	}
	return t
}

func (h *handler) entries(recs []*taskstore.TaskRecord) []Task {
	out := make([]Task, 0, len(recs))
	for _, r := range recs {
		out = append(out, h.entry(r))
	}
	return out
}

// detail makes the detail of rec, redacted as the options say.
func (h *handler) detail(rec *taskstore.TaskRecord) TaskDetail {
	d := TaskDetail{Task: h.entry(rec), RequestMethod: rec.RequestMethod, ExpiresAt: rec.ExpiresAt, ReadOnly: h.opts.ReadOnly}
	var pending map[string]json.RawMessage
	if json.Unmarshal(rec.InputRequests, &pending) == nil && len(pending) > 0 {
		d.InputKeys = slices.Sorted(maps.Keys(pending))
	}
	if h.opts.Redact {
		d.Redacted = true
		if rec.Error != nil {
			d.Error = &taskstore.RPCError{Code: rec.Error.Code, Message: rec.Error.Message}
		}
		return d
	}
	d.Variables, d.Result, d.Error = rec.Variables, rec.Result, rec.Error
	d.InputRequests, d.InputResponses = rec.InputRequests, rec.InputResponses
	return d
}

// released reports whether runner is the id a replica shutting down
// handed its resumable tasks to (taskrouter.ReleasedSuffix).
func released(runner string) bool { return strings.HasSuffix(runner, "#released") }

func seconds(d time.Duration) *float64 {
	s := d.Round(time.Millisecond).Seconds()
	return &s
}
