"""The audit trail on JetStream: stream ``AUDIT``, one subject per kind of act.

Every act that bypasses or weakens a control (quality gates skipped in YOLO mode, a
kill-all, a federated command) is written here with ``audit``. The stream is created
idempotently by whoever writes first; entries are deduplicated by their id.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import PubAck, RetentionPolicy, StorageType, StreamConfig

from shared import streams
from shared.messages.audit import AuditEntry

AUDIT_STREAM = "AUDIT"
AUDIT_PREFIX = "mosaic.audit"
AUDIT_ALL = f"{AUDIT_PREFIX}.>"
AUDIT_MAX_AGE_S = 90 * 24 * 3600.0
"""How long entries are kept (90 days)."""
AUDIT_MAX_BYTES = 1024**3
"""The stream's size bound (1 GiB): past it the oldest entries go first."""
AUDIT_MAX_MSGS = 5_000_000
"""The stream's entry bound, for the same reason."""
AUDIT_MAX_MSG_SIZE = 65_536
"""One entry's bound (entries are small JSON documents)."""

KIND_GATE_SKIPPED = "gate_skipped"
"""A quality gate skipped because of YOLO mode."""
KIND_KILL = "kill"
"""One agent killed (``mosaic.kill.agent.<id>``), whoever asked."""
KIND_KILL_ALL = "kill_all"
"""Every agent killed and the queue held (``mosaic.kill.all``)."""
KIND_RESUME = "resume"
"""A kill-all hold lifted (``POST /agents/resume``)."""
KIND_BUDGET_HOLD = "budget_hold"
"""The deployment's daily budget reached: intake held until a resume or the next UTC day."""
KIND_MERGE = "merge"
"""An agent's change merged into a base branch by the merge queue, with the commit range."""


def audit_subject(kind: str) -> str:
    """The subject entries of ``kind`` are stored under: ``mosaic.audit.<kind>``."""
    if not kind or any(c in kind for c in ".*> \t"):
        raise ValueError(f"an audit kind is one subject token, got {kind!r}")
    return f"{AUDIT_PREFIX}.{kind}"


def stream_config() -> StreamConfig:
    """The ``AUDIT`` stream: file storage, limits retention, bounded in age, bytes and
    entries (the oldest are discarded first), so no writer can fill the disk."""
    return StreamConfig(
        name=AUDIT_STREAM,
        subjects=[AUDIT_ALL],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=AUDIT_MAX_AGE_S,
        max_bytes=AUDIT_MAX_BYTES,
        max_msgs=AUDIT_MAX_MSGS,
        max_msg_size=AUDIT_MAX_MSG_SIZE,
        duplicate_window=120.0,
    )


async def ensure_audit_stream(js: JetStreamContext) -> None:
    """Create the ``AUDIT`` stream if missing, with the cluster's replicas
    (``shared.streams``; idempotent, safe to race)."""
    await streams.ensure_stream(js, stream_config())


async def audit(js: JetStreamContext, entry: AuditEntry, timeout: float = 5.0) -> PubAck:
    """Store ``entry`` durably (the stream is created first if needed)."""
    await ensure_audit_stream(js)
    return await js.publish(
        audit_subject(entry.kind),
        entry.to_bytes(),
        timeout=timeout,
        stream=AUDIT_STREAM,
        headers={"Nats-Msg-Id": entry.id},
    )
