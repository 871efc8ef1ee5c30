package storetest

import (
	"fmt"
	"strings"
	"testing"
)

// Report logs one machine-readable line for scripts/reliability_report.sh:
//
//	REPORT test=TestX/sub key=value key=value
//
// pairs alternate keys and values. The test name says which backend the
// figures belong to.
func Report(t testing.TB, pairs ...any) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "REPORT test=%s", t.Name())
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(&b, " %v=%v", pairs[i], pairs[i+1])
	}
	t.Log(b.String())
}
