package taskadmin_test

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskadmin"
	"github.com/mcptasks/mcptasks/taskstore"
)

// The admin handler authenticates nobody: mount it behind the operators'
// own authentication (here HTTP Basic with one password, which a browser
// asks for), with its path prefix stripped.
func ExampleNew() {
	ctx := context.Background()
	store, err := mcptasks.Open(ctx, "memory://", taskstore.Config{})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	admin := taskadmin.New(taskstore.NewRuntime(store), taskadmin.Options{
		OwnerDigests: true,             // show owners as digests
		StuckAfter:   15 * time.Minute, // /stuck: working or waiting longer than this
	})

	password := sha256.Sum256([]byte("operators' password")) // from your secrets, not from code
	operatorsOnly := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, pass, ok := r.BasicAuth()
			got := sha256.Sum256([]byte(pass))
			if !ok || subtle.ConstantTimeCompare(got[:], password[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="admin", charset="UTF-8"`)
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", operatorsOnly(admin)))

	// A task, and the admin page's JSON about it.
	if _, err := store.Create(ctx, "alice", taskstore.CreateRequest{RequestMethod: "tools/call", StatusMessage: "working on it"}); err != nil {
		panic(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, pass := range []string{"", "operators' password"} {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/admin/tasks", nil)
		req.Header.Set("Accept", "application/json")
		if pass != "" {
			req.SetBasicAuth("operator", pass)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		var list taskadmin.TaskList
		json.NewDecoder(res.Body).Decode(&list)
		res.Body.Close()
		fmt.Println(res.StatusCode, len(list.Tasks))
		for _, t := range list.Tasks {
			fmt.Println(t.Owner, t.Status, t.StatusMessage)
		}
	}
	// Output:
	// 401 0
	// 200 1
	// sha256:2bd806c97f0e working working on it
}
