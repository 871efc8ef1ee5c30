#!/usr/bin/env bash
# Builds, vets and lints (staticcheck) every build-tag combination, and
# tests (with -race) the combinations that cover each backend once, against
# real servers, which it installs and starts itself and stops on exit.
#
#   ./matrix_test.sh                  the default plan below
#   ./matrix_test.sh redis postgres   only the listed combinations, all tests ("" = no tags)
#
# The default plan: the four one-backend builds ("" memory only, redis,
# dynamodb, postgres) run every test of every package with -race, so each
# backend's conformance suite, fault tests and the MCP conformance suite on
# its store run once. The builds with two or three tags are built, vetted
# and linted (test files included) and run with -race only the tests where
# backends meet: the registry (Open, Backends, build-tag messages, the no-
# client-libraries check) and the fuzz targets' seed corpora. Running every
# test there again would repeat the one-backend runs and double the time.
#
# Then the widest of the builds given, with the tag mcptasks_selftest added
# (the switches that break a guarantee for the robustness test's self-test),
# is built, vetted, linted and runs its ^TestSelftest tests; the summary has
# a row of its own for it.
#
# staticcheck runs per combination because a file's build tag decides what
# it sees: a test helper unused in some build is a test that never runs
# there. It is pinned (staticcheck_version); the script uses the one in
# GOBIN (or GOPATH/bin) when it is that version, else installs it into
# tools/bin (kept out of git, reused between runs).
#
# Environment: MCPTASKS_TEST_REQUIRE=1 (the default here) makes a test fail
# rather than skip when its server is missing. GOFLAGS passes through.
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)

# Tests that the multi-tag builds run (root package only): where backends meet.
cross_tests='^(TestBackends|TestOpen|TestRegister|TestNoTags|TestPostgresTag|Fuzz)'
declare -A light
if [ $# -gt 0 ]; then
  combos=("$@")
else
  combos=("" "redis" "dynamodb" "postgres" "redis,dynamodb" "redis,postgres" "dynamodb,postgres" "redis,dynamodb,postgres")
  # Keyed by name ("none" for no tags): bash refuses an empty key.
  for c in "redis,dynamodb" "redis,postgres" "dynamodb,postgres" "redis,dynamodb,postgres"; do light[$c]=1; done
fi
export MCPTASKS_TEST_REQUIRE=${MCPTASKS_TEST_REQUIRE:-1}

staticcheck_version=0.8.2 # honnef.co/go/tools v0.8.2, release 2026.2.2
staticcheck=""
gobin=$(go env GOBIN) gopath=$(go env GOPATH)
for sc in ${gobin:+"$gobin/staticcheck"} "${gopath%%:*}/bin/staticcheck" "$root/tools/bin/staticcheck"; do
  # -version prints "staticcheck 2026.2.2 (0.8.2)".
  if [ -x "$sc" ] && "$sc" -version 2>/dev/null | grep -qF "($staticcheck_version)"; then
    staticcheck=$sc
    break
  fi
done
if [ -z "$staticcheck" ]; then
  echo "== installing staticcheck v$staticcheck_version into tools/bin" >&2
  # Without GOFLAGS: flags meant for this module (-mod, -tags) would change or break the tool's build.
  GOFLAGS="" GOBIN="$root/tools/bin" go install "honnef.co/go/tools/cmd/staticcheck@v$staticcheck_version"
  staticcheck=$root/tools/bin/staticcheck
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mcptasks-matrix.XXXXXX")
logs="$work/logs"
mkdir -p "$logs"
started=()
cleanup() {
  for svc in "${started[@]}"; do
    "$root/scripts/${svc}_down.sh" "$work/$svc" >&2 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

need() { # need SERVICE [TAG]: start it once if some combination's tags name TAG (default SERVICE)
  local svc=$1 tag=${2:-$1}
  for c in "${combos[@]}"; do
    case ",$c," in *",$tag,"*)
      mkdir -p "$work/$svc"
      echo "== starting $svc test servers" >&2
      started+=("$svc")
      eval "$("$root/scripts/${svc}_up.sh" "$work/$svc")"
      return 0 ;;
    esac
  done
}
[ -x scripts/redis_up.sh ] && need redis
[ -x scripts/dynamodb_up.sh ] && need dynamodb
# The Redis Cluster network lab (cmd/mcptasks netlab_linux_test.go, tag
# redis) runs the cluster and the serve replicas in network namespaces: it
# needs root and iproute2's ip and bridge (Debian's iproute2).
for c in "${combos[@]}"; do
  case ",$c," in *",redis,"*)
    if ! command -v ip >/dev/null || ! command -v bridge >/dev/null; then
      if [ "$(id -u)" -eq 0 ]; then
        echo "== installing iproute2 (the Redis Cluster network lab)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2 >&2
      else
        echo "== iproute2 is missing and this is not root: the network lab's tests will fail (run as root)" >&2
      fi
    fi
    break ;;
  esac
done
[ -x scripts/postgres_up.sh ] && need postgres
# Prometheus scrapes the serve replicas of TestMetricsScrapedByPrometheus
# (cmd/mcptasks, tag redis).
[ -x scripts/prometheus_up.sh ] && need prometheus redis
# Every combination runs the MCP conformance suite (cmd/mcptasks
# TestConformanceTasks) and the TypeScript SDK client's task flow
# (TestTSClientTaskFlow): install them, with the Node 22 they need, once.
echo "== installing the MCP conformance suite and the TypeScript SDK" >&2
eval "$(scripts/conformance_up.sh)"
# Every combination that runs the whole suite runs the admin page's
# browser test (cmd/mcptasks TestAdminPageInBrowser, and with redis
# TestAdminPageInBrowserRedis): a headless Chromium.
echo "== checking for Chromium" >&2
eval "$(scripts/chromium_up.sh)"

