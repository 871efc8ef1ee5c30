package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mcptasks/mcptasks/taskadmin"
)

const (
	adminToken = "admin-token-0123456789"
	userToken  = "alice-user-token-0123456789"
)

// adminURL is the admin page's address serve printed before its endpoint.
func adminURL(t *testing.T, before []string) string {
	t.Helper()
	re := regexp.MustCompile(`admin page on (http://\S+/admin/)`)
	for _, l := range before {
		if m := re.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	t.Fatalf("serve printed no admin page address: %q", before)
	return ""
}

// adminDo sends one request to the admin page with auth ("" none, "bearer
// T" or "basic T") and returns the status and body.
func adminDo(t *testing.T, method, u, auth string, form url.Values, header map[string]string) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if kind, tok, ok := strings.Cut(auth, " "); ok {
		if kind == "basic" {
			req.SetBasicAuth("operator", tok)
		} else {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestServeAdmin: --admin-token mounts the admin page at /admin/ behind
// that token alone: a user's token does not open it, and it does not open
// /mcp. Through it an operator sees a user's task and cancels it; a
// cross-origin POST is refused.
func TestServeAdmin(t *testing.T) {
	u, before, _, _ := startServeLines(t, "--token", "alice:"+userToken, "--admin-token", adminToken)
	admin := adminURL(t, before)

	for _, c := range []struct {
		auth string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"bearer " + userToken, http.StatusUnauthorized},
		{"basic " + userToken, http.StatusUnauthorized},
		{"bearer " + adminToken + "x", http.StatusUnauthorized},
		{"bearer " + adminToken, http.StatusOK},
		{"basic " + adminToken, http.StatusOK},
	} {
		if code, body := adminDo(t, "GET", admin, c.auth, nil, nil); code != c.want {
			t.Errorf("GET /admin/ with %q: %d %s, want %d", c.auth, code, body, c.want)
		}
	}
	if code, _ := modernCall(t, u, adminToken, "tools/list", nil, ""); code != http.StatusUnauthorized {
		t.Errorf("/mcp with the admin token: %d, want 401", code)
	}
	// A browser is asked for Basic credentials.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", admin, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if ch := res.Header.Values("WWW-Authenticate"); len(ch) != 2 || !strings.HasPrefix(ch[0], "Basic ") {
		t.Errorf("challenges %q", ch)
	}

	_, out := modernCall(t, u, userToken, "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 60}}, "slow_compute")
	var created struct {
		TaskID string `json:"taskId"`
	}
	if err := json.Unmarshal(out["result"], &created); err != nil || created.TaskID == "" {
		t.Fatalf("tools/call: %s %s", out["result"], out["error"])
	}
	code, body := adminDo(t, "GET", admin+"tasks?status=working", "bearer "+adminToken, nil, nil)
	var list taskadmin.TaskList
	if code != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list.Tasks) != 1 {
		t.Fatalf("GET /admin/tasks: %d %s", code, body)
	}
	task := list.Tasks[0]
	if task.TaskID != created.TaskID || task.Owner != "alice" || task.Tool != "slow_compute" || task.Runner == "" {
		t.Errorf("listed %+v", task)
	}

	form := url.Values{"ref": {task.Ref}}
	if code, body := adminDo(t, "POST", admin+"cancel", "bearer "+adminToken, form, map[string]string{"Sec-Fetch-Site": "cross-site"}); code != http.StatusForbidden {
		t.Errorf("cross-origin POST: %d %s, want 403", code, body)
	}
	code, body = adminDo(t, "POST", admin+"cancel", "bearer "+adminToken, form, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if code != http.StatusOK || !strings.Contains(body, `"status": "cancelled"`) {
		t.Fatalf("cancel: %d %s", code, body)
	}
	_, out = modernCall(t, u, userToken, "tasks/get", map[string]any{"taskId": created.TaskID}, created.TaskID)
	if !strings.Contains(string(out["result"]), `"status":"cancelled"`) {
		t.Errorf("the user's tasks/get after the admin's cancel: %s %s", out["result"], out["error"])
	}
}

// TestServeAdminReadOnlyAndDigests: --admin-read-only refuses every POST;
// --admin-owner-digests shows no owner.
func TestServeAdminReadOnlyAndDigests(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(file, []byte("# the admin page's token\n"+adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, before, _, _ := startServeLines(t, "--token", "alice:"+userToken, "--admin-token-file", file, "--admin-read-only", "--admin-owner-digests")
	admin := adminURL(t, before)
	modernCall(t, u, userToken, "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 60}}, "slow_compute")
	code, body := adminDo(t, "GET", admin+"tasks", "basic "+adminToken, nil, nil)
	var list taskadmin.TaskList
	if code != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list.Tasks) != 1 {
		t.Fatalf("GET /admin/tasks: %d %s", code, body)
	}
	if list.Tasks[0].Owner != taskadmin.OwnerDigest("alice") || strings.Contains(body, "alice") || !list.ReadOnly {
		t.Errorf("with digests and read-only: %s", body)
	}
	code, body = adminDo(t, "POST", admin+"cancel", "basic "+adminToken, url.Values{"ref": {list.Tasks[0].Ref}}, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if code != http.StatusForbidden || !strings.Contains(body, "read-only") {
		t.Errorf("POST in read-only mode: %d %s", code, body)
	}
}

// TestServeAdminFlags: what serve refuses, without quoting a token.
func TestServeAdminFlags(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("# nothing\n\n"), 0o600)
	for _, c := range []struct {
		args  []string
		usage bool
		says  string
	}{
		{[]string{"--admin-read-only"}, true, "need --admin-token"},
		{[]string{"--admin-token", adminToken, "--admin-token-file", empty}, true, "not both"},
		{[]string{"--admin-token", adminToken, "--stdio"}, true, "--stdio"},
		{[]string{"--admin-token", adminToken, "--admin-stuck-after", "0s"}, true, "positive"},
		{[]string{"--admin-token", "short-secret"}, false, "shorter than 16"},
		{[]string{"--admin-token", "has a-space-0123456789"}, false, "whitespace"},
		{[]string{"--admin-token", userToken, "--token", "alice:" + userToken}, false, "also a user's token"},
		{[]string{"--admin-token-file", empty}, false, "holds no admin token"},
	} {
		var stderr strings.Builder
		err := serveMain(context.Background(), append([]string{"--addr", "127.0.0.1:0"}, c.args...), io.Discard, &stderr)
		var ue usageError
		if err == nil || errors.As(err, &ue) != c.usage || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%q: %v (usage error %v), want one saying %q", c.args, err, errors.As(err, &ue), c.says)
		}
		for _, secret := range []string{"short-secret", "a-space-0123456789", userToken} {
			if err != nil && strings.Contains(err.Error()+stderr.String(), secret) {
				t.Errorf("%q: the error quotes the token: %v", c.args, err)
			}
		}
	}
}
