#!/bin/sh
# Installs what tests/browser.rs needs and is missing: Debian's chromium, and
# playwright-core (pinned in package-lock.json) under tests/browser/node_modules.
# Idempotent, and quiet when everything is there. Node.js 20+ must be installed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)

if [ ! -x /usr/bin/chromium ]; then
    echo "browser setup: installing chromium (apt-get)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "browser setup: Node.js 20 or later (node and npm) is needed; install it first" >&2
    exit 1
fi

want=$(node -p "require('$here/package.json').dependencies['playwright-core']")
have=$(node -p "require('$here/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
    echo "browser setup: npm ci in tests/browser (playwright-core $want)"
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
