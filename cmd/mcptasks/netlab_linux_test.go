//go:build redis

package main

// A network lab for Redis Cluster partitions (issue 25). A TCP proxy in
// front of a cluster cannot partition a replica from it: the cluster hands
// its clients its nodes' own addresses (MOVED, CLUSTER SLOTS), and the
// client then dials those, around the proxy. So the lab puts the cluster
// and each serve replica in network namespaces of their own, joined by a
// bridge, and cuts a replica's port on that bridge.
//
// For the robustness harness (and any test) — what to know:
//
//   - l := newNetLab(t, netLabConfig{Replicas: 3}) builds the lab and
//     tears it down in t.Cleanup (even when the test fails; a lab left by
//     a killed test run is swept by the next newNetLab). It needs root,
//     iproute2 (`ip`) and Debian's redis-server/redis-cli: without them it
//     skips, or fails under MCPTASKS_TEST_REQUIRE=1 (requireNetLab says why).
//     Building it takes 2–4 s. Call its methods from one goroutine at a
//     time per replica or node; they are safe to call concurrently.
//   - l.StoreURL(): the cluster's redis+cluster:// URL. It works from the
//     replicas' namespaces and from the test process (which has an address
//     on the cluster's network, never partitioned), so a test can open the
//     store itself to check records.
//   - l.StartServe(i, args...) starts `mcptasks serve` (built with -tags
//     redis, without -race) in replica i's namespace, listening on
//     l.ClientURL(i) (a fixed address: a replica restarted after a kill
//     comes back at the same URL), with `--store l.StoreURL() --drain 1s`
//     before args (a later --store in args wins). l.ServeCommand(i, bin,
//     args...) is the same command unstarted, for another binary (such as
//     one built with -tags mcptasks_selftest) or another way to start it.
//   - l.Partition(i) / l.Heal(i): cut replica i from the cluster's network
//     and restore it. Packets are dropped, not refused (a disabled bridge
//     port; the neighbours' link addresses are permanent, so no ARP failure
//     turns the drop into "no route to host"): the replica's store calls
//     time out, as in a real partition. Clients in the test process still
//     reach the replica: its HTTP port is on a link of its own.
//   - l.KillNode(n) (SIGKILL) and l.RestartNode(n) (same port, same data:
//     appendonly with appendfsync always, nodes.conf) for cluster node n in
//     0..5; l.MasterNodes(ctx) says which nodes are masters now (the first
//     three at the start; a failover changes that), l.WaitClusterOK(ctx)
//     waits until every live node reports cluster_state:ok.
//   - Fault methods return errors rather than failing the test, so a
//     nemesis goroutine may call them.
//   - The robustness harness uses the lab through robustCluster
//     (robustness_cluster_linux_test.go): a robustStore whose store kill is
//     a master's SIGKILL, whose partitions are the lab's, and a
//     robustLauncher, so the harness starts each replica in its namespace
//     (ReplicaCommand: its --addr and --metrics-addr on the client link).
//     TestClusterPartitionProcess is the focused test of one partition.
//
// The network. Each lab takes one /24 of 198.18.0.0/15, the block set
// aside for network benchmark tests (RFC 2544; not routed on the Internet,
// and less likely than the 10/8 or 192.168/16 blocks to be a real network
// of the machine). newNetLab picks a /24 that overlaps no route or
// address of the host (all routing tables) and no other live lab, under a
// file lock, so labs of parallel tests and other users' networks never
// meet. With Y its third byte:
//
//	198.18.Y.0/25        the cluster's network: a bridge in the store namespace
//	  .1                 the store namespace (every node listens there, ports 7001-7006)
//	  .10+i              replica i
//	  .126               the test process's side (for StoreURL from the test)
//	198.18.Y.128+4i/30   replica i's client link: .129+4i the test process, .130+4i
//	                     replica i (serve listens on .130+4i:8080)
//
// Nothing leaves the machine: the namespaces have no default route and no
// route but their own links, so a replica cut from the bridge has no other
// way to the store (and the host forwards nothing: even where ip_forward
// is on, no namespace sends it anything to forward). Nothing new listens in
// the host's namespace: the servers listen in the lab's namespaces; the
// host only gets addresses on the lab's veth links.
//
// Names carry the prefix "mtl": namespaces mtl-PID-Y-s (store) and
// mtl-PID-Y-rI (replica I), host links mtlYl (cluster network) and mtlYcI
// (client links). A lab whose PID is no longer a running test binary is
// stale: newNetLab kills what runs in its namespaces and deletes them and
// its host links.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	netLabNodes     = 6    // 3 masters, 3 replicas
	netLabNodePort  = 7001 // node n listens on netLabNodePort+n
	netLabServePort = 8080
	// netLabMetricsPort is where the robustness run's replicas serve
	// their metrics, on their client links.
	netLabMetricsPort = 9464
	netLabMaxRepl     = 32 // client links in the upper half of the /24
)

