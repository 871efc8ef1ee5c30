#!/usr/bin/env bash
# chromium_up.sh: make a headless Chromium available to the browser tests
# (taskadmin's admin page, driven from Go with chromedp). Installs Debian's
# chromium (--no-install-recommends) when it is not on PATH; nothing
# downloads a browser of its own. Prints on stdout the line to eval (logs
# go to stderr):
#
#   eval "$(scripts/chromium_up.sh)"
#
#   MCPTASKS_TEST_CHROMIUM  the browser binary the tests start, headless,
#                           each with a profile of its own in a temp dir
#
# There is no server to stop: each test starts and ends its own browser.
set -euo pipefail

log() { echo "chromium_up: $*" >&2; }
die() { log "$*"; exit 1; }

bin=$(command -v chromium || true)
if [ -z "$bin" ]; then
	[ "$(id -u)" -eq 0 ] || die "chromium not installed; run as root or: apt-get install --no-install-recommends chromium"
	log "installing chromium (Debian package)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends chromium >&2 || die "apt-get install chromium failed"
	bin=$(command -v chromium) || die "chromium installed but not on PATH"
fi
log "$("$bin" --version 2>/dev/null || echo "$bin")"
echo "export MCPTASKS_TEST_CHROMIUM=$bin"
