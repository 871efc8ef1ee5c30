package taskrouter_test

import (
	"os"
	"strings"
	"testing"
)

// The program in the README is the one that builds: example/main.go.
func TestDocsProgramIsTheExample(t *testing.T) {
	doc, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example/main.go")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok0 := strings.Cut(string(doc), "## Add tasks to your MCP server")
	_, after, ok := strings.Cut(section, "```go\n")
	block, _, ok2 := strings.Cut(after, "```\n")
	if !ok0 || !ok || !ok2 {
		t.Fatal("README.md has no go code block")
	}
	if block != string(src) {
		t.Error("the program in README.md differs from taskrouter/example/main.go: copy the file into the doc")
	}
}
