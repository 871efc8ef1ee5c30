//go:build redis

package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRedisLogLines: go-redis's own lines about an unreachable server
// (written to the process's stderr, hence the binary) come out in the
// command's log format, beside one prefixed error line.
func TestRedisLogLines(t *testing.T) {
	// Port 1 on loopback: refused at once, nothing listens there.
	cmd := exec.Command(serveBinary(t, "redis"), "serve", "--store", "redis://127.0.0.1:1/")
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Run(); cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != exitFailure {
		t.Fatalf("%v, want exit status %d; stderr:\n%s", err, exitFailure, errb.String())
	}
	var errorLines int
	for line := range strings.Lines(errb.String()) {
		switch {
		case strings.HasPrefix(line, "time=") && strings.Contains(line, "from=go-redis"):
		case strings.HasPrefix(line, "mcptasks serve: open redis store: "):
			errorLines++
		default:
			t.Errorf("a line neither logged nor prefixed: %q", line)
		}
	}
	if errorLines != 1 {
		t.Errorf("%d error lines, want 1:\n%s", errorLines, errb.String())
	}
}
