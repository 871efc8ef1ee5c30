//go:build postgres

package mcptasks

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// pgServer is a PostgreSQL of a test's own, run by scripts/postgres_up.sh
// in dir (fsync and synchronous_commit on).
type pgServer struct {
	dir, url, data string
}

// startPostgres starts (or, after a kill, restarts on the same data and
// port) the test's own server; t.Cleanup stops it and removes its data.
func startPostgres(t *testing.T, srv *pgServer) *pgServer {
	t.Helper()
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	if srv == nil {
		srv = &pgServer{dir: t.TempDir()}
		t.Cleanup(func() { exec.Command(filepath.Join(root, "scripts", "postgres_down.sh"), srv.dir).Run() })
	}
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(root, "scripts", "postgres_up.sh"), srv.dir)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("postgres_up.sh: %v\n%s", err, stderr.String())
	}
	_, url, ok := strings.Cut(strings.TrimSpace(string(out)), "MCPTASKS_TEST_POSTGRES_URL=")
	if !ok {
		t.Fatalf("postgres_up.sh printed %q", out)
	}
	srv.url = url
	state, err := os.ReadFile(filepath.Join(srv.dir, "postgres.env"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(state))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PG_DATA="); ok {
			srv.data = strings.Trim(v, "'")
		}
	}
	return srv
}

// kill sends SIGKILL to the server's whole process group (pg_ctl makes
// the postmaster a session leader, so the group is the postmaster and
// every backend) and waits until the postmaster is gone.
func (s *pgServer) kill(t *testing.T) {
	t.Helper()
	pidFile, err := os.ReadFile(filepath.Join(s.data, "db", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	if err != nil || pid <= 1 {
		t.Fatalf("postmaster.pid: %q", pidFile)
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 -%d: %v", pid, err)
	}
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the postmaster outlived SIGKILL for 10s")
		}
	}
}

// TestPostgresFaultUnderLoad kills -9 the whole PostgreSQL (postmaster and
// backends) while 8 goroutines keep calling the store, keeps the load
// running while it is gone, and restarts it on the same data directory,
// which runs crash recovery from the WAL. With synchronous_commit on, a
// commit is acknowledged only once its WAL is flushed, so no acknowledged
// write may be lost. It also checks that no call panics or outlives its
// deadline by more than pgMaxOvershoot, that the store serves again, and
// that closing the store leaves no goroutine.
func TestPostgresFaultUnderLoad(t *testing.T) {
	const (
		deadline       = time.Second
		pgMaxOvershoot = time.Second // generous: CI machines are small and loaded
	)
	postgresTestURL(t) // runs where the other PostgreSQL tests run
	srv := startPostgres(t, nil)
	var sync string
	before := goroutineKinds()
	b, err := OpenBackend(t.Context(), pgWithOptions(srv.url, "create_table=true", "pool_max_conns=16", "connect_timeout=1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.(*postgresBackend).pool.QueryRow(t.Context(), "SHOW synchronous_commit").Scan(&sync); err != nil || sync != "on" {
		t.Fatalf("synchronous_commit = %q, %v; want on", sync, err)
	}
	s := taskstore.New(b, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	load := startFaultLoad(s, 8, deadline)

	time.Sleep(time.Second)
	srv.kill(t)
	load.setPhase(phaseDown)
	time.Sleep(time.Second)

	startPostgres(t, srv)
	recovery := waitServing(t, s, 30*time.Second)
	load.setPhase(phaseRestart)
	time.Sleep(time.Second)
	load.Stop()
	t.Log(load.summary())

	load.finish(t, s, before, deadline, pgMaxOvershoot, recovery)
}
