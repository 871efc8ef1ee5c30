#!/usr/bin/env bash
# redis_up.sh DIR: start a standalone Redis, a Redis Cluster of 3 masters
# with one replica each, and a master with one replica watched by three
# Sentinels (master name "mcptasks"), on free loopback ports, with every
# pid, log, config and data file in DIR.
# Prints export lines for the tests on stdout (logs go to stderr):
#
#   eval "$(scripts/redis_up.sh .tmp/redis)"
#
# Installs Debian's redis-server and redis-sentinel when they are not on
# PATH. Idempotent: when
# DIR's servers are still up it only prints the same lines again. Stop them
# with scripts/redis_down.sh DIR.
set -euo pipefail

log() { echo "redis_up: $*" >&2; }
die() { log "$*"; exit 1; }

[ $# -eq 1 ] || die "usage: $0 DIR"
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
STATE="$DIR/redis.env"
here=$(cd "$(dirname "$0")" && pwd)

missing=()
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then missing+=(redis-server); fi
command -v redis-sentinel >/dev/null || missing+=(redis-sentinel)
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || die "${missing[*]} not installed; run as root or: apt-get install --no-install-recommends ${missing[*]}"
	log "installing ${missing[*]} (Debian packages)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

ping() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }

# Still up from an earlier run? Then say the same again.
if [ -f "$STATE" ]; then
	# shellcheck disable=SC1090
	. "$STATE"
	ok=1
	for p in $REDIS_PORTS; do ping "$p" || ok=0; done
	if [ "$ok" = 1 ] && redis-cli -h 127.0.0.1 -p "${REDIS_PORTS##* }" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
		log "already running in $DIR"
		echo "export MCPTASKS_TEST_REDIS_URL=$MCPTASKS_TEST_REDIS_URL"
		echo "export MCPTASKS_TEST_REDIS_CLUSTER_URL=$MCPTASKS_TEST_REDIS_CLUSTER_URL"
		echo "export MCPTASKS_TEST_REDIS_SENTINEL_URL=$MCPTASKS_TEST_REDIS_SENTINEL_URL"
		exit 0
	fi
	log "stale state in $DIR, restarting"
	"$here/redis_down.sh" "$DIR"
fi

# port_free P: nothing accepts connections on P or on its cluster bus port.
port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null &&
		! (exec 3<>"/dev/tcp/127.0.0.1/$(($1 + 10000))") 2>/dev/null
}

# Ports below the kernel's ephemeral range, the cluster bus port (+10000)
# too: a node killed and started again on its port (the failover tests do)
# would otherwise find it taken as the local end of some outgoing
# connection ("Address already in use").
low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$low" -gt 21000 ] 2>/dev/null || low=50000

# server P EXTRA_ARGS…: run a redis-server on P, daemonized. No
# persistence: the failover test that kills servers runs its own.
server() {
	local p=$1
	shift
	redis-server --bind 127.0.0.1 --port "$p" --save "" --appendonly no \
		--daemonize yes --pidfile "$DIR/redis-$p.pid" --logfile "$DIR/redis-$p.log" \
		--dir "$DIR/data-$p" "$@"
}

# sentinel P MASTER_PORT: run a Sentinel on P watching the master on
# MASTER_PORT as "mcptasks", with a quorum of 2 (of 3). It rewrites its
# config file, so that is its own, in DIR.
sentinel() {
	local p=$1 conf="$DIR/sentinel-$1.conf"
	cat >"$conf" <<CONF
sentinel monitor mcptasks 127.0.0.1 $2 2
sentinel down-after-milliseconds mcptasks 5000
sentinel failover-timeout mcptasks 10000
CONF
	redis-sentinel "$conf" --bind 127.0.0.1 --port "$p" --daemonize yes \
		--pidfile "$DIR/redis-$p.pid" --logfile "$DIR/redis-$p.log" --dir "$DIR/data-$p"
}

