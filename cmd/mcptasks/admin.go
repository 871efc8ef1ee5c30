package main

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mcptasks/mcptasks/taskadmin"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// serve's admin page (package taskadmin) at /admin/, behind a token of its
// own: never a user's token, and no user token opens it. A browser sends it
// as the password of HTTP Basic authentication (any user name), which it
// asks for; a program as Authorization: Bearer.

// minAdminToken is the shortest admin token serve accepts, in bytes.
const minAdminToken = 16

// adminFlags are serve's --admin-* flags.
type adminFlags struct {
	token, tokenFile string
	readOnly         bool
	ownerDigests     bool
	redact           bool
	stuckAfter       time.Duration
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.token, "admin-token", "", "serve the admin page at /admin/ behind this bearer `TOKEN` (at least 16 characters; it must not be a user's token): it shows and cancels the tasks of every user")
	fs.StringVar(&a.tokenFile, "admin-token-file", "", "read the admin token from the first line of `FILE` (keeps it out of the process list)")
	fs.BoolVar(&a.readOnly, "admin-read-only", false, "the admin page shows tasks but cancels none")
	fs.BoolVar(&a.ownerDigests, "admin-owner-digests", false, "the admin page shows each task's owner as a short SHA-256 digest (and keeps it out of its URLs)")
	fs.BoolVar(&a.redact, "admin-redact", false, "the admin page hides tasks' variables, results, error data and input")
	fs.DurationVar(&a.stuckAfter, "admin-stuck-after", taskadmin.DefaultStuckAfter, "the admin page lists as stuck the tasks working, or waiting for input, longer than this")
}

// check reports flag combinations that make no sense.
func (a *adminFlags) check(stdio bool) error {
	on := a.token != "" || a.tokenFile != ""
	switch {
	case a.token != "" && a.tokenFile != "":
		return usagef("give --admin-token or --admin-token-file, not both")
	case on && stdio:
		return usagef("--admin-token has no meaning with --stdio (the admin page is served over HTTP)")
	case !on && (a.readOnly || a.ownerDigests || a.redact):
		return usagef("--admin-read-only, --admin-owner-digests and --admin-redact need --admin-token or --admin-token-file")
	case a.stuckAfter <= 0:
		return usagef("--admin-stuck-after must be positive")
	}
	return nil
}

// load returns the admin token ("" when the page is off), refusing one that
// is short, malformed or also a user's token. No message quotes it.
func (a *adminFlags) load(users tokenSet, warn func(msg string, args ...any)) (string, error) {
	token := a.token
	if a.tokenFile != "" {
		var err error
		if token, err = readAdminToken(a.tokenFile, warn); err != nil {
			return "", err
		}
	}
	if token == "" {
		return "", nil
	}
	if err := checkToken(token); err != nil {
		return "", fmt.Errorf("%w: the admin token: %v", errBadToken, err)
	}
	if len(token) < minAdminToken {
		return "", fmt.Errorf("%w: the admin token is shorter than %d characters", errBadToken, minAdminToken)
	}
	if _, ok := users.user(token); ok {
		return "", fmt.Errorf("%w: the admin token is also a user's token: give the admin page a token of its own", errBadToken)
	}
	return token, nil
}

// readAdminToken reads the first line of path that is neither blank nor a
// comment, trimmed.
func readAdminToken(path string, warn func(msg string, args ...any)) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		warn("the admin token file is readable by other users", "path", path, "mode", fi.Mode().Perm().String())
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			return line, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return "", fmt.Errorf("%w: %s holds no admin token", errBadToken, path)
}

// adminObserver has the router also tell local (the admin page's view of
// this replica) the change feed's state and the heartbeat ages, besides
// what o already does with them.
func adminObserver(o taskrouter.Observer, local *taskadmin.Local) taskrouter.Observer {
	feed, ages := o.Feed, o.Heartbeats
	o.Feed = func(up bool) {
		local.Feed(up)
		if feed != nil {
			feed(up)
		}
	}
	o.Heartbeats = func(a map[string]time.Duration) {
		local.Heartbeats(a) // keeps a copy: the map goes on to the next
		if ages != nil {
			ages(a)
		}
	}
	return o
}

// handler is the admin page over store for the replica router, behind
// token. Replicas given the same admin token open each other's task links
// (their references are sealed with a key derived from it).
func (a *adminFlags) handler(token string, store *taskstore.Store, router *taskrouter.Router, local *taskadmin.Local) http.Handler {
	key := sha256.Sum256([]byte("mcptasks admin references\x00" + token))
	page := taskadmin.New(taskstore.NewRuntime(store), taskadmin.Options{
		ReadOnly:     a.readOnly,
		OwnerDigests: a.ownerDigests,
		Redact:       a.redact,
		StuckAfter:   a.stuckAfter,
		Runner:       router.Runner(),
		Local:        local,
		RefKey:       key[:],
	})
	return requireAdminToken(token, http.StripPrefix("/admin", page))
}

// noAdminToken is the answer to a request without the admin token.
const noAdminToken = "Unauthorized: the admin page wants its own token, as Authorization: Bearer TOKEN or as the password of HTTP Basic authentication"

// requireAdminToken lets through only requests that carry token, as a
// bearer token or a Basic password, compared in constant time.
func requireAdminToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given, ok := r.Header.Get("Authorization"), false
		if f := strings.Fields(given); len(f) == 2 && strings.EqualFold(f[0], "bearer") {
			given, ok = f[1], true
		} else if _, pass, basic := r.BasicAuth(); basic {
			given, ok = pass, true
		}
		got := sha256.Sum256([]byte(given))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Add("WWW-Authenticate", `Basic realm="mcptasks admin", charset="UTF-8"`)
			w.Header().Add("WWW-Authenticate", `Bearer realm="mcptasks admin"`)
			http.Error(w, noAdminToken, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
