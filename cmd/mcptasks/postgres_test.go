package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
)

// TestPostgresCreateTable prints and applies the DDL on the test server
// and recounts the table when the binary has the backend, and otherwise
// checks that each says which tag to build with.
func TestPostgresCreateTable(t *testing.T) {
	var out, errOut bytes.Buffer
	if !slices.Contains(mcptasks.Backends(), "postgres") {
		for _, args := range [][]string{
			{"postgres", "create-table", "postgres://u@h/db"},
			{"postgres", "create-table", "-print", "postgres://u@h/db"},
			{"postgres", "recount", "postgres://u@h/db"},
		} {
			errOut.Reset()
			if code := run(t.Context(), args, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "-tags postgres") {
				t.Fatalf("%v: exit %d, stderr %q: want an error naming -tags postgres", args, code, errOut.String())
			}
		}
		return
	}
	if code := run(t.Context(), []string{"postgres", "create-table", "-print", "postgres://u@h/db?schema=tasks&table=t1"}, &out, &errOut); code != 0 {
		t.Fatalf("-print exited %d: %s", code, errOut.String())
	}
	for _, want := range []string{"CREATE SCHEMA IF NOT EXISTS tasks;", "CREATE TABLE IF NOT EXISTS tasks.t1 (", "CREATE INDEX IF NOT EXISTS t1_expires_idx", "CREATE INDEX IF NOT EXISTS t1_status_idx ON tasks.t1 (status, task_id, owner);",
		"CREATE TABLE IF NOT EXISTS tasks.t1_counts (", "COMMENT ON TABLE tasks.t1 IS 'mcptasks schema 3';"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("-print output lacks %q:\n%s", want, out.String())
		}
	}
	if code := run(t.Context(), []string{"postgres", "create-table", "-print", "postgres://u@h/db?table=Bad"}, &out, &errOut); code == 0 {
		t.Fatal("-print accepted a bad table name")
	}
	raw := os.Getenv("MCPTASKS_TEST_POSTGRES_URL")
	if raw == "" {
		if os.Getenv("MCPTASKS_TEST_REQUIRE") == "1" {
			t.Fatal("MCPTASKS_TEST_POSTGRES_URL is not set")
		}
		t.Skip("MCPTASKS_TEST_POSTGRES_URL is not set")
	}
	var r [6]byte
	rand.Read(r[:])
	table := "cmd_" + hex.EncodeToString(r[:])
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal("MCPTASKS_TEST_POSTGRES_URL does not parse")
	}
	q := u.Query()
	q.Set("table", table)
	u.RawQuery = q.Encode()
	if _, err := mcptasks.Open(t.Context(), u.String(), taskstore.Config{}); err == nil || !strings.Contains(err.Error(), "create-table") {
		t.Fatalf("Open before create-table: %v, want an error naming create-table", err)
	}
	for range 2 { // idempotent
		out.Reset()
		if code := run(t.Context(), []string{"postgres", "create-table", u.String()}, &out, &errOut); code != 0 {
			t.Fatalf("create-table exited %d: %s", code, errOut.String())
		}
		if !strings.Contains(out.String(), "table "+table) {
			t.Fatalf("output %q", out.String())
		}
	}
	s, err := mcptasks.Open(t.Context(), u.String(), taskstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Create(t.Context(), "alice", taskstore.CreateRequest{RequestMethod: "tools/call"}); err != nil {
		t.Fatalf("the created table does not store tasks: %v", err)
	}
	out.Reset()
	if code := run(t.Context(), []string{"postgres", "recount", u.String()}, &out, &errOut); code != 0 {
		t.Fatalf("recount exited %d: %s", code, errOut.String())
	}
	if want := "0 tasks had a stale status; the counts by status are recounted (schema public, table " + table + ")"; !strings.Contains(out.String(), want) {
		t.Fatalf("recount said %q, want %q", out.String(), want)
	}
	idx, ok := taskstore.NewRuntime(s).Backend().(taskstore.StatusIndex)
	if !ok {
		t.Fatal("the postgres backend is not a StatusIndex")
	}
	n, err := idx.CountByStatus(t.Context())
	if err != nil || n[taskstore.StatusWorking] != 1 || len(n) != 1 {
		t.Fatalf("counts after recount: %v, %v", n, err)
	}
}
