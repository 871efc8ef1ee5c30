// Package docquote checks, for tests, that the code a document quotes is
// code of a file the compiler checks (an Example), so the two cannot drift.
package docquote

import (
	"os"
	"strings"
	"testing"
)

// Check fails t unless the first ```go block after marker in the document
// at doc has at least minLines lines, each (trimmed) a line of the file at
// source.
func Check(t testing.TB, doc, marker, source string, minLines int) {
	t.Helper()
	d, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(source)
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(src), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	_, rest, ok := strings.Cut(string(d), marker)
	if !ok {
		t.Fatalf("%s no longer has %q", doc, marker)
	}
	_, block, _ := strings.Cut(rest, "```go\n")
	block, _, _ = strings.Cut(block, "```")
	n := 0
	for _, l := range strings.Split(block, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		n++
		if !lines[l] {
			t.Errorf("%s quotes a line %s does not have: %s", doc, source, l)
		}
	}
	if n < minLines {
		t.Fatalf("the block %s quotes after %q has %d lines, want at least %d", doc, marker, n, minLines)
	}
}
