// Package taskadmin is an admin page over a task store, for the people who
// run a service on mcptasks: an http.Handler that shows the tasks of every
// owner and replica, server-rendered HTML and the same data as JSON.
//
// It AUTHENTICATES NOBODY. Whoever reaches it sees every owner's tasks and,
// unless Options.ReadOnly, can cancel them: mount it behind the
// application's own authentication for operators (never the users' MCP
// tokens), on a listener or path that users do not reach. `mcptasks serve
// --admin-token` mounts it at /admin/ behind a token of its own.
//
// Pages, relative to where it is mounted (a GET answers JSON instead of
// HTML when the request's Accept header asks for application/json and not
// for text/html):
//
//	/               tasks by status, replicas with their heartbeat age and
//	                running tasks, the change feed's state
//	/tasks          the tasks of every owner, oldest first, filtered by
//	                status, tool, owner, runner and age, with cursor paging
//	/tasks/{ref}    one task: status, message, variables, progress, result
//	                or error, lease, pending input
//	/stuck          tasks working or waiting for input longer than
//	                Options.StuckAfter, and tasks held by replicas whose
//	                heartbeat stopped
//	POST /cancel    cancels the tasks named by its form's ref fields
//
// Mount it under a path ending in a slash with that path stripped, so that
// its relative links work:
//
//	mux.Handle("/admin/", http.StripPrefix("/admin", myAuth(taskadmin.New(rt, opts))))
//
// Everything it shows is escaped: task messages, variables, owners and tool
// names are user input. Its pages carry a Content-Security-Policy that runs
// only its own inline script (refresh every few seconds, with a pause) and
// loads nothing from elsewhere; they work without it. Writes (POST) are
// refused across origins (http.CrossOriginProtection) and, with
// Options.ReadOnly, altogether.
//
// Listing across owners needs a backend that implements
// taskstore.StatusIndex; without one the overview still shows the replicas
// and the task pages answer 501.
package taskadmin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// Options configure the admin handler. The zero value shows everything
// and allows cancelling.
type Options struct {
	// ReadOnly refuses every write (POST answers 403) and hides the
	// cancel controls.
	ReadOnly bool
	// OwnerDigests shows each owner as a short SHA-256 digest instead of
	// as given (a session owner's id is the credential of its tasks), and
	// seals the owner inside task references (see RefKey). The owner
	// filter still takes an owner as given.
	OwnerDigests bool
	// Redact hides what tasks hold: their variables (but the tool and the
	// progress), result, error data (but its code and message, which is
	// also the status message) and pending input requests and answers (but
	// their keys).
	Redact bool
	// StuckAfter is how long a task may work, or wait for input, before
	// /stuck lists it. Default 10 minutes.
	StuckAfter time.Duration
	// LeaseTimeout is how long a replica's heartbeat must stand still
	// before the page shows it stopped: set it to the Router's
	// Options.LeaseTimeout. Default 5 seconds (the Router's default).
	LeaseTimeout time.Duration
	// MaxPageSize bounds a page of tasks (the limit parameter; the default
	// page is the smaller of 50 and this). Default 100, at most
	// taskstore.MaxStatusPage and the store's Config.MaxPageSize.
	MaxPageSize int
	// Runner is the runner id of the Router in this process
	// (taskrouter.Router.Runner), if any: the overview marks it as this
	// replica.
	Runner string
	// Local, when set, is what the Router in this process reports through
	// its Observer (see Local): the change feed's state and the other
	// replicas' heartbeat ages as it measures them.
	Local *Local
	// RefKey seals the owner inside task references when OwnerDigests is
	// set, so that a URL names a task without showing its owner. Handlers
	// given the same key open each other's references (replicas behind
	// one load balancer); default a random key per New, so references
	// made before a restart no longer open.
	RefKey []byte
}

// Defaults and bounds of Options and requests.
const (
	DefaultStuckAfter   = 10 * time.Minute
	DefaultLeaseTimeout = 5 * time.Second
	DefaultMaxPageSize  = 100
	// MaxCancel is how many tasks one POST /cancel may name.
	MaxCancel = 100
	// maxQuery bounds a request's query string, in bytes.
	maxQuery = 8 << 10
	// maxForm bounds a POST body, in bytes.
	maxForm = 64 << 10
	// maxCursor bounds the cursor parameter, in bytes (a cursor holds an
	// owner of up to the store's MaxOwnerLen, 512 bytes by default).
	maxCursor = 4 << 10
	// runningShown is how many running tasks the overview lists per replica.
	runningShown = 10
	// maxReplicasRead bounds the replicas whose running tasks the
	// overview reads (one store call each).
	maxReplicasRead = 50
)

