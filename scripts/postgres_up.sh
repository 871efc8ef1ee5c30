#!/usr/bin/env bash
# postgres_up.sh DIR: start a PostgreSQL (15) for the tests on a free loopback
# port and print on stdout the line to eval (logs go to stderr):
#
#   eval "$(scripts/postgres_up.sh .tmp/postgres)"
#
# Installs Debian's postgresql when no initdb is found. PostgreSQL
# refuses to run as root, so as root the cluster belongs to the unprivileged
# user postgres and lives in a directory made by mktemp under /tmp (DIR may
# be somewhere that user cannot read); DIR keeps only the state file.
# Durable settings: fsync and synchronous_commit on (the defaults), so a
# kill -9 loses no committed transaction.
#
# MCPTASKS_PG_STAT_STATEMENTS=1 preloads pg_stat_statements, which the
# takeover probe (cmd/mcptasks, BenchmarkTakeoverAtScalePostgres) reads
# its statement counts from; it applies when the server starts.
#
# Idempotent: when DIR's server answers it prints the same line again; when
# DIR's server is down but its data directory is there (killed by a test),
# it starts it again on the same port and data, which runs crash recovery.
# Stop it, and remove its data, with scripts/postgres_down.sh DIR.
set -euo pipefail

log() { echo "postgres_up: $*" >&2; }
die() { log "$*"; exit 1; }

[ $# -eq 1 ] || die "usage: $0 DIR"
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
STATE="$DIR/postgres.env"
# PostgreSQL 15 (Debian 12's) unless MCPTASKS_PG_VERSION says otherwise;
# else the newest installed (CI images carry another version).
find_bin() {
	local v
	for v in ${MCPTASKS_PG_VERSION:-15} $(ls /usr/lib/postgresql 2>/dev/null | sort -rn); do
		if [ -x "/usr/lib/postgresql/$v/bin/initdb" ] && [ -x "/usr/lib/postgresql/$v/bin/pg_ctl" ]; then
			echo "/usr/lib/postgresql/$v/bin"
			return 0
		fi
		[ -n "${MCPTASKS_PG_VERSION:-}" ] && return 1
	done
	return 1
}
if ! BIN=$(find_bin); then
	pkg=postgresql${MCPTASKS_PG_VERSION:+-$MCPTASKS_PG_VERSION}
	[ "$(id -u)" -eq 0 ] || die "PostgreSQL is not installed; run as root or: apt-get install $pkg"
	log "installing $pkg (Debian package)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq "$pkg" >&2
	BIN=$(find_bin) || die "no initdb under /usr/lib/postgresql/*/bin after installing $pkg"
fi

# as_owner CMD…: run CMD as the cluster's owner (postgres when we are root).
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

ready() { as_owner "$BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -U mcptasks -d postgres -t 2 >/dev/null 2>&1; }

# start DATA PORT: start the cluster in DATA on PORT and wait until it answers.
start() {
	local preload=""
	if [ "${MCPTASKS_PG_STAT_STATEMENTS:-}" = 1 ]; then
		preload=" -c shared_preload_libraries=pg_stat_statements"
	fi
	as_owner "$BIN/pg_ctl" -D "$1/db" -l "$1/pg.log" -w -t 60 \
		-o "-p $2 -k $1 -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on -c synchronous_commit=on$preload" \
		start >&2
}

if [ -f "$STATE" ]; then
	# shellcheck disable=SC1090
	. "$STATE"
	if ready "$PG_PORT"; then
		log "already running in $PG_DATA"
		echo "export MCPTASKS_TEST_POSTGRES_URL=$MCPTASKS_TEST_POSTGRES_URL"
		exit 0
	fi
	if [ -f "$PG_DATA/db/PG_VERSION" ]; then
		log "restarting the stopped server of $PG_DATA on port $PG_PORT"
		# A server killed with -9 leaves its pid file, which pg_ctl
		# ignores once that process is gone (reaped).
		if [ -f "$PG_DATA/db/postmaster.pid" ]; then
			old=$(head -1 "$PG_DATA/db/postmaster.pid")
			for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.05; done
		fi
		# Its backends, killed with it, may still hold the old shared
		# memory for a moment ("another server might be running"): retry.
		ok=""
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			if start "$PG_DATA" "$PG_PORT"; then ok=1; break; fi
			sleep 0.5
		done
		if [ -z "$ok" ]; then
			tail -20 "$PG_DATA/pg.log" >&2 || true
			die "restart failed; see $PG_DATA/pg.log"
		fi
		echo "export MCPTASKS_TEST_POSTGRES_URL=$MCPTASKS_TEST_POSTGRES_URL"
		exit 0
	fi
	log "stale state in $DIR, starting afresh"
	rm -f "$STATE"
fi

# Readable by postgres even when DIR is not (root's home is not).
PG_DATA=$(mktemp -d "${TMPDIR:-/tmp}/mcptasks-pg.XXXXXX")
chmod 0755 "$PG_DATA"
[ "$(id -u)" -eq 0 ] && chown postgres: "$PG_DATA"
USER_NAME=mcptasks
as_owner "$BIN/initdb" -D "$PG_DATA/db" -U "$USER_NAME" --auth=trust -E UTF8 --locale=C.UTF-8 >"$PG_DATA/initdb.log" 2>&1 ||
	{ cat "$PG_DATA/initdb.log" >&2; die "initdb failed"; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A port below the kernel's ephemeral range: a server killed and started
# again on its port (the fault tests do) would otherwise find it taken as
# the local end of some outgoing connection ("Address already in use").
low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$low" -gt 11000 ] 2>/dev/null || low=50000
started=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
	p=$((10000 + RANDOM % (low - 10000)))
	port_free "$p" || continue
	if start "$PG_DATA" "$p"; then
		started=$p
		break
	fi
	log "did not start on $p (see $PG_DATA/pg.log), trying another port"
done
[ -n "$started" ] || die "could not start PostgreSQL"

url="postgres://$USER_NAME@127.0.0.1:$started/postgres?sslmode=disable"
cat >"$STATE" <<STATE
PG_DATA='$PG_DATA'
PG_PORT='$started'
PG_BIN='$BIN'
MCPTASKS_TEST_POSTGRES_URL='$url'
STATE
log "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$started, data in $PG_DATA"
echo "export MCPTASKS_TEST_POSTGRES_URL=$url"
