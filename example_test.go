package mcptasks_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
)

// A task's life: create, report progress through variables, complete, and
// read the result; another owner cannot see it.
func Example() {
	ctx := context.Background()
	store, err := mcptasks.Open(ctx, "memory://", taskstore.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	task, err := store.Create(ctx, "alice", taskstore.CreateRequest{RequestMethod: "tools/call"})
	if err != nil {
		log.Fatal(err)
	}
	h := store.Handle("alice", task.Task.TaskID)
	if err := h.SetVariables(ctx, map[string]any{"progress": 0.5}); err != nil {
		log.Fatal(err)
	}
	progress, _, _ := taskstore.Variable[float64](ctx, h, "progress")
	fmt.Println("progress:", progress)

	if err := h.Complete(ctx, map[string]any{"content": []any{map[string]string{"type": "text", "text": "done"}}}); err != nil {
		log.Fatal(err)
	}
	done, err := store.GetResult(ctx, "alice", task.Task.TaskID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(done.Task.Status, string(done.Result))

	_, err = store.Get(ctx, "mallory", task.Task.TaskID)
	fmt.Println(errors.Is(err, taskstore.ErrNotFound), taskstore.RPCCode(err))
	// Output:
	// progress: 0.5
	// completed {"content":[{"text":"done","type":"text"}]}
	// true -32602
}
