//go:build redis

package mcptasks

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file starts Redis Clusters of a test's own, for the tests that kill,
// freeze or reconfigure nodes (the shared cluster of scripts/redis_up.sh
// serves the conformance suite and must stay whole).

// redisTestCluster is a Redis Cluster run by one test: masters first, then
// the replicas, replica i of master i%masters.
type redisTestCluster struct {
	t       *testing.T
	bin     string
	masters int
	nodes   []*redisClusterNode
	tls     *tls.Config // for the admin clients; nil: plain TCP
}

// redisClusterNode is one redis-server of a test cluster.
type redisClusterNode struct {
	port  int
	dir   string
	args  []string // everything but --port and --dir
	proc  *redisProc
	admin *redis.Client // the test's own connection, never the store's
	id    string
}

// redisClusterPort returns a loopback port that is free, as is its cluster
// bus port (port+10000): below the kernel's ephemeral range, so that the
// bus port exists and outgoing connections do not take it meanwhile.
func redisClusterPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := 20000 + rand.IntN(25000)
		free := true
		for _, q := range []int{p, p + 10000} {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", q))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return p
		}
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

// startRedisCluster starts masters + masters*replicasEach redis-servers
// with the given cluster node timeout, assigns the slots evenly to the
// masters, joins the replicas, and waits until every node sees the
// cluster as ok and every replica has synced. extra are more server
// arguments for every node (TLS, persistence); tlsConf is what the test's
// admin connections use with them.
func startRedisCluster(t *testing.T, masters, replicasEach int, nodeTimeout time.Duration, tlsConf *tls.Config, extra ...string) *redisTestCluster {
	t.Helper()
	c := &redisTestCluster{t: t, bin: redisServerBinary(t), masters: masters, tls: tlsConf}
	n := masters * (1 + replicasEach)
	for i := range n {
		port := redisClusterPort(t)
		dir := t.TempDir()
		node := &redisClusterNode{port: port, dir: dir, args: append([]string{
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", strconv.FormatInt(nodeTimeout.Milliseconds(), 10),
		}, extra...)}
		if tlsConf != nil {
			node.args = append(node.args, "--port", "0", "--tls-port", strconv.Itoa(port))
		}
		c.nodes = append(c.nodes, node)
		c.start(i)
		node.admin = redis.NewClient(&redis.Options{Addr: c.addr(i), TLSConfig: tlsConf, MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, PoolSize: 2, DisableIdentity: true})
		t.Cleanup(func() { node.admin.Close() })
	}
	ctx := t.Context()
	for i, node := range c.nodes {
		id, err := node.admin.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatalf("CLUSTER MYID on node %d: %v", i, err)
		}
		node.id = id
		// Distinct epochs, as redis-cli --cluster create sets them, so
		// that no two masters start with a configuration conflict.
		if err := node.admin.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			t.Fatalf("CLUSTER SET-CONFIG-EPOCH on node %d: %v", i, err)
		}
		if i < masters {
			lo, hi := i*16384/masters, (i+1)*16384/masters-1
			if err := node.admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
				t.Fatalf("CLUSTER ADDSLOTSRANGE on node %d: %v", i, err)
			}
		}
	}
	for i := 1; i < n; i++ {
		if err := c.nodes[i].admin.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(c.nodes[0].port)).Err(); err != nil {
			t.Fatalf("CLUSTER MEET from node %d: %v", i, err)
		}
	}
	c.waitFor("every node to know every other", func(i int) bool {
		out, err := c.nodes[i].admin.ClusterNodes(ctx).Result()
		return err == nil && strings.Count(strings.TrimSpace(out), "\n")+1 == n && !strings.Contains(out, "handshake")
	})
	for i := masters; i < n; i++ {
		if err := c.nodes[i].admin.ClusterReplicate(ctx, c.nodes[i%masters].id).Err(); err != nil {
			t.Fatalf("CLUSTER REPLICATE on node %d: %v", i, err)
		}
	}
	c.waitReady()
	return c
}

