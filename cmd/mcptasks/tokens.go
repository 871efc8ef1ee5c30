package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

// Bearer tokens for serve. The formats are unambiguous for any token an
// Authorization header can carry:
//
//	--token USER:TOKEN    split at the FIRST colon: USER has no colon,
//	                      TOKEN is all the rest (it may hold ':', '=', …)
//	--tokens-file FILE    one "TOKEN USER" per line, separated by
//	                      whitespace; blank lines and lines starting with #
//	                      are skipped; "# …" after the two fields is a comment
//
// A token may hold any character but whitespace and control characters
// (the Authorization header is split at whitespace, and cannot carry
// control characters); a user has no whitespace (and, on the command line,
// no colon). No error message, and no log line, quotes a token or any part
// of one: a malformed entry is named by its position.

// errBadToken is the class of every token configuration error.
var errBadToken = errors.New("bad token configuration")

// tokenSet maps the SHA-256 of each token to its user. Keeping digests,
// not tokens, means a lookup's timing says nothing about how much of a
// guessed token was right, and no token sits in memory in the clear.
type tokenSet map[[sha256.Size]byte]string

// user is the user a presented token belongs to.
func (ts tokenSet) user(token string) (string, bool) {
	u, ok := ts[sha256.Sum256([]byte(token))]
	return u, ok
}

// add records token for user; where names the entry in errors.
func (ts tokenSet) add(token, user, where string) error {
	if err := checkToken(token); err != nil {
		return fmt.Errorf("%w: %s: %v", errBadToken, where, err)
	}
	if user == "" || strings.IndexFunc(user, unicode.IsSpace) >= 0 {
		return fmt.Errorf("%w: %s: the user must be non-empty, without whitespace", errBadToken, where)
	}
	k := sha256.Sum256([]byte(token))
	if _, dup := ts[k]; dup {
		return fmt.Errorf("%w: %s: this token is already configured", errBadToken, where)
	}
	ts[k] = user
	return nil
}

func checkToken(token string) error {
	if token == "" {
		return errors.New("empty token")
	}
	for _, r := range token {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return errors.New("a token cannot hold whitespace or control characters (an Authorization header could not carry it)")
		}
	}
	return nil
}

// tokenFlags collects --token values. Set never fails: the flag package
// would quote the value in its error, and the value holds a secret; the
// values are checked by addTo instead.
type tokenFlags []string

func (t *tokenFlags) String() string     { return fmt.Sprintf("%d tokens", len(*t)) }
func (t *tokenFlags) Set(v string) error { *t = append(*t, v); return nil }

// addTo parses each USER:TOKEN into ts.
func (t tokenFlags) addTo(ts tokenSet) error {
	for i, v := range t {
		where := fmt.Sprintf("--token #%d", i+1)
		user, token, ok := strings.Cut(v, ":")
		if !ok {
			return fmt.Errorf("%w: %s: want USER:TOKEN", errBadToken, where)
		}
		if err := ts.add(token, user, where); err != nil {
			return err
		}
	}
	return nil
}

// readTokens reads a tokens file into ts. It warns through warn when the
// file can be read by other users.
func readTokens(path string, ts tokenSet, warn func(msg string, args ...any)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		warn("the tokens file is readable by other users", "path", path, "mode", fi.Mode().Perm().String())
	}
	return parseTokens(f, path, ts)
}

func parseTokens(r io.Reader, name string, ts tokenSet) error {
	sc := bufio.NewScanner(r)
	found, n := 0, 1
	for ; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		where := fmt.Sprintf("%s:%d", name, n)
		if len(f) < 2 || (len(f) > 2 && !strings.HasPrefix(f[2], "#")) {
			return fmt.Errorf("%w: %s: want TOKEN USER (%d fields)", errBadToken, where, len(f))
		}
		// strings.Fields splits at what unicode.IsSpace calls space, as the
		// SDK does with the Authorization header; control characters are
		// refused by add.
		if err := ts.add(f[0], f[1], where); err != nil {
			return err
		}
		found++
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("%w: %s:%d: a line longer than %d bytes", errBadToken, name, n, bufio.MaxScanTokenSize)
	} else if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if found == 0 {
		// An empty file must not quietly turn authentication off.
		return fmt.Errorf("%w: %s holds no tokens", errBadToken, name)
	}
	return nil
}

// requireToken puts next behind the bearer tokens of ts. The SDK's
// auth.RequireBearerToken fills the request's auth.TokenInfo (the owner of
// its tasks), but it writes WWW-Authenticate only when it has a
// ResourceMetadataURL or scopes, which a server with static tokens and no
// OAuth authorization server lacks. So requests it would refuse are
// answered here first, with the RFC 6750 challenge: `Bearer realm=…` when
// no bearer token was sent, plus error="invalid_token" when a token was
// sent but is not one of ours, error="invalid_request" (400) when the
// header is malformed.
func requireToken(ts tokenSet, next http.Handler) http.Handler {
	verify := func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		user, ok := ts.user(token)
		if !ok {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{UserID: user, Expiration: time.Now().Add(time.Hour)}, nil
	}
	inner := auth.RequireBearerToken(verify, nil)(next)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		const realm = `Bearer realm="mcptasks"`
		// Split as the SDK does, so that both always agree on the token.
		f := strings.Fields(req.Header.Get("Authorization"))
		switch {
		case len(f) == 0 || !strings.EqualFold(f[0], "bearer"):
			w.Header().Set("WWW-Authenticate", realm)
			http.Error(w, "Unauthorized: this server wants an Authorization: Bearer token", http.StatusUnauthorized)
		case len(f) != 2:
			w.Header().Set("WWW-Authenticate", realm+`, error="invalid_request", error_description="want one bearer token"`)
			http.Error(w, "Bad Request: want Authorization: Bearer TOKEN", http.StatusBadRequest)
		default:
			if _, ok := ts.user(f[1]); !ok {
				w.Header().Set("WWW-Authenticate", realm+`, error="invalid_token", error_description="the token is not valid"`)
				http.Error(w, "Unauthorized: invalid token", http.StatusUnauthorized)
				return
			}
			inner.ServeHTTP(w, req)
		}
	})
}
