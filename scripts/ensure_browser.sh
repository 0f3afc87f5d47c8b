#!/usr/bin/env bash
# Make sure a headless Chromium is there for the gateway's browser test (tests/test_gateway_browser.py):
# Debian's `chromium` package, driven by Playwright (installed by the test extra). Never runs
# `playwright install`: the browser comes from the distribution. When it cannot be had, say
# so in one line and fail, since a skipped browser test is not a passing one.
set -uo pipefail

CHROMIUM=${ZERO_SUDO_CHROMIUM:-/usr/bin/chromium}

die() { echo "browser: $*" >&2; exit 1; }

[ -x "$CHROMIUM" ] && exit 0
[ "$(id -u)" = 0 ] || die "$CHROMIUM is missing: run 'apt-get install chromium' as root (or set ZERO_SUDO_CHROMIUM)"
command -v apt-get >/dev/null || die "$CHROMIUM is missing and apt-get is not available: install Chromium and set ZERO_SUDO_CHROMIUM"
echo "browser: installing chromium with apt-get" >&2
{ [ -n "${ZERO_SUDO_APT_UPDATED:-}" ] || apt-get update -qq; } >/dev/null 2>&1
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
  || die "could not install chromium with apt-get: run 'apt-get install chromium' as root and look at its error"
[ -x "$CHROMIUM" ] || die "chromium installed but $CHROMIUM is missing: set ZERO_SUDO_CHROMIUM to its path"
