//go:build redis || postgres || dynamodb

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/internal/faultproxy"
	"github.com/mcptasks/mcptasks/taskstore"
)

// The robustness test of the whole system (issue 25): three `mcptasks
// serve` replicas, built without -race, over a real store server the test
// starts itself (with its persistence on); clients that create tasks of
// plain (sleep), resumable (slow_report) and asking (ask_user) tools on
// random replicas, read them, wait for their results, answer their input
// on another replica than the one that created them, cancel and list; and
// a nemesis that, on a seeded random schedule, kills (-9) and restarts
// replicas, freezes and thaws them (SIGSTOP/SIGCONT), kills and restarts
// the store, and cuts a replica off the store while clients still reach
// it, with faults overlapping. Every call is recorded with its start and
// end; at the end every fault is healed, the tasks are read on every
// replica, and the invariants of robustness_check_test.go are checked over
// the history. A violating history is saved as JSON with its seed in the
// artifacts directory ($MCPTASKS_ARTIFACTS, default testdata/artifacts).
//
// The run is bounded by default (robustDefaultDuration of faults);
// MCPTASKS_ROBUST_DURATION runs longer (a Go duration), and
// MCPTASKS_ROBUST_SEED replays a schedule (the seed is printed at the start
// and in every failure). Each store's file (robustness_<store>_test.go)
// runs it:
//
//	go test -tags redis -run TestRobustnessRedis -v ./cmd/mcptasks/
//	MCPTASKS_ROBUST_DURATION=10m go test -tags redis -run TestRobustnessRedis -timeout 30m -v ./cmd/mcptasks/

// robustStore is one store server under test. The store starts itself
// before the run; replica i reaches it at StoreURL(i) (through a fault
// proxy of its own where the store can partition).
type robustStore interface {
	Name() string
	Tags() string
	StoreURL(replica int) string
	// KillStore kills the server (SIGKILL); RestartStore starts it again
	// at the same address from the same data.
	KillStore() error
	RestartStore() error
	// Partition cuts replica i off the store and Heal restores it; both
	// are errors on a store that cannot (CanPartition false).
	CanPartition() bool
	Partition(replica int) error
	Heal(replica int) error
}

// robustLossyStore is a robustStore whose server may lose a write it
// acknowledged shortly before it was killed (SIGKILL): a task whose
// create was acknowledged within KillLossWindow before a store-kill and
// that is missing at the end was lost by the store, not by mcptasks. Such
// tasks are counted apart (REPORT store-lost=N) and not checked.
type robustLossyStore interface {
	KillLossWindow() time.Duration
}

// robustLauncher is a robustStore whose replicas must run elsewhere than
// in the test's own network (the Redis Cluster lab's namespaces,
// robustness_cluster_linux_test.go): it makes replica i's command from
// the binary and serve's arguments.
type robustLauncher interface {
	ReplicaCommand(replica int, bin string, args []string) *exec.Cmd
}

// Fault kinds.
const (
	faultReplicaKill = "replica-kill" // SIGKILL, restarted later
	faultReplicaStop = "replica-stop" // SIGSTOP, SIGCONT later
	faultStoreKill   = "store-kill"   // SIGKILL of the store's server, restarted later
	faultPartition   = "partition"    // a replica cut off the store, healed later
)

const (
	robustReplicas        = 3
	robustDefaultDuration = 60 * time.Second
	robustClients         = 6
	// robustMaxActive is serve's --max-active-tasks: small, so that the
	// clients reach it.
	robustMaxActive = 4
	// robustLease is the lease timeout of serve (taskrouter's default).
	robustLease = 5 * time.Second
	// robustSettle bounds how long after every fault healed the tasks
	// may take to end: a lease, a resumed slow_report's remaining steps,
	// a store's reconnects.
	robustSettle = 60 * time.Second
	// robustMinDuration is the shortest run that must see every kind of
	// fault it enables.
	robustMinDuration = 30 * time.Second
)

// robustConfig is one run's settings.
type robustConfig struct {
	seed     uint64
	duration time.Duration
	clients  int
	kinds    []string
	// env is added to the replicas' environment (the self-test's switch).
	env []string
	// tags builds the replicas (the store's tags, plus the self-test's).
	tags string
	// holdMin and holdMax bound how long a fault lasts.
	holdMin, holdMax time.Duration
	// settle bounds how long the tasks may take to end once every fault
	// healed (robustSettle).
	settle time.Duration
	// reports is the share of creates that are slow_report (the rest
	// sleep and ask_user).
	reports float64
}

