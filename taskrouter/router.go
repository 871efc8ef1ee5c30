// Package taskrouter serves MCP tasks over a taskstore.Store, in both
// protocol revisions that have them: 2025-11-25 (tasks/get, tasks/result,
// tasks/list, tasks/cancel and task-augmented tools/call) and 2026-07-28
// (the io.modelcontextprotocol/tasks extension: tasks/get with the outcome
// inlined, tasks/update, tasks/cancel, notifications/tasks). A task's tool
// really runs, in the background, with a context and the task's handle.
//
// The Router has no transport of its own. Install plugs it into a go-sdk
// (github.com/modelcontextprotocol/go-sdk) server; HTTPHandler and Transport
// wrap the streamable HTTP handler or a stdio transport. The protocol
// revision of a request is decided once, at that edge, and travels with
// the request; one view per revision is the only code that maps a stored
// task and its outcome to what a client sees. The store records what
// happened, whatever the revision that asked.
//
// Input: a task's handler asks the client as any go-sdk handler does
// (req.Session.Elicit, CreateMessage, CreateMessageWithTools, ListRoots).
// The request waits in the task's record, the task input_required, until
// the client answers: through tasks/result on 2025-11-25, which carries the
// request on its response stream, or tasks/update on 2026-07-28; on any
// replica. Handle.AwaitInput asks with keys of the handler's own.
//
// Replicas: several Routers (in several processes) may share one store.
// Every read goes to the store, so any replica answers for any task. A
// running task holds its replica's lease; a replica whose heartbeat stands
// still has its tasks ended, or resumed elsewhere when their tool is
// resumable (SetResumable). Changes made on another replica arrive through
// the backend's change feed where it has one, else through one batched
// poller per replica. Goroutines exist only per running handler and per
// blocked tasks/result or listen stream, never per stored task.
package taskrouter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter/internal/edge"
	"github.com/mcptasks/mcptasks/taskrouter/internal/hub"
	"github.com/mcptasks/mcptasks/taskrouter/internal/lease"
	"github.com/mcptasks/mcptasks/taskrouter/internal/rev20260728"
	"github.com/mcptasks/mcptasks/taskrouter/internal/sessions"
	"github.com/mcptasks/mcptasks/taskstore"
)

// TaskSupport is a tool's execution.taskSupport.
type TaskSupport string

const (
	// TaskForbidden tools cannot be called as tasks (the default).
	TaskForbidden TaskSupport = "forbidden"
	// TaskOptional tools may be called as tasks or as plain calls.
	TaskOptional TaskSupport = "optional"
	// TaskRequired tools must be called as tasks.
	TaskRequired TaskSupport = "required"
)

// RelatedTaskKey is the _meta key that marks messages belonging to a task.
const RelatedTaskKey = "io.modelcontextprotocol/related-task"

// Options configure a Router. Every field has a default; what the zero
// value does not give is an owner for requests without an authenticated
// user: each task belongs to the user of the request's token
// (auth.TokenInfo.UserID, as go-sdk's auth.RequireBearerToken sets it), and
// without one a task request is refused (-32602, "tasks need an identified
// caller") unless Owner names one or taskstore.Config.AllowAnonymous lets
// every such caller share the anonymous owner.
type Options struct {
	// Logger receives task creation, completion and retrieval (with the
	// owner), and backend failures, which clients only see as -32603
	// "internal error". Nil means slog.Default().
	Logger *slog.Logger
	// Owner resolves the owner of a request that carries no authenticated
	// user (auth.TokenInfo.UserID). Nil, or an empty result, makes the
	// request anonymous, which the store refuses unless
	// taskstore.Config.AllowAnonymous is set. See SessionOwner.
	Owner OwnerFunc
	// MinPollInterval and MaxPollInterval bound the pollInterval a client
	// requests (params.task.pollInterval, an extension): a request outside
	// is moved to the nearer bound. Defaults 50ms and 1m. The runner of a
	// task and a blocked tasks/result re-read the task at that interval.
	MinPollInterval time.Duration
	MaxPollInterval time.Duration
	// MaxWaitsPerOwner bounds the waits one owner may have on this replica
	// at once: blocked tasks/result calls and subscriptions/listen streams
	// that watch tasks; beyond it they answer -32603. Default 100.
	MaxWaitsPerOwner int
	// Runner names this replica in the leases of the tasks it runs; it must
	// be unique among the processes sharing a store. New replaces each '#'
	// with '_' ('#' marks the id a replica hands its resumable tasks to at
	// shutdown). Default: host, pid and random bits, fresh for every
	// process.
	Runner string
	// Heartbeat is how often this replica renews its lease and looks for
	// replicas that stopped; default 1s.
	Heartbeat time.Duration
	// LeaseTimeout is how long another replica's heartbeat must stand
	// still (on this process's clock) before its tasks are ended, or taken
	// over when resumable; default 5s. A crashed replica's tasks end
	// within about LeaseTimeout + Heartbeat. Keep it several Heartbeats.
	LeaseTimeout time.Duration
	// Observer is told what the Router does, for metrics (see package
	// otelmetrics); the zero value tells nothing and costs nothing.
	Observer Observer
}

