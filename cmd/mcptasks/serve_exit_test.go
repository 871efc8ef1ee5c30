package main

import (
	"net"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The exit status and the signals of a real `mcptasks serve` process.

// waitExit waits for p to exit, at most within, and returns its status.
func waitExit(t *testing.T, p *replicaProc, within time.Duration) (code int, took time.Duration) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(within):
		t.Fatalf("serve did not exit within %v; logs:\n%s", within, p.logs)
	}
	return p.cmd.ProcessState.ExitCode(), time.Since(start)
}

// longTask starts a task that runs for two minutes.
func longTask(t *testing.T, url string) string {
	t.Helper()
	_, res := modernCall(t, url, "", "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 120}}, "slow_compute")
	if res["error"] != nil {
		t.Fatalf("tools/call: %s", res["error"])
	}
	return field[string](t, res["result"], "taskId")
}

func TestServeExitStatus(t *testing.T) {
	bin := serveBinary(t, "")
	t.Run("drained", func(t *testing.T) {
		p := startReplica(t, bin)
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code, _ := waitExit(t, p, 15*time.Second); code != exitOK {
			t.Errorf("exit status %d, want %d; logs:\n%s", code, exitOK, p.logs)
		}
	})
	t.Run("tasks failed", func(t *testing.T) {
		p := startReplica(t, bin, "--drain", "300ms")
		id := longTask(t, p.url)
		p.cmd.Process.Signal(syscall.SIGTERM)
		code, _ := waitExit(t, p, 15*time.Second)
		if code != exitTasksFailed {
			t.Errorf("exit status %d, want %d; logs:\n%s", code, exitTasksFailed, p.logs)
		}
		logs := p.logs.String()
		want := "\nmcptasks serve: 1 running tasks failed at shutdown: context deadline exceeded (--drain 300ms ran out)\n"
		if !strings.Contains(logs, want) || !strings.Contains(logs, id) {
			t.Errorf("logs lack %q or the task:\n%s", want, logs)
		}
	})
}

// TestServeSecondSignal: a second signal during the drain ends it at once.
func TestServeSecondSignal(t *testing.T) {
	bin := serveBinary(t, "")
	for _, sigs := range [][2]syscall.Signal{{syscall.SIGTERM, syscall.SIGINT}, {syscall.SIGINT, syscall.SIGINT}} {
		t.Run(sigs[0].String()+" then "+sigs[1].String(), func(t *testing.T) {
			p := startReplica(t, bin, "--drain", "1m")
			longTask(t, p.url)
			p.cmd.Process.Signal(sigs[0])
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.logs.String(), "shutting down: draining"); {
				if time.Now().After(deadline) {
					t.Fatalf("serve did not start draining; logs:\n%s", p.logs)
				}
				time.Sleep(10 * time.Millisecond)
			}
			p.cmd.Process.Signal(sigs[1])
			// The failures are written within the router's grace (2 s).
			code, took := waitExit(t, p, 10*time.Second)
			if code != exitTasksFailed {
				t.Errorf("exit status %d, want %d; logs:\n%s", code, exitTasksFailed, p.logs)
			}
			if !strings.Contains(p.logs.String(), "(a second signal ended the drain)") {
				t.Errorf("logs do not say why:\n%s", p.logs)
			}
			t.Logf("exited %v after the second signal", took.Round(time.Millisecond))
		})
	}
}

func TestVersionBinary(t *testing.T) {
	out, err := exec.Command(serveBinary(t, ""), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^mcptasks (\(devel\)|v\S+)\nbackends: memory\n$`)
	if !re.Match(out) {
		t.Errorf("version printed %q, want it to match %s", out, re)
	}
}

// TestListenWarning: serve warns when it listens beyond loopback without
// tokens. Tests bind loopback only, so the decision is tested alone.
func TestListenWarning(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"0.0.0.0", true}, // --addr 0.0.0.0:80
		{"::", true},      // --addr :80
		{"192.0.2.7", true},
		{"2001:db8::1", true},
		{"127.0.0.1", false},
		{"127.0.0.2", false},
		{"::1", false},
	} {
		if got := beyondLoopback(&net.TCPAddr{IP: net.ParseIP(tc.ip), Port: 80}); got != tc.want {
			t.Errorf("beyondLoopback(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	_, logs, stop := startServe(t)
	stop()
	if strings.Contains(logs.String(), "beyond loopback") {
		t.Errorf("serve on loopback warned:\n%s", logs)
	}
}
