package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskadmin"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

func init() {
	register(command{
		Name:    "serve",
		Summary: "serve a demo MCP server with durable tasks (streamable HTTP, or --stdio)",
		Run:     serveMain,
	})
}

// serveUsage heads serve -h. It spells out who owns a task in each mode,
// because without tokens the answer differs by protocol revision.
const serveUsage = `usage: mcptasks serve [flags]

Serves a demo MCP server with durable tasks on streamable HTTP at /mcp (or one
client on stdin/stdout with --stdio). It speaks MCP 2025-11-25 (sessions,
tasks/result, tasks/list) and 2026-07-28 with the io.modelcontextprotocol/tasks
extension (no sessions).

Who owns a task (only its owner can read, wait for, list or cancel it):
  with --token/--tokens-file  the token's user, on both protocols; a request
                              without a valid token gets 401
  without tokens, 2025-11-25  the MCP session that created it (its Mcp-Session-Id)
  without tokens, 2026-07-28  ONE shared anonymous owner for every such client:
                              any client that knows a task id can read, wait for
                              and cancel that task, and all of them share that
                              owner's task quota, so one client can use it up
                              for everyone. Configure tokens for anything but a
                              demo on loopback; serve warns when it listens
                              beyond loopback without them.
  --stdio                     the anonymous owner (one client)

With --admin-token (or --admin-token-file), /admin/ serves an admin page over the
store: the tasks of every user and replica, which it can cancel. It wants that
token, never a user's, as Authorization: Bearer or as the password of HTTP Basic
authentication (a browser asks for it).

At SIGINT or SIGTERM it stops taking requests and lets running tasks finish
for --drain, then marks the rest failed; a second signal ends the drain at once.

exit status: 0 stopped with no task failed, 1 a runtime failure (bad store URL,
store unreachable, listen failed), 2 a usage error, 3 stopped but tasks still
running at shutdown were marked failed (the drain ran out, or a second signal).`

func serveMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (the MCP endpoint is /mcp)")
	storeURL := fs.String("store", "memory://", "task store URL (memory://, redis://… with -tags redis, dynamodb://TABLE with -tags dynamodb, postgres://… with -tags postgres)")
	var tokenArgs tokenFlags
	fs.Var(&tokenArgs, "token", "a bearer token and its user, `USER:TOKEN`, split at the first colon: the token may hold any character but whitespace (repeatable); with tokens, every request needs one and the user owns its tasks")
	tokensFile := fs.String("tokens-file", "", "a `FILE` of \"TOKEN USER\" lines (whitespace between; blank lines and lines starting with # skipped), added to --token's")
	allowedHosts := fs.String("allowed-hosts", "", "comma-separated extra Host names (host or host:port) to accept besides the listen address and localhost")
	stdio := fs.Bool("stdio", false, "serve one client on stdin/stdout instead of HTTP (tasks owned by the anonymous owner)")
	drain := fs.Duration("drain", 10*time.Second, "at shutdown, how long running tasks may finish before they are marked failed")
	sessionIdle := fs.Duration("session-idle", defaultSessionIdle, "close a 2025-11-25 session after this long without a request from its client (0 = never); its tasks keep running but, without tokens, become unreachable")
	maxSessions := fs.Int("max-sessions", defaultMaxSessions, "most 2025-11-25 sessions open at once; beyond it, a new session gets 503 (0 = no cap)")
	maxPerUser := fs.Int("max-sessions-per-user", defaultMaxPerUser, "with tokens, most 2025-11-25 sessions one user may hold open at once; beyond it, a new one gets 429 (0 = no cap)")
	maxActive := fs.Int("max-active-tasks", 0, "most active (working or input_required) tasks one owner may have at once; beyond it a new task is refused (0 = the store's default, 100)")
	metricsAddr := fs.String("metrics-addr", "", "serve metrics in the Prometheus text format at http://`ADDR`/metrics, on a listener of their own (such as 127.0.0.1:9464); none when empty")
	var admin adminFlags
	admin.register(fs)
	if err := parseFlags(fs, serveUsage, args, stdout); err != nil {
		return err
	}
	if *sessionIdle < 0 || *maxSessions < 0 || *maxPerUser < 0 || *maxActive < 0 {
		return usagef("--session-idle, --max-sessions, --max-sessions-per-user and --max-active-tasks cannot be negative")
	}
	if *stdio && (len(tokenArgs) > 0 || *tokensFile != "") {
		return usagef("--token and --tokens-file have no meaning with --stdio (its one client is the anonymous owner)")
	}
	if err := admin.check(*stdio); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cmdLog.Store(logger)
	tokens := tokenSet{}
	if err := tokenArgs.addTo(tokens); err != nil {
		return usageError{err}
	}
	if *tokensFile != "" {
		if err := readTokens(*tokensFile, tokens, logger.Warn); err != nil {
			return err
		}
	}
	adminToken, err := admin.load(tokens, logger.Warn)
	if err != nil {
		return err
	}

	// Anonymous tasks: on stdio (one client), and over HTTP without tokens
	// for 2026-07-28 clients, whose requests have no session: their task ids
	// (128 random bits) are the only handle. 2025-11-25 sessions still own
	// their tasks by session id.
	cfg := taskstore.Config{AllowAnonymous: *stdio || len(tokens) == 0, MaxActiveTasks: *maxActive}
	var observer taskrouter.Observer
	var metrics *metricsServer
	if *metricsAddr != "" {
		var err error
		if metrics, err = listenMetrics(*metricsAddr); err != nil {
			return err
		}
		defer metrics.close()
		cfg.ObserveBackend = metrics.metrics.ObserveBackend
		observer = metrics.metrics.Observer()
	}
	var local taskadmin.Local
	if adminToken != "" {
		observer = adminObserver(observer, &local)
	}
	store, err := mcptasks.Open(ctx, *storeURL, cfg)
	if err != nil {
		return err
	}
	defer store.Close()

	var ln net.Listener
	if !*stdio {
		// Before the router starts: on a listen error its change feed would
		// log the store closing under it.
		if ln, err = net.Listen("tcp", *addr); err != nil {
			return err
		}
	}
	d := newDemo(store, logger, len(tokens) == 0 && !*stdio, observer)
	if metrics != nil {
		metrics.serve(logger)
		if *stdio {
			logger.Info("metrics", "url", "http://"+metrics.ln.Addr().String()+"/metrics")
		} else {
			fmt.Fprintf(stdout, "mcptasks: metrics on http://%s/metrics\n", metrics.ln.Addr())
		}
	}
	force := forceContext(ctx)
	// shutdown drains running tasks; those it had to fail make serve's
	// exit status exitTasksFailed, so that a deploy script can tell.
	shutdown := func() error {
		sctx, cancel := context.WithTimeout(force, *drain)
		defer cancel()
		err := d.router.Shutdown(sctx)
		if err == nil {
			return nil
		}
		why := fmt.Sprintf("--drain %v ran out", *drain)
		if errors.Is(err, context.Canceled) {
			why = "a second signal ended the drain"
		}
		return statusError{exitTasksFailed, fmt.Errorf("%w (%s)", err, why)}
	}

	if *stdio {
		logger.Info("mcptasks serving on stdio", "store", redactURL(*storeURL))
		err := d.server.Run(ctx, d.router.Transport(&mcp.StdioTransport{}))
		serr := shutdown()
		if err == nil || errors.Is(err, context.Canceled) {
			return serr
		}
		if serr != nil {
			logger.Warn("shutdown", "error", serr)
		}
		return err
	}

	var extra []string
	if *allowedHosts != "" {
		extra = strings.Split(*allowedHosts, ",")
	}
	handler := d.httpHandler(tokens, *sessionIdle, newSessionLimit(d.server, *maxSessions, *maxPerUser))
	mux := http.NewServeMux()
	mux.Handle("/mcp", hostGuard(ln.Addr().String(), extra, handler))
	if adminToken != "" {
		mux.Handle("/admin/", hostGuard(ln.Addr().String(), extra, admin.handler(adminToken, store, d.router, &local)))
		fmt.Fprintf(stdout, "mcptasks: admin page on http://%s/admin/ (with the admin token)\n", ln.Addr())
		if len(tokens) == 0 && !admin.ownerDigests {
			logger.Warn("without bearer tokens, task owners are MCP session ids, the credentials of their tasks: the admin page shows them; --admin-owner-digests hides them")
		}
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	fmt.Fprintf(stdout, "mcptasks: MCP server on http://%s/mcp, store %s\n", ln.Addr(), redactURL(*storeURL))
	if len(tokens) == 0 {
		fmt.Fprintln(stdout, "mcptasks: no bearer tokens: tasks are bound to the MCP session that created them")
		if beyondLoopback(ln.Addr()) {
			logger.Warn("listening beyond loopback without bearer tokens: whoever reaches this address can run the tools, "+
				"and all 2026-07-28 clients share one owner, so any of them can read and cancel a task whose id it knows; "+
				"pass --token or --tokens-file, or listen on 127.0.0.1", "addr", ln.Addr().String())
		}
	} else {
		fmt.Fprintf(stdout, "mcptasks: %d bearer tokens: tasks belong to the token's user\n", len(tokens))
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if serr := shutdown(); serr != nil {
			logger.Warn("shutdown", "error", serr)
		}
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining running tasks (a second signal fails them at once)", "drain", *drain, "running", d.router.Running())
	serr := shutdown()
	hctx, cancel := context.WithTimeout(force, 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(hctx); err != nil {
		srv.Close() // SSE streams stay open until closed
	}
	// The SDK's handler keeps sessions beyond the HTTP server: close them,
	// so that serve leaves no goroutine behind.
	for s := range d.server.Sessions() {
		s.Close()
	}
	logger.Info("stopped")
	return serr
}

// beyondLoopback reports whether clients on other hosts may reach a
// listener at addr (a wildcard such as ":80" or 0.0.0.0 included).
func beyondLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return !ok || !ta.IP.IsLoopback()
}

// redactURL hides a password in a store URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User == nil {
		return s
	}
	return u.Redacted()
}

