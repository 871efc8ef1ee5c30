package otelmetrics_test

import (
	"os"
	"strings"
	"testing"
)

// TestDocsQuoteTheExample: the Go lines docs/operations.md quotes are
// lines of ExampleNew, which the compiler checks.
func TestDocsQuoteTheExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(example), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	_, rest, ok := strings.Cut(string(doc), "In a program (from `ExampleNew`")
	if !ok {
		t.Fatal("docs/operations.md no longer quotes ExampleNew")
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
			t.Errorf("docs/operations.md quotes a line ExampleNew does not have: %s", l)
		}
	}
	if n < 5 {
		t.Fatalf("the quoted block has %d lines", n)
	}
}
