package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestServeIgnoresSelftestSwitch: the switches that break a guarantee for
// the robustness test's self-test (taskstore/selftest_on.go) exist only in
// a build with the tag mcptasks_selftest. `mcptasks serve` built without it
// does not even hold the variable's name, and keeps its quota with
// MCPTASKS_SELFTEST_BREAK=quota set; the same serve built with the tag
// (the control: this test could fail) lets the create past the quota.
func TestServeIgnoresSelftestSwitch(t *testing.T) {
	const env = "MCPTASKS_SELFTEST_BREAK"
	t.Setenv(env, "quota") // inherited by the replicas
	for _, c := range []struct {
		tags   string
		broken bool
	}{{"", false}, {"mcptasks_selftest", true}} {
		t.Run("tags="+c.tags, func(t *testing.T) {
			bin := serveBinary(t, c.tags)
			data, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			if named := bytes.Contains(data, []byte(env)); named != c.broken {
				t.Fatalf("the binary names %s: %v, want %v", env, named, c.broken)
			}
			const token = "selftest-token"
			r := startReplica(t, bin, "--token", "alice:"+token, "--max-active-tasks", "1")
			codes := make([]int, 2)
			for i := range codes {
				_, res := modernCall(t, r.url, token, "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 120}}, "slow_compute")
				if res["error"] != nil {
					codes[i] = field[int](t, res["error"], "code")
				}
			}
			want := []int{0, -32603} // the second active task: the quota's refusal
			if c.broken {
				want = []int{0, 0}
			}
			if codes[0] != want[0] || codes[1] != want[1] {
				t.Fatalf("two active tasks under a quota of 1 with %s=quota: errors %v, want %v; logs:\n%s", env, codes, want, r.logs)
			}
			if strings.Contains(r.logs.String(), env) {
				t.Fatalf("the replica mentions %s:\n%s", env, r.logs)
			}
		})
	}
}