# start NAME LAUNCH ARGS…: start one server with LAUNCH (server or
# sentinel) on a free port, echo the port.
start() {
	local name=$1 launch=$2 p tries
	shift 2
	for tries in 1 2 3 4 5 6 7 8 9 10; do
		p=$((10000 + RANDOM % (low - 20000)))
		port_free "$p" || continue
		mkdir -p "$DIR/data-$p"
		if "$launch" "$p" "$@" >&2; then
			for _ in $(seq 100); do
				if ping "$p"; then
					log "$name on 127.0.0.1:$p"
					echo "$p"
					return 0
				fi
				sleep 0.05
			done
		fi
		log "$name did not start on $p (see $DIR/redis-$p.log), trying another port"
		[ -f "$DIR/redis-$p.pid" ] && kill "$(cat "$DIR/redis-$p.pid")" 2>/dev/null || true
	done
	die "could not start $name"
}

standalone=$(start standalone server)
ports=$standalone
# The Sentinels' master and its replica: a full sync without the default
# 5 s wait for more replicas (repl-diskless-sync-delay).
smaster=$(start "sentinel's master" server --repl-diskless-sync-delay 0)
sreplica=$(start "sentinel's replica" server --repl-diskless-sync-delay 0 --replicaof 127.0.0.1 "$smaster")
sentinels=()
for i in 1 2 3; do
	sentinels+=("$(start "sentinel $i" sentinel "$smaster")")
done
ports="$ports $smaster $sreplica ${sentinels[*]}"
cluster=()
for i in 1 2 3 4 5 6; do
	p=$(start "cluster node $i" server --cluster-enabled yes --cluster-config-file "$DIR/nodes-$i.conf" --cluster-node-timeout 5000)
	cluster+=("$p")
	ports="$ports $p"
done
# Remember the ports at once, so redis_down.sh can stop a half-made setup.
echo "REDIS_PORTS='$ports'" >"$STATE"

# The first three become masters, the others one replica each (all on one
# host: redis-cli warns about that, which is fine for tests).
redis-cli --cluster create "${cluster[@]/#/127.0.0.1:}" --cluster-replicas 1 --cluster-yes >&2
for p in "${cluster[@]}"; do
	for i in $(seq 400); do
		redis-cli -h 127.0.0.1 -p "$p" cluster info | grep -q 'cluster_state:ok' && break
		[ "$i" = 400 ] && die "cluster node $p never became ready"
		sleep 0.05
	done
done
# Ready means every replica has synced, so that WAIT 1 (wait_replicas=1)
# succeeds from the first write.
for p in "${cluster[@]}"; do
	for i in $(seq 400); do
		info=$(redis-cli -h 127.0.0.1 -p "$p" info replication)
		if grep -q '^role:master' <<<"$info"; then
			grep -q '^slave0:.*state=online' <<<"$info" && break
		else
			grep -q '^master_link_status:up' <<<"$info" && break
		fi
		[ "$i" = 400 ] && die "cluster node $p: replication never came up"
		sleep 0.05
	done
done

log "cluster ready"
# The Sentinels are ready once each knows the replica and the other two
# (they find each other through the master, every 2 s): before that a
# failover could not reach its quorum. The replica has synced by then.
for p in "${sentinels[@]}"; do
	for i in $(seq 400); do
		m=$(redis-cli -h 127.0.0.1 -p "$p" sentinel master mcptasks 2>/dev/null | paste -sd ' ')
		[[ " $m " == *" num-slaves 1 "* && " $m " == *" num-other-sentinels 2 "* ]] && break
		[ "$i" = 400 ] && die "sentinel $p never saw the replica and the other sentinels: $m"
		sleep 0.05
	done
done
for i in $(seq 400); do
	redis-cli -h 127.0.0.1 -p "$sreplica" info replication | grep -q '^master_link_status:up' && break
	[ "$i" = 400 ] && die "the sentinel's replica never synced"
	sleep 0.05
done

url="redis://127.0.0.1:$standalone"
curl="redis+cluster://$(printf '127.0.0.1:%s,' "${cluster[@]}")"
curl=${curl%,}
surl="redis+sentinel://$(printf '127.0.0.1:%s,' "${sentinels[@]}")"
surl="${surl%,}/mcptasks"
cat >>"$STATE" <<STATE
MCPTASKS_TEST_REDIS_URL='$url'
MCPTASKS_TEST_REDIS_CLUSTER_URL='$curl'
MCPTASKS_TEST_REDIS_SENTINEL_URL='$surl'
STATE
log "ready"
echo "export MCPTASKS_TEST_REDIS_URL=$url"
echo "export MCPTASKS_TEST_REDIS_CLUSTER_URL=$curl"
echo "export MCPTASKS_TEST_REDIS_SENTINEL_URL=$surl"
