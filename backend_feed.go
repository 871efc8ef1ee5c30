//go:build redis || postgres

package mcptasks

import (
	"strconv"

	"github.com/mcptasks/mcptasks/taskstore"
)

// What the backends whose change feed is a message per change (Redis
// pub/sub, PostgreSQL NOTIFY) share.

// withVersion is c with the version a change feed's message carries, ver
// in decimal; a message without one (hasVer false: a delete, or a message
// of a release before the version) gives version 0, which makes a writer
// read the record again rather than take the change for its own. ok is
// false when ver is not a version.
func withVersion(c taskstore.Change, ver string, hasVer bool) (taskstore.Change, bool) {
	if !hasVer {
		return c, true
	}
	v, err := strconv.ParseUint(ver, 10, 64)
	if err != nil {
		return taskstore.Change{}, false
	}
	c.Version = v
	return c, true
}
