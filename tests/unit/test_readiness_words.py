"""The words readiness is told in: what the gateway's 503 says, what ``mosaic up`` prints,
how an agent's environment is named (pure functions; the servers are tested elsewhere)."""

from __future__ import annotations

from typing import Any

from mosaic.spawners import any_ready, describe
from services.spawner.readiness import environment_of
from shared.messages.base import utcnow
from shared.messages.spawners import SpawnerCapability
from shared.spawners import why_not_ready


def cap(instance: str, ready: bool, *problems: str) -> SpawnerCapability:
    now = utcnow()
    return SpawnerCapability(
        instance=instance, ready=ready, problems=list(problems), started_at=now, expires_at=now
    )


def test_why_not_ready_names_every_problem_once_and_is_silent_otherwise() -> None:
    assert why_not_ready([]) is None  # none registered yet: the task waits in the queue
    assert why_not_ready([cap("a", False, "no model: x"), cap("b", True)]) is None
    message = why_not_ready(
        [cap("a", False, "no model: x"), cap("b", False, "no sandbox: y", "no model: x")]
    )
    assert message == "no spawner can run agents: no model: x; no sandbox: y"
    assert why_not_ready([cap("a", False)]) == (
        "no spawner can run agents: not ready (no reason given)"
    )


def test_environment_names() -> None:
    assert environment_of("docker", "mosaic/sandbox:latest") == "image mosaic/sandbox:latest"
    assert environment_of("docker", "mosaic-env/ab12") == "image mosaic-env/ab12"
    assert environment_of("bwrap", None) == "host tools (bwrap)"
    assert environment_of("none", "ignored") == "host tools (no sandbox)"


def test_the_terminal_report_says_what_runs_and_what_is_missing() -> None:
    health: dict[str, Any] = {
        "spawners": [
            {
                "instance": "spawner-1",
                "ready": True,
                "sandbox": "none",
                "unsafe": True,
                "environment": "host tools (no sandbox)",
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
            },
            {"instance": "spawner-2", "ready": False, "problems": ["no model: set X"]},
        ],
        "warnings": ["UNSAFE: spawner-1 runs agents without a sandbox"],
    }
    assert any_ready(health)
    assert describe(health) == [
        "spawner-1: sandbox none (host tools (no sandbox)), provider anthropic "
        "(claude-sonnet-4-5)  [UNSAFE: no sandbox, agents run as host processes]",
        "spawner-2: takes NO task: no model: set X",
        "WARNING: UNSAFE: spawner-1 runs agents without a sandbox",
    ]
    assert not any_ready({"spawners": [health["spawners"][1]]})
    assert not any_ready({})
