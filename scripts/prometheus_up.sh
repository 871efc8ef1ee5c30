#!/usr/bin/env bash
# prometheus_up.sh DIR: start a Prometheus server of the tests' own on a
# free loopback port, scraping every second the targets listed in a
# file_sd file the tests rewrite, with its config, data, pid and log in
# DIR. Prints export lines for the tests on stdout (logs go to stderr):
#
#   eval "$(scripts/prometheus_up.sh .tmp/prometheus)"
#
#   MCPTASKS_TEST_PROMETHEUS_URL      its HTTP API, http://127.0.0.1:PORT
#   MCPTASKS_TEST_PROMETHEUS_TARGETS  the file_sd JSON file: a test writes
#                                     [{"targets":["127.0.0.1:P",…],"labels":{…}}]
#                                     and Prometheus scrapes them within ~1 s
#
# Installs Debian's prometheus (--no-install-recommends: the recommended
# node exporter would listen on every interface) when it is not on PATH,
# and never starts the Debian service. Idempotent: when DIR's server is
# still up it only prints the same lines again. Stop it with
# scripts/prometheus_down.sh DIR.
set -euo pipefail

log() { echo "prometheus_up: $*" >&2; }
die() { log "$*"; exit 1; }

[ $# -eq 1 ] || die "usage: $0 DIR"
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
STATE="$DIR/prometheus.env"
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v prometheus >/dev/null; then
	[ "$(id -u)" -eq 0 ] || die "prometheus not installed; run as root or: apt-get install --no-install-recommends prometheus"
	log "installing prometheus (Debian package; its service is not started)"
	export DEBIAN_FRONTEND=noninteractive
	# A policy-rc.d that refuses every start keeps the package's service
	# down (on machines with an init that would start it); ours only.
	policy=/usr/sbin/policy-rc.d
	made_policy=""
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		made_policy=1
	fi
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends prometheus >&2 || { [ -n "$made_policy" ] && rm -f "$policy"; die "apt-get install prometheus failed"; }
	[ -n "$made_policy" ] && rm -f "$policy"
fi

ready() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1/-/ready" 2>/dev/null; }

# Still up from an earlier run? Then say the same again.
if [ -f "$STATE" ]; then
	# shellcheck disable=SC1090
	. "$STATE"
	if ready "$PROMETHEUS_PORT"; then
		log "already running in $DIR"
		echo "export MCPTASKS_TEST_PROMETHEUS_URL=$MCPTASKS_TEST_PROMETHEUS_URL"
		echo "export MCPTASKS_TEST_PROMETHEUS_TARGETS=$MCPTASKS_TEST_PROMETHEUS_TARGETS"
		exit 0
	fi
	log "stale state in $DIR, restarting"
	"$here/prometheus_down.sh" "$DIR"
fi

targets="$DIR/targets.json"
[ -f "$targets" ] || echo '[]' >"$targets"
# A scrape every second (its timeout at most the interval): a test sees
# what it did within a few seconds. file_sd watches the file, so a
# rewrite takes effect at once; refresh_interval is the fallback.
cat >"$DIR/prometheus.yml" <<CONF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: mcptasks
    file_sd_configs:
      - files: ['$targets']
        refresh_interval: 1s
CONF

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$low" -gt 21000 ] 2>/dev/null || low=50000

for tries in 1 2 3 4 5 6 7 8 9 10; do
	p=$((10000 + RANDOM % (low - 20000)))
	port_free "$p" || continue
	mkdir -p "$DIR/data"
	prometheus --config.file="$DIR/prometheus.yml" --web.listen-address="127.0.0.1:$p" \
		--storage.tsdb.path="$DIR/data" --storage.tsdb.retention.time=1d \
		>"$DIR/prometheus.log" 2>&1 </dev/null &
	echo $! >"$DIR/prometheus.pid"
	for _ in $(seq 200); do
		if ready "$p"; then
			url="http://127.0.0.1:$p"
			cat >"$STATE" <<STATE
PROMETHEUS_PORT='$p'
MCPTASKS_TEST_PROMETHEUS_URL='$url'
MCPTASKS_TEST_PROMETHEUS_TARGETS='$targets'
STATE
			log "ready on 127.0.0.1:$p"
			echo "export MCPTASKS_TEST_PROMETHEUS_URL=$url"
			echo "export MCPTASKS_TEST_PROMETHEUS_TARGETS=$targets"
			exit 0
		fi
		kill -0 "$(cat "$DIR/prometheus.pid")" 2>/dev/null || break
		sleep 0.05
	done
	log "prometheus did not start on $p (see $DIR/prometheus.log), trying another port"
	"$here/prometheus_down.sh" "$DIR"
	[ -f "$targets" ] || echo '[]' >"$targets"
done
die "could not start prometheus"
