"""The durable task queue on JetStream: stream, per-priority consumers, publishing.

JetStream has no message priority, so each priority has its own subject and durable
consumer (``spawner-p01`` … ``spawner-p10``); spawners drain them from 1 (highest) down.
Work-queue retention removes a task once acked; ``Nats-Msg-Id`` = task id dedupes
resubmissions inside the duplicate window (Valkey dedupes beyond it).
"""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    PubAck,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError as JsNotFoundError

from shared import streams, subjects, tracing
from shared.messages.tasks import TaskQueued

PRIORITIES = range(1, 11)
DUPLICATE_WINDOW_S = 120.0


def stream_config() -> StreamConfig:
    """The ``TASKS`` stream: file storage, work-queue retention."""
    return StreamConfig(
        name=subjects.TASKS_STREAM,
        subjects=[subjects.TASKS_ALL],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        max_msg_size=1_048_576,
    )


def consumer_name(priority: int) -> str:
    """The durable consumer of one priority band."""
    return f"{subjects.TASKS_CONSUMER_PREFIX}{priority:02d}"


async def ensure_stream(js: JetStreamContext) -> None:
    """Create the stream if missing, with the cluster's replicas (``shared.streams``;
    idempotent, safe to race)."""
    await streams.ensure_stream(js, stream_config())


async def ensure_consumers(js: JetStreamContext, ack_wait_s: float, max_deliver: int) -> None:
    """Create the ten band consumers if missing (idempotent)."""
    await ensure_stream(js)
    for priority in PRIORITIES:
        name = consumer_name(priority)
        try:
            await js.consumer_info(subjects.TASKS_STREAM, name)
        except JsNotFoundError:
            await js.add_consumer(
                subjects.TASKS_STREAM,
                ConsumerConfig(
                    durable_name=name,
                    filter_subject=subjects.task_subject(priority),
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=ack_wait_s,
                    max_deliver=max_deliver,
                    max_ack_pending=-1,
                ),
            )


async def publish_task(js: JetStreamContext, task: TaskQueued, timeout: float = 5.0) -> PubAck:
    """Store a task durably; answers only once JetStream has it. The current trace
    context rides along in the headers (every delivery, retries included, continues it)."""
    return await js.publish(
        subjects.task_subject(task.request.priority),
        task.to_bytes(),
        timeout=timeout,
        stream=subjects.TASKS_STREAM,
        headers=tracing.inject({"Nats-Msg-Id": task.request.task_id}),
    )


async def band_depths(js: JetStreamContext) -> dict[int, tuple[int, int]]:
    """Per priority: (tasks waiting, tasks delivered and not yet acked). The bands' ten
    requests go out together (one round trip of waiting, not ten: ``/queue`` is polled)."""

    async def depth(priority: int) -> tuple[int, int]:
        try:
            info = await js.consumer_info(subjects.TASKS_STREAM, consumer_name(priority))
        except JsNotFoundError:
            return (0, 0)
        return (int(info.num_pending or 0), int(info.num_ack_pending or 0))

    found = await asyncio.gather(*(depth(p) for p in PRIORITIES))
    return dict(zip(PRIORITIES, found, strict=True))
