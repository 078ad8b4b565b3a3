#!/usr/bin/env bash
# Make a compose CLI available: the v2 plugin (`docker compose`) if present, else
# Debian's `docker-compose` package (bookworm ships compose 1.29, which reads
# compose.yaml, validates it and supports --scale; the v2 plugin is not packaged there).
# Installs only as root with apt-get; exit 1 when no compose CLI can be had.
set -euo pipefail
say() { printf '[ensure-compose] %s\n' "$*" >&2; }
if docker compose version >/dev/null 2>&1; then say "docker compose (v2 plugin)"; exit 0; fi
if command -v docker-compose >/dev/null 2>&1; then say "docker-compose"; exit 0; fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    say "no compose CLI, and installing one needs root and apt-get"; exit 1
fi
say "installing Debian's docker-compose"
{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; } \
    >/tmp/mosaic-ensure-compose.log 2>&1 || { say "install failed (see /tmp/mosaic-ensure-compose.log)"; exit 1; }
command -v docker-compose >/dev/null 2>&1
