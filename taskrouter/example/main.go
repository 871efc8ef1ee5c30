// Command example is an MCP server whose "report" tool runs as a durable
// task: the program of the README ("Add tasks to your MCP server"). Tasks
// belong to the user of the request's bearer token, so every replica that
// shares the store serves every task of that user.
//
//	go run ./taskrouter/example -token alice:s3cret          streamable HTTP on 127.0.0.1:8081/mcp
//	go run -tags redis ./taskrouter/example -token alice:s3cret -addr 127.0.0.1:8082 -store redis://127.0.0.1:6379
//	go run ./taskrouter/example -stdio                       one client on stdin/stdout
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

type reportArgs struct {
	Topic string `json:"topic"`
}

// report is an ordinary go-sdk tool handler. Called as a task, it runs in
// the background: ctx is cancelled by tasks/cancel (on any replica), and
// taskrouter.TaskHandle(ctx) is the task's handle.
func report(ctx context.Context, req *mcp.CallToolRequest, in reportArgs) (*mcp.CallToolResult, any, error) {
	h := taskrouter.TaskHandle(ctx) // nil when called without a task
	for step := 1; step <= 3; step++ {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(time.Second):
		}
		if h != nil {
			_ = h.SetVariables(ctx, map[string]any{"step": step}) // shows in tasks/get _meta
		}
		if tok := req.Params.GetProgressToken(); tok != nil {
			_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: float64(step), Total: 3})
		}
	}
	return &mcp.CallToolResult{Content: []mcp.Content{
		&mcp.TextContent{Text: fmt.Sprintf("Report on %s: all good.", in.Topic)},
	}}, nil, nil
}

// tokens maps the SHA-256 of each bearer token to its user (-token
// USER:TOKEN, repeatable). Hashing first means a lookup's timing says
// nothing about how much of a guessed token was right.
type tokens map[[sha256.Size]byte]string

func (ts tokens) String() string { return fmt.Sprintf("%d tokens", len(ts)) }
func (ts tokens) Set(v string) error {
	user, token, ok := strings.Cut(v, ":")
	if !ok || user == "" || token == "" {
		return fmt.Errorf("want USER:TOKEN")
	}
	ts[sha256.Sum256([]byte(token))] = user
	return nil
}

// verify is the auth.TokenVerifier: the user it returns owns the tasks.
func (ts tokens) verify(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
	user, ok := ts[sha256.Sum256([]byte(token))]
	if !ok {
		return nil, auth.ErrInvalidToken
	}
	return &auth.TokenInfo{UserID: user, Expiration: time.Now().Add(time.Hour)}, nil
}

func main() {
	users := tokens{}
	flag.Var(users, "token", "a bearer token and its user, `USER:TOKEN` (repeatable); over HTTP every request needs one, and its user owns its tasks")
	addr := flag.String("addr", "127.0.0.1:8081", "listen address (the MCP endpoint is /mcp)")
	stdio := flag.Bool("stdio", false, "serve one client on stdin/stdout (no tokens: its tasks have the anonymous owner)")
	storeURL := flag.String("store", "memory://", "task store: memory:// (one process), or redis://… (-tags redis), dynamodb://TABLE (-tags dynamodb), postgres://… (-tags postgres) to share tasks between replicas")
	flag.Parse()
	if !*stdio && len(users) == 0 {
		log.Fatal("give at least one -token USER:TOKEN (tasks belong to the token's user), or -stdio")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// 1. A store, and a router over it. Each task belongs to the user of the
	// request's token (auth.TokenInfo.UserID), on every replica.
	store, err := mcptasks.Open(ctx, *storeURL, taskstore.Config{AllowAnonymous: *stdio})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	tasks := taskrouter.New(store, taskrouter.Options{})

	// 2. Your go-sdk server, as before, plus each tool's task support.
	server := mcp.NewServer(&mcp.Implementation{Name: "reports", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "report", Description: "Writes a report (slow)."}, report)
	tasks.SetTaskSupport("report", taskrouter.TaskOptional)

	// 3. Install the router, and serve through its wrapper.
	err = tasks.Install(server)
	if err != nil {
		log.Fatal(err)
	}
	defer func() { // let running tasks finish (or fail them) before exiting
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tasks.Shutdown(sctx)
	}()
	if *stdio {
		if err := server.Run(ctx, tasks.Transport(&mcp.StdioTransport{})); err != nil && ctx.Err() == nil {
			log.Print(err)
		}
		return
	}
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	authed := auth.RequireBearerToken(users.verify, nil)(handler)
	// HTTPHandler goes outermost: it bounds request bodies in size, in total
	// and in time; ReadHeaderTimeout does the same for headers.
	srv := &http.Server{Handler: tasks.HTTPHandler(authed, nil), ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	go func() { <-ctx.Done(); srv.Close() }()
	log.Printf("MCP server on http://%s/mcp", ln.Addr())
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		log.Print(err)
	}
}