// netLabConfig sizes a lab.
type netLabConfig struct {
	Replicas int // serve namespaces, 1..32
	// NodeTimeout is the cluster's cluster-node-timeout (how long a dead
	// master goes unnoticed before its replica is promoted); 0 means 5 s,
	// as scripts/redis_up.sh.
	NodeTimeout time.Duration
}

type netLab struct {
	t           testing.TB
	name        string // mtl-PID-Y, the prefix of its namespaces
	octet       int    // Y
	dir         string
	replicas    int
	nodeTimeout time.Duration

	mu    sync.Mutex
	nodes []*exec.Cmd // nil while killed
}

// netLabMissing says why no lab can be built here ("" when one can).
func netLabMissing() string {
	if os.Geteuid() != 0 {
		return "network namespaces need root (the matrix runs as root: sudo ./matrix_test.sh)"
	}
	for _, bin := range []string{"ip", "bridge", "redis-server", "redis-cli", "timeout", "bash"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Sprintf("%s is not installed (Debian: apt-get install iproute2 redis-server)", bin)
		}
	}
	return ""
}

// requireNetLab skips the test when no lab can be built, or fails it under
// MCPTASKS_TEST_REQUIRE=1.
func requireNetLab(t testing.TB) {
	t.Helper()
	if why := netLabMissing(); why != "" {
		if os.Getenv("MCPTASKS_TEST_REQUIRE") == "1" {
			t.Fatalf("the Redis Cluster network lab cannot run: %s", why)
		}
		t.Skipf("the Redis Cluster network lab cannot run: %s", why)
	}
}

// newNetLab builds a lab: the namespaces and links, then the cluster, up
// and ready (every slot served, every replica in sync).
func newNetLab(t testing.TB, cfg netLabConfig) *netLab {
	t.Helper()
	requireNetLab(t)
	if cfg.Replicas < 1 || cfg.Replicas > netLabMaxRepl {
		t.Fatalf("netLabConfig.Replicas %d: want 1..%d", cfg.Replicas, netLabMaxRepl)
	}
	if cfg.NodeTimeout == 0 {
		cfg.NodeTimeout = 5 * time.Second
	}
	l := &netLab{t: t, dir: t.TempDir(), replicas: cfg.Replicas, nodeTimeout: cfg.NodeTimeout,
		nodes: make([]*exec.Cmd, netLabNodes)}
	// Registered after TempDir, so it runs before the directory goes:
	// the nodes stop writing into it first.
	t.Cleanup(l.close)
	if err := l.build(); err != nil {
		t.Fatalf("building the network lab: %v", err)
	}
	for n := range netLabNodes {
		if err := l.startNode(n); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--cluster", "create"}
	for n := range netLabNodes {
		args = append(args, l.nodeAddr(n))
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := l.WaitClusterOK(ctx); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *netLab) storeNS() string        { return l.name + "-s" }
func (l *netLab) replicaNS(i int) string { return fmt.Sprintf("%s-r%d", l.name, i) }
func (l *netLab) ip4(last int) string    { return fmt.Sprintf("198.18.%d.%d", l.octet, last) }
func (l *netLab) storeIP() string        { return l.ip4(1) }
func (l *netLab) nodeAddr(n int) string {
	return fmt.Sprintf("%s:%d", l.storeIP(), netLabNodePort+n)
}

// mac is a locally administered address unique in the lab: kind 0 the
// store's bridge, 1 a replica's cluster link.
func (l *netLab) mac(kind, i int) string {
	return fmt.Sprintf("02:6d:74:%02x:%02x:%02x", l.octet, kind, i)
}

// StoreURL is the cluster's URL, for the replicas and the test process.
func (l *netLab) StoreURL() string {
	addrs := make([]string, netLabNodes)
	for n := range addrs {
		addrs[n] = l.nodeAddr(n)
	}
	return "redis+cluster://" + strings.Join(addrs, ",")
}

// ClientURL is replica i's MCP endpoint, reachable from the test process
// whether or not the replica is partitioned.
func (l *netLab) ClientURL(i int) string {
	return fmt.Sprintf("http://%s/mcp", l.serveAddr(i))
}

func (l *netLab) serveAddr(i int) string {
	return fmt.Sprintf("%s:%d", l.ip4(130+4*i), netLabServePort)
}

// ServeCommand is `bin serve` in replica i's namespace, listening on
// ClientURL(i), over the lab's cluster; args come last.
func (l *netLab) ServeCommand(i int, bin string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.replicaNS(i), bin, "serve",
		"--addr", l.serveAddr(i), "--drain", "1s", "--store", l.StoreURL()}, args...)...)
}

