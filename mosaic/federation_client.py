"""A Python client of the gateway's federation API (hub side).

    with FederationClient("http://127.0.0.1:3001", admin_token) as fed:
        fed.register_peer("spoke-1", "http://10.0.0.2:3001", public_key, max_agents=3,
                          allowed_repositories=["/srv/repos"])
        fed.handshake("spoke-1")
        spawned = fed.spawn("spoke-1", request)
        fed.status("spoke-1", spawned["agentId"])

Errors are ``mosaic.client.ClientError`` subclasses; an unreachable or slow peer is a
``PeerError`` (the gateway's 502/504, naming the peer).
"""

from __future__ import annotations

from typing import Any, Self

import httpx

from mosaic.client import ClientError, UnavailableError
from mosaic.client import error_for as client_error_for
from shared.messages.tasks import SpawnAgentRequest


class PeerError(ClientError):
    """502/504: the peer could not be reached, did not answer in time, or refused."""


class FederationClient:
    """Synchronous client of ``/federation/*``; operator token for agents, admin token
    for peers and the federated kill-all."""

    def __init__(self, url: str, token: str | None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise UnavailableError(0, f"gateway unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise _error_for(response)
        return response.json()

    def identity(self) -> dict[str, Any]:
        """This gateway's instance id, public key and URL (to give to a peer)."""
        result: dict[str, Any] = self._call("GET", "/federation/identity")
        return result

    def peers(self) -> list[dict[str, Any]]:
        """Registered peers with their state and limits."""
        result: list[dict[str, Any]] = self._call("GET", "/federation/peers")
        return result

    def register_peer(
        self,
        peer_id: str,
        url: str,
        public_key: str,
        *,
        max_agents: int | None = None,
        allowed_repositories: list[str] | None = None,
    ) -> dict[str, Any]:
        """Register (or re-register) a peer as pending (admin)."""
        body: dict[str, Any] = {"peerId": peer_id, "url": url, "publicKey": public_key}
        if max_agents is not None or allowed_repositories is not None:
            limits: dict[str, Any] = {"allowedRepositories": allowed_repositories or []}
            if max_agents is not None:
                limits["maxAgents"] = max_agents
            body["limits"] = limits
        result: dict[str, Any] = self._call("POST", "/federation/peers", json=body)
        return result

    def handshake(self, peer_id: str) -> dict[str, Any]:
        """Prove keys both ways; the connection becomes active on both sides (admin)."""
        result: dict[str, Any] = self._call("POST", f"/federation/peers/{peer_id}/handshake")
        return result

    def suspend(self, peer_id: str) -> dict[str, Any]:
        """Stop the connection until a new handshake (admin)."""
        result: dict[str, Any] = self._call("POST", f"/federation/peers/{peer_id}/suspend")
        return result

    def revoke(self, peer_id: str) -> dict[str, Any]:
        """End the connection for good (admin)."""
        result: dict[str, Any] = self._call("POST", f"/federation/peers/{peer_id}/revoke")
        return result

    def spawn(self, peer_id: str, request: SpawnAgentRequest | dict[str, Any]) -> dict[str, Any]:
        """Queue a task on the peer; returns ``peerId``, ``agentId``, ``taskId``, states."""
        body = (
            request.model_dump(mode="json", exclude_none=True)
            if isinstance(request, SpawnAgentRequest)
            else request
        )
        result: dict[str, Any] = self._call(
            "POST", f"/federation/peers/{peer_id}/agents/spawn", json=body
        )
        return result

    def status(self, peer_id: str, agent_id: str) -> dict[str, Any]:
        """The remote agent's record (``{"peerId", "agent"}``), fresh from the peer."""
        result: dict[str, Any] = self._call(
            "GET", f"/federation/peers/{peer_id}/agents/{agent_id}/status"
        )
        return result

    def kill(self, peer_id: str, agent_id: str) -> dict[str, Any]:
        """Kill an agent this hub spawned on the peer."""
        result: dict[str, Any] = self._call(
            "POST", f"/federation/peers/{peer_id}/agents/{agent_id}/kill"
        )
        return result

    def agents(self, peer_id: str | None = None) -> dict[str, Any]:
        """Agents this hub spawned on peers (``{"instance", "agents": [...]}``)."""
        params = {"peerId": peer_id} if peer_id else None
        result: dict[str, Any] = self._call("GET", "/federation/agents", params=params)
        return result

    def kill_all(self) -> dict[str, Any]:
        """Kill every agent here and every agent this hub spawned on active peers (admin)."""
        result: dict[str, Any] = self._call("POST", "/federation/kill-all")
        return result


def _error_for(response: httpx.Response) -> ClientError:
    """The gateway client's error, or ``PeerError`` when the peer itself failed (502/504)."""
    error = client_error_for(response)
    if response.status_code in (502, 504):
        return PeerError(
            error.status, error.message, code=error.code, field=error.field, body=error.body
        )
    return error
