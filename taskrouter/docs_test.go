package taskrouter_test

import (
	"os"
	"strings"
	"testing"
)

// The program in docs/mcp.md is the one that builds: example/main.go.
func TestDocsProgramIsTheExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/mcp.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example/main.go")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "```go\n")
	block, _, ok2 := strings.Cut(after, "```\n")
	if !ok || !ok2 {
		t.Fatal("docs/mcp.md has no go code block")
	}
	if block != string(src) {
		t.Error("the program in docs/mcp.md differs from taskrouter/example/main.go: copy the file into the doc")
	}
}