// demo is the demo MCP server: its tools, router and SDK server.
type demo struct {
	router *taskrouter.Router
	server *mcp.Server
}

func newDemo(store *taskstore.Store, logger *slog.Logger, sessionOwners bool, observer taskrouter.Observer) *demo {
	opts := taskrouter.Options{Logger: logger, Observer: observer}
	if sessionOwners {
		opts.Owner = taskrouter.SessionOwner
	}
	r := taskrouter.New(store, opts)
	s := mcp.NewServer(&mcp.Implementation{Name: "mcptasks-demo", Version: "0.1.0"}, nil)
	addDemoTools(s, r)
	addFixtureTools(s, r)
	if err := r.Install(s); err != nil {
		panic(err) // only on a programming error: a tasks/* name clash
	}
	return &demo{router: r, server: s}
}

// httpHandler is the streamable HTTP endpoint, behind bearer auth when
// tokens are configured: 2025-11-25 clients get sessions (idle ones closed
// after idle, at most limit's caps at once; see sessions.go), 2026-07-28
// clients (and the tasks extension) the SDK's stateless handler. The cap
// sits behind auth, so requests without a valid token never take a slot.
func (d *demo) httpHandler(tokens tokenSet, idle time.Duration, limit *sessionLimit) http.Handler {
	get := func(*http.Request) *mcp.Server { return d.server }
	h := d.withAuth(limit.wrap(mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{SessionTimeout: idle})), tokens)
	modern := d.withAuth(mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{Stateless: true}), tokens)
	return d.router.HTTPHandler(h, &taskrouter.HTTPOptions{Serve20260728: modern})
}

func (d *demo) withAuth(h http.Handler, tokens tokenSet) http.Handler {
	if len(tokens) == 0 {
		return h
	}
	return requireToken(tokens, h)
}

// hostGuard refuses requests whose Host, or Origin when present, is not
// this server's (DNS-rebinding protection): the listen address, its
// localhost spellings, and any extra names.
func hostGuard(listen string, extra []string, next http.Handler) http.Handler {
	_, port, _ := net.SplitHostPort(listen)
	host, _, _ := net.SplitHostPort(listen)
	allowed := map[string]bool{}
	add := func(h string) {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			return
		}
		if _, _, err := net.SplitHostPort(h); err == nil {
			allowed[h] = true
			return
		}
		allowed[net.JoinHostPort(strings.Trim(h, "[]"), port)] = true
		if port == "80" || port == "443" {
			allowed[h] = true
		}
	}
	for _, h := range append([]string{host, "localhost", "127.0.0.1", "::1"}, extra...) {
		if h == "0.0.0.0" || h == "::" {
			continue // a wildcard is not a name clients use
		}
		add(h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !allowed[strings.ToLower(req.Host)] {
			http.Error(w, "Forbidden: Host not allowed", http.StatusForbidden)
			return
		}
		if o := req.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !allowed[originHost(u)] {
				http.Error(w, "Forbidden: Origin not allowed", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, req)
	})
}

func originHost(u *url.URL) string {
	h := strings.ToLower(u.Host)
	if u.Port() == "" {
		if u.Scheme == "https" {
			return net.JoinHostPort(strings.Trim(h, "[]"), "443")
		}
		return net.JoinHostPort(strings.Trim(h, "[]"), "80")
	}
	return h
}
