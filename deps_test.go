package mcptasks_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoTagsLinksNoClientLibraries proves that a build without tags links
// neither go-redis nor the AWS SDK: a service pays only for what it uses.
func TestNoTagsLinksNoClientLibraries(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !contains(deps, "github.com/mcptasks/mcptasks/taskstore") {
		t.Fatalf("go list -deps gave an implausible list:\n%s", out)
	}
	for _, d := range deps {
		for _, banned := range []string{"github.com/redis/", "github.com/aws/"} {
			if strings.HasPrefix(d, banned) {
				t.Errorf("a build without tags links %s", d)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