// robustSettings reads the seed and the duration from the environment.
func robustSettings(t *testing.T, store robustStore) robustConfig {
	cfg := robustConfig{seed: rand.Uint64(), duration: robustDefaultDuration, clients: robustClients, tags: store.Tags(),
		kinds: []string{faultReplicaKill, faultReplicaStop, faultStoreKill}, holdMin: time.Second, holdMax: 7 * time.Second,
		settle: robustSettle, reports: 0.4}
	if store.CanPartition() {
		cfg.kinds = append(cfg.kinds, faultPartition)
	}
	if s := os.Getenv("MCPTASKS_ROBUST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MCPTASKS_ROBUST_SEED=%q: %v", s, err)
		}
		cfg.seed = v
	}
	if s := os.Getenv("MCPTASKS_ROBUST_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("MCPTASKS_ROBUST_DURATION=%q: %v", s, err)
		}
		cfg.duration = d
	}
	return cfg
}

// faultSpan is one fault from its start to its heal (End zero while on).
type faultSpan struct {
	Kind       string    `json:"kind"`
	Replica    int       `json:"replica"` // -1 for the store
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Overlapped bool      `json:"overlapped"`
}

// robustReplica is one serve process slot; its process changes at each
// restart.
type robustReplica struct {
	i       int
	cmd     *exec.Cmd
	url     string // "" while killed
	metrics string
	logs    *syncBuffer
	frozen  bool
}

// replicaSet runs the replicas and knows which are up.
type replicaSet struct {
	bin   string
	args  []string
	env   []string
	store robustStore

	mu   sync.Mutex
	rs   []*robustReplica
	dead []*syncBuffer // logs of killed processes, for a failure's report
}

// robustUsers are the tokens' users: two owners share the replicas.
var robustUsers = []robustUser{{"alice", "robust-alice-token"}, {"bob", "robust-bob-token"}}

func newReplicaSet(t *testing.T, store robustStore, cfg robustConfig) *replicaSet {
	s := &replicaSet{bin: serveBinary(t, cfg.tags), env: cfg.env, store: store}
	s.args = []string{"serve", "--addr", "127.0.0.1:0", "--drain", "1s", "--metrics-addr", "127.0.0.1:0",
		"--max-active-tasks", strconv.Itoa(robustMaxActive)}
	for _, u := range robustUsers {
		s.args = append(s.args, "--token", u.name+":"+u.token)
	}
	for i := range robustReplicas {
		r := &robustReplica{i: i}
		s.rs = append(s.rs, r)
		if err := s.start(r); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, r := range s.rs {
			if r.cmd != nil {
				r.cmd.Process.Signal(syscall.SIGCONT)
				r.cmd.Process.Kill()
				r.cmd.Wait()
			}
		}
	})
	return s
}

var (
	serveURLRe     = regexp.MustCompile(`on (http://\S+/mcp), store `)
	serveMetricsRe = regexp.MustCompile(`metrics on http://(\S+)/metrics`)
)

// start starts replica r's process (called with s.mu not held).
func (s *replicaSet) start(r *robustReplica) error {
	args := append(slices.Clone(s.args), "--store", s.store.StoreURL(r.i))
	cmd := exec.Command(s.bin, args...)
	if l, ok := s.store.(robustLauncher); ok {
		cmd = l.ReplicaCommand(r.i, s.bin, args)
	}
	cmd.Env = append(os.Environ(), s.env...)
	logs := &syncBuffer{}
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	found := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var metrics string
		for sc.Scan() {
			if m := serveMetricsRe.FindStringSubmatch(sc.Text()); m != nil {
				metrics = m[1]
			}
			if m := serveURLRe.FindStringSubmatch(sc.Text()); m != nil {
				found <- [2]string{m[1], metrics}
			}
		}
		close(found)
	}()
	select {
	case got, ok := <-found:
		if !ok {
			cmd.Wait()
			return fmt.Errorf("replica %d exited before serving: %v; logs:\n%s", r.i, cmd.ProcessState, tail(logs.String(), 20))
		}
		s.mu.Lock()
		r.cmd, r.url, r.metrics, r.logs, r.frozen = cmd, got[0], got[1], logs, false
		s.mu.Unlock()
		return nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("replica %d printed no address in 30 s; logs:\n%s", r.i, tail(logs.String(), 20))
	}
}

