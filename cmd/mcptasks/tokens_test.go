package main

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	mg "github.com/mark3labs/mcp-go/mcp"
)

// Secrets shaped like real ones: base64 padding, key=value, colons,
// non-ASCII. Every one must be taken whole, and never be logged.
const (
	padded   = "c2VjcmV0LXRva2Vu==" // base64 with padding
	keyValue = "k=v:w=x"            // '=' and ':' both
	colons   = "::x::"              // leading colon: the user ends at the first one
	unicodeT = "Zürich-μ-token"     // non-ASCII, no whitespace
	hashIn   = "a#b"                // '#' inside a file token is not a comment
)

func TestTokenFormats(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		file  string
		want  map[string]string // token -> user
		err   bool
	}{
		{name: "flag splits at the first colon", flags: []string{"alice:" + padded, "bob:" + keyValue, "carol:" + colons, "dave:" + unicodeT},
			want: map[string]string{padded: "alice", keyValue: "bob", colons: "carol", unicodeT: "dave"}},
		{name: "file: TOKEN USER, comments, tabs, CRLF", file: "# token user\n\n" + padded + " alice\r\n\t" + keyValue + "\tbob   # bob's laptop\n" + hashIn + " erin\n#disabled-token frank\n",
			want: map[string]string{padded: "alice", keyValue: "bob", hashIn: "erin"}},
		{name: "file and flags together", flags: []string{"alice:" + colons}, file: unicodeT + " bob\n",
			want: map[string]string{colons: "alice", unicodeT: "bob"}},
		{name: "flag without colon", flags: []string{padded}, err: true},
		{name: "flag old TOKEN=USER form", flags: []string{"s3cret=alice"}, err: true},
		{name: "flag empty user", flags: []string{":" + padded}, err: true},
		{name: "flag empty token", flags: []string{"alice:"}, err: true},
		{name: "flag token with a space", flags: []string{"alice:two words"}, err: true},
		{name: "flag token with a tab", flags: []string{"alice:a\tb"}, err: true},
		{name: "flag token with a no-break space", flags: []string{"alice:a\u00a0b"}, err: true},
		{name: "flag token with a control character", flags: []string{"alice:a\x01b"}, err: true},
		{name: "flag user with a space", flags: []string{"al ice:" + padded}, err: true},
		{name: "same token twice", flags: []string{"alice:" + padded, "bob:" + padded}, err: true},
		{name: "same token in flag and file", flags: []string{"alice:" + padded}, file: padded + " bob\n", err: true},
		{name: "file line with one field", file: padded + "\n", err: true},
		{name: "file line with three fields", file: padded + " alice extra\n", err: true},
		{name: "file without tokens", file: "# nothing\n\n", err: true},
		{name: "file with a control character", file: "a\x01b alice\n", err: true},
		{name: "file with a line over 64 KiB", file: "ok alice\n" + strings.Repeat("x", 70000) + " bob\n", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := tokenSet{}
			err := tokenFlags(tc.flags).addTo(ts)
			if err == nil && tc.file != "" {
				err = parseTokens(strings.NewReader(tc.file), "tokens.txt", ts)
			}
			if tc.err {
				if !errors.Is(err, errBadToken) {
					t.Fatalf("err %v, want errBadToken", err)
				}
				// The message names the entry, never the secret.
				for _, s := range append(tc.flags, strings.Fields(tc.file)...) {
					_, tok, _ := strings.Cut(s, ":")
					for _, secret := range []string{s, tok} {
						if len(secret) >= 3 && !strings.HasPrefix(secret, "#") && strings.Contains(err.Error(), secret) {
							t.Errorf("error %q quotes %q", err, secret)
						}
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for tok := range tc.want {
				if u, ok := ts.user(tok); ok {
					got[tok] = u
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" || len(ts) != len(tc.want) {
				t.Errorf("tokens (-want +got):\n%s(%d configured)", diff, len(ts))
			}
			// A prefix or an extension of a token is not a token.
			for tok := range tc.want {
				for _, near := range []string{tok[:len(tok)-1], tok + "=", strings.TrimRight(tok, "=")} {
					if _, ok := ts.user(near); ok && near != tok {
						t.Errorf("%q accepted as a token", near)
					}
				}
			}
		})
	}
}

// TestServeBadTokenNotEchoed: the flag package quotes a value it cannot
// set; serve must not, since the value is a secret.
func TestServeBadTokenNotEchoed(t *testing.T) {
	for _, arg := range []string{"no-colon-secret-value", "alice:has a-space-secret", "alice:dup-secret-value"} {
		var out, errb strings.Builder
		args := []string{"serve", "--addr", "127.0.0.1:0", "--token", arg}
		if strings.Contains(arg, "dup") {
			args = append(args, "--token", "bob:dup-secret-value")
		}
		if code := run(t.Context(), args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", arg, code, errb.String())
		}
		if strings.Contains(errb.String(), "secret") || !strings.Contains(errb.String(), "--token #") {
			t.Errorf("%q: stderr %q should name the flag, not quote it", arg, errb.String())
		}
	}
}

// TestServeBearerChallenges: over HTTP, on both protocols' paths, every
// token is taken whole, anything else gets the RFC 6750 challenge, and no
// part of a token reaches the log.
func TestServeBearerChallenges(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte(keyValue+" bob\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url, logs, stop := startServe(t, "--token", "alice:"+padded, "--tokens-file", file)

	post := func(authz string, modern bool) *http.Response {
		t.Helper()
		body := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
		req, _ := http.NewRequestWithContext(t.Context(), "POST", url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if modern {
			req.Header.Set("MCP-Protocol-Version", "2026-07-28")
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	const realm = `Bearer realm="mcptasks"`
	for _, modern := range []bool{false, true} {
		for _, tc := range []struct {
			name, authz string
			status      int
			challenge   string // "" = no WWW-Authenticate expected
		}{
			{"no header", "", 401, realm},
			{"basic auth", "Basic YWxpY2U6cHc=", 401, realm},
			{"bearer without token", "Bearer", 400, realm + `, error="invalid_request", error_description="want one bearer token"`},
			{"two tokens", "Bearer " + padded + " " + padded, 400, realm + `, error="invalid_request", error_description="want one bearer token"`},
			{"unknown token", "Bearer nope", 401, realm + `, error="invalid_token", error_description="the token is not valid"`},
			{"prefix of a token", "Bearer " + strings.TrimRight(padded, "="), 401, realm + `, error="invalid_token", error_description="the token is not valid"`},
			{"prefix before '='", "Bearer k", 401, realm + `, error="invalid_token", error_description="the token is not valid"`},
			{"suffix after '='", "Bearer v:w=x", 401, realm + `, error="invalid_token", error_description="the token is not valid"`},
			{"the user as token", "Bearer alice", 401, realm + `, error="invalid_token", error_description="the token is not valid"`},
			{"padded token", "Bearer " + padded, 0, ""},
			{"key=value token", "Bearer " + keyValue, 0, ""},
			{"lower-case scheme", "bearer " + keyValue, 0, ""},
		} {
			resp := post(tc.authz, modern)
			got := resp.Header.Get("WWW-Authenticate")
			if tc.status == 0 {
				// Past authentication, the SDK answers the session-less ping
				// in its own way; what matters is that it was not refused.
				if resp.StatusCode == 401 || resp.StatusCode == 403 || got != "" {
					t.Errorf("modern=%v %s: status %d, challenge %q", modern, tc.name, resp.StatusCode, got)
				}
				continue
			}
			if resp.StatusCode != tc.status || got != tc.challenge {
				t.Errorf("modern=%v %s: status %d, WWW-Authenticate %q; want %d, %q", modern, tc.name, resp.StatusCode, got, tc.status, tc.challenge)
			}
		}
	}

	// Tasks belong to the whole token's user, and the log names users only.
	a := connect(t, url, padded)
	id := startTask(t, a, "sleep", map[string]any{"seconds": 0})
	if _, err := a.TaskResult(t.Context(), mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: id}}); err != nil {
		t.Fatal(err)
	}
	b := connect(t, url, keyValue)
	if _, err := b.GetTask(t.Context(), mg.GetTaskRequest{Params: mg.GetTaskParams{TaskId: id}}); err == nil {
		t.Error("bob read alice's task")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "owner=alice") {
		t.Errorf("log lacks owner=alice:\n%s", out)
	}
	for _, part := range []string{"c2VjcmV0", "LXRva2Vu", "k=v", "v:w", "w=x"} {
		if strings.Contains(out, part) {
			t.Errorf("log holds %q, part of a token:\n%s", part, out)
		}
	}
}

// tokenErr is every error the token parsers may give: a position and a
// fixed reason, so that nothing of the input (a secret) can be in it.
var tokenErr = regexp.MustCompile(`^bad token configuration: (tokens\.txt:\d+|--token #\d+): ` +
	`(want TOKEN USER \(\d+ fields\)|want USER:TOKEN|empty token|a token cannot hold whitespace or control characters \(an Authorization header could not carry it\)|` +
	`the user must be non-empty, without whitespace|this token is already configured|a line longer than 65536 bytes)$` +
	`|^bad token configuration: tokens\.txt holds no tokens$`)

// FuzzTokens: for any tokens file and --token value, parsing never panics,
// every error is position + fixed reason, and every accepted token
// survives an Authorization header as the SDK splits it, maps to the
// user its line or flag gave, and nothing else is accepted.
func FuzzTokens(f *testing.F) {
	f.Add(padded+" alice\n# c\n"+keyValue+" bob # laptop\n", "carol:"+colons)
	f.Add("a\x01b alice\n", "no-colon")
	f.Add("\ufefftok user\n", ":x")
	f.Add("t u\nt v\n", "w:t")
	f.Add(strings.Repeat("y", 70000)+" u\n", "w:t")
	f.Fuzz(func(t *testing.T, file, flagValue string) {
		ts := tokenSet{}
		err := tokenFlags{flagValue}.addTo(ts)
		if err == nil {
			err = parseTokens(strings.NewReader(file), "tokens.txt", ts)
		}
		if err != nil {
			if !tokenErr.MatchString(err.Error()) {
				t.Fatalf("error %q is not position + fixed reason", err)
			}
			return
		}
		want := map[string]string{}
		user, tok, _ := strings.Cut(flagValue, ":")
		want[tok] = user
		for _, line := range strings.Split(file, "\n") {
			if f := strings.Fields(line); len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
				want[f[0]] = f[1]
			}
		}
		if len(ts) != len(want) {
			t.Fatalf("%d tokens configured, want %d", len(ts), len(want))
		}
		for tok, user := range want {
			if got, ok := ts.user(tok); !ok || got != user {
				t.Fatalf("token %q: user %q %v, want %q", tok, got, ok, user)
			}
			if f := strings.Fields("Bearer " + tok); len(f) != 2 || f[1] != tok {
				t.Fatalf("token %q does not survive an Authorization header: %q", tok, f)
			}
		}
	})
}

func TestTokensFileReadableByOthers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte(padded+" alice\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var warned []string
	warn := func(msg string, _ ...any) { warned = append(warned, msg) }
	if err := readTokens(file, tokenSet{}, warn); err != nil || len(warned) != 1 || !strings.Contains(warned[0], "readable by other users") {
		t.Errorf("0644 tokens file: err %v, warnings %q", err, warned)
	}
	warned = nil
	os.Chmod(file, 0o600)
	if err := readTokens(file, tokenSet{}, warn); err != nil || len(warned) != 0 {
		t.Errorf("0600 tokens file: err %v, warnings %q", err, warned)
	}
	if err := readTokens(filepath.Join(t.TempDir(), "missing"), tokenSet{}, warn); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
