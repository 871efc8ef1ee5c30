//go:build redis

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/redis/go-redis/v9"
)

// go-redis prints lines of its own to stderr ("redis: 2026/01/02 15:04:05
// pool.go:770: …"), next to the command's one-line error with the same
// cause; they go to the command's log instead, so that its news (a
// Sentinel failover, say) stays visible in the command's format.
func init() { redis.SetLogger(redisLog{}) }

type redisLog struct{}

func (redisLog) Printf(_ context.Context, format string, v ...any) {
	commandLog().Warn(fmt.Sprintf(format, v...), "from", "go-redis")
}

// commandLog is cmdLog, or a stderr logger before serve has set one (a
// subcommand that does not serve).
func commandLog() *slog.Logger {
	if l := cmdLog.Load(); l != nil {
		return l
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}
