package taskadmin_test

import (
	"testing"

	"github.com/mcptasks/mcptasks/internal/docquote"
)

// TestDocsQuoteTheExample: the Go lines docs/operations.md quotes from
// ExampleNew are lines of it, which the compiler checks and the test runs.
func TestDocsQuoteTheExample(t *testing.T) {
	docquote.Check(t, "../docs/operations.md", "Mounted in a program (from `ExampleNew` in taskadmin/example_test.go", "example_test.go", 4)
}