// start runs node i (again, after a kill: same port, directory and
// cluster configuration file).
func (c *redisTestCluster) start(i int) {
	node := c.nodes[i]
	args := append([]string{"--dir", node.dir}, node.args...)
	node.proc = startRedis(c.t, c.bin, node.port, args...)
}

// waitReady waits until every node sees the cluster ok and every replica
// is in sync with its master.
func (c *redisTestCluster) waitReady() {
	ctx := c.t.Context()
	c.waitFor("the cluster to be ok with replicas in sync", func(i int) bool {
		info, err := c.nodes[i].admin.ClusterInfo(ctx).Result()
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return false
		}
		repl, err := c.nodes[i].admin.Info(ctx, "replication").Result()
		if err != nil {
			return false
		}
		if strings.Contains(repl, "role:slave") {
			return strings.Contains(repl, "master_link_status:up")
		}
		return true
	})
}

// waitFor polls ok on every node until all say true, for at most 30 s.
func (c *redisTestCluster) waitFor(what string, ok func(i int) bool) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i := range c.nodes {
		for !ok(i) {
			if time.Now().After(deadline) {
				c.t.Fatalf("waited 30s for %s (node %d, port %d)", what, i, c.nodes[i].port)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (c *redisTestCluster) addr(i int) string { return fmt.Sprintf("127.0.0.1:%d", c.nodes[i].port) }

// url is a redis+cluster:// URL with every node as a seed.
func (c *redisTestCluster) url(opts ...string) string {
	var hosts []string
	for i := range c.nodes {
		hosts = append(hosts, c.addr(i))
	}
	return redisWithOptions("redis+cluster://"+strings.Join(hosts, ","), opts...)
}

// replicaOf is the first replica of master i.
func (c *redisTestCluster) replicaOf(i int) int { return i + c.masters }

// kill sends SIGKILL to node i and waits until it is gone.
func (c *redisTestCluster) kill(i int) { c.nodes[i].proc.stop() }

// freeze and thaw stop and continue node i (SIGSTOP, SIGCONT): it keeps its
// sockets open but answers nothing, as a hung host would.
func (c *redisTestCluster) freeze(i int) { c.signal(i, syscall.SIGSTOP) }
func (c *redisTestCluster) thaw(i int)   { c.signal(i, syscall.SIGCONT) }

func (c *redisTestCluster) signal(i int, sig syscall.Signal) {
	if err := c.nodes[i].proc.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal %v to node %d: %v", sig, i, err)
	}
}

// isMaster asks node i its role.
func (c *redisTestCluster) isMaster(ctx context.Context, i int) bool {
	role, err := c.nodes[i].admin.Do(ctx, "ROLE").Slice()
	return err == nil && len(role) > 0 && role[0] == "master"
}

// hasSyncedReplica reports whether master i has a replica in sync.
func (c *redisTestCluster) hasSyncedReplica(ctx context.Context, i int) bool {
	repl, err := c.nodes[i].admin.Info(ctx, "replication").Result()
	return err == nil && strings.Contains(repl, "role:master") && strings.Contains(repl, "state=online")
}

// shardOf returns the index of the master that serves the hash tag of key,
// as the cluster was started (node i serves the i-th range of slots).
func (c *redisTestCluster) shardOf(ctx context.Context, key string) int {
	c.t.Helper()
	slot, err := c.nodes[0].admin.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		c.t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	for i := range c.masters {
		if int(slot) < (i+1)*16384/c.masters {
			return i
		}
	}
	return c.masters - 1
}

// ownersPerShard returns perShard owner names whose keys live on each
// master's slots, by master index, and all of them in one list.
func (c *redisTestCluster) ownersPerShard(ctx context.Context, b *redisBackend, perShard int) (byShard [][]string, all []string) {
	byShard = make([][]string, c.masters)
	for i := 0; len(all) < perShard*c.masters; i++ {
		owner := fmt.Sprintf("owner-%d", i)
		shard := c.shardOf(ctx, b.ownerBase(owner))
		if len(byShard[shard]) < perShard {
			byShard[shard] = append(byShard[shard], owner)
			all = append(all, owner)
		}
	}
	return byShard, all
}
