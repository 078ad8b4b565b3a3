"""``mosaic demo`` (what ``make demo`` runs) on bubblewrap with no Docker: it names the
sandbox and the provider it got, and its three tasks complete with checked, pushed work."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mosaic.demo import run_demo
from mosaic.embedded import free_port
from tests.integration.sandbox.conftest import require_bwrap

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_demo_runs_on_bwrap_without_docker_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(require_bwrap())  # sync test: the supervisor runs its own event loops
    # what a machine without Docker looks like to the services the demo starts
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.delenv("MOSAIC_SANDBOX", raising=False)
    monkeypatch.delenv("MOSAIC_PROVIDER", raising=False)
    code = run_demo(tmp_path / "home", timeout=180, port=free_port())
    out = capsys.readouterr().out
    assert "Provider: scripted (chosen by the demo" in out
    assert "sandbox bwrap (host tools (bwrap)), provider scripted" in out
    assert out.count("completed in bwrap (host tools (bwrap)), pushed mosaic/agent-") == 3, out
    assert code == 0, out