// kill kills replica i with SIGKILL.
func (s *replicaSet) kill(i int) {
	s.mu.Lock()
	r := s.rs[i]
	cmd := r.cmd
	r.cmd, r.url, r.frozen = nil, "", false
	s.dead = append(s.dead, r.logs)
	s.mu.Unlock()
	cmd.Process.Kill()
	cmd.Wait()
}

// restart starts replica i again, retrying while the store is down
// (serve exits when it cannot open its store) until ctx ends.
func (s *replicaSet) restart(ctx context.Context, i int) error {
	for {
		err := s.start(s.rs[i])
		if err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (s *replicaSet) signal(i int, sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rs[i]
	r.frozen = sig == syscall.SIGSTOP
	r.cmd.Process.Signal(sig)
}

// pick returns a random replica that has a process (killed ones refuse
// at once; frozen and partitioned ones are picked as a client would,
// not knowing), preferring one other than avoid; -1 and "" when none.
func (s *replicaSet) pick(rng *rand.Rand, avoid int) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var up []int
	for _, r := range s.rs {
		if r.url != "" && r.i != avoid {
			up = append(up, r.i)
		}
	}
	if len(up) == 0 && avoid >= 0 && s.rs[avoid].url != "" {
		up = []int{avoid}
	}
	if len(up) == 0 {
		return -1, "http://127.0.0.1:1/mcp"
	}
	i := up[rng.IntN(len(up))]
	return i, s.rs[i].url
}

// urls returns every replica's URL and metrics address (all up at the end).
func (s *replicaSet) urls() (mcpURLs, metrics []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rs {
		mcpURLs = append(mcpURLs, r.url)
		metrics = append(metrics, r.metrics)
	}
	return mcpURLs, metrics
}

func (s *replicaSet) allLogs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, r := range s.rs {
		if r.logs != nil {
			fmt.Fprintf(&b, "--- replica %d (running)\n%s", r.i, r.logs.String())
		}
	}
	for n, l := range s.dead {
		fmt.Fprintf(&b, "--- killed process %d\n%s", n, l.String())
	}
	return b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n") + "\n"
}

// nemesis injects faults on a seeded schedule and records them.
type nemesis struct {
	rng      *rand.Rand
	replicas *replicaSet
	store    robustStore
	kinds    []string
	holdMin  time.Duration
	holdMax  time.Duration

	mu        sync.Mutex
	spans     []*faultSpan
	storeDown bool
	errs      []string
	wg        sync.WaitGroup
}

// busy reports whether replica i (or the store, i = -1) has a fault on.
func (n *nemesis) busy(i int) bool {
	for _, s := range n.spans {
		if s.End.IsZero() && s.Replica == i {
			return true
		}
	}
	return false
}

// pickKind draws the next fault's kind: while some kinds have not yet
// overlapped another fault and one is on, one of those, so that every run
// long enough injects every kind, overlapping (a 45 s DynamoDB schedule
// drawn uniformly once had no partition); otherwise any kind.
func (n *nemesis) pickKind() string {
	if n.anyOn() {
		var left []string
		for _, k := range n.kinds {
			if !n.overlappedOnce(k) {
				left = append(left, k)
			}
		}
		if len(left) > 0 {
			return left[n.rng.IntN(len(left))]
		}
	}
	return n.kinds[n.rng.IntN(len(n.kinds))]
}

// anyOn reports whether a fault is on.
func (n *nemesis) anyOn() bool {
	for _, s := range n.spans {
		if s.End.IsZero() {
			return true
		}
	}
	return false
}

// overlappedOnce reports whether a fault of kind ("": of any kind) has
// overlapped another.
func (n *nemesis) overlappedOnce(kind string) bool {
	for _, s := range n.spans {
		if (kind == "" || s.Kind == kind) && s.Overlapped {
			return true
		}
	}
	return false
}

