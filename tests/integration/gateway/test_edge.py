"""The gateway's HTTP edge against real servers: no CDN-loading API explorer by default,
a Content-Security-Policy on every answer, no federation paths unless federation is on,
and a bounded AUDIT stream."""

from __future__ import annotations

import nats
import pytest

from services.gateway.headers import CSP
from shared.audit import AUDIT_STREAM, ensure_audit_stream
from tests.integration.gateway.conftest import Gateway

pytestmark = pytest.mark.integration


async def test_api_explorer_is_off_and_openapi_stays(gateway: Gateway) -> None:
    async with gateway.client(None) as http:
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            assert (await http.get(path)).status_code == 404, path
        spec = await http.get("/openapi.json")
    assert spec.status_code == 200
    assert "/agents" in spec.json()["paths"]


async def test_every_answer_carries_the_csp(gateway: Gateway) -> None:
    async with gateway.client(None) as http:
        page = await http.get("/")
        script = await http.get("/dashboard/app.js")
        health = await http.get("/health")
        refused = await http.get("/agents")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for answer in (page, script, health, refused):
        assert answer.headers["content-security-policy"] == CSP, answer.url
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self';" in CSP
    assert "https:" not in CSP
    # the page loads nothing from elsewhere, and no inline script the policy would block
    assert "://" not in page.text.split("<body", 1)[0]
    assert "<script>" not in page.text


async def test_federation_paths_do_not_exist_unless_configured(gateway: Gateway) -> None:
    async with gateway.client(None) as http:
        junk = await http.post("/federation/commands", content=b"junk")
        handshake = await http.post("/federation/handshake", json={})
    async with gateway.client() as http:
        identity = await http.get("/federation/identity")
        spec = (await http.get("/openapi.json")).json()
    assert junk.status_code == handshake.status_code == identity.status_code == 404
    assert not [p for p in spec["paths"] if p.startswith("/federation")]


async def test_the_audit_stream_is_bounded(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_audit_stream(js)
        config = (await js.stream_info(AUDIT_STREAM)).config
    finally:
        await nc.close()
    assert config.max_bytes is not None
    assert 0 < config.max_bytes <= 1024**3
    assert config.max_msgs is not None
    assert 0 < config.max_msgs <= 5_000_000
    assert config.max_age is not None
    assert config.max_age > 0
    assert config.max_msg_size is not None
    assert 0 < config.max_msg_size <= 65_536
