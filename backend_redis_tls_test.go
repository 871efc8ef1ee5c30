//go:build redis

package mcptasks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

// redisTLSServerArgs are the redis-server arguments of a TLS-only server on
// port with certificate NAME.pem / NAME.key from dir, trusting ca.pem for
// client certificates.
func redisTLSServerArgs(dir, name string, port int, authClients bool) []string {
	auth := "no"
	if authClients {
		auth = "yes"
	}
	return []string{"--port", "0", "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", dir + "/" + name + ".pem", "--tls-key-file", dir + "/" + name + ".key",
		"--tls-ca-cert-file", dir + "/ca.pem", "--tls-auth-clients", auth}
}

// redisTLSRoundTrip opens url and writes and reads a task through it.
func redisTLSRoundTrip(t *testing.T, url string, owners ...string) {
	t.Helper()
	b, err := OpenBackend(t.Context(), redisWithOptions(url, "prefix="+redisRandomPrefix()))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer b.Close()
	for _, owner := range owners {
		r := taskstore.Record{Owner: owner, TaskID: taskid.New(time.Now()), Data: []byte(`{}`), ExpiresAt: time.Now().Add(time.Minute)}
		if err := b.Create(t.Context(), r, taskstore.Limits{}); err != nil {
			t.Fatalf("Create over TLS: %v", err)
		}
		if v, err := b.Update(t.Context(), taskstore.Record{Owner: owner, TaskID: r.TaskID, Data: []byte(`{"n":1}`)}, 1); err != nil || v != 2 {
			t.Fatalf("Update over TLS: %d, %v", v, err)
		}
		if recs, _, err := b.List(t.Context(), owner, "", 10); err != nil || len(recs) != 1 || recs[0].Version != 2 {
			t.Fatalf("List over TLS: %+v, %v", recs, err)
		}
		if ok, err := b.Delete(t.Context(), owner, r.TaskID); err != nil || !ok {
			t.Fatalf("Delete over TLS: %v, %v", ok, err)
		}
	}
	if _, err := b.DeleteExpired(t.Context()); err != nil {
		t.Fatalf("DeleteExpired over TLS: %v", err)
	}
}

// redisRefusal is a URL that Open must refuse, with what the error says.
type redisRefusal struct{ name, url, want string }

// redisCheckRefused opens each URL in a subtest and wants it refused.
func redisCheckRefused(t *testing.T, cases []redisRefusal) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := OpenBackend(t.Context(), tc.url)
			if err == nil {
				b.Close()
				t.Fatal("Open succeeded")
			}
			redisCheckOpenErr(t, err, tc.want)
		})
	}
}