func (n *nemesis) faultyReplicas() int {
	seen := map[int]bool{}
	for _, s := range n.spans {
		if s.End.IsZero() && s.Replica >= 0 {
			seen[s.Replica] = true
		}
	}
	return len(seen)
}

// begin records a fault's start and the overlaps it makes.
func (n *nemesis) begin(kind string, replica int) *faultSpan {
	sp := &faultSpan{Kind: kind, Replica: replica, Start: time.Now()}
	for _, o := range n.spans {
		if o.End.IsZero() {
			o.Overlapped, sp.Overlapped = true, true
		}
	}
	n.spans = append(n.spans, sp)
	return sp
}

func (n *nemesis) end(sp *faultSpan) {
	n.mu.Lock()
	sp.End = time.Now()
	n.mu.Unlock()
}

func (n *nemesis) fail(format string, args ...any) {
	n.mu.Lock()
	n.errs = append(n.errs, fmt.Sprintf(format, args...))
	n.mu.Unlock()
}

// run injects faults until ctx ends, then heals every one and returns
// once all are healed.
func (n *nemesis) run(ctx context.Context) {
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			continue
		case <-time.After(time.Duration(300+n.rng.IntN(1700)) * time.Millisecond):
		}
		if len(n.kinds) == 0 {
			continue
		}
		n.mu.Lock()
		kind := n.pickKind()
		hold := n.holdMin + time.Duration(n.rng.Int64N(int64(n.holdMax-n.holdMin)+1))
		target := n.rng.IntN(robustReplicas)
		switch {
		case kind == faultStoreKill && n.storeDown,
			kind != faultStoreKill && (n.busy(target) || n.faultyReplicas() >= robustReplicas-1),
			// Once two faults have overlapped, a kind that has not yet
			// overlapped starts only while another fault is on: every
			// kind overlaps another at least once in a run long enough to
			// inject it.
			!n.overlappedOnce(kind) && !n.anyOn() && n.overlappedOnce(""):
			n.mu.Unlock()
			continue
		}
		if kind == faultStoreKill {
			target = -1
			n.storeDown = true
			hold = hold / 2
		}
		sp := n.begin(kind, target)
		n.mu.Unlock()
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.inject(ctx, sp, hold)
		}()
	}
	n.wg.Wait()
}

// inject runs one fault for hold (or until ctx ends), then heals it.
func (n *nemesis) inject(ctx context.Context, sp *faultSpan, hold time.Duration) {
	i := sp.Replica
	switch sp.Kind {
	case faultReplicaKill:
		n.replicas.kill(i)
	case faultReplicaStop:
		n.replicas.signal(i, syscall.SIGSTOP)
	case faultStoreKill:
		if err := n.store.KillStore(); err != nil {
			n.fail("kill the store: %v", err)
		}
	case faultPartition:
		if err := n.store.Partition(i); err != nil {
			n.fail("partition replica %d: %v", i, err)
		}
	}
	select {
	case <-ctx.Done():
	case <-time.After(hold):
	}
	switch sp.Kind {
	case faultReplicaKill:
		// Healing must not give up when the run ends: a minute at most.
		rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := n.replicas.restart(rctx, i); err != nil {
			n.fail("restart replica %d: %v", i, err)
		}
		cancel()
	case faultReplicaStop:
		n.replicas.signal(i, syscall.SIGCONT)
	case faultStoreKill:
		if err := n.store.RestartStore(); err != nil {
			n.fail("restart the store: %v", err)
		}
		n.mu.Lock()
		n.storeDown = false
		n.mu.Unlock()
	case faultPartition:
		if err := n.store.Heal(i); err != nil {
			n.fail("heal replica %d: %v", i, err)
		}
	}
	n.end(sp)
}

// faultCounts counts the faults by kind, and those that overlapped another.
func faultCounts(spans []faultSpan) (byKind, overlaps map[string]int) {
	byKind, overlaps = map[string]int{}, map[string]int{}
	for _, s := range spans {
		byKind[s.Kind]++
		if s.Overlapped {
			overlaps[s.Kind]++
		}
	}
	return byKind, overlaps
}