// Router serves MCP tasks over a Store. It is safe for concurrent use.
type Router struct {
	store *taskstore.Store
	rt    *taskstore.Runtime
	log   *slog.Logger
	opts  Options

	tools  toolRules
	runner runner

	leases   *lease.Keeper
	creates  creates
	takeover takeover
	hub      *hub.Hub
	sessions *sessions.Registry
	streams  rev20260728.Streams
	bgCancel context.CancelFunc
	bg       sync.WaitGroup // the lease keeper, the change feed, the poller

	edge *edge.Edge

	unwrappedOnce atomic.Bool // the missing-wrapper mistake was logged
}

// New returns a Router over store.
func New(store *taskstore.Store, opts Options) *Router {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MinPollInterval <= 0 {
		opts.MinPollInterval = 50 * time.Millisecond
	}
	if opts.MaxPollInterval <= 0 {
		opts.MaxPollInterval = time.Minute
	}
	opts.MaxPollInterval = max(opts.MaxPollInterval, opts.MinPollInterval)
	if opts.MaxWaitsPerOwner <= 0 {
		opts.MaxWaitsPerOwner = 100
	}
	if opts.Runner == "" {
		opts.Runner = newRunnerID()
	}
	// '#' is the released marker (ReleasedSuffix).
	opts.Runner = strings.ReplaceAll(opts.Runner, "#", "_")
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.LeaseTimeout <= 0 {
		opts.LeaseTimeout = DefaultLeaseTimeout
	}
	r := &Router{
		store: store,
		rt:    taskstore.NewRuntime(store),
		log:   opts.Logger,
		opts:  opts,
	}
	r.hub = hub.New(opts.MaxWaitsPerOwner)
	r.runner.init(store, r.hub, r.log, &r.opts.Observer, r.notifyStatus, opts.MinPollInterval, opts.MaxPollInterval)
	r.sessions = sessions.New()
	r.edge = edge.New(r.sessions.NoteStream, func(tool string) bool { return r.tools.supportOf(tool) != TaskForbidden })
	r.streams = rev20260728.Streams{Store: store, Hub: r.hub, Send: r.edge.StandIn, StandIn: r.edge.StandInMeta,
		Poll: min(max(store.Config().PollInterval, opts.MinPollInterval), time.Second)}
	r.startBackground()
	return r
}

// Store returns the Router's store.
func (r *Router) Store() *taskstore.Store { return r.store }

// SetTaskSupport sets the execution.taskSupport of the named tool. Tools
// without one are TaskForbidden.
func (r *Router) SetTaskSupport(tool string, s TaskSupport) { r.tools.setSupport(tool, s) }

// TaskSupport returns the tool's execution.taskSupport.
func (r *Router) TaskSupport(tool string) TaskSupport { return r.tools.supportOf(tool) }

// Preflight runs synchronously when a 2026-07-28 call of a task-supporting
// tool is about to become a task. A non-nil result answers the call instead
// and no task is created: typically a result with InputRequests (an SEP-2322
// input-required round), so that input is gathered before the task exists,
// as SEP-2663 recommends. On the retried call (which carries the client's
// inputResponses) it returns nil, and the call becomes a task whose handler
// sees the same inputResponses.
type Preflight func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error)

// SetPreflight sets the named tool's Preflight (nil removes it). It applies
// only to 2026-07-28 calls that are about to become tasks.
func (r *Router) SetPreflight(tool string, fn Preflight) { r.tools.setPreflight(tool, fn) }

// OwnerFunc resolves the owner of a request that has no authenticated user.
// An empty result means anonymous.
type OwnerFunc func(ctx context.Context, req mcp.Request) string

// SessionOwner binds tasks to the MCP session: only the session that made
// a task can see it, and it is unreachable once the session ends (a client
// that reconnects gets a new session). Requests without a session (stdio,
// and 2026-07-28 requests, which have none) are anonymous.
//
// It is for a single replica: a session lives on the replica that made it,
// so another replica sharing the store cannot serve it (HTTP 404 "session
// not found"), and a new session there is another owner. Replicas share
// tasks when owners come from authentication (auth.RequireBearerToken in
// front of the handler): the token's user is the owner on every replica.
func SessionOwner(_ context.Context, req mcp.Request) string {
	if s := req.GetSession(); s != nil && s.ID() != "" {
		return "session:" + s.ID()
	}
	return ""
}

// logOwner is how an owner appears in log lines. A SessionOwner owner
// holds the session id, the credential of its tasks, so it is logged as a
// short SHA-256 digest: stable, so a session's lines still correlate, and
// of no use to whoever reads the log. The digest is computed only for a
// line that is written.
type logOwner string

