//go:build redis

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/internal/restartport"
)

// TestRobustnessRedis runs the robustness test (robustness_test.go) on a
// standalone Redis the test starts with an fsync'd append-only file
// (--appendonly yes --appendfsync always), killed with SIGKILL and
// restarted on the same port from the same directory.
func TestRobustnessRedis(t *testing.T) {
	store := startRobustRedis(t)
	out := runRobustness(t, store, robustSettings(t, store))
	requireClean(t, out)
}

// TestRobustnessSelftestRedis: the checker can fail. The replicas are
// built with the tag mcptasks_selftest and MCPTASKS_SELFTEST_BREAK turns
// one guarantee off; the run must report that invariant's violation.
func TestRobustnessSelftestRedis(t *testing.T) {
	testRobustnessSelftest(t, func(t *testing.T) robustStore { return startRobustRedis(t) })
}

// robustRedis is a redis-server process the test owns.
type robustRedis struct {
	bin, dir string
	port     int
	prefix   string

	// proxies[i] is replica i's way to the server (partitions).
	replicaProxies

	mu     sync.Mutex
	proc   *os.Process
	exited chan error
}

func startRobustRedis(t *testing.T) *robustRedis {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("MCPTASKS_TEST_REQUIRE") == "1" {
			t.Fatalf("redis-server is not installed (apt-get install redis-server): %v", err)
		}
		t.Skipf("redis-server is not installed: %v", err)
	}
	r := &robustRedis{bin: bin, dir: t.TempDir(), port: restartport.Pick(t), prefix: "robust-" + randomSuffix() + ":"}
	if err := r.RestartStore(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.KillStore() })
	r.replicaProxies = startProxies(t, fmt.Sprintf("127.0.0.1:%d", r.port))
	return r
}

func (r *robustRedis) Name() string { return "redis" }
func (r *robustRedis) Tags() string { return "redis" }

func (r *robustRedis) StoreURL(i int) string {
	return fmt.Sprintf("redis://%s?prefix=%s", r.replicaProxies[i].Addr(), r.prefix)
}

func (r *robustRedis) KillStore() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return nil
	}
	err := r.proc.Kill()
	<-r.exited
	r.proc = nil
	return err
}

// RestartStore starts redis-server on its port from its directory and
// waits until it accepts connections (a port just freed may take a few
// tries to bind again).
func (r *robustRedis) RestartStore() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	log := filepath.Join(r.dir, "redis.log")
	var lastErr error
	for range 20 {
		cmd := exec.Command(r.bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(r.port), "--save", "",
			"--appendonly", "yes", "--appendfsync", "always", "--dir", r.dir, "--logfile", log)
		if err := cmd.Start(); err != nil {
			return err
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if lastErr = waitListen(fmt.Sprintf("127.0.0.1:%d", r.port), exited, 10*time.Second); lastErr == nil {
			r.proc, r.exited = cmd.Process, exited
			return nil
		}
		cmd.Process.Kill()
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on port %d: %v (log %s)", r.port, lastErr, log)
}
