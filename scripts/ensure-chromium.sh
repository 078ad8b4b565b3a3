#!/usr/bin/env bash
# Make sure a headless Chromium and its driver are installed (for tests/browser).
#
# A no-op when /usr/bin/chromium and /usr/bin/chromedriver exist. Otherwise, as root,
# installs Debian's `chromium` and `chromium-driver` packages with apt-get.
#
# Exit status: 0 when both are present afterwards. When they cannot be had: non-zero
# under CI=true (the browser tests must run there), else a warning and 0 (the browser
# tests then skip, naming what is missing).
set -euo pipefail

say() { printf '[ensure-chromium] %s\n' "$*" >&2; }

present() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }

give_up() {
    if [[ ${CI:-} == "true" ]]; then
        say "error: $* (CI=true: the browser tests cannot run without chromium)"
        exit 1
    fi
    say "warning: $*; browser tests will be skipped"
    exit 0
}

if present; then
    say "chromium and chromedriver are installed"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    give_up "chromium or chromedriver missing and not root (apt-get install -y chromium chromium-driver)"
fi
if ! command -v apt-get >/dev/null 2>&1; then
    give_up "chromium or chromedriver missing and no apt-get on this machine"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || say "apt-get update failed; trying the cached package lists"
if ! apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; then
    give_up "apt-get install chromium chromium-driver failed"
fi
present || give_up "chromium installed but not on PATH"
say "installed $(chromium --version 2>/dev/null || echo chromium)"
