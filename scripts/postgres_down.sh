#!/usr/bin/env bash
# postgres_down.sh DIR: stop the PostgreSQL scripts/postgres_up.sh DIR
# started and remove its data directory. Stopping nothing is not an error.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 1; }
STATE="$1/postgres.env"
[ -f "$STATE" ] || exit 0
# shellcheck disable=SC1090
. "$STATE"

as_owner() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ -f "$PG_DATA/db/postmaster.pid" ]; then
	as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA/db" -m immediate -w -t 30 stop >&2 2>/dev/null || true
	echo "postgres_down: stopped the server of $PG_DATA" >&2
fi
# Only the directory postgres_up.sh made.
case "$PG_DATA" in */mcptasks-pg.*) rm -rf "$PG_DATA" ;; esac
rm -f "$STATE"
exit 0
