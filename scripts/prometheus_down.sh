#!/usr/bin/env bash
# prometheus_down.sh DIR: stop the Prometheus server scripts/prometheus_up.sh
# started in DIR and remove its files. Stopping nothing is not an error.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 1; }
DIR=$1
[ -d "$DIR" ] || exit 0

f="$DIR/prometheus.pid"
if [ -f "$f" ]; then
	pid=$(cat "$f")
	# Only a prometheus we started: the pid file may be stale.
	if [ -n "$pid" ] && grep -qx 'prometheus' "/proc/$pid/comm" 2>/dev/null; then
		kill "$pid" 2>/dev/null
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
		echo "prometheus_down: stopped the server in $DIR" >&2
	fi
fi
rm -rf "$DIR"/prometheus.pid "$DIR"/prometheus.log "$DIR"/prometheus.yml "$DIR"/prometheus.env "$DIR"/targets.json "$DIR"/data
exit 0
