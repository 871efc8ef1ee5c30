package taskrouter_test

import (
	"os"
	"strings"
	"testing"
)

// exampleMarker precedes each Go block of the README quoted from the
// program that builds, example/main.go.
const exampleMarker = "<!-- lines of taskrouter/example/main.go -->"

// codeLine is a line as compared: without indentation and without a
// trailing " // comment".
func codeLine(l string) string {
	l = strings.TrimSpace(l)
	if i := strings.Index(l, " // "); i >= 0 {
		l = strings.TrimSpace(l[:i])
	}
	return l
}

// The Go the README quotes from the example is the example's: each code
// line of each quoted block is a line of example/main.go, in the file's
// order (the README may leave lines out, and add lines that are only
// comments).
func TestDocsProgramIsTheExample(t *testing.T) {
	doc, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example/main.go")
	if err != nil {
		t.Fatal(err)
	}
	var file []string
	for _, l := range strings.Split(string(src), "\n") {
		file = append(file, codeLine(l))
	}
	blocks := strings.Split(string(doc), exampleMarker)[1:]
	if len(blocks) < 2 {
		t.Fatalf("README.md quotes example/main.go in %d blocks, want at least 2 (the integration lines and the tool handler)", len(blocks))
	}
	for i, b := range blocks {
		_, after, ok := strings.Cut(b, "```go\n")
		block, _, ok2 := strings.Cut(after, "```\n")
		if !ok || !ok2 || strings.TrimSpace(b[:strings.Index(b, "```")]) != "" {
			t.Fatalf("quote %d: no go code block right after %s", i+1, exampleMarker)
		}
		next := 0
		for _, l := range strings.Split(block, "\n") {
			l = codeLine(l)
			if l == "" || strings.HasPrefix(l, "//") {
				continue
			}
			found := false
			for ; next < len(file); next++ {
				if file[next] == l {
					found = true
					next++
					break
				}
			}
			if !found {
				t.Errorf("quote %d: %q is not a line of taskrouter/example/main.go (or not in the file's order): copy it from the file", i+1, l)
				break
			}
		}
	}
}

// The README says what SessionOwner's doc comment says: one replica only.
func TestDocsSessionOwnerIsOneReplica(t *testing.T) {
	doc, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, para := range strings.Split(string(doc), "\n\n") {
		if strings.Contains(para, "SessionOwner") && !strings.Contains(para, "one replica only") {
			t.Errorf("a README paragraph names SessionOwner without saying it is for one replica only:\n%s", para)
		}
	}
}