func (o logOwner) LogValue() slog.Value {
	id, ok := strings.CutPrefix(string(o), "session:")
	if !ok {
		return slog.StringValue(string(o))
	}
	sum := sha256.Sum256([]byte(id))
	return slog.StringValue("session:sha256:" + hex.EncodeToString(sum[:6]))
}

// infoOn reports whether log writes info lines: the three of every task's
// life are built only then (their arguments cost a dozen allocations
// each).
func infoOn(log *slog.Logger) bool { return log.Enabled(context.Background(), slog.LevelInfo) }

type ownerKey struct{}

// Owner returns the task owner the Router resolved for the request that ctx
// belongs to (inside a tool handler, a task's work, or a tasks/* handler).
func Owner(ctx context.Context) (string, bool) {
	o, ok := ctx.Value(ownerKey{}).(string)
	return o, ok
}

func ownerOf(ctx context.Context) string {
	o, _ := Owner(ctx)
	return o
}

// TaskHandle returns the handle of the task whose work ctx belongs to, or
// nil when ctx is not a task's.
func TaskHandle(ctx context.Context) *taskstore.Handle {
	if rn := runFrom(ctx); rn != nil {
		return rn.handle
	}
	return nil
}

// Outcome is how a task's work ended: what happened, whatever the protocol
// revision that asked (the views decide what each revision shows).
type Outcome struct {
	// Result is the result of the original request (a CallToolResult for
	// tools/call), marshalled to JSON.
	Result json.RawMessage
	// IsError marks a tool result with isError: the task fails with Message
	// as its statusMessage, and Result is kept (2026-07-28 shows such a
	// task as completed with that result).
	IsError bool
	Message string
	// Err, when set, is the JSON-RPC error the original request ended with.
	Err *taskstore.RPCError
}

// Work is the body of a task. It runs in the background with a context
// that is cancelled when the task is cancelled (on any replica), expires or
// is deleted, or the Router shuts down.
type Work func(ctx context.Context) Outcome

// StartRequest describes a task to create and run.
type StartRequest struct {
	Owner string
	// Method is the request method, such as "tools/call".
	Method string
	// Tool names the tool, stored in the task's variables.
	Tool string
	// TTL and PollInterval are what the client requested (nil: defaults).
	// PollInterval is moved into [Options.MinPollInterval,
	// Options.MaxPollInterval].
	TTL          *time.Duration
	PollInterval *time.Duration
	// Values are added to the run's context (the SDK layer carries the
	// request's identity this way).
	Values func(context.Context) context.Context
	// Rerun, when set, makes the task resumable: what another replica
	// needs to run it again (see SetResumable).
	Rerun json.RawMessage
	// Trace is the W3C trace context the request carried (see
	// taskstore.NewTraceContext), kept in the task's record so that its
	// run, on any replica, joins the request's trace. Nil: none.
	// Observer.TraceContext, when set, gives the one kept instead.
	Trace *taskstore.TraceContext
}

// errShuttingDown answers task creation once Shutdown has begun.
var errShuttingDown = &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: "server is shutting down"}

// Start creates a task and runs work in the background. It returns the
// created record at once (durably stored: an immediate read finds it).
func (r *Router) Start(ctx context.Context, req StartRequest, work Work) (*taskstore.TaskRecord, error) {
	if r.runner.isClosing() {
		r.opts.Observer.refused(RefusedShuttingDown)
		return nil, errShuttingDown
	}
	if req.PollInterval != nil {
		d := min(max(*req.PollInterval, r.opts.MinPollInterval), r.opts.MaxPollInterval)
		req.PollInterval = &d
	}
	var vars map[string]json.RawMessage
	if req.Tool != "" {
		b, _ := json.Marshal(req.Tool)
		vars = map[string]json.RawMessage{taskstore.ToolVariable: b}
	}
	if f := r.opts.Observer.TraceContext; f != nil {
		if tc := taskstore.NewTraceContext(f(ctx)); tc != nil {
			req.Trace = tc
		}
	}
	if err := r.leases.Register(ctx); err != nil {
		return nil, err
	}
	defer r.creates.done(r.creates.begin())
	rec, err := r.store.Create(ctx, req.Owner, taskstore.CreateRequest{
		RequestMethod: req.Method,
		TTL:           req.TTL,
		PollInterval:  req.PollInterval,
		Variables:     vars,
		Runner:        r.opts.Runner,
		Rerun:         req.Rerun,
		Trace:         req.Trace,
	})
	if err != nil {
		if mayHaveApplied(err) {
			// Stored all the same, the task would hold this replica's
			// lease with no run: the keeper ends such strays.
			r.leases.MarkStrays()
		}
		r.opts.Observer.refusedFor(err)
		return nil, err
	}
	r.opts.Observer.created(req.Tool, revisionOf(ctx).String())
	if err := r.runner.start(rec, req.Values, work); err != nil {
		return nil, err
	}
	if infoOn(r.log) {
		r.log.Info("task created", "task", rec.Task.TaskID, "owner", logOwner(rec.OwnerID), "method", req.Method, "tool", req.Tool)
	}
	return rec, nil
}