// handler serves the pages.
type handler struct {
	rt    *taskstore.Runtime
	opts  Options
	refs  refCodec
	beats beatClock
	next  http.Handler // the pages behind cross-origin protection
}

// New returns the admin handler over rt. See the package documentation:
// it authenticates nobody.
func New(rt *taskstore.Runtime, opts Options) http.Handler {
	if opts.StuckAfter <= 0 {
		opts.StuckAfter = DefaultStuckAfter
	}
	if opts.LeaseTimeout <= 0 {
		opts.LeaseTimeout = DefaultLeaseTimeout
	}
	if opts.MaxPageSize <= 0 {
		opts.MaxPageSize = DefaultMaxPageSize
	}
	opts.MaxPageSize = min(opts.MaxPageSize, taskstore.MaxStatusPage)
	if c := rt.Store().Config().MaxPageSize; c > 0 {
		opts.MaxPageSize = min(opts.MaxPageSize, c) // RunnerTasks' bound
	}
	key := opts.RefKey
	if len(key) == 0 {
		key = make([]byte, 32)
		rand.Read(key) // crypto/rand.Read never returns an error.
	}
	h := &handler{rt: rt, opts: opts, refs: newRefCodec(key, opts.OwnerDigests)}
	h.beats.seen = map[string]observedBeat{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.overview)
	mux.HandleFunc("GET /tasks", h.tasks)
	mux.HandleFunc("GET /tasks/{ref}", h.taskPage)
	mux.HandleFunc("GET /stuck", h.stuck)
	mux.HandleFunc("POST /cancel", h.cancel)
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, http.StatusForbidden, "cross-origin request refused: the admin page accepts writes only from its own pages")
	}))
	h.next = cop.Handler(mux)
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	// Task references name owners: no other site sees them in a Referer.
	// Not no-referrer, which would make a browser send Origin: null with
	// the page's own POSTs.
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	if len(r.URL.RawQuery) > maxQuery {
		h.fail(w, r, http.StatusRequestURITooLong, fmt.Sprintf("query string longer than %d bytes", maxQuery))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && h.opts.ReadOnly {
		h.fail(w, r, http.StatusForbidden, "the admin page is read-only")
		return
	}
	h.next.ServeHTTP(w, r)
}

// wantsJSON reports whether the request asks for JSON rather than HTML.
func wantsJSON(r *http.Request) bool {
	js, html := false, false
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || params["q"] == "0" {
			continue
		}
		switch mt {
		case "application/json":
			js = true
		case "text/html":
			html = true
		}
	}
	return js && !html
}

// respond writes v as JSON, or page's template with v as HTML.
func (h *handler) respond(w http.ResponseWriter, r *http.Request, status int, page string, v any) {
	if wantsJSON(r) {
		writeJSON(w, status, v)
		return
	}
	h.render(w, r, status, page, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	// encoding/json escapes <, > and & (also inside raw variables), so a
	// response read as HTML by mistake runs nothing.
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: "encoding the response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

type errorBody struct {
	Error string `json:"error"`
}

// fail answers an error, as JSON or as an HTML page.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if wantsJSON(r) {
		writeJSON(w, status, errorBody{Error: msg})
		return
	}
	h.render(w, r, status, "error", errorPage{Status: status, Message: msg})
}

type errorPage struct {
	Status  int
	Message string
}

// failStore answers a store error with the status it deserves.
func (h *handler) failStore(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadGateway
	switch {
	case errors.Is(err, taskstore.ErrUnsupported):
		status = http.StatusNotImplemented
	case errors.Is(err, taskstore.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, taskstore.ErrInvalidArgument):
		status = http.StatusBadRequest
	case r.Context().Err() != nil:
		return // the client left
	}
	h.fail(w, r, status, err.Error())
}

// showOwner is how the page shows an owner.
func (h *handler) showOwner(owner string) string {
	if !h.opts.OwnerDigests {
		return owner
	}
	return OwnerDigest(owner)
}

// OwnerDigest is how Options.OwnerDigests shows an owner: "sha256:" and
// the first 12 hex digits of the owner's SHA-256, or for a session owner
// of taskrouter.SessionOwner ("session:ID") "session:sha256:" and those of
// the session id, as the Router's log lines show it.
func OwnerDigest(owner string) string {
	prefix := ""
	if id, ok := strings.CutPrefix(owner, "session:"); ok {
		prefix, owner = "session:", id
	}
	sum := sha256.Sum256([]byte(owner))
	return fmt.Sprintf("%ssha256:%x", prefix, sum[:6])
}

// contentSecurityPolicy lets a page run its own script and style (by
// hash) and load nothing else.
var contentSecurityPolicy = fmt.Sprintf("default-src 'none'; script-src '%s'; style-src '%s'; "+
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'", cspHash(pageScript), cspHash(pageStyle))

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}
