"""Publishing kill orders from a service (the gateway) whose NATS user may not send kill-all.

Under NATS authorization only the ``admin`` user may publish ``mosaic.kill.all``. A
service that acts for an authenticated admin (the gateway's ``POST /agents/kill-all``)
is given ``NATS_ADMIN_URL`` and sends kill-all through a short-lived admin connection;
without it (no authorization), the order goes out on the caller's own connection.
"""

from __future__ import annotations

import nats
from nats.aio.client import Client
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import subjects, tracing
from shared.bus import FLUSH_WAIT_S, flush
from shared.natsurls import parse_nats_url


class KillOrderSettings(BaseSettings):
    """``NATS_ADMIN_URL``: the admin's NATS URL, set only for services that send kill-all."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    nats_admin_url: str | None = None


async def publish_kill(
    nc: Client, subject: str, body: bytes, settings: KillOrderSettings | None = None
) -> None:
    """Publish a kill order on core NATS and flush it (kill-all as the admin if configured);
    the current trace context goes along in the headers."""
    admin_url = (settings or KillOrderSettings()).nats_admin_url
    headers = tracing.inject()
    if subject != subjects.KILL_ALL or not admin_url:
        await nc.publish(subject, body, headers=headers or None)
        await flush(nc, FLUSH_WAIT_S)
        return
    admin = await nats.connect(
        **parse_nats_url(admin_url).connect_options(),
        name="kill-all",
        connect_timeout=2,
        max_reconnect_attempts=0,
    )
    try:
        await admin.publish(subject, body, headers=headers or None)
        await admin.flush()
    finally:
        await admin.close()
