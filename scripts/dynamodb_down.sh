#!/usr/bin/env bash
# dynamodb_down.sh DIR: stop the servers dynamodb_up.sh DIR started.
set -uo pipefail

dir=${1:?usage: dynamodb_down.sh DIR}
for name in dynamodb-local dynalite; do
	pidfile=$dir/$name.pid
	[ -f "$pidfile" ] || continue
	pid=$(cat "$pidfile")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
	fi
	rm -f "$pidfile"
	echo "dynamodb_down: stopped $name" >&2
done
exit 0
