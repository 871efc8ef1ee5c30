//go:build redis

package main

import (
	"bufio"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestREADMERedisRecipe runs the README's two-replica recipe: its server
// commands (a Redis, and two `go run -tags redis ./cmd/mcptasks serve`
// over it), each as written from the module root, then its curl script,
// and compares what the script prints with the README's output block. Only
// the ports change, to free ones. Without redis-server on PATH it uses the
// server of MCPTASKS_TEST_REDIS_URL instead of the README's first command;
// with neither it skips, or fails when MCPTASKS_TEST_REQUIRE=1.
func TestREADMERedisRecipe(t *testing.T) {
	readme := readmeForScripts(t)
	servers := readmeBlock(t, readme, "<!-- redis-recipe: servers -->")
	commands := readmeBlock(t, readme, "<!-- redis-recipe: commands -->")
	want := readmeBlock(t, readme, "<!-- redis-recipe: output -->")

	var lines []string
	for _, l := range strings.Split(servers, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	const (
		redisPort = "6390"
		portA     = "8091"
		portB     = "8092"
		serve     = "go run -tags redis ./cmd/mcptasks serve "
	)
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "redis-server ") ||
		!strings.HasPrefix(lines[1], serve) || !strings.HasPrefix(lines[2], serve) {
		t.Fatalf("the recipe's servers are no longer redis-server and two %q:\n%s", serve, servers)
	}

	// The README's addresses, and what this test runs them on.
	redisURL := "redis://127.0.0.1:" + redisPort
	subst := map[string]string{
		"127.0.0.1:" + portA: "127.0.0.1:" + freePort(t),
		"127.0.0.1:" + portB: "127.0.0.1:" + freePort(t),
	}
	if _, err := exec.LookPath("redis-server"); err == nil {
		p := freePort(t)
		subst["--port "+redisPort] = "--port " + p
		subst[redisURL] = "redis://127.0.0.1:" + p
		startRecipeServer(t, lines[0], subst, nil)
		waitListening(t, "127.0.0.1:"+p)
	} else {
		u := testServerEnv(t, "MCPTASKS_TEST_REDIS_URL", "scripts/redis_up.sh")
		t.Logf("redis-server is not on PATH: the replicas use %s", u)
		subst[redisURL] = u + "?prefix=recipe-" + randomSuffix() + ":"
	}
	for old := range subst {
		if !strings.Contains(servers+commands, old) {
			t.Fatalf("the recipe no longer uses %s", old)
		}
	}
	addr := regexp.MustCompile(`on (http://\S+/mcp), store `)
	for _, l := range lines[1:] {
		startRecipeServer(t, l, subst, addr)
	}
	runREADMEScript(t, "Redis recipe", replaceAll(commands, subst), want)
}

// startRecipeServer runs one README command from the module root, in a
// process group of its own (go run starts serve as its child), and stops
// the group at cleanup: SIGINT, which go run leaves to serve and Redis
// answers by exiting, then SIGKILL. With ready set, it waits until the
// command prints a line that matches.
func startRecipeServer(t *testing.T, line string, subst map[string]string, ready *regexp.Regexp) {
	t.Helper()
	line = replaceAll(line, subst)
	cmd := exec.Command("bash", "-c", line)
	cmd.Dir = "../.."
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logs := &syncBuffer{}
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	found := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			logs.Write([]byte(sc.Text() + "\n"))
			if ready != nil && ready.MatchString(sc.Text()) {
				select {
				case found <- struct{}{}:
				default:
				}
			}
		}
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			t.Errorf("%s: still running 15 s after SIGINT; killed", line)
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	if ready == nil {
		return
	}
	select { // go run compiles first
	case <-found:
	case <-exited:
		t.Fatalf("%s: exited; output:\n%s", line, logs)
	case <-time.After(5 * time.Minute):
		t.Fatalf("%s: printed no address in 5 minutes; output:\n%s", line, logs)
	}
}

func replaceAll(s string, subst map[string]string) string {
	for old, new := range subst {
		s = strings.ReplaceAll(s, old, new)
	}
	return s
}

// freePort is a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("nothing listens on %s after 30 s", addr)
}