func formatFaultCounts(m map[string]int, kinds []string) string {
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

// robustOutcome is a run's figures and violations.
type robustOutcome struct {
	Seed       uint64         `json:"seed"`
	Store      string         `json:"store"`
	Duration   string         `json:"duration"`
	Took       string         `json:"took"`
	Faults     map[string]int `json:"faults"`
	Overlaps   map[string]int `json:"overlaps"`
	Ops        int            `json:"ops"`
	Tasks      int            `json:"tasks"`
	Violations []violation    `json:"violations"`
	StoreLost  []string       `json:"storeLost,omitempty"` // tasks the store lost (robustLossyStore)
	Scenarios  map[string]int `json:"scenarios"`           // how often each scenario happened (countScenarios)
	Spans      []faultSpan    `json:"spans"`
	History    []robustOp     `json:"history,omitempty"`
}

// runRobustness runs one schedule on store and returns what it found;
// the caller decides what a violation means (a failure, or the
// self-test's expected finding).
func runRobustness(t *testing.T, store robustStore, cfg robustConfig) *robustOutcome {
	began := time.Now()
	t.Logf("robustness: store=%s seed=%d duration=%s (replay: MCPTASKS_ROBUST_SEED=%d)", store.Name(), cfg.seed, cfg.duration, cfg.seed)
	replicas := newReplicaSet(t, store, cfg)
	w := &clientWorld{replicas: replicas, hist: &history{}, users: robustUsers, live: map[string]*robustTask{}, reports: cfg.reports}
	nem := &nemesis{rng: rand.New(rand.NewPCG(cfg.seed, 0x6e656d)), replicas: replicas, store: store, kinds: cfg.kinds,
		holdMin: cfg.holdMin, holdMax: cfg.holdMax}

	followCtx, stopFollowers := context.WithCancel(context.Background())
	defer stopFollowers()
	clientCtx, stopClients := context.WithTimeout(t.Context(), cfg.duration)
	defer stopClients()
	nemDone := make(chan struct{})
	go func() {
		defer close(nemDone)
		nem.run(clientCtx)
	}()
	var clients sync.WaitGroup
	for n := range cfg.clients {
		clients.Go(func() { w.runClient(clientCtx, followCtx, n, cfg.seed) })
	}
	clients.Wait()
	<-nemDone
	healed := time.Now()
	urls, _ := replicas.urls()
	w.adopt(followCtx, urls, rand.New(rand.NewPCG(cfg.seed, 0x61646f)))

	// Every fault is healed: the tasks must end within the settle bound.
	followersDone := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(followersDone)
	}()
	select {
	case <-followersDone:
	case <-time.After(cfg.settle):
		stopFollowers()
		<-followersDone
	}
	settled := time.Since(healed)

	out := &robustOutcome{Seed: cfg.seed, Store: store.Name(), Duration: cfg.duration.String()}
	finalReads(t, w)
	nem.mu.Lock()
	for _, s := range nem.spans {
		out.Spans = append(out.Spans, *s)
	}
	nemErrs := nem.errs
	nem.mu.Unlock()
	for _, e := range nemErrs {
		t.Errorf("nemesis: %s (seed %d)", e, cfg.seed)
	}
	ops := w.hist.snapshot()
	w.mu.Lock()
	tasks := slices.Clone(w.tasks)
	w.mu.Unlock()
	out.Faults, out.Overlaps = faultCounts(out.Spans)
	out.Ops, out.Tasks = len(ops), len(tasks)
	cc := checkContext{healed: healed, spans: out.Spans, maxActive: robustMaxActive}
	if l, ok := store.(robustLossyStore); ok {
		cc.lossWindow = l.KillLossWindow()
	}
	out.Violations, out.StoreLost = checkInvariants(ops, tasks, cc)
	_, metrics := replicas.urls()
	out.Violations = append(out.Violations, checkNoLeaks(metrics)...)
	describeStuck(t, store, tasks, out.Violations)
	out.Took = time.Since(began).Round(time.Second).String()

	t.Logf("REPORT robustness store=%s seed=%d duration=%s took=%s settled=%s tasks=%d ops=%d faults=%s overlaps=%s store-lost=%d violations=%d",
		store.Name(), cfg.seed, cfg.duration, out.Took, settled.Round(100*time.Millisecond), out.Tasks, out.Ops,
		formatFaultCounts(out.Faults, cfg.kinds), formatFaultCounts(out.Overlaps, cfg.kinds), len(out.StoreLost), len(out.Violations))
	out.Scenarios = countScenarios(ops, tasks, out.Spans, replicas.allLogs())
	for _, name := range scenarioNames {
		t.Logf("REPORT robustness-scenario store=%s scenario=%s count=%d", store.Name(), name, out.Scenarios[name])
	}
	for _, id := range out.StoreLost {
		t.Logf("task %s: created just before a store-kill and missing at the end: lost by the store (seed %d)", id, cfg.seed)
	}
	for _, name := range invariantNames {
		n := 0
		for _, v := range out.Violations {
			if v.Check == name {
				n++
			}
		}
		t.Logf("REPORT robustness-check store=%s check=%s violations=%d", store.Name(), name, n)
	}
	if cfg.duration >= robustMinDuration {
		for _, k := range cfg.kinds {
			if out.Faults[k] == 0 {
				t.Errorf("no %s fault in a %s run (seed %d): the schedule must inject every kind", k, cfg.duration, cfg.seed)
			} else if out.Overlaps[k] == 0 {
				t.Errorf("no %s fault overlapped another in a %s run (seed %d): the schedule must overlap every kind", k, cfg.duration, cfg.seed)
			}
		}
	}
	if len(out.Violations) > 0 {
		out.History = ops
		saveOutcome(t, out, replicas.allLogs())
	}
	return out
}

