#!/usr/bin/env bash
# Builds, vets and tests (with -race) every build-tag combination against
# real servers, which it installs and starts itself and stops on exit.
#
#   ./matrix_test.sh                  all four combinations
#   ./matrix_test.sh redis            only the listed combinations ("" = no tags)
#
# Environment: MCPTASKS_TEST_REQUIRE=1 (the default here) makes a test fail
# rather than skip when its server is missing. GOFLAGS passes through.
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)

if [ $# -gt 0 ]; then combos=("$@"); else combos=("" "redis" "dynamodb" "redis,dynamodb"); fi
export MCPTASKS_TEST_REQUIRE=${MCPTASKS_TEST_REQUIRE:-1}

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

need() { # need SERVICE: start it once if some combination's tags name it
  local svc=$1
  for c in "${combos[@]}"; do
    case ",$c," in *",$svc,"*)
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
# Every combination runs the MCP conformance suite (cmd/mcptasks
# TestConformanceTasks): install it, with the Node 22 it needs, once.
echo "== installing the MCP conformance suite" >&2
eval "$(scripts/conformance_up.sh)"

declare -A result
pass=0 fail=0 skip=0 status=0
for tags in "${combos[@]}"; do
  name=${tags:-none}
  log="$logs/$name.log"
  echo "== tags: $name"
  step=build
  if go build -tags "$tags" ./... && step=vet && go vet -tags "$tags" ./... && step=test &&
    go test -race -count=1 -timeout 30m -tags "$tags" -v ./... >"$log" 2>&1; then
    result[$name]=ok
  else
    result[$name]="FAILED at $step"
    status=1
  fi
  if [ -f "$log" ]; then
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
  fi
done

# Fuzz targets run once each, for a bounded time, in the build with the
# most tags among those tested (so the backends' own targets run too).
fuzztime=${MCPTASKS_FUZZTIME:-10s}
fuzztags=""
for tags in "${combos[@]}"; do
  if [ ${#tags} -gt ${#fuzztags} ]; then fuzztags=$tags; fi
done
fuzz_result=ok
for pkg in $(go list -tags "$fuzztags" ./...); do
  for target in $(go test -tags "$fuzztags" -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "== fuzz $target ($pkg, tags ${fuzztags:-none}, $fuzztime)"
    if go test -tags "$fuzztags" -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "$pkg" >"$logs/fuzz-$target.log" 2>&1; then
      grep -E '^fuzz: elapsed' "$logs/fuzz-$target.log" | tail -1 || true
      echo "--- PASS: $target (fuzz $fuzztime)"
      pass=$((pass + 1))
    else
      tail -30 "$logs/fuzz-$target.log"
      echo "--- FAIL: $target (fuzz)"
      fail=$((fail + 1)) status=1 fuzz_result=FAILED
    fi
  done
done

echo
echo "== summary"
printf '%-16s %s\n' "tags" "result"
for tags in "${combos[@]}"; do
  name=${tags:-none}
  printf '%-16s %s\n' "$name" "${result[$name]}"
done
printf '%-16s %s\n' "fuzz" "$fuzz_result"
echo "matrix: $pass passed, $fail failed, $skip skipped"
exit $status
