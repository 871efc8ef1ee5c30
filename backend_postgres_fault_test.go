//go:build postgres

package mcptasks

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/internal/taskid"
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
	// Closed by finish; this covers a test that stops early, so that its
	// pool's goroutines do not outlive it into the next test's leak check.
	t.Cleanup(func() { b.Close() })
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

// TestPostgresFeedLoss: when the server dies, every Subscribe on the
// backend returns an ErrBackend (the feed is lost, the caller polls);
// after the restart a new Subscribe connects again, starts with a Resync
// and delivers changes.
func TestPostgresFeedLoss(t *testing.T) {
	postgresTestURL(t) // runs where the other PostgreSQL tests run
	srv := startPostgres(t, nil)
	b, err := OpenBackend(t.Context(), pgWithOptions(srv.url, "create_table=true", "connect_timeout=1"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	n := b.(taskstore.Notifier)
	subscribe := func() (<-chan taskstore.Change, <-chan error) {
		changes, errc := make(chan taskstore.Change, 16), make(chan error, 1)
		go func() { errc <- n.Subscribe(t.Context(), func(c taskstore.Change) { changes <- c }) }()
		select {
		case c := <-changes:
			if !c.Resync {
				t.Fatalf("first change %+v, want a Resync", c)
			}
		case err := <-errc:
			t.Fatalf("Subscribe ended before its Resync: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no Resync within 10 s")
		}
		return changes, errc
	}
	_, errc1 := subscribe()
	_, errc2 := subscribe() // a second subscriber shares the connection
	srv.kill(t)
	for i, errc := range []<-chan error{errc1, errc2} {
		select {
		case err := <-errc:
			if !errors.Is(err, taskstore.ErrBackend) {
				t.Fatalf("subscriber %d ended with %v, want ErrBackend", i, err)
			}
			t.Logf("subscriber %d: %v", i, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("subscriber %d did not learn of the lost feed within 10 s", i)
		}
	}
	startPostgres(t, srv)
	var changes <-chan taskstore.Change
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		c, errc := make(chan taskstore.Change, 16), make(chan error, 1)
		go func() { errc <- n.Subscribe(t.Context(), func(ch taskstore.Change) { c <- ch }) }()
		select {
		case first := <-c:
			if !first.Resync {
				t.Fatalf("first change after the restart %+v, want a Resync", first)
			}
			changes = c
		case err := <-errc:
			if time.Now().After(deadline) {
				t.Fatalf("no feed 20 s after the restart: %v", err)
			}
			continue
		}
		break
	}
	r := taskstore.Record{Owner: "alice", TaskID: taskid.New(time.Now()), Data: []byte(`{}`), Active: true}
	if err := b.Create(t.Context(), r, taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-changes:
		if c != (taskstore.Change{Owner: "alice", TaskID: r.TaskID, Version: 1}) {
			t.Fatalf("change %+v", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no change within 10 s of a create after the restart")
	}
}
