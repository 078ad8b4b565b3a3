"""Two real Mosaic instances on one machine (hub and spoke), each a Supervisor with its
own home, gateway port, NATS and Valkey; and a hand-driven fake peer that signs its own
envelopes, for the refusal cases."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig
from shared.federation.envelope import Envelope, EnvelopeType, seal
from shared.federation.identity import Identity


@dataclass
class Instance:
    """One running instance and HTTP clients for its operator and admin."""

    name: str
    system: Supervisor

    @property
    def url(self) -> str:
        return self.system.gateway_url

    def http(self, admin: bool = False) -> httpx.Client:
        token = self.system.tokens["MOSAIC_ADMIN_TOKEN" if admin else "MOSAIC_API_TOKEN"]
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def identity(self) -> dict[str, Any]:
        with self.http() as http:
            answer = http.get("/federation/identity")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    @property
    def instance_id(self) -> str:
        return str(self.identity()["instanceId"])

    def audit(self) -> list[dict[str, Any]]:
        """Every entry of this instance's AUDIT stream."""
        return asyncio.run(_read_audit(self.system.nats_url))

    def agent_total(self) -> int:
        with self.http() as http:
            return int(http.get("/agents").json()["total"])


async def _read_audit(nats_url: str) -> list[dict[str, Any]]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("AUDIT")
        entries: list[dict[str, Any]] = []
        if not info.state.messages:
            return entries
        for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
            msg = await js.get_msg("AUDIT", seq)
            if msg.data:
                entries.append(json.loads(msg.data))
        return entries
    finally:
        await nc.close()


class _Runner(threading.Thread):
    """Starts one instance and keeps it until told to stop: each child process dies with
    the thread that forked it (PR_SET_PDEATHSIG), so that thread must outlive the tests."""

    def __init__(self, name: str, home: Path) -> None:
        super().__init__(name=f"instance-{name}", daemon=True)
        config = SystemConfig(
            home=home,
            gateway_port=free_port(),
            env={
                "MOSAIC_PROVIDER": "scripted",
                "MOSAIC_SANDBOX": "none",
                "TASK_ACK_WAIT_S": "5",
                "MOSAIC_INSTANCE_ID": f"{name}-{secrets.token_hex(3)}",
                "FEDERATION_TIMEOUT_S": "3",
                "FEDERATION_ATTEMPTS": "2",
                "FEDERATION_ENABLED": "1",
                # the refusal tests send many unverifiable requests from one address
                "FEDERATION_UNVERIFIED_BURST": "1000",
                # peers' spawns may not weaken the gates below the local default
                "DEFAULT_GATE_PROFILE": "minimal",
            },
        )
        self.system = Supervisor(config)
        self.ready = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.system.start()
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        self.done.wait()
        self.system.stop()


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Instance, Instance]]:
    """Hub and spoke, started side by side."""
    runners = [_Runner(n, tmp_path_factory.mktemp(n)) for n in ("hub", "spoke")]
    for r in runners:
        r.start()
    try:
        for r in runners:
            r.ready.wait(120)
            if r.error is not None:
                raise r.error
        yield Instance("hub", runners[0].system), Instance("spoke", runners[1].system)
    finally:
        for r in runners:
            r.done.set()
        for r in runners:
            r.join(60)


def register(on: Instance, peer: dict[str, Any], **limits: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "peerId": peer["instanceId"],
        "url": peer["url"],
        "publicKey": peer["publicKey"],
    }
    if limits:
        body["limits"] = limits
    with on.http(admin=True) as http:
        answer = http.post("/federation/peers", json=body)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


@pytest.fixture(scope="module")
def repos_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where every test repository lives (the spoke allows the hub this prefix)."""
    return tmp_path_factory.getbasetemp()


@pytest.fixture(scope="module")
def linked(instances: tuple[Instance, Instance], repos_root: Path) -> tuple[Instance, Instance]:
    """Hub and spoke registered both ways and handshaken (the spoke lets the hub run
    three agents on repositories under the test's temp folder)."""
    hub, spoke = instances
    register(hub, spoke.identity(), maxAgents=5, allowedRepositories=[str(repos_root)])
    register(spoke, hub.identity(), maxAgents=3, allowedRepositories=[str(repos_root)])
    with hub.http(admin=True) as http:
        answer = http.post(f"/federation/peers/{spoke.instance_id}/handshake")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "active"
    return hub, spoke


@dataclass
class FakePeer:
    """A peer driven by hand: its own key, its own envelopes, straight to the spoke."""

    identity: Identity
    spoke: Instance

    @classmethod
    def create(cls, spoke: Instance, prefix: str = "fake") -> FakePeer:
        return cls(Identity.generate(f"{prefix}-{secrets.token_hex(3)}"), spoke)

    @property
    def peer_id(self) -> str:
        return self.identity.instance_id

    def info(self) -> dict[str, Any]:
        return {
            "instanceId": self.peer_id,
            "url": "http://127.0.0.1:9",
            "publicKey": self.identity.public_key,
        }

    def envelope(self, type_: EnvelopeType, payload: dict[str, Any], **kw: Any) -> Envelope:
        return seal(self.identity, type_, payload, self.spoke.instance_id, **kw)

    def post(
        self, envelope: Envelope | dict[str, Any], path: str = "/federation/commands"
    ) -> httpx.Response:
        body = envelope.model_dump(mode="json") if isinstance(envelope, Envelope) else envelope
        return httpx.post(self.spoke.url + path, json=body, timeout=30)

    def handshake(self) -> None:
        hello = self.envelope("handshake.hello", {"challenge": secrets.token_urlsafe(32)})
        answer = self.post(hello, "/federation/handshake")
        assert answer.status_code == 200, answer.text
        challenge = answer.json()["payload"]["result"]["challenge"]
        confirm = self.envelope("handshake.confirm", {"answer": challenge})
        answer = self.post(confirm, "/federation/handshake")
        assert answer.status_code == 200, answer.text
        assert answer.json()["payload"]["ok"] is True, answer.text


def spawn_body(
    repo: Path, task_id: str, plan: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": str(repo), "branch": "main", "workItems": ["Add a greeting"]},
        "options": {
            "plan": plan
            or [
                {"tool": "write_file", "input": {"path": "hello.py", "content": "print('hi')\n"}},
                {"tool": "finish", "input": {"summary": "added hello.py"}},
            ]
        },
        "gateProfile": "minimal",
    }


SLEEP_PLAN = [
    {"tool": "run_command", "input": {"command": "sleep 30", "timeout": 60}},
    {"tool": "finish", "input": {"summary": "slept"}},
]


def wait_for(check: Any, timeout: float = 60, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