// TestRedisTLSVerify runs TLS-only redis-servers with certificates from a
// CA made here: rediss:// verifies the chain (a certificate from another CA
// is refused), the name (tls_server_name for a certificate that names a
// host, not the address) and the validity (an expired certificate is
// refused); with --tls-auth-clients yes, tls_cert/tls_key present a client
// certificate (mutual TLS), and none, or one from another CA, is refused.
func TestRedisTLSVerify(t *testing.T) {
	bin := redisServerBinary(t)
	dir := t.TempDir()
	ca, caKey := redisTestCert(t, dir, "ca", nil, nil)
	redisTestCert(t, dir, "server", ca, caKey)
	redisTestCertWith(t, dir, "named", ca, caKey, redisCertOptions{dnsNames: []string{"redis.test"}})
	redisTestCertWith(t, dir, "expired", ca, caKey, redisCertOptions{expired: true})
	redisTestCert(t, dir, "client", ca, caKey)
	other, otherKey := redisTestCert(t, dir, "other-ca", nil, nil)
	redisTestCert(t, dir, "other-client", other, otherKey)

	mtls, named, expired := redisFreePort(t), redisFreePort(t), redisFreePort(t)
	startRedis(t, bin, mtls, redisTLSServerArgs(dir, "server", mtls, true)...)
	startRedis(t, bin, named, redisTLSServerArgs(dir, "named", named, false)...)
	startRedis(t, bin, expired, redisTLSServerArgs(dir, "expired", expired, false)...)

	url := func(port int, opts ...string) string {
		return redisWithOptions(fmt.Sprintf("rediss://127.0.0.1:%d", port), append([]string{"dial_timeout=2s"}, opts...)...)
	}
	caOpt, client := "tls_ca="+dir+"/ca.pem", []string{"tls_cert=" + dir + "/client.pem", "tls_key=" + dir + "/client.key"}
	t.Run("MutualTLS", func(t *testing.T) {
		redisTLSRoundTrip(t, url(mtls, append([]string{caOpt}, client...)...), "alice")
	})
	redisCheckRefused(t, []redisRefusal{
		// The server's alert (tls: certificate required, unknown certificate
		// authority), or a reset if it closes before the client reads it.
		{"NoClientCert", url(mtls, caOpt), ""},
		{"ClientCertOtherCA", url(mtls, caOpt, "tls_cert="+dir+"/other-client.pem", "tls_key="+dir+"/other-client.key"), ""},
		{"WrongCA", url(mtls, append([]string{"tls_ca=" + dir + "/other-ca.pem"}, client...)...), "certificate signed by unknown authority"},
		{"WrongName", url(named, caOpt), "doesn't contain any IP SANs"},
		{"OtherServerName", url(named, caOpt, "tls_server_name=elsewhere.test"), "certificate is valid for redis.test, not elsewhere.test"},
		{"Expired", url(expired, caOpt), "certificate has expired"},
	})
	t.Run("ServerName", func(t *testing.T) {
		redisTLSRoundTrip(t, url(named, caOpt, "tls_server_name=redis.test"), "alice")
	})
}

// TestRedisClusterTLS runs a cluster of three TLS-only masters (client
// port, cluster bus and replication all TLS, clients must present a
// certificate) and a store over redis+cluster://…?tls=true with mutual TLS:
// it works on every shard, each node verified against its own address; a
// wrong CA and a missing client certificate are refused.
func TestRedisClusterTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := redisTestCert(t, dir, "ca", nil, nil)
	redisTestCert(t, dir, "node", ca, caKey)
	redisTestCert(t, dir, "client", ca, caKey)
	redisTestCert(t, dir, "other-ca", nil, nil)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cert, err := tls.LoadX509KeyPair(dir+"/client.pem", dir+"/client.key")
	if err != nil {
		t.Fatal(err)
	}
	admin := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	c := startRedisCluster(t, 3, 0, 5*time.Second, admin,
		"--tls-cert-file", dir+"/node.pem", "--tls-key-file", dir+"/node.key", "--tls-ca-cert-file", dir+"/ca.pem",
		"--tls-auth-clients", "yes", "--tls-cluster", "yes", "--tls-replication", "yes")

	caOpt, client := "tls_ca="+dir+"/ca.pem", []string{"tls_cert=" + dir + "/client.pem", "tls_key=" + dir + "/client.key"}
	base := append([]string{"tls=true", "dial_timeout=2s", caOpt}, client...)
	// Owners on each shard, found with a store over the cluster itself.
	b, err := OpenBackend(t.Context(), c.url(base...))
	if err != nil {
		t.Fatalf("Open over TLS: %v", err)
	}
	_, owners := c.ownersPerShard(context.Background(), b.(*redisBackend), 1)
	b.Close()
	redisTLSRoundTrip(t, c.url(base...), owners...)

	redisCheckRefused(t, []redisRefusal{
		{"WrongCA", c.url(append([]string{"tls=true", "dial_timeout=2s", "tls_ca=" + dir + "/other-ca.pem"}, client...)...), "certificate signed by unknown authority"},
		{"NoClientCert", c.url("tls=true", "dial_timeout=2s", caOpt), ""}, // the alert or a reset, as above
	})
}
