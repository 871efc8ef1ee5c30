//go:build redis

package faultproxy

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisOptions parses MCPTASKS_TEST_REDIS_URL (a standalone Redis, as
// scripts/redis_up.sh starts), or skips (fails under
// MCPTASKS_TEST_REQUIRE=1).
func redisOptions(t *testing.T) *redis.Options {
	t.Helper()
	u := os.Getenv("MCPTASKS_TEST_REDIS_URL")
	if u == "" {
		if os.Getenv("MCPTASKS_TEST_REQUIRE") == "1" {
			t.Fatal("MCPTASKS_TEST_REDIS_URL is not set and MCPTASKS_TEST_REQUIRE=1")
		}
		t.Skip("MCPTASKS_TEST_REDIS_URL is not set: skipping (scripts/redis_up.sh starts a server)")
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("MCPTASKS_TEST_REDIS_URL: %v", err)
	}
	return opt
}

// A real Redis behind the proxy: while partitioned its commands time out
// (the client's own read timeout), a command sent during the partition is
// held and answered after Heal, and Reset ends a blocked command at once.
func TestRedisBehindProxy(t *testing.T) {
	direct := redisOptions(t)
	p := newProxy(t, direct.Addr)
	viaOpt := *direct
	viaOpt.Addr = p.Addr()
	viaOpt.MaxRetries = -1
	viaOpt.ReadTimeout = 300 * time.Millisecond
	via := redis.NewClient(&viaOpt)
	defer via.Close()
	straight := redis.NewClient(direct)
	defer straight.Close()
	ctx := t.Context()
	key := "faultproxy-test:" + time.Now().Format(time.RFC3339Nano)
	defer straight.Del(ctx, key, key+":list")

	if err := via.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING through the proxy: %v", err)
	}

	t.Run("times out while partitioned", func(t *testing.T) {
		p.Partition()
		err := via.Ping(ctx).Err()
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("PING during a partition: %v, want the client's timeout", err)
		}
		p.Heal()
		if err := via.Ping(ctx).Err(); err != nil {
			t.Fatalf("PING after Heal: %v", err)
		}
	})

	t.Run("held until Heal", func(t *testing.T) {
		patient := viaOpt
		patient.ReadTimeout = time.Minute
		c := redis.NewClient(&patient)
		defer c.Close()
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		p.Partition()
		done := make(chan error, 1)
		go func() { done <- c.Set(ctx, key, "held", 0).Err() }()
		select {
		case err := <-done:
			t.Fatalf("SET answered during a partition: %v", err)
		case <-time.After(quiet):
		}
		if n, err := straight.Exists(ctx, key).Result(); err != nil || n != 0 {
			t.Fatalf("the key exists (%d, %v) before Heal: the SET went through", n, err)
		}
		p.Heal()
		if err := <-done; err != nil {
			t.Fatalf("SET after Heal: %v", err)
		}
		if v, err := straight.Get(ctx, key).Result(); err != nil || v != "held" {
			t.Fatalf("GET %q, %v; want the held SET's value", v, err)
		}
	})

	t.Run("Reset ends a blocked command", func(t *testing.T) {
		patient := viaOpt
		patient.ReadTimeout = time.Minute
		c := redis.NewClient(&patient)
		defer c.Close()
		done := make(chan error, 1)
		go func() { done <- c.BLPop(ctx, 30*time.Second, key+":list").Err() }()
		// Wait until Redis has the BLPOP blocked, then reset.
		for deadline := time.Now().Add(10 * time.Second); ; {
			n, err := straight.ClientList(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(n, "cmd=blpop") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the BLPOP never reached Redis")
			}
			time.Sleep(10 * time.Millisecond)
		}
		resets := p.Stats().Resets
		p.Reset()
		select {
		case err := <-done:
			if err == nil || errors.Is(err, redis.Nil) {
				t.Fatalf("BLPOP after Reset: %v, want a connection error", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("BLPOP still blocked 20 s after Reset")
		}
		if got := p.Stats().Resets; got != resets+1 {
			t.Fatalf("Resets %d, want %d", got, resets+1)
		}
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatalf("PING after Reset: %v", err)
		}
	})

	t.Run("store down", func(t *testing.T) {
		// A proxy to a port where nothing listens stands for a store that
		// is restarting: the client's command fails at once with EOF.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		down := ln.Addr().String()
		ln.Close()
		dp := newProxy(t, down)
		o := viaOpt
		o.Addr = dp.Addr()
		o.ReadTimeout = time.Minute
		c := redis.NewClient(&o)
		defer c.Close()
		err = c.Ping(ctx).Err()
		if !errors.Is(err, io.EOF) {
			t.Fatalf("PING to a store that is down: %v, want EOF", err)
		}
	})
}
