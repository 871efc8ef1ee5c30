package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The command as a real process: built once per tag set by serveBinary,
// started by startReplica. The replica tests that need a shared store's
// server are in replicas_process_test.go.

var (
	binMu    sync.Mutex
	binCache = map[string]string{}
)

// TestMain removes the binaries serveBinary built.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, p := range binCache {
		os.RemoveAll(filepath.Dir(p))
	}
	os.Exit(code)
}

// serveBinary builds cmd/mcptasks with tags, once per test binary.
func serveBinary(t testing.TB, tags string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if p, ok := binCache[tags]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "mcptasks-bin-")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "mcptasks")
	out, err := exec.Command("go", "build", "-tags", tags, "-o", p, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -tags %s: %v\n%s", tags, err, out)
	}
	binCache[tags] = p
	return p
}

type replicaProc struct {
	cmd     *exec.Cmd
	url     string
	metrics string // host:port of /metrics, with --metrics-addr
	admin   string // the admin page's URL, with --admin-token
	logs    *syncBuffer
}

// startReplica starts `mcptasks serve` as a process and waits for its address.
func startReplica(t testing.TB, bin string, args ...string) *replicaProc {
	t.Helper()
	return startReplicaCmd(t, exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--drain", "1s"}, args...)...))
}

// startReplicaCmd is startReplica for a serve command the caller made
// (such as one run in a network namespace by netlab_linux_test.go).
func startReplicaCmd(t testing.TB, cmd *exec.Cmd) *replicaProc {
	t.Helper()
	logs := &syncBuffer{}
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &replicaProc{cmd: cmd, logs: logs}
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Kill()
		p.cmd.Wait()
	})
	re := regexp.MustCompile(`on (http://\S+/mcp), store `)
	metricsRe := regexp.MustCompile(`metrics on http://(\S+)/metrics`) // printed before the MCP line
	adminRe := regexp.MustCompile(`admin page on (http://\S+/admin/)`) // so is this
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := metricsRe.FindStringSubmatch(sc.Text()); m != nil {
				p.metrics = m[1]
			}
			if m := adminRe.FindStringSubmatch(sc.Text()); m != nil {
				p.admin = m[1]
			}
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case p.url = <-found:
	case <-time.After(30 * time.Second):
		t.Fatalf("replica printed no address; logs:\n%s", logs)
	}
	return p
}
