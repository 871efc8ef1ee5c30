//go:build mcptasks_selftest

package taskstore

import (
	"fmt"
	"os"
)

// Switches that break one guarantee on purpose, so that the robustness test
// can prove its checker reports the violation (a checker that never fails
// proves nothing). They exist only in a build with the tag
// mcptasks_selftest, which nothing ships; the environment variable
// MCPTASKS_SELFTEST_BREAK, read once at start, picks one:
//
//	fencing  a write of a handle whose lease was lost lands anyway (checkFence)
//	quota    Create ignores Config.MaxActiveTasks (Store.Create's Limits)
var (
	selftestBreak        = os.Getenv("MCPTASKS_SELFTEST_BREAK")
	selftestBreakFencing = selftestBreak == "fencing"
	selftestBreakQuota   = selftestBreak == "quota"
)

func init() {
	switch selftestBreak {
	case "", "fencing", "quota":
	default:
		fmt.Fprintf(os.Stderr, "MCPTASKS_SELFTEST_BREAK=%q breaks nothing: it is fencing or quota\n", selftestBreak)
	}
}
