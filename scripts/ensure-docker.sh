#!/usr/bin/env bash
# Make sure a Docker daemon answers.
#
# When `docker info` fails and we are root: install Debian's docker.io if dockerd is
# missing, start dockerd in the background (log: $MOSAIC_DOCKERD_LOG, default
# /tmp/mosaic-dockerd.log) and wait for it (at most $MOSAIC_DOCKERD_WAIT s, default 60).
#
# Exit status: 0 when a daemon answers. When none can be had: non-zero under CI=true
# (the docker tier must run there), else a warning and 0 (the docker tests then skip,
# naming what is missing).
set -euo pipefail

LOG=${MOSAIC_DOCKERD_LOG:-/tmp/mosaic-dockerd.log}
WAIT=${MOSAIC_DOCKERD_WAIT:-60}

say() { printf '[ensure-docker] %s\n' "$*" >&2; }

give_up() {
    if [[ ${CI:-} == "true" ]]; then
        say "error: $* (CI=true: the docker tier cannot run without a daemon)"
        exit 1
    fi
    say "warning: $*; docker-tier tests will be skipped"
    exit 0
}

daemon_ok() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

if daemon_ok; then
    say "Docker daemon is running"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    if command -v docker >/dev/null 2>&1; then
        give_up "no Docker daemon answers and starting one needs root"
    fi
    give_up "docker is not installed and installing it needs root"
fi

if ! command -v dockerd >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || give_up "dockerd is missing and there is no apt-get to install docker.io"
    say "installing docker.io"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io; } \
        >>"$LOG" 2>&1; then
        give_up "installing docker.io failed (see $LOG)"
    fi
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    say "starting dockerd (log: $LOG)"
    nohup dockerd >>"$LOG" 2>&1 &
    disown || true
fi

for ((i = 0; i < WAIT * 2; i++)); do
    if daemon_ok; then
        say "Docker daemon is running"
        exit 0
    fi
    sleep 0.5
done
give_up "dockerd did not answer within ${WAIT} s (see $LOG)"