// StartServe starts serve (tags redis) as replica i and waits for it to
// listen. `ip netns exec` execs the binary, so the process is serve itself
// (signals such as SIGSTOP reach it).
func (l *netLab) StartServe(i int, args ...string) *replicaProc {
	l.t.Helper()
	return startReplicaCmd(l.t, l.ServeCommand(i, serveBinary(l.t, "redis"), args...))
}

// Partition cuts replica i from the cluster's network: its port on the
// bridge stops forwarding, so its packets (and the cluster's to it) are
// dropped without an answer.
func (l *netLab) Partition(i int) error { return l.portState(i, 0) }

// Heal lets replica i's packets through again (TCP retransmits what was
// held back; connections the replica gave up on meanwhile are gone).
func (l *netLab) Heal(i int) error { return l.portState(i, 3) }

// portState sets replica i's bridge port state: 0 disabled, 3 forwarding.
func (l *netLab) portState(i, state int) error {
	if i < 0 || i >= l.replicas {
		return fmt.Errorf("no replica %d in a lab of %d", i, l.replicas)
	}
	port := fmt.Sprintf("p%d", i)
	// `bridge link set`: `ip link set … type bridge_slave state N` is
	// accepted and ignored by iproute2 6.1. The state is read back.
	if err := netLabRun("bridge", "-n", l.storeNS(), "link", "set", "dev", port, "state", strconv.Itoa(state)); err != nil {
		return err
	}
	out, err := exec.Command("bridge", "-n", l.storeNS(), "-j", "link", "show", "dev", port).Output()
	if err != nil {
		return fmt.Errorf("bridge link show dev %s: %w", port, err)
	}
	var ports []struct {
		State string `json:"state"`
	}
	want := map[int]string{0: "disabled", 3: "forwarding"}[state]
	if err := json.Unmarshal(out, &ports); err != nil || len(ports) != 1 || ports[0].State != want {
		return fmt.Errorf("replica %d's bridge port is %s, want %s (%v)", i, out, want, err)
	}
	return nil
}

// KillNode kills cluster node n (0..5) with SIGKILL.
func (l *netLab) KillNode(n int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n < 0 || n >= netLabNodes || l.nodes[n] == nil {
		return fmt.Errorf("cluster node %d is not running", n)
	}
	cmd := l.nodes[n]
	l.nodes[n] = nil
	cmd.Process.Kill()
	cmd.Wait()
	return nil
}

// RestartNode starts cluster node n again, on its port and with its data
// (the append-only file and nodes.conf), and waits for it to answer.
func (l *netLab) RestartNode(n int) error { return l.startNode(n) }

