//go:build redis

package main

import "testing"

// TestAdminPageInBrowserRedis: two serve processes over one Redis; the
// first's admin page shows and cancels the tasks of both.
func TestAdminPageInBrowserRedis(t *testing.T) {
	b := newBrowser(t)
	bin := serveBinary(t, "redis")
	args := append(browserServeArgs(), "--store", redisStoreURL(t, "MCPTASKS_TEST_REDIS_URL"))
	one := startReplica(t, bin, args...)
	two := startReplica(t, bin, args...)
	testAdminInBrowser(t, b, []adminTarget{{mcp: one.url, admin: one.admin}, {mcp: two.url, admin: two.admin}})
}
