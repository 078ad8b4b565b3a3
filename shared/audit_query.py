"""Reading the audit trail back: the newest entries of the ``AUDIT`` stream, filtered.

Entries are scanned from the newest backwards window (``scan`` messages at most) with a
short-lived ordered read; ``kind`` narrows the subject, ``agent_id`` the entries.
"""

from __future__ import annotations

import contextlib
from collections import deque

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError as JsNotFoundError
from pydantic import ValidationError

from shared.audit import AUDIT_ALL, AUDIT_STREAM, audit_subject
from shared.messages.audit import AuditEntry


async def read_audit(
    js: JetStreamContext,
    *,
    kind: str | None = None,
    agent_id: str | None = None,
    limit: int = 100,
    scan: int = 50_000,
    timeout: float = 5.0,
) -> list[AuditEntry]:
    """The newest ``limit`` entries matching the filters, newest first.

    An absent stream reads as empty. Only the newest ``scan`` messages are looked at.
    """
    try:
        info = await js.stream_info(AUDIT_STREAM)
    except JsNotFoundError:
        return []
    last = int(info.state.last_seq or 0)
    if not info.state.messages:
        return []
    start = max(int(info.state.first_seq or 1), last - scan + 1, 1)
    subject = audit_subject(kind) if kind else AUDIT_ALL
    sub = await js.pull_subscribe(
        subject,
        stream=AUDIT_STREAM,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
        ),
    )
    kept: deque[AuditEntry] = deque(maxlen=limit)
    try:
        done = False
        while not done:
            try:
                batch = await sub.fetch(500, timeout=timeout)
            except NatsTimeoutError:
                break
            for msg in batch:
                try:
                    entry = AuditEntry.from_bytes(msg.data)
                except ValidationError:
                    continue
                if agent_id is None or entry.agent_id == agent_id:
                    kept.append(entry)
                meta = msg.metadata
                if meta.num_pending == 0 or meta.sequence.stream >= last:
                    done = True
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return list(reversed(kept))
