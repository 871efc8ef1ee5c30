package main

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readmeBlock is the fenced code block that follows marker in the README.
func readmeBlock(t *testing.T, readme, marker string) string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, marker)
	if !ok {
		t.Fatalf("README.md lacks %q", marker)
	}
	_, rest, ok = strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("no code block after %q", marker)
	}
	_, rest, _ = strings.Cut(rest, "\n") // the info string
	body, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("unterminated code block after %q", marker)
	}
	return body
}

// readmeForScripts is the README, once the tools its shell blocks use are
// known to be installed: without them the test skips, or fails when
// MCPTASKS_TEST_REQUIRE=1.
func readmeForScripts(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "sed", "tr", "tee"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("MCPTASKS_TEST_REQUIRE") == "1" {
				t.Fatalf("%s is not installed and MCPTASKS_TEST_REQUIRE=1", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// runREADMEScript runs a README shell block with bash -euo pipefail in a
// fresh directory and fails unless it succeeds silently on stderr and
// prints what the README's output block (want) shows, ids and timestamps
// aside.
func runREADMEScript(t *testing.T, name, script, want string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", name, err, &stdout, &stderr)
	}
	if stderr.Len() > 0 {
		t.Errorf("%s wrote to stderr:\n%s", name, &stderr)
	}
	if diff := cmp.Diff(normalizeWalkthrough(want), normalizeWalkthrough(stdout.String())); diff != "" {
		t.Errorf("the README's output block is not what the %s prints (-README +real):\n%s\nreal output:\n%s", name, diff, &stdout)
	}
}

// What differs between runs: ids, session ids, timestamps.
var walkthroughVolatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`[0-9a-f]{16}-[0-9a-f]{32}`), "TASK-ID"},
	{regexp.MustCompile(`(?m)^Mcp-Session-Id: \S+$`), "Mcp-Session-Id: SESSION-ID"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`), "TIMESTAMP"},
}

func normalizeWalkthrough(s string) string {
	for _, v := range walkthroughVolatile {
		s = v.re.ReplaceAllString(s, v.with)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		lines = append(lines, strings.TrimRight(l, " \r"))
	}
	return strings.Join(lines, "\n")
}

// TestREADMECurlWalkthrough runs the README's curl round trip, exactly as
// written (only the address is this test's serve), and compares what it
// prints with the output the README shows.
func TestREADMECurlWalkthrough(t *testing.T) {
	runWalkthrough(t, "curl-walkthrough")
}

// TestREADMEInputWalkthrough runs the README's curl client that answers a
// task's question through tasks/result.
func TestREADMEInputWalkthrough(t *testing.T) {
	runWalkthrough(t, "input-walkthrough")
}

// runWalkthrough runs the README block "<!-- name: commands -->" against a
// serve of this test and compares its output with "<!-- name: output -->".
func runWalkthrough(t *testing.T, name string) {
	readme := readmeForScripts(t)
	commands := readmeBlock(t, readme, "<!-- "+name+": commands -->")
	want := readmeBlock(t, readme, "<!-- "+name+": output -->")

	url, _, _ := startServe(t)
	const readmeURL = "http://127.0.0.1:8080/mcp"
	if !strings.Contains(commands, "MCP="+readmeURL+"\n") {
		t.Fatalf("the walkthrough no longer starts with MCP=%s", readmeURL)
	}
	script := strings.Replace(commands, "MCP="+readmeURL+"\n", "MCP="+url+"\n", 1)
	runREADMEScript(t, name, script, want)
}
