package otelmetrics_test

import (
	"testing"

	"github.com/mcptasks/mcptasks/internal/docquote"
)

// TestDocsQuoteTheExample: the Go lines docs/operations.md quotes are
// lines of ExampleNew, which the compiler checks.
func TestDocsQuoteTheExample(t *testing.T) {
	docquote.Check(t, "../docs/operations.md", "In a program (from `ExampleNew`", "example_test.go", 5)
}

// TestDocsQuoteTheTracesExample: the same for ExampleNewTraces, which
// also runs.
func TestDocsQuoteTheTracesExample(t *testing.T) {
	docquote.Check(t, "../docs/operations.md", "In a program (from `ExampleNewTraces`", "traces_example_test.go", 3)
}
