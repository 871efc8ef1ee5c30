package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
)

func TestBenchReportsEveryOperation(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"bench", "-duration", "50ms", "-callers", "1,3", "-list-size", "60"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("bench exited %d: %s", code, errOut.String())
	}
	for _, op := range benchOps {
		for _, callers := range []string{"1", "3"} {
			found := false
			for _, line := range strings.Split(out.String(), "\n") {
				f := strings.Fields(line)
				if len(f) == 8 && f[0] == op && f[1] == callers {
					found = true
					if f[5] != "0" || f[2] == "0" || f[6] == "0" || f[7] == "0" {
						t.Errorf("row %q: want throughput, a floor, a ratio and no errors", line)
					}
				}
			}
			if !found {
				t.Errorf("no row for %s with %s callers:\n%s", op, callers, out.String())
			}
		}
	}
}

func TestBenchRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "-ops", "get,explode"},
		{"bench", "-callers", "0"},
		{"bench", "-store", "nope://"},
		{"bench", "-list-size", "0"},
	} {
		var out, errOut bytes.Buffer
		if code := run(t.Context(), args, &out, &errOut); code == 0 {
			t.Errorf("%v succeeded", args)
		}
	}
}

// TestDynamoDBCreateTable creates a table on DynamoDB Local when the binary
// has the backend, and otherwise checks that the error names the tag.
func TestDynamoDBCreateTable(t *testing.T) {
	var out, errOut bytes.Buffer
	if !slices.Contains(mcptasks.Backends(), "dynamodb") {
		code := run(t.Context(), []string{"dynamodb", "create-table", "dynamodb://t"}, &out, &errOut)
		if code == 0 || !strings.Contains(errOut.String(), "-tags dynamodb") {
			t.Fatalf("exit %d, stderr %q: want an error naming -tags dynamodb", code, errOut.String())
		}
		return
	}
	endpoint := os.Getenv("MCPTASKS_TEST_DYNAMODB_ENDPOINT")
	if endpoint == "" {
		if os.Getenv("MCPTASKS_TEST_REQUIRE") == "1" {
			t.Fatal("MCPTASKS_TEST_DYNAMODB_ENDPOINT is not set")
		}
		t.Skip("MCPTASKS_TEST_DYNAMODB_ENDPOINT is not set")
	}
	table := fmt.Sprintf("mcptasks_cmd_%d", time.Now().UnixNano())
	u := fmt.Sprintf("dynamodb://%s?endpoint=%s&region=us-east-1", table, endpoint)
	for range 2 { // idempotent
		out.Reset()
		if code := run(t.Context(), []string{"dynamodb", "create-table", u}, &out, &errOut); code != 0 {
			t.Fatalf("create-table exited %d: %s", code, errOut.String())
		}
		if !strings.Contains(out.String(), table+" is ready") {
			t.Fatalf("output %q", out.String())
		}
	}
	s, err := mcptasks.Open(t.Context(), u, taskstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Create(t.Context(), "alice", taskstore.CreateRequest{RequestMethod: "tools/call"}); err != nil {
		t.Fatalf("the created table does not store tasks: %v", err)
	}
}