// finalReads reads every task on every replica once all is healed:
// tasks/get and tasks/result (which answers at once for an ended task).
func finalReads(t *testing.T, w *clientWorld) {
	urls, _ := w.replicas.urls()
	w.mu.Lock()
	tasks := slices.Clone(w.tasks)
	w.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, task := range tasks {
		for i, url := range urls {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				op := robustOp{Client: -1, Owner: task.owner, Method: "tasks/get", Replica: i, TaskID: task.id, Start: time.Now(), Final: true}
				getTask(t.Context(), url, task.token, task.id, &op)
				w.hist.add(op)
				op = robustOp{Client: -1, Owner: task.owner, Method: "tasks/result", Replica: i, TaskID: task.id, Start: time.Now(), Final: true}
				ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
				awaitResult(ctx, url, task.token, task.id, &op)
				cancel()
				w.hist.add(op)
			})
		}
	}
	wg.Wait()
}

// saveOutcome writes a violating run (its seed, faults and history) as
// JSON into the artifacts directory.
func saveOutcome(t *testing.T, out *robustOutcome, logs string) {
	dir := os.Getenv("MCPTASKS_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("artifacts: %v", err)
		return
	}
	sort.Slice(out.History, func(a, b int) bool { return out.History[a].Start.Before(out.History[b].Start) })
	b, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		t.Errorf("artifacts: %v", err)
		return
	}
	p := filepath.Join(dir, fmt.Sprintf("robustness-%s-%d.json", out.Store, out.Seed))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Errorf("artifacts: %v", err)
		return
	}
	logPath := strings.TrimSuffix(p, ".json") + ".log"
	if err := os.WriteFile(logPath, []byte(logs), 0o644); err != nil {
		t.Errorf("artifacts: %v", err)
	}
	t.Logf("the violating history (seed %d) is in %s, the replicas' logs in %s", out.Seed, p, logPath)
}

// requireClean fails t with each violation of out.
func requireClean(t *testing.T, out *robustOutcome) {
	for i, v := range out.Violations {
		if i == 20 {
			t.Errorf("... and %d more violations (seed %d)", len(out.Violations)-20, out.Seed)
			break
		}
		t.Errorf("violation %s: %s (seed %d)", v.Check, v.Detail, out.Seed)
	}
}

// replicaProxies are the replicas' fault proxies to a store server, one
// per replica: a store that embeds them can partition.
type replicaProxies []*faultproxy.Proxy

func (ps replicaProxies) CanPartition() bool    { return true }
func (ps replicaProxies) Partition(i int) error { ps[i].Partition(); return nil }
func (ps replicaProxies) Heal(i int) error      { ps[i].Heal(); return nil }

// startProxies starts a fault proxy to target for each replica.
func startProxies(t *testing.T, target string) replicaProxies {
	var ps replicaProxies
	for range robustReplicas {
		p, err := faultproxy.New(target)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		ps = append(ps, p)
	}
	return ps
}

