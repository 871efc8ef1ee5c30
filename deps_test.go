package mcptasks_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoTagsLinksNoClientLibraries proves that a build without tags links
// neither go-redis, the AWS SDK nor pgx: a service pays only for what it
// uses.
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
		for _, banned := range []string{"github.com/redis/", "github.com/aws/", "github.com/jackc/"} {
			if strings.HasPrefix(d, banned) {
				t.Errorf("a build without tags links %s", d)
			}
		}
	}
}

// TestPostgresTagLinksPgx: -tags postgres links pgx (so the test above
// would see it if a file lost its build tag).
func TestPostgresTagLinksPgx(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-tags", "postgres", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if !contains(strings.Fields(string(out)), "github.com/jackc/pgx/v5/pgxpool") {
		t.Fatalf("a build with -tags postgres does not link pgxpool:\n%s", out)
	}
}

// TestLibraryLinksNoOpenTelemetry: what a service builds on (the registry
// and the backends, the domain, the router), with any tags, links neither
// OpenTelemetry nor a Prometheus client; only package otelmetrics, which a
// service imports when it wants metrics, does (so this test would see it).
// Nor does it link the admin page (package taskadmin).
func TestLibraryLinksNoOpenTelemetry(t *testing.T) {
	for _, tags := range []string{"", "redis,dynamodb,postgres"} {
		out, err := exec.Command("go", "list", "-deps", "-tags", tags, ".", "./taskstore/...", "./taskrouter").CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		deps := strings.Fields(string(out))
		if !contains(deps, "github.com/mcptasks/mcptasks/taskrouter") {
			t.Fatalf("go list -deps gave an implausible list:\n%s", out)
		}
		for _, d := range deps {
			if strings.HasPrefix(d, "go.opentelemetry.io/") || strings.HasPrefix(d, "github.com/prometheus/") ||
				d == "github.com/mcptasks/mcptasks/otelmetrics" || d == "github.com/mcptasks/mcptasks/taskadmin" {
				t.Errorf("the library (tags %q) links %s", tags, d)
			}
		}
	}
	out, err := exec.Command("go", "list", "-deps", "./otelmetrics").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, api := range []string{"go.opentelemetry.io/otel/metric", "go.opentelemetry.io/otel/trace", "go.opentelemetry.io/otel/propagation"} {
		if !contains(strings.Fields(string(out)), api) {
			t.Fatalf("otelmetrics does not link %s:\n%s", api, out)
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

// TestDomainLinksOnlyJSONText pins what the domain package, which every
// build links, brings in besides the standard library: the module's own
// internal packages (the JSON walker, backoff, task ids), and jsontext, the
// syntax layer of encoding/json/v2, from go-json-experiment/json. That
// module has no dependencies of its own, is the upstream of the standard
// library's encoding/json/v2 and aliases it once a toolchain ships it, so
// the record codec moves to the standard library without a code change.
// Its reflection-based json package is not linked.
func TestDomainLinksOnlyJSONText(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./taskstore").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := []string{
		"github.com/mcptasks/mcptasks/taskstore",
		"github.com/mcptasks/mcptasks/internal/jsonwalk",
		"github.com/mcptasks/mcptasks/internal/backoff",
		"github.com/mcptasks/mcptasks/internal/taskid",
		"github.com/go-json-experiment/json/jsontext",
		"github.com/go-json-experiment/json/internal",
	}
	deps := strings.Fields(string(out))
	if !contains(deps, "github.com/go-json-experiment/json/jsontext") {
		t.Fatalf("the domain does not link jsontext; update this test:\n%s", out)
	}
	for _, d := range deps {
		first, _, _ := strings.Cut(d, "/")
		if !strings.Contains(first, ".") {
			continue // the standard library
		}
		ok := false
		for _, a := range allowed {
			ok = ok || d == a || strings.HasPrefix(d, a+"/")
		}
		if !ok {
			t.Errorf("the domain package links %s", d)
		}
	}
}
