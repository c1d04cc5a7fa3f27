#!/bin/sh
# Installs the Debian packages the test-suite needs, when they are missing.
# Chromium drives the web-UI test through Playwright (no browser download).
set -e
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: chromium is missing; install Debian's 'chromium' package (needs root)" >&2
    exit 1
fi
echo "system-deps: installing chromium from Debian"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
