"""Helpers for tests that drive the whole embedded system (``mosaic.supervisor``)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from mosaic.supervisor import Supervisor

FINAL = frozenset({"completed", "failed", "killed"})
"""The states an agent ends in."""


def operator_http(system: Supervisor, timeout: float = 15) -> httpx.Client:
    """A client of the system's gateway that sends the operator's token (use it in a
    ``with``: it closes its connections)."""
    headers = {"Authorization": f"Bearer {system.tokens['MOSAIC_API_TOKEN']}"}
    return httpx.Client(base_url=system.gateway_url, headers=headers, timeout=timeout)


def wait_final(http: httpx.Client, agent_id: str, timeout: float = 120) -> dict[str, Any]:
    """The agent's status record once it is in a final state; fails, showing the last
    record, if it is not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        record = http.get(f"/agents/{agent_id}/status").json()
        if record["state"] in FINAL:
            return record
        time.sleep(0.2)
    raise AssertionError(f"agent {agent_id} not final after {timeout}s: {record}")