func (l *netLab) startNode(n int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n < 0 || n >= netLabNodes || l.nodes[n] != nil {
		return fmt.Errorf("cluster node %d: no such node or already running", n)
	}
	dir := filepath.Join(l.dir, fmt.Sprintf("node-%d", n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cmd := exec.Command("ip", "netns", "exec", l.storeNS(), "redis-server",
		"--bind", l.storeIP(), "--port", strconv.Itoa(netLabNodePort+n), "--protected-mode", "no",
		"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		"--cluster-node-timeout", strconv.FormatInt(l.nodeTimeout.Milliseconds(), 10),
		"--cluster-require-full-coverage", "no",
		"--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting cluster node %d: %w", n, err)
	}
	l.nodes[n] = cmd
	c := redis.NewClient(&redis.Options{Addr: l.nodeAddr(n), DialTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			return fmt.Errorf("cluster node %d does not answer: %v; its log:\n%s", n, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// running lists the nodes not killed.
func (l *netLab) running() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int
	for n, c := range l.nodes {
		if c != nil {
			out = append(out, n)
		}
	}
	return out
}

func (l *netLab) nodeClient(n int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: l.nodeAddr(n), DialTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
}

// MasterNodes lists the nodes that are masters now (and not marked
// failed), as the first running node sees the cluster.
func (l *netLab) MasterNodes(ctx context.Context) ([]int, error) {
	live := l.running()
	if len(live) == 0 {
		return nil, errors.New("no cluster node is running")
	}
	c := l.nodeClient(live[0])
	defer c.Close()
	out, err := c.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, err
	}
	var masters []int
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.Contains(","+f[2]+",", ",master,") || strings.Contains(f[2], "fail") {
			continue
		}
		hostPort, _, _ := strings.Cut(f[1], "@")
		for n := range netLabNodes {
			if hostPort == l.nodeAddr(n) {
				masters = append(masters, n)
			}
		}
	}
	return masters, nil
}

// WaitClusterOK waits until every running node reports cluster_state:ok
// and is in sync (a master with its replica online, a replica with its
// master link up), so WAIT-based writes work from the first one.
func (l *netLab) WaitClusterOK(ctx context.Context) error {
	var last string
	for {
		last = ""
		for _, n := range l.running() {
			c := l.nodeClient(n)
			info, err := c.ClusterInfo(ctx).Result()
			repl, rerr := c.Info(ctx, "replication").Result()
			c.Close()
			switch {
			case err != nil || rerr != nil:
				last = fmt.Sprintf("node %d: %v %v", n, err, rerr)
			case !strings.Contains(info, "cluster_state:ok"):
				last = fmt.Sprintf("node %d: not cluster_state:ok", n)
			case strings.Contains(repl, "role:master") && !strings.Contains(repl, "state=online"):
				last = fmt.Sprintf("node %d: a master without an online replica", n)
			case strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up"):
				last = fmt.Sprintf("node %d: a replica whose master link is down", n)
			}
			if last != "" {
				break
			}
		}
		if last == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the lab's cluster is not ready: %s (%w)", last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// dialFrom tries a TCP connection to addr from replica i's namespace and
// says what happened: "connected", "timeout" (no answer within d: the
// packets were dropped) or "refused: …" (any other failure).
func (l *netLab) dialFrom(i int, addr string, d time.Duration) string {
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command("ip", "netns", "exec", l.replicaNS(i), "timeout", strconv.FormatFloat(d.Seconds(), 'f', 1, 64),
		"bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s", host, port))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return "connected"
	case errors.As(err, &exit) && exit.ExitCode() == 124:
		return "timeout"
	default:
		return fmt.Sprintf("refused: %v %s", err, strings.TrimSpace(string(out)))
	}
}

// build makes the namespaces and links, under the labs' lock: the sweep of
// stale labs and the choice of a free /24 must not race another lab's.
func (l *netLab) build() error {
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "mcptasks-netlab.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if err := netLabSweep(l.t); err != nil {
		return err
	}
	y, err := netLabFreeOctet()
	if err != nil {
		return err
	}
	l.octet = y
	l.name = fmt.Sprintf("mtl-%d-%d", os.Getpid(), y)
	s := l.storeNS()
	host := fmt.Sprintf("mtl%dl", y)
	cmds := [][]string{
		{"netns", "add", s},
		{"-n", s, "link", "set", "lo", "up"},
		{"-n", s, "link", "add", "br0", "address", l.mac(0, 1), "type", "bridge"},
		{"-n", s, "addr", "add", l.storeIP() + "/25", "dev", "br0"},
		{"-n", s, "link", "set", "br0", "up"},
		{"link", "add", host, "type", "veth", "peer", "name", "ph", "netns", s},
		{"-n", s, "link", "set", "ph", "master", "br0", "up"},
		{"addr", "add", l.ip4(126) + "/25", "dev", host},
		{"link", "set", host, "up"},
	}
	for i := range l.replicas {
		r, lan, cli := l.replicaNS(i), l.ip4(10+i), fmt.Sprintf("mtl%dc%d", y, i)
		cmds = append(cmds, [][]string{
			{"netns", "add", r},
			{"-n", r, "link", "set", "lo", "up"},
			// The cluster link: "lan" in the replica, port pI on the bridge.
			{"-n", s, "link", "add", fmt.Sprintf("p%d", i), "type", "veth", "peer", "name", "lan", "netns", r},
			{"-n", r, "link", "set", "lan", "address", l.mac(1, i)},
			{"-n", r, "addr", "add", lan + "/25", "dev", "lan"},
			{"-n", r, "link", "set", "lan", "up"},
			{"-n", s, "link", "set", fmt.Sprintf("p%d", i), "master", "br0", "up"},
			// Permanent neighbours: a partition drops packets; it never
			// becomes an ARP failure ("no route to host") on either side.
			{"-n", r, "neigh", "replace", l.storeIP(), "lladdr", l.mac(0, 1), "dev", "lan", "nud", "permanent"},
			{"-n", s, "neigh", "replace", lan, "lladdr", l.mac(1, i), "dev", "br0", "nud", "permanent"},
			// The client link: the test process's side in the host.
			{"link", "add", cli, "type", "veth", "peer", "name", "cli", "netns", r},
			{"addr", "add", l.ip4(129+4*i) + "/30", "dev", cli},
			{"link", "set", cli, "up"},
			{"-n", r, "addr", "add", l.ip4(130+4*i) + "/30", "dev", "cli"},
			{"-n", r, "link", "set", "cli", "up"},
		}...)
	}
	for _, c := range cmds {
		if err := netLabRun("ip", c...); err != nil {
			return err
		}
	}
	return nil
}

// close stops the nodes and deletes the lab's links and namespaces
// (killing whatever still runs in them).
func (l *netLab) close() {
	l.mu.Lock()
	for n, c := range l.nodes {
		if c != nil {
			c.Process.Kill()
			c.Wait()
			l.nodes[n] = nil
		}
	}
	l.mu.Unlock()
	if l.name == "" {
		return
	}
	if err := netLabRemove(l.name, l.octet); err != nil {
		l.t.Errorf("tearing down the network lab %s: %v", l.name, err)
	}
}

var (
	netLabNSName   = regexp.MustCompile(`^mtl-(\d+)-(\d+)-(s|r\d+)$`)
	netLabLinkName = regexp.MustCompile(`^mtl(\d+)(l|c\d+)$`)
)

// netLabRemove kills what runs in the namespaces of the lab called name
// and deletes them and its host links (octet y).
func netLabRemove(name string, y int) error {
	var errs []error
	links, err := netLabHostLinks()
	if err != nil {
		errs = append(errs, err)
	}
	for _, link := range links {
		if m := netLabLinkName.FindStringSubmatch(link); m != nil && m[1] == strconv.Itoa(y) {
			errs = append(errs, netLabRun("ip", "link", "del", link))
		}
	}
	spaces, err := netLabNamespaces()
	if err != nil {
		errs = append(errs, err)
	}
	for _, ns := range spaces {
		if !strings.HasPrefix(ns, name+"-") {
			continue
		}
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		errs = append(errs, netLabRun("ip", "netns", "del", ns))
	}
	return errors.Join(errs...)
}

// netLabSweep removes the labs whose test process is gone.
func netLabSweep(t testing.TB) error {
	spaces, err := netLabNamespaces()
	if err != nil {
		return err
	}
	stale := map[string]int{}
	live := map[string]bool{}
	for _, ns := range spaces {
		m := netLabNSName.FindStringSubmatch(ns)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		y, _ := strconv.Atoi(m[2])
		if netLabOwnerAlive(pid) {
			live[m[2]] = true
		} else {
			stale[fmt.Sprintf("mtl-%s-%s", m[1], m[2])] = y
		}
	}
	var errs []error
	for name, y := range stale {
		t.Logf("removing the stale network lab %s", name)
		errs = append(errs, netLabRemove(name, y))
	}
	// Host links of no live lab: left by a run killed before its
	// namespaces existed, or by a removal that failed half way.
	links, err := netLabHostLinks()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, link := range links {
		if m := netLabLinkName.FindStringSubmatch(link); m != nil && !live[m[1]] {
			errs = append(errs, netLabRun("ip", "link", "del", link))
		}
	}
	return errors.Join(errs...)
}

// netLabOwnerAlive: pid runs a test binary (a *.test file, as go test
// builds), so its lab is not stale. A pid reused by another program does
// not keep a lab alive.
func netLabOwnerAlive(pid int) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	argv0, _, _ := strings.Cut(string(cmdline), "\x00")
	return strings.HasSuffix(argv0, ".test")
}

