//go:build redis

package mcptasks

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

// TestRedisWaitReplicas runs a master and one replica of its own and opens
// the store with wait_replicas=1. Every write is followed by exactly one
// WAIT on the master (INFO commandstats) and is on the replica when it is
// acknowledged; reads send none. With the replica frozen, writes fail with
// ErrNotDurable (also an ErrBackend) after wait_timeout, saying the write
// may have applied, which it did; reads keep working. wait_replicas=2 with
// one replica fails every write the same way.
func TestRedisWaitReplicas(t *testing.T) {
	const waitTimeout = 300 * time.Millisecond
	bin := redisServerBinary(t)
	mport, rport := redisFreePort(t), redisFreePort(t)
	startRedis(t, bin, mport)
	replica := startRedis(t, bin, rport, "--replicaof", "127.0.0.1", strconv.Itoa(mport))
	ctx := t.Context()
	admin := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", mport), DisableIdentity: true})
	defer admin.Close()
	onReplica := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", rport), DisableIdentity: true})
	defer onReplica.Close()
	if _, ok := waitUntil(t, 10*time.Second, func() bool {
		info, err := admin.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "state=online")
	}); !ok {
		t.Fatal("the replica did not sync within 10s")
	}

	open := func(replicas int) *redisBackend {
		b, err := OpenBackend(ctx, fmt.Sprintf("redis://127.0.0.1:%d?wait_replicas=%d&wait_timeout=%v&prefix=%s", mport, replicas, waitTimeout, redisRandomPrefix()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b.(*redisBackend)
	}
	waits := func() int64 {
		t.Helper()
		st, err := redisCommandStats(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		return st["wait"].calls
	}
	b := open(1)
	owner := "alice"
	newRec := func() taskstore.Record {
		return taskstore.Record{Owner: owner, TaskID: taskid.New(time.Now()), Data: []byte(`{"n":1}`), ExpiresAt: time.Now().Add(time.Hour)}
	}

	// In sync means confirming writes (the replica may still be loading
	// what INFO already calls online).
	if _, ok := waitUntil(t, 10*time.Second, func() bool { return b.Create(ctx, newRec(), taskstore.Limits{}) == nil }); !ok {
		t.Fatal("no write was confirmed by the replica within 10s")
	}

	// Each write: one WAIT, and the replica has it once acknowledged.
	r := newRec()
	recKey, _, _, _ := b.keys(owner, r.TaskID)
	writes := []struct {
		name  string
		write func() error
		want  string // the value's start on the replica right after; "" gone
	}{
		{"Create", func() error { return b.Create(ctx, r, taskstore.Limits{}) }, "1:"},
		{"Update", func() error {
			_, err := b.Update(ctx, taskstore.Record{Owner: owner, TaskID: r.TaskID, Data: []byte(`{"n":2}`)}, 1)
			return err
		}, "2:"},
		{"Delete", func() error { _, err := b.Delete(ctx, owner, r.TaskID); return err }, ""},
	}
	for _, w := range writes {
		before := waits()
		if err := w.write(); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		if n := waits() - before; n != 1 {
			t.Errorf("%s sent %d WAITs, want 1", w.name, n)
		}
		got, err := onReplica.Get(ctx, recKey).Result()
		switch {
		case w.want == "" && !errors.Is(err, redis.Nil):
			t.Errorf("after %s the replica still has the record: %q, %v", w.name, got, err)
		case w.want != "" && (err != nil || !strings.HasPrefix(got, w.want)):
			t.Errorf("after %s the replica has %q, %v; want it to start with %q", w.name, got, err, w.want)
		}
	}
	reads := func() error {
		if _, err := b.Get(ctx, owner, r.TaskID); !errors.Is(err, taskstore.ErrNotFound) {
			return fmt.Errorf("Get: %v", err)
		}
		if _, _, err := b.List(ctx, owner, "", 10); err != nil {
			return fmt.Errorf("List: %v", err)
		}
		if _, err := b.DeleteExpired(ctx); err != nil {
			return fmt.Errorf("DeleteExpired: %v", err)
		}
		return nil
	}
	before := waits()
	if err := reads(); err != nil {
		t.Fatal(err)
	}
	if n := waits() - before; n != 0 {
		t.Errorf("reads sent %d WAITs, want none", n)
	}

	// notDurable checks a write that too few replicas confirmed.
	notDurable := func(what string, b *redisBackend) {
		t.Helper()
		r := newRec()
		start := time.Now()
		err := b.Create(ctx, r, taskstore.Limits{})
		took := time.Since(start)
		if !errors.Is(err, taskstore.ErrNotDurable) || !errors.Is(err, taskstore.ErrBackend) || !strings.Contains(err.Error(), "may have applied") {
			t.Fatalf("Create with %s: %v; want ErrNotDurable saying the write may have applied", what, err)
		}
		if took < waitTimeout {
			t.Errorf("Create with %s failed after %v, before wait_timeout %v", what, took, waitTimeout)
		}
		t.Logf("Create with %s: %v (after %v)", what, err, took.Round(time.Millisecond))
		if got, err := b.Get(ctx, owner, r.TaskID); err != nil || got.Version != 1 {
			t.Errorf("the write that was not confirmed durable did not apply: %+v, %v", got, err)
		}
	}
	notDurable("wait_replicas=2 and one replica", open(2))

	if err := replica.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	notDurable("the replica frozen", b)
	if err := reads(); err != nil {
		t.Fatalf("reads with the replica frozen: %v", err)
	}
	if err := replica.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if _, ok := waitUntil(t, 10*time.Second, func() bool { return b.Create(ctx, newRec(), taskstore.Limits{}) == nil }); !ok {
		t.Fatal("writes did not become durable again within 10s of the replica going on")
	}
}
