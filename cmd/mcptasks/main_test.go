package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcptasks/mcptasks"
)

// TestHelpAndUsageErrors pins where help and usage errors go: help to
// stdout with exit 0 (so `mcptasks help | less` works), a command line that
// cannot run to stderr with exit 2.
func TestHelpAndUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr string // substrings; "" = must be empty
	}{
		{[]string{"help"}, 0, "commands:", ""},
		{[]string{"-h"}, 0, "commands:", ""},
		{[]string{"--help"}, 0, "commands:", ""},
		{[]string{"help", "serve"}, 0, "ONE shared anonymous owner", ""},
		{[]string{"serve", "-h"}, 0, "-max-sessions", ""},
		{[]string{"serve", "--help"}, 0, "usage: mcptasks serve", ""},
		{[]string{"help", "bench"}, 0, "usage: mcptasks bench", ""},
		{[]string{"bench", "-h"}, 0, "-callers", ""},
		{[]string{"bench", "-h"}, 0, "mcptasks bench replicas", ""},
		{[]string{"bench", "replicas", "-h"}, 0, "usage: mcptasks bench replicas", ""},
		{[]string{"bench", "replicas", "-measures", "orphans,explode"}, 2, "", `unknown measure "explode"`},
		{[]string{"bench", "replicas", "-n", "0"}, 2, "", "must be positive"},
		{[]string{"bench", "replicas", "-heartbeat", "1s", "-lease-timeout", "1s"}, 2, "", "longer than -heartbeat"},
		{[]string{"bench", "replicas", "stray"}, 2, "", "1 unexpected argument"},
		{[]string{"help", "dynamodb"}, 0, "create-table", ""},
		{[]string{"dynamodb", "-h"}, 0, "create-table", ""},
		{[]string{"help", "postgres"}, 0, "create-table", ""},
		{[]string{"postgres", "create-table", "-h"}, 0, "-print", ""},
		{[]string{"postgres", "drop-table"}, 2, "", "expected: create-table"},
		{[]string{"postgres", "create-table"}, 2, "", "want 1 argument(s) after the flags, got 0"},
		{[]string{"postgres", "recount"}, 2, "", "want 1 argument(s) after the flags, got 0"},
		{[]string{"postgres", "recount", "-print", "postgres://u@h/db"}, 2, "", "flag provided but not defined"},
		{[]string{"postgres", "create-table", "-nosuch", "postgres://u@h/db"}, 2, "", "flag provided but not defined"},
		{[]string{"postgres", "create-table", "mysql://u@h/db"}, 2, "", "must be postgres://"},
		{nil, 2, "", "commands:"},
		{[]string{"nosuch"}, 2, "", `unknown command "nosuch"`},
		{[]string{"help", "nosuch"}, 2, "", `unknown command "nosuch"`},
		{[]string{"help", "serve", "bench"}, 2, "", "at most one command"},
		{[]string{"serve", "-nosuch"}, 2, "", "flag provided but not defined: -nosuch"},
		{[]string{"serve", "stray"}, 2, "", "1 unexpected argument"},
		{[]string{"serve", "--drain"}, 2, "", "flag needs an argument"},
		{[]string{"serve", "--max-sessions", "-1"}, 2, "", "cannot be negative"},
		{[]string{"serve", "--max-active-tasks", "-1"}, 2, "", "cannot be negative"},
		{[]string{"serve", "-h"}, 0, "-metrics-addr ADDR", ""},
		{[]string{"serve", "--metrics-addr", "127.0.0.1:99999"}, 1, "", "mcptasks serve: listen tcp"},
		{[]string{"serve", "--stdio", "--token", "alice:x"}, 2, "", "no meaning with --stdio"},
		{[]string{"bench", "-ops", "explode"}, 2, "", `unknown operation "explode"`},
		{[]string{"dynamodb", "drop-table"}, 2, "", "expected: create-table URL"},
		{[]string{"serve", "--store", "nosuch://x"}, 1, "", "nosuch"},
		// Exit statuses are documented where help is.
		{[]string{"help"}, 0, "3 serve stopped but running tasks were marked failed", ""},
		{[]string{"serve", "-h"}, 0, "3 stopped but tasks still\nrunning at shutdown were marked failed", ""},
		{[]string{"serve", "-h"}, 0, "a second signal ends the drain at once", ""},
		// One prefix per error line, naming the subcommand; a store URL's
		// unknown option names the known ones.
		{[]string{"serve", "--store", "memory://?bogus=1"}, 1, "", `mcptasks serve: open memory store: unknown option "bogus" (have sweep)`},
		{[]string{"serve", "--store", "memory://?a=1&b=2"}, 1, "", "\nmcptasks serve: unknown option \"b\""},
		{[]string{"serve", "--addr", "127.0.0.1:99999"}, 1, "", "mcptasks serve: listen tcp"},
		{[]string{"bench", "--nosuch"}, 2, "", "mcptasks bench: flag provided but not defined"},
		{[]string{"bench", "--store", "nosuch://x"}, 1, "", `mcptasks bench: unknown store scheme "nosuch"`},
		{[]string{"dynamodb", "create-table", "-h"}, 0, "usage: mcptasks dynamodb", ""},
		{[]string{"dynamodb", "create-table", "memory://"}, 2, "", "mcptasks dynamodb: the URL must be dynamodb://"},
		{[]string{"postgres", "create-table", "-print", "-print=x", "postgres://u@h/db"}, 2, "", "mcptasks postgres: invalid boolean value"},
		{[]string{"help", "version"}, 0, "usage: mcptasks version", ""},
		{[]string{"version", "-h"}, 0, "(devel)", ""},
		{[]string{"version", "extra"}, 2, "", "mcptasks version: 1 unexpected argument"},
		{[]string{"version", "--nosuch"}, 2, "", "mcptasks version: flag provided but not defined"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb strings.Builder
			code := run(t.Context(), tc.args, &out, &errb)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stdout %q, stderr %q", code, tc.code, out.String(), errb.String())
			}
			for _, c := range []struct {
				name, got, want string
			}{{"stdout", out.String(), tc.stdout}, {"stderr", errb.String(), tc.stderr}} {
				if c.want == "" && c.got != "" {
					t.Errorf("%s: want nothing, got %q", c.name, c.got)
				}
				if !strings.Contains(c.got, c.want) {
					t.Errorf("%s lacks %q:\n%s", c.name, c.want, c.got)
				}
			}
			if tc.code == 2 && !strings.Contains(errb.String(), "mcptasks help") {
				t.Errorf("a usage error should say where help is: %q", errb.String())
			}
			if tc.code != 0 && len(tc.args) > 0 && commands[tc.args[0]].Run != nil {
				checkErrorLines(t, tc.args[0], errb.String())
			}
		})
	}
}

// checkErrorLines: every line a failed subcommand prints starts with
// "mcptasks NAME: " once, with no package's prefix after it.
func checkErrorLines(t *testing.T, name, stderr string) {
	t.Helper()
	for line := range strings.Lines(stderr) {
		if strings.HasPrefix(line, "Run 'mcptasks help ") {
			continue
		}
		rest, ok := strings.CutPrefix(line, "mcptasks "+name+": ")
		if !ok {
			t.Errorf("error line without the prefix %q: %q", "mcptasks "+name+": ", line)
			continue
		}
		for _, pkg := range []string{"mcptasks", "taskrouter", "taskstore"} {
			if strings.HasPrefix(rest, pkg+":") || strings.HasPrefix(rest, pkg+" ") {
				t.Errorf("error line with a second prefix: %q", line)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	var out, errb strings.Builder
	if code := run(t.Context(), []string{"version"}, &out, &errb); code != 0 || errb.Len() > 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	// Whatever the build's tags, the backends it lists are the ones it has.
	want := "mcptasks " + moduleVersion() + "\nbackends: " + strings.Join(mcptasks.Backends(), ", ") + "\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("version output (-want +got):\n%s", diff)
	}
}
