//go:build !mcptasks_selftest

package taskstore

// The self-test switches of the robustness test (see selftest_on.go) do not
// exist in this build: constants false, so the compiler drops the branches
// they guard and MCPTASKS_SELFTEST_BREAK means nothing to this program.
const (
	selftestBreakFencing = false
	selftestBreakQuota   = false
)
