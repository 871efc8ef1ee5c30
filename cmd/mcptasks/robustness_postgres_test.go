//go:build postgres

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/internal/restartport"
)

// TestRobustnessPostgres runs the robustness test (robustness_test.go) on
// a PostgreSQL cluster the test creates (initdb) in its own temporary
// directory, with fsync and synchronous_commit on, killed with SIGKILL
// (the postmaster and its backends, as a crash) and restarted on the same
// port from the same data directory, which runs crash recovery. Each
// replica reaches it through a fault proxy of its own, so a partition cuts
// one replica off the store while clients still reach that replica.
func TestRobustnessPostgres(t *testing.T) {
	store := startRobustPostgres(t)
	out := runRobustness(t, store, robustSettings(t, store))
	requireClean(t, out)
}

// TestRobustnessSelftestPostgres: the checker sees a broken guarantee on
// PostgreSQL too (robustness_test.go's testRobustnessSelftest).
func TestRobustnessSelftestPostgres(t *testing.T) {
	testRobustnessSelftest(t, func(t *testing.T) robustStore { return startRobustPostgres(t) })
}

// robustPostgres is a postgres server (postmaster) the test owns.
type robustPostgres struct {
	bin, data, log string
	port           int
	table          string
	// cred runs initdb and postgres as the user postgres when the test
	// runs as root (PostgreSQL refuses root); nil otherwise.
	cred *syscall.Credential

	// replicaProxies[i] is replica i's way to the server (partitions).
	replicaProxies

	mu     sync.Mutex
	proc   *os.Process
	exited chan struct{} // closed once proc is reaped
}

// postgresBin finds Debian's /usr/lib/postgresql/<version>/bin, as
// scripts/postgres_up.sh does (MCPTASKS_PG_VERSION, else 15, else the
// newest installed).
func postgresBin() (string, error) {
	versions := []string{"15"}
	if v := os.Getenv("MCPTASKS_PG_VERSION"); v != "" {
		versions = []string{v}
	} else if entries, err := os.ReadDir("/usr/lib/postgresql"); err == nil {
		var more []string
		for _, e := range entries {
			more = append(more, e.Name())
		}
		sort.Sort(sort.Reverse(sort.StringSlice(more)))
		versions = append(versions, more...)
	}
	for _, v := range versions {
		bin := filepath.Join("/usr/lib/postgresql", v, "bin")
		if _, err := os.Stat(filepath.Join(bin, "initdb")); err == nil {
			return bin, nil
		}
	}
	return "", fmt.Errorf("no initdb under /usr/lib/postgresql/%v/bin (apt-get install postgresql)", versions)
}

func startRobustPostgres(t *testing.T) *robustPostgres {
	bin, err := postgresBin()
	if err != nil {
		if os.Getenv("MCPTASKS_TEST_REQUIRE") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	p := &robustPostgres{bin: bin, data: filepath.Join(dir, "db"), log: filepath.Join(dir, "postgres.log"),
		port: restartport.Pick(t), table: "robust_" + randomSuffix()}
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the user postgres (Debian's postgresql makes it): %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// t.TempDir and its parent are root's, mode 0700: let postgres
		// through to its own directory.
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", p.data, "-U", "mcptasks", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	if err := p.RestartStore(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.KillStore() })
	p.replicaProxies = startProxies(t, fmt.Sprintf("127.0.0.1:%d", p.port))
	return p
}

func (p *robustPostgres) Name() string { return "postgres" }
func (p *robustPostgres) Tags() string { return "postgres" }

func (p *robustPostgres) StoreURL(i int) string {
	return fmt.Sprintf("postgres://mcptasks@%s/postgres?sslmode=disable&table=%s&create_table=true", p.replicaProxies[i].Addr(), p.table)
}

// KillStore kills the postmaster and its backends (its process group)
// with SIGKILL, as a crash of the server's machine would, and waits until
// every one of them is gone (a backend left holding the shared memory
// makes the restart refuse).
func (p *robustPostgres) KillStore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return nil
	}
	err := syscall.Kill(-p.proc.Pid, syscall.SIGKILL)
	<-p.exited
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(-p.proc.Pid, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			err = errors.Join(err, fmt.Errorf("postgres backends outlived SIGKILL for 10 s"))
			break
		}
	}
	p.proc = nil
	return err
}

// RestartStore starts the postmaster on its port from its data directory
// (crash recovery after a kill) and waits until it accepts queries.
func (p *robustPostgres) RestartStore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var lastErr error
	for range 20 {
		logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		cmd := exec.Command(filepath.Join(p.bin, "postgres"), "-D", p.data, "-p", strconv.Itoa(p.port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
			"-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "max_connections=200")
		cmd.Stdout, cmd.Stderr = logf, logf
		// A group of its own: the kill reaches the backends too.
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Setpgid: true}
		err = cmd.Start()
		logf.Close()
		if err != nil {
			return err
		}
		exited, exitErr := make(chan struct{}), make(chan error, 1)
		go func() {
			exitErr <- cmd.Wait()
			close(exited)
		}()
		if lastErr = p.waitReady(exited, exitErr, 60*time.Second); lastErr == nil {
			p.proc, p.exited = cmd.Process, exited
			return nil
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("postgres on port %d: %v (log %s)", p.port, lastErr, p.log)
}

// waitReady waits until the server listens, then until it accepts
// queries (pg_isready: recovery done), the process ends, or within passes.
func (p *robustPostgres) waitReady(exited <-chan struct{}, exitErr <-chan error, within time.Duration) error {
	deadline := time.Now().Add(within)
	if err := waitListen(fmt.Sprintf("127.0.0.1:%d", p.port), exitErr, within); err != nil {
		return err
	}
	for ; time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-exited:
			return errors.New("exited")
		default:
		}
		ready := exec.Command(filepath.Join(p.bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(p.port), "-U", "mcptasks", "-d", "postgres", "-t", "1")
		if ready.Run() == nil {
			return nil
		}
	}
	return fmt.Errorf("not ready on port %d within %s", p.port, within)
}
