//go:build redis

package mcptasks

import (
	"fmt"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
	"github.com/mcptasks/mcptasks/taskstore/storetest"
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
		redisMaxOvershoot = 250 * time.Millisecond
	)
	bin := redisServerBinary(t)
	port := redisFreePort(t)
	durable := []string{"--appendonly", "yes", "--appendfsync", "always", "--dir", t.TempDir()}
	srv := startRedis(t, bin, port, durable...)

	before := goroutineKinds()
	b, err := OpenBackend(t.Context(), fmt.Sprintf("redis://127.0.0.1:%d?dial_timeout=200ms&pool_size=16&prefix=%s", port, redisRandomPrefix()))
	if err != nil {
		t.Fatal(err)
	}
	s := taskstore.New(b, taskstore.Config{MaxTasksPerOwner: -1})
	load := startFaultLoad(s, 8, deadline)

	time.Sleep(700 * time.Millisecond)
	srv.stop() // SIGKILL: no shutdown, no final fsync
	load.setPhase(phaseDown)
	time.Sleep(800 * time.Millisecond)

	startRedis(t, bin, port, durable...)
	recovery := waitServing(t, s, 5*time.Second)
	load.setPhase(phaseRestart)
	time.Sleep(700 * time.Millisecond)
	load.Stop()
	t.Log(load.summary())

	checked, lost := load.verifyAcked(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoGoroutineLeak(t, before, 5*time.Second)

	if load.panics != 0 {
		t.Errorf("%d calls panicked", load.panics)
	}
	if load.maxOvershoot > redisMaxOvershoot {
		t.Errorf("a %s call returned %v after its %v deadline (bound %v)", load.slowest, load.maxOvershoot, deadline, redisMaxOvershoot)
	}
	if load.ackedInPhase[phaseUp] == 0 || load.ackedInPhase[phaseRestart] == 0 {
		t.Errorf("the store did not serve under load before the kill and after the restart: %s", load.summary())
	}
	if load.failed[phaseDown] == 0 {
		t.Errorf("no call failed while the server was down: was it?")
	}
	t.Logf("recovered %v after the restart; %d acknowledged tasks read back, %d lost", recovery.Round(time.Millisecond), checked, lost)
	storetest.Report(t, "faults_injected", 1, "faults_survived", boolInt(!t.Failed()),
		"calls", load.calls[phaseUp]+load.calls[phaseDown]+load.calls[phaseRestart],
		"calls_failed_during_fault", load.failed[phaseDown],
		"max_overshoot_ms", load.maxOvershoot.Milliseconds(),
		"recovery_ms", recovery.Milliseconds(),
		"acked_writes_before_kill", load.ackedInPhase[phaseUp],
		"acked_writes", load.ackedInPhase[phaseUp]+load.ackedInPhase[phaseDown]+load.ackedInPhase[phaseRestart],
		"acked_tasks_checked", checked, "acked_writes_lost", lost)
}
