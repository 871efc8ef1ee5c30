#!/usr/bin/env bash
# redis_down.sh DIR: stop the Redis servers scripts/redis_up.sh started in
# DIR and remove their files. Stopping nothing is not an error.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 1; }
DIR=$1
[ -d "$DIR" ] || exit 0

pids=()
for f in "$DIR"/redis-*.pid; do
	[ -f "$f" ] || continue
	pid=$(cat "$f")
	# Only a redis-server or redis-sentinel we started: the pid file may be stale.
	if [ -n "$pid" ] && grep -qE '^redis-(server|sentinel)' "/proc/$pid/comm" 2>/dev/null; then
		kill "$pid" 2>/dev/null && pids+=("$pid")
	fi
done
for pid in "${pids[@]}"; do
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
done
rm -rf "$DIR"/redis-*.pid "$DIR"/redis-*.log "$DIR"/data-* "$DIR"/nodes-*.conf "$DIR"/sentinel-*.conf "$DIR"/redis.env
[ ${#pids[@]} -gt 0 ] && echo "redis_down: stopped ${#pids[@]} server(s) in $DIR" >&2
exit 0
