// Command example is an MCP server whose "report" tool runs as a durable
// task: the program in the README ("Add tasks to your MCP server").
//
//	go run ./taskrouter/example                 streamable HTTP on 127.0.0.1:8081/mcp
//	go run ./taskrouter/example -stdio          one client on stdin/stdout
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os/signal"
	"syscall"
	"time"

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

func main() {
	stdio := flag.Bool("stdio", false, "serve on stdin/stdout")
	storeURL := flag.String("store", "memory://", "task store: memory://, or redis://… / dynamodb://… to share tasks between replicas")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// 1. A store, and a router over it.
	store, err := mcptasks.Open(ctx, *storeURL, taskstore.Config{AllowAnonymous: *stdio})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	tasks := taskrouter.New(store, taskrouter.Options{
		// Without an authenticated user (auth.TokenInfo.UserID), bind tasks to the session.
		Owner: taskrouter.SessionOwner,
	})

	// 2. Your go-sdk server, as before, plus each tool's task support.
	server := mcp.NewServer(&mcp.Implementation{Name: "reports", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "report", Description: "Writes a report (slow)."}, report)
	tasks.SetTaskSupport("report", taskrouter.TaskOptional)

	// 3. Install the router, and serve through its wrapper.
	if err := tasks.Install(server); err != nil {
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
	// HTTPHandler bounds request bodies in size, in total and in time;
	// ReadHeaderTimeout does the same for headers.
	srv := &http.Server{Addr: "127.0.0.1:8081", Handler: tasks.HTTPHandler(handler, nil), ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	log.Printf("MCP server on http://%s/mcp", srv.Addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Print(err)
	}
}
