//go:build redis

package mcptasks

import (
	"fmt"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// TestRedisFaultUnderLoad kills -9 a Redis that runs with an fsync'd
// append-only file while 8 goroutines keep calling the store, keeps the
// load running while it is gone, and restarts it from the same directory.
// It checks that no call panics or outlives its deadline by more than
// redisMaxOvershoot, that the store serves again, that no write the store
// acknowledged is lost, and that closing the store leaves no goroutine.
func TestRedisFaultUnderLoad(t *testing.T) {
	const (
		deadline          = 500 * time.Millisecond
		redisMaxOvershoot = time.Second // generous: CI machines are small and loaded
	)
	bin := redisServerBinary(t)
	port := restartPort(t) // restarted on it
	durable := []string{"--appendonly", "yes", "--appendfsync", "always", "--dir", t.TempDir()}
	srv := startRedis(t, bin, port, durable...)

	before := goroutineKinds()
	b, err := OpenBackend(t.Context(), fmt.Sprintf("redis://127.0.0.1:%d?dial_timeout=200ms&pool_size=16&prefix=%s", port, redisRandomPrefix()))
	if err != nil {
		t.Fatal(err)
	}
	s := taskstore.New(b, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	load := startFaultLoad(s, 8, deadline)

	time.Sleep(700 * time.Millisecond)
	srv.stop() // SIGKILL: no shutdown, no final fsync
	load.setPhase(phaseDown)
	time.Sleep(800 * time.Millisecond)

	startRedis(t, bin, port, durable...)
	recovery := waitServing(t, s, 20*time.Second)
	load.setPhase(phaseRestart)
	time.Sleep(700 * time.Millisecond)
	load.Stop()
	t.Log(load.summary())

	load.finish(t, s, before, deadline, redisMaxOvershoot, recovery)
}
