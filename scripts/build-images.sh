#!/usr/bin/env bash
# Build Mosaic's container images.
#
#   scripts/build-images.sh            public base (python:3.11-slim); falls back to the
#                                      offline base when that base cannot be had
#   scripts/build-images.sh --offline  never touch a registry: build mosaic/base:bookworm
#                                      from Debian packages (debootstrap + docker import)
#   scripts/build-images.sh --force    rebuild even when the images exist
#   scripts/build-images.sh --services also build the service images from
#                                      containers/services.Dockerfile (see below)
#
# Environment:
#   MOSAIC_CACHE          cache dir (default ~/.cache/mosaic); the rootfs lives in $MOSAIC_CACHE/rootfs
#   MOSAIC_SANDBOX_IMAGE  tag of the sandbox image (default mosaic/sandbox:latest)
#   MOSAIC_PUBLIC_BASE    public base image (default python:3.11-slim)
#   MOSAIC_OFFLINE_BASE   tag of the offline base (default mosaic/base:bookworm)
#
# Idempotent: an existing image is kept (use --force), an existing rootfs is reused.
#
# --services: host-built wheels (dist/wheels, with the project venv's pip, so the build
# needs no package index) + one docker build per target of containers/services.Dockerfile:
# mosaic/{gateway,spawner,gitops,gates,killswitch,nats,valkey}:latest. Images carry a
# label with a hash of their sources; they are rebuilt only when that hash changes.
#   MOSAIC_IMAGE_PREFIX   repository prefix of the service images (default mosaic)
#   MOSAIC_IMAGE_TAG      their tag (default latest)
#   MOSAIC_PYTHON         python whose pip builds the wheels (default .venv/bin/python)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${MOSAIC_CACHE:-${HOME}/.cache/mosaic}
SANDBOX_IMAGE=${MOSAIC_SANDBOX_IMAGE:-mosaic/sandbox:latest}
PUBLIC_BASE=${MOSAIC_PUBLIC_BASE:-python:3.11-slim}
OFFLINE_BASE=${MOSAIC_OFFLINE_BASE:-mosaic/base:bookworm}
SUITE=bookworm
# What the sandbox Dockerfile needs from its base, so it builds without apt.
BASE_PACKAGES=python3,git,make,ca-certificates,passwd,procps

offline=0
force=0
services=0