// testRobustnessSelftest runs the robustness test with one guarantee
// turned off (the replicas built with mcptasks_selftest, and
// MCPTASKS_SELFTEST_BREAK set), for each switch, and requires the
// violation of the invariant it breaks. Fencing breaks when a frozen or
// cut-off replica comes back after another took its slow_report over, so
// those faults last longer than a lease here; the quota breaks with no
// fault at all.
func testRobustnessSelftest(t *testing.T, start func(*testing.T) robustStore) {
	for _, c := range []struct {
		brk, check string
	}{{"fencing", checkFencing}, {"quota", checkQuota}} {
		t.Run(c.brk, func(t *testing.T) {
			found, schedules, name := 0, 0, ""
			var seeds []uint64
			// A schedule may happen to freeze no replica while it runs a
			// report past its lease: up to three schedules, each on a
			// fresh store.
			for schedules < 3 && found == 0 {
				schedules++
				t.Run(fmt.Sprint("schedule-", schedules), func(t *testing.T) {
					store := start(t)
					name = store.Name()
					out := runRobustness(t, store, selftestConfig(t, store, c.brk, uint64(schedules)))
					seeds = append(seeds, out.Seed)
					for _, v := range out.Violations {
						if v.Check == c.check {
							found++
						}
					}
				})
			}
			if found == 0 {
				t.Errorf("with MCPTASKS_SELFTEST_BREAK=%s no run reported a %s violation (seeds %v): the checker cannot see it", c.brk, c.check, seeds)
			}
			t.Logf("REPORT robustness-selftest store=%s break=%s schedules=%d %s-violations=%d", name, c.brk, schedules, c.check, found)
		})
	}
}

// selftestConfig is the n-th schedule of the self-test breaking brk.
func selftestConfig(t *testing.T, store robustStore, brk string, n uint64) robustConfig {
	cfg := robustSettings(t, store)
	cfg.seed += n - 1
	cfg.tags += ",mcptasks_selftest"
	cfg.env = []string{"MCPTASKS_SELFTEST_BREAK=" + brk}
	// Short: what matters is that the violation is seen, and a broken
	// run leaves tasks that never end (settle cut short).
	full := cfg.duration
	cfg.duration, cfg.settle = min(full, 15*time.Second), 15*time.Second
	cfg.kinds = nil
	if brk == "fencing" {
		// A frozen replica thawed after a takeover writes its next
		// checkpoint at once; a cut-off one's writes time out more often
		// than they land, so freezes only.
		cfg.kinds, cfg.reports = []string{faultReplicaStop}, 0.8
		cfg.holdMin, cfg.holdMax = robustLease+2*time.Second, robustLease+6*time.Second
		cfg.duration = min(full, 30*time.Second)
	}
	return cfg
}

// describeStuck adds what the store holds to each task found working at
// the end: its lease (runner, attempt) and whether that runner still has
// a heartbeat entry, which is how the other replicas find a dead one.
func describeStuck(t *testing.T, store robustStore, tasks []*robustTask, vs []violation) {
	owners := map[string]string{}
	for _, task := range tasks {
		owners[task.id] = task.owner
	}
	var st *taskstore.Store
	for i := range vs {
		v := &vs[i]
		if v.Check != checkTerminalOnce || !strings.Contains(v.Detail, "at the end on replica 0") {
			continue
		}
		if st == nil {
			var err error
			if st, err = mcptasks.Open(t.Context(), store.StoreURL(0), taskstore.Config{}); err != nil {
				t.Logf("open the store to describe stuck tasks: %v", err)
				return
			}
			defer st.Close()
		}
		rec, err := st.Get(t.Context(), owners[v.TaskID], v.TaskID)
		if err != nil {
			v.Detail += fmt.Sprintf("; the store: %v", err)
			continue
		}
		beats, err := taskstore.NewRuntime(st).Backend().Runners(t.Context())
		v.Detail += fmt.Sprintf("; stored %s version %d lease %+v, heartbeats %+v %v", rec.Task.Status, rec.Version, rec.Lease, beats, err)
	}
}

// waitListen waits until addr accepts a connection, the process ends
// (exited), or within passes.
func waitListen(addr string, exited <-chan error, within time.Duration) error {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
	}
	return fmt.Errorf("not listening on %s within %s", addr, within)
}