func netLabNamespaces() ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w", err)
	}
	var names []string
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "mtl-") {
			names = append(names, f[0])
		}
	}
	return names, nil
}

func netLabHostLinks() ([]string, error) {
	out, err := exec.Command("ip", "-j", "link", "show").Output()
	if err != nil {
		return nil, fmt.Errorf("ip link show: %w", err)
	}
	var links []struct {
		Name string `json:"ifname"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return nil, fmt.Errorf("ip -j link show: %w", err)
	}
	var names []string
	for _, l := range links {
		if strings.HasPrefix(l.Name, "mtl") {
			names = append(names, l.Name)
		}
	}
	return names, nil
}

// netLabFreeOctet picks Y such that 198.18.Y.0/24 overlaps no route of the
// host (in any table, its own addresses included) other than a default
// route, starting at a point that depends on the pid.
func netLabFreeOctet() (int, error) {
	out, err := exec.Command("ip", "-j", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		return 0, fmt.Errorf("ip route show: %w", err)
	}
	var routes []struct {
		Dst string `json:"dst"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return 0, fmt.Errorf("ip -j route show: %w", err)
	}
	var used []netip.Prefix
	for _, r := range routes {
		p, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			a, aerr := netip.ParseAddr(r.Dst)
			if aerr != nil {
				continue // "default" and the like
			}
			p = netip.PrefixFrom(a, 32)
		}
		if p.Bits() > 0 {
			used = append(used, p)
		}
	}
	start := os.Getpid() % 256
	for k := range 256 {
		y := (start + k) % 256
		cand := netip.MustParsePrefix(fmt.Sprintf("198.18.%d.0/24", y))
		free := true
		for _, p := range used {
			if p.Overlaps(cand) {
				free = false
				break
			}
		}
		if free {
			return y, nil
		}
	}
	return 0, errors.New("no free /24 in 198.18.0.0/16 for a network lab")
}

