package mcptasks_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
)

func TestBackendsSortedAndMemoryAlwaysThere(t *testing.T) {
	got := mcptasks.Backends()
	if !slices.IsSorted(got) || !slices.Contains(got, "memory") {
		t.Fatalf("Backends() = %v", got)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		url, wantText string
	}{
		{"memory://?sweep=1m&colour=blue", `unknown option "colour"`},
		{"memory://?sweep=soon", `"sweep"`},
		{"memory://?sweep=1m&sweep=2m", `given 2 times`},
		{"memory://somehost", "no host"},
		{"mysql://localhost/db", `unknown store scheme "mysql"`},
		{"memory://?sweep=1m;x=1", "does not parse"},
		{"::not a url", "does not parse"},
	} {
		_, err := mcptasks.Open(t.Context(), tc.url, taskstore.Config{})
		if err == nil || !strings.Contains(err.Error(), tc.wantText) {
			t.Errorf("Open(%q) = %v, want an error containing %q", tc.url, err, tc.wantText)
		}
	}
}

func TestOpenNamesMissingBuildTag(t *testing.T) {
	registered := mcptasks.Backends()
	for scheme, tag := range map[string]string{"redis": "redis", "rediss": "redis", "redis+cluster": "redis", "redis+sentinel": "redis", "dynamodb": "dynamodb",
		"postgres": "postgres", "postgresql": "postgres"} {
		if slices.Contains(registered, scheme) {
			continue // compiled in with this build's tags
		}
		_, err := mcptasks.Open(t.Context(), scheme+"://x", taskstore.Config{})
		if err == nil || !strings.Contains(err.Error(), "-tags "+tag) {
			t.Errorf("Open(%s://) = %v, want it to name -tags %s", scheme, err, tag)
		}
	}
}

func TestRegisterPanics(t *testing.T) {
	mustPanic := func(name string, fn func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		fn()
	}
	mustPanic("Register(nil)", func() { mcptasks.Register("nil-opener", nil) })
	mustPanic("Register twice", func() {
		mcptasks.Register("memory", func(context.Context, *url.URL) (taskstore.Backend, error) { return nil, errors.New("x") })
	})
}

// FuzzOpenURL: any URL either opens a store or fails with an error that
// does not echo a password, and never hangs or panics. Network backends
// (when compiled in) get a context that is already cancelled, so their
// option parsing runs in full and no connection is made: Redis fails its
// ping at once, and so does PostgreSQL; DynamoDB, which sends nothing at
// Open, may open.
func FuzzOpenURL(f *testing.F) {
	for _, s := range []string{"memory://", "memory://?sweep=1s", "memory://?sweep=-1s", "memory://?x=1",
		"memory://user:secret@/?sweep=x", "memory://?sweep=1s&sweep=2s", "%zz", "postgres://x",
		"redis://user:hunter22@127.0.0.1:1/3?prefix=a&pool_size=-1", "rediss://h?tls=false",
		"redis+cluster://a:1,,b:2?db=2", "redis://h/x?db=1&dial_timeout=0s", "redis://h?tls_skip_verify=true",
		"redis+sentinel://u:hunter22@a:1,b/m/2?sentinel_user=s&sentinel_password=hunter23", "redis+sentinel://a:1",
		"redis+sentinel://a/m?db=1&cluster_reload_interval=1s",
		"dynamodb://t?region=x&endpoint=http://127.0.0.1:1&bogus=1", "dynamodb://?region=x", "dynamodb://t?max_attempts=-3",
		"postgres://u:hunter22@127.0.0.1:1/db?sslmode=disable&table=t", "postgresql://u@h?application_name=x",
		"postgres://u@h:5432/db?pool_max_conns=-1&sweep=1us", "postgres://u@/db?host=/tmp&sslmode=verify-full",
		"postgres://u:p%00w@h/db", "postgres://u@h/db?table=a;b"} {
		f.Add(s)
	}
	network := func(raw string) bool {
		return strings.HasPrefix(raw, "redis") || strings.HasPrefix(raw, "dynamodb") || strings.HasPrefix(raw, "postgres")
	}
	f.Fuzz(func(t *testing.T, raw string) {
		ctx := context.Background()
		if network(raw) {
			if strings.Contains(raw, "tls_ca") || strings.Contains(raw, "profile") || strings.Contains(raw, "ssl") {
				return // these name local files to read; not fuzzed here
			}
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			ctx = cancelled
		}
		s, err := mcptasks.Open(ctx, raw, taskstore.Config{})
		if err == nil && (strings.HasPrefix(raw, "redis") || strings.HasPrefix(raw, "postgres")) {
			s.Close()
			t.Fatalf("Open(%q) with a cancelled context succeeded without its ping", raw)
		}
		if err != nil {
			// The password, when the URL has one; an option or host that
			// spells the same word may be named in the error.
			u, perr := url.Parse(raw)
			if perr != nil || u.User == nil {
				return
			}
			if pw, ok := u.User.Password(); ok && len(pw) >= 4 && strings.Count(raw, pw) == 1 && strings.Contains(err.Error(), pw) {
				t.Fatalf("error echoes the password: %v", err)
			}
			return
		}
		s.Close()
	})
}
