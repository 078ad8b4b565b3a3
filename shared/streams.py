"""Creating the project's JetStream streams with as many replicas as the cluster allows.

Every stream (``TASKS``, ``AUDIT``) is created through ``ensure_stream`` here, so one rule
decides its replicas: ``MOSAIC_STREAM_REPLICAS`` (1 to 5), or ``auto`` (the default):
``min(3, the nodes the client knows)``, which is 1 on a single server and 3 on a cluster
of three or more. The nodes the client knows are the ones ``NATS_URL`` names plus the
ones the server announced (nats-py's server pool): on a cluster whose URL names one
node, the rest are learnt at connect time.

A stream that exists with fewer replicas than wanted (created on one server, the
cluster grown since) is updated to the wanted count: JetStream copies its messages to
the new peers while it keeps serving. Fewer are never forced on a stream that has more
(shrinking is an operator's decision). A creation the cluster cannot satisfy (three
replicas asked, two nodes up) fails with an error naming the setting; a scale-up that
fails leaves the stream as it was and is logged as a warning, every time it is tried.
"""

from __future__ import annotations

import dataclasses
import logging

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import APIError
from nats.js.errors import NotFoundError as JsNotFoundError
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

MAX_AUTO_REPLICAS = 3
"""``auto`` never asks for more: three replicas survive the loss of one node (a quorum of
two remains), and each further replica costs another copy of every write."""


class StreamError(RuntimeError):
    """A stream could not be created as configured; not retryable without a change
    (more nodes up, or a smaller ``MOSAIC_STREAM_REPLICAS``)."""


class StreamSettings(BaseSettings):
    """``MOSAIC_STREAM_REPLICAS``: ``auto`` or a fixed count, 1 to 5 (JetStream's limit)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    mosaic_stream_replicas: str = Field(default="auto", pattern="^(auto|[1-5])$")


def known_nodes(nc: Client) -> int:
    """How many distinct nodes the client knows (given plus announced), at least 1."""
    return max(1, len({server.netloc for server in nc.servers}))


def wanted_replicas(nc: Client, settings: StreamSettings | None = None) -> int:
    """The replicas new streams get under ``settings`` (see the module's docstring)."""
    setting = (settings or StreamSettings()).mosaic_stream_replicas
    if setting != "auto":
        return int(setting)
    return min(MAX_AUTO_REPLICAS, known_nodes(nc))


async def ensure_stream(
    js: JetStreamContext, config: StreamConfig, settings: StreamSettings | None = None
) -> None:
    """Create ``config``'s stream with the wanted replicas if missing, or raise the
    replicas of an existing one (idempotent, safe to race)."""
    assert config.name is not None
    replicas = wanted_replicas(_client(js), settings)
    try:
        info = await js.stream_info(config.name)
    except JsNotFoundError:
        await _create(js, dataclasses.replace(config, num_replicas=replicas))
        return
    have = info.config.num_replicas or 1
    if have < replicas:
        await _scale_up(js, info.config, have, replicas)


async def _create(js: JetStreamContext, config: StreamConfig) -> None:
    assert config.name is not None
    try:
        await js.add_stream(config)
    except APIError as exc:
        try:  # another writer may have created it between the look-up and here
            await js.stream_info(config.name)
        except JsNotFoundError:
            raise StreamError(
                f"stream {config.name} with {config.num_replicas} replicas could not be "
                f"created ({exc.description}); are that many NATS nodes up? "
                "MOSAIC_STREAM_REPLICAS sets the count"
            ) from exc


async def _scale_up(js: JetStreamContext, config: StreamConfig, have: int, want: int) -> None:
    assert config.name is not None
    try:
        await js.update_stream(dataclasses.replace(config, num_replicas=want))
    except APIError as exc:
        log.warning(
            "stream %s stays at %d replicas: raising it to %d failed (%s)",
            config.name,
            have,
            want,
            exc.description,
        )
        return
    log.warning("stream %s raised from %d to %d replicas", config.name, have, want)


def _client(js: JetStreamContext) -> Client:
    """The connection under a JetStream context (nats-py keeps it as ``_nc`` and offers
    no public accessor; the context is made from it, so it is always there)."""
    nc: Client = js._nc
    return nc
