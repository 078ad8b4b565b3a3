"""The deployment id: which Mosaic system a sandbox container belongs to.

Several Mosaic systems may share one Docker daemon (a compose stack, ``mosaic up``, test
and load-test runs on one host). Each keeps its agents in its own Valkey, so a container
whose agent is unknown to *this* Valkey may be a live sandbox of another system. Every
sandbox container is therefore labelled ``mosaic.deployment=<id>``, and whoever removes
containers by label (the spawner's reaper and its replacement of an earlier attempt, the
killswitch's stopper and reaper) only looks at containers with its own id.

The id lives in Valkey (``<prefix>:deployment``), created once by whichever service
starts first (``SET NX``), so every service of a system reads the same value without
configuration, and two systems never share one. ``MOSAIC_DEPLOYMENT_ID`` overrides it
(every service of the system must then be given the same value).
"""

from __future__ import annotations

import os
import re
import uuid

from shared.store import StateStore

ENV = "MOSAIC_DEPLOYMENT_ID"
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


async def deployment_id(store: StateStore) -> str:
    """This system's id: ``MOSAIC_DEPLOYMENT_ID``, else the one in Valkey (made if absent)."""
    configured = os.environ.get(ENV, "").strip()
    if configured:
        if not _VALID.match(configured):
            raise ValueError(f"{ENV} must be letters, digits, '.', '_' or '-' (max 63)")
        return configured
    key = store.key("deployment")
    await store.redis.set(key, uuid.uuid4().hex, nx=True)
    raw = await store.redis.get(key)
    if raw is None:  # deleted between the two calls: try once more
        await store.redis.set(key, uuid.uuid4().hex, nx=True)
        raw = await store.redis.get(key)
    return raw.decode() if isinstance(raw, bytes) else str(raw)