usage() {
    sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

log() { printf '[build-images] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

while (($#)); do
    case "$1" in
        --offline) offline=1 ;;
        --force) force=1 ;;
        --services) services=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage; die "unknown argument: $1" ;;
    esac
    shift
done

command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed (try scripts/ensure-docker.sh)"
docker info >/dev/null 2>&1 || die "no Docker daemon answers (try scripts/ensure-docker.sh)"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# The offline base: a minimal Debian rootfs with python3/git/make, imported as an image.
build_offline_base() {
    if image_exists "$OFFLINE_BASE" && ((force == 0)); then
        log "offline base $OFFLINE_BASE exists (cached)"
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "building the offline base needs root (debootstrap)"
    local rootfs="$CACHE/rootfs/$SUITE"
    local stamp="$rootfs.done"
    if [[ ! -f $stamp || $force -eq 1 ]]; then
        if ! command -v debootstrap >/dev/null 2>&1; then
            log "installing debootstrap"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
        fi
        log "debootstrap $SUITE into $rootfs"
        rm -rf "$rootfs" "$stamp"
        mkdir -p "$rootfs"
        local started=$SECONDS
        # The suite's default mirror is used on purpose: no host name is written here.
        debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" \
            >"$CACHE/rootfs/debootstrap.log" 2>&1 \
            || die "debootstrap failed; see $CACHE/rootfs/debootstrap.log"
        # Slim it: package caches and lists are not needed inside an image.
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
            "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
        touch "$stamp"
        log "rootfs ready in $((SECONDS - started)) s"
    else
        log "reusing rootfs $rootfs"
    fi
    log "docker import -> $OFFLINE_BASE"
    tar -C "$rootfs" --numeric-owner -c . \
        | docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["/bin/bash"]' \
            - "$OFFLINE_BASE" >/dev/null
}

# Which base to build on: the public one when present or pullable, else the offline one.
choose_base() {
    if ((offline == 1)); then
        build_offline_base
        echo "$OFFLINE_BASE"
        return 0
    fi
    if image_exists "$PUBLIC_BASE" || docker pull -q "$PUBLIC_BASE" >/dev/null 2>&1; then
        echo "$PUBLIC_BASE"
        return 0
    fi
    log "cannot pull $PUBLIC_BASE; falling back to the offline base"
    build_offline_base
    echo "$OFFLINE_BASE"
}

build_image() { # tag dockerfile context base
    local tag=$1 dockerfile=$2 context=$3 base=$4
    if image_exists "$tag" && ((force == 0)); then
        log "$tag exists (cached; --force to rebuild)"
        return 0
    fi
    log "building $tag on $base"
    local started=$SECONDS
    # --pull=false: never reach for a registry for a base that is already local.
    docker build --pull=false -q -t "$tag" -f "$dockerfile" \
        --build-arg "BASE_IMAGE=$base" "$context" >/dev/null
    log "$tag built in $((SECONDS - started)) s"
}

# Hook for the service images (gateway, spawner, gitops, gates, killswitch): each will
# be a services/<name>/Dockerfile taking ARG BASE_IMAGE; they are built here when present.
build_service_images() {
    local base=$1 dockerfile name
    for dockerfile in "$ROOT"/services/*/Dockerfile; do
        [[ -f $dockerfile ]] || continue
        name=$(basename "$(dirname "$dockerfile")")
        build_image "mosaic/$name:latest" "$dockerfile" "$ROOT" "$base"
    done
}


# --------------------------------------------------------------------------------------
# --services: the compose images (containers/services.Dockerfile, one target per image).
SERVICE_TARGETS=(gateway spawner gitops gates killswitch nats valkey)
IMAGE_PREFIX=${MOSAIC_IMAGE_PREFIX:-mosaic}
IMAGE_TAG=${MOSAIC_IMAGE_TAG:-latest}
HASH_LABEL=org.mosaic.source-hash

# A hash of everything the service images are built from (plus the base's id).
services_source_hash() { # base
    local base_id
    base_id=$(docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || echo "$1")
    {
        echo "$base_id"
        (cd "$ROOT" && find pyproject.toml README.md .dockerignore shared services mosaic loadtests containers \
            -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path 'loadtests/results/*' -print0 \
            | LC_ALL=C sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -c1-16
}

# Wheels of the project and every dependency, built with the host's pip and its
# configuration, so the image build itself never needs the package index.
build_wheels() {
    local py=${MOSAIC_PYTHON:-$ROOT/.venv/bin/python}
    [[ -x $py ]] || py=$(command -v python3) || die "no python to build wheels with"
    local dir="$ROOT/dist/wheels" started=$SECONDS
    rm -rf "$dir"
    mkdir -p "$dir"
    log "building wheels into dist/wheels with $py"
    # pip: the offline base has no pip, the build runs it from its wheel. async-timeout:
    # redis needs it below python 3.11.3 (the offline base has 3.11.2; the host may not).
    if ! (cd "$ROOT" && "$py" -m pip wheel -q --disable-pip-version-check -w "$dir" . pip async-timeout \
        >"$CACHE/pip-wheel.log" 2>&1); then
        rm -rf "$dir"
        log "warning: pip wheel failed (see $CACHE/pip-wheel.log); the build will use the package index"
        return 0
    fi
    log "wheels ready in $((SECONDS - started)) s ($(ls "$dir" | wc -l) files)"
}

build_service_targets() { # base
    local base=$1 hash target tag stale=()
    hash=$(services_source_hash "$base")
    for target in "${SERVICE_TARGETS[@]}"; do
        tag="$IMAGE_PREFIX/$target:$IMAGE_TAG"
        if ((force == 0)) && [[ $(docker image inspect --format "{{index .Config.Labels \"$HASH_LABEL\"}}" "$tag" 2>/dev/null) == "$hash" ]]; then
            continue
        fi
        stale+=("$target")
    done
    if ((${#stale[@]} == 0)); then
        log "service images are up to date (source hash $hash)"
        return 0
    fi
    build_wheels
    local started=$SECONDS
    for target in "${stale[@]}"; do
        tag="$IMAGE_PREFIX/$target:$IMAGE_TAG"
        log "building $tag (target $target) on $base"
        docker build --pull=false -q -t "$tag" -f "$ROOT/containers/services.Dockerfile" \
            --target "$target" --build-arg "BASE_IMAGE=$base" --label "$HASH_LABEL=$hash" \
            "$ROOT" >/dev/null
    done
    log "service images built in $((SECONDS - started)) s: ${stale[*]}"
}
# --------------------------------------------------------------------------------------

main() {
    local base
    if ((services == 0)) && image_exists "$SANDBOX_IMAGE" && ((force == 0)) && ! compgen -G "$ROOT/services/*/Dockerfile" >/dev/null; then
        log "$SANDBOX_IMAGE exists (cached; --force to rebuild)"
        return 0
    fi
    mkdir -p "$CACHE"
    # One build at a time per cache: parallel test workers each ask for the images, and
    # two `pip wheel .` in one source tree collide in its build/ directory. A second
    # caller waits here, then finds the images built (cached by their source hash).
    exec 9>"$CACHE/build.lock"
    flock 9
    base=$(choose_base)
    build_image "$SANDBOX_IMAGE" "$ROOT/sandbox/Dockerfile" "$ROOT/sandbox" "$base"
    build_service_images "$base"
    if ((services == 1)); then
        build_service_targets "$base"
    fi
    log "done"
}

main