declare -A result
pass=0 fail=0 skip=0 status=0
# tally NAME LOG: print LOG's result lines (and the whole output of each
# failed test), count its tests and add the counts to result[NAME].
tally() {
  local name=$1 log=$2 t p f s
  [ -f "$log" ] || return 0
  # Every result line, so the tests that ran can be counted.
  grep -E '^\s*--- (PASS|FAIL|SKIP)|^(ok|FAIL|PASS|panic:)|^\S+\.go:[0-9]+:' "$log" || true
  if [ "${result[$name]}" != ok ]; then
    # The whole output of each failed test (its logs come before its --- FAIL line).
    for t in $(grep -oE -- '--- FAIL: [^ ]+' "$log" | awk '{print $3}' | grep -v / | sort -u); do
      awk -v t="$t" '$0 == "=== RUN   " t {on=1} on {print} $0 ~ "^--- FAIL: " t " " {on=0}' "$log"
    done
    tail -20 "$log"
  fi
  p=$(grep -cE '^\s*--- PASS' "$log" || true)
  f=$(grep -cE '^\s*--- FAIL' "$log" || true)
  s=$(grep -cE '^\s*--- SKIP' "$log" || true)
  pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
  result[$name]="${result[$name]} ($p passed, $f failed, $s skipped)"
}
for tags in "${combos[@]}"; do
  name=${tags:-none}
  log="$logs/$name.log"
  echo "== tags: $name"
  step=build
  if [ -n "${light[$name]:-}" ]; then
    testcmd=(go test -race -count=1 -timeout 10m -tags "$tags" -run "$cross_tests" -v .)
    echo "== (built, vetted and linted; tests: $cross_tests in the root package)"
  else
    testcmd=(go test -race -count=1 -timeout 30m -tags "$tags" -v ./...)
  fi
  if go build -tags "$tags" ./... && step=vet && go vet -tags "$tags" ./... &&
    step=staticcheck && "$staticcheck" -tags "$tags" ./... && step=test &&
    "${testcmd[@]}" >"$log" 2>&1; then
    result[$name]=ok
  else
    result[$name]="FAILED at $step"
    status=1
  fi
  tally "$name" "$log"
done

# The widest build among those tested (so every backend's own code is in it).
widest=""
for tags in "${combos[@]}"; do
  if [ ${#tags} -gt ${#widest} ]; then widest=$tags; fi
done

# The self-test switches that break one guarantee for the robustness test
# (taskstore/selftest_on.go) exist only with the tag mcptasks_selftest: it
# is built, vetted and linted here, once, added to the widest build, and
# its tests run there (on every backend of that build). Nothing else is
# built with it, and cmd/mcptasks TestServeIgnoresSelftestSwitch checks that
# serve built without it ignores the switches' variable.
selftags=${widest:+$widest,}mcptasks_selftest
selftest_tests='^TestSelftest'
echo "== tags: $selftags (the self-test switches; tests: $selftest_tests in the root package)"
step=build
if go build -tags "$selftags" ./... && step=vet && go vet -tags "$selftags" ./... &&
  step=staticcheck && "$staticcheck" -tags "$selftags" ./... && step=test &&
  go test -race -count=1 -timeout 10m -tags "$selftags" -run "$selftest_tests" -v . >"$logs/selftest.log" 2>&1; then
  result[selftest]=ok
else
  result[selftest]="FAILED at $step"
  status=1
fi
tally selftest "$logs/selftest.log"

# Fuzz targets run once each, for a bounded time, in the widest build (so
# the backends' own targets run too).
fuzztime=${MCPTASKS_FUZZTIME:-10s}
fuzztags=$widest
fuzz_result=ok
for pkg in $(go list -tags "$fuzztags" ./...); do
  for target in $(go test -tags "$fuzztags" -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "== fuzz $target ($pkg, tags ${fuzztags:-none}, $fuzztime)"
    flog="$logs/fuzz-$target.log"
    fuzz_ok=""
    for try in 1 2; do
      if go test -tags "$fuzztags" -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "$pkg" >"$flog" 2>&1; then
        fuzz_ok=1
        break
      fi
      # The fuzzing engine itself sometimes ends with "context deadline
      # exceeded" and no failing input when a worker is slow to stop on a
      # loaded machine: that run alone is repeated, once. A real failure
      # writes its input ("Failing input written to …") and is never retried.
      if grep -q 'Failing input' "$flog" || ! grep -q 'context deadline exceeded' "$flog"; then
        break
      fi
      echo "== fuzz $target: the engine timed out without a failing input; running it again"
    done
    if [ -n "$fuzz_ok" ]; then
      grep -E '^fuzz: elapsed' "$flog" | tail -1 || true
      echo "--- PASS: $target (fuzz $fuzztime)"
      pass=$((pass + 1))
    else
      tail -30 "$flog"
      echo "--- FAIL: $target (fuzz)"
      fail=$((fail + 1)) status=1 fuzz_result=FAILED
    fi
  done
done

echo
echo "== summary"
printf '%-26s %s\n' "tags" "result"
for tags in "${combos[@]}"; do
  name=${tags:-none}
  printf '%-26s %s\n' "$name" "${result[$name]}"
done
printf '%-26s %s\n' "selftest" "${result[selftest]}"
printf '%-26s %s\n' "fuzz" "$fuzz_result"
echo "matrix: $pass passed, $fail failed, $skip skipped"
exit $status
