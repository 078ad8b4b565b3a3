"""Helpers for tests that drive the whole embedded system (``mosaic.supervisor``)."""

from __future__ import annotations

import httpx

from mosaic.supervisor import Supervisor


def operator_http(system: Supervisor, timeout: float = 15) -> httpx.Client:
    """A client of the system's gateway that sends the operator's token (use it in a
    ``with``: it closes its connections)."""
    headers = {"Authorization": f"Bearer {system.tokens['MOSAIC_API_TOKEN']}"}
    return httpx.Client(base_url=system.gateway_url, headers=headers, timeout=timeout)