// netLabRun runs a command, its output in the error.
func netLabRun(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// TestNetLab checks the lab itself: a replica reaches the cluster until it
// is partitioned, then its connections time out (dropped, not refused)
// while the test still reaches its serve; after Heal it reaches the
// cluster again; a master killed is replaced by its replica and comes
// back as a replica when restarted.
func TestNetLab(t *testing.T) {
	l := newNetLab(t, netLabConfig{Replicas: 1, NodeTimeout: 2 * time.Second})
	if got := l.dialFrom(0, l.nodeAddr(0), 2*time.Second); got != "connected" {
		t.Fatalf("replica 0 to node 0 before the partition: %s", got)
	}
	const token = "secret-lab"
	a := l.StartServe(0, "--token", "alice:"+token)
	if a.url != l.ClientURL(0) {
		t.Errorf("serve says %s, the lab %s", a.url, l.ClientURL(0))
	}
	_, res := modernCall(t, a.url, token, "tools/call", map[string]any{"name": "sleep", "arguments": map[string]any{"seconds": 600}}, "sleep")
	if res["error"] != nil {
		t.Fatalf("tools/call: %s", res["error"])
	}
	id := field[string](t, res["result"], "taskId")

	if err := l.Partition(0); err != nil {
		t.Fatal(err)
	}
	if got := l.dialFrom(0, l.nodeAddr(0), 2*time.Second); got != "timeout" {
		t.Errorf("replica 0 to node 0 while partitioned: %s, want a timeout", got)
	}
	// The test still reaches the replica (modernCall fails the test on a
	// transport error), which cannot read the store.
	if _, res := modernCall(t, a.url, token, "tasks/get", map[string]any{"taskId": id}, id); res["error"] == nil {
		t.Errorf("tasks/get on the partitioned replica answered %s, want an error", res["result"])
	}
	if err := l.Heal(0); err != nil {
		t.Fatal(err)
	}
	if got := l.dialFrom(0, l.nodeAddr(0), 2*time.Second); got != "connected" {
		t.Fatalf("replica 0 to node 0 after Heal: %s", got)
	}
	waitWorking := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, res := modernCall(t, a.url, token, "tasks/get", map[string]any{"taskId": id}, id)
			if res["result"] != nil && field[string](t, res["result"], "status") == "working" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: tasks/get still answers %s %s", what, res["error"], res["result"])
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitWorking("after Heal")

	ctx := t.Context()
	masters, err := l.MasterNodes(ctx)
	if err != nil || len(masters) != 3 {
		t.Fatalf("masters %v, %v", masters, err)
	}
	victim := masters[0]
	if err := l.KillNode(victim); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		now, err := l.MasterNodes(ctx)
		if err == nil && len(now) == 3 && !slices.Contains(now, victim) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica promoted 30 s after node %d was killed: masters %v %v", victim, now, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := l.RestartNode(victim); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := l.WaitClusterOK(wctx); err != nil {
		t.Fatal(err)
	}
	if now, _ := l.MasterNodes(ctx); slices.Contains(now, victim) {
		t.Errorf("node %d came back as a master: %v", victim, now)
	}
	waitWorking("after the failover")
}
