"""What the running system runs agents with, said in a terminal (``mosaic up``, demo).

Read from ``GET /health``'s ``spawners`` and ``warnings``: the same words the gateway
answers a refused spawn with, so a user learns at start what a 503 would tell later.
"""

from __future__ import annotations

from typing import Any


def any_ready(health: dict[str, Any]) -> bool:
    """Whether some live spawner can run agents."""
    return any(s.get("ready") for s in health.get("spawners", []))


def describe(health: dict[str, Any]) -> list[str]:
    """One line per spawner (sandbox, environment, provider, model), then the warnings
    (each starting with ``WARNING:``)."""
    lines: list[str] = []
    for spawner in health.get("spawners", []):
        if spawner.get("ready"):
            model = spawner.get("model")
            provider = spawner.get("provider")
            shown = provider if model in (None, provider) else f"{provider} ({model})"
            line = (
                f"sandbox {spawner.get('sandbox')} ({spawner.get('environment')}), provider {shown}"
            )
            if spawner.get("unsafe"):
                line += "  [UNSAFE: no sandbox, agents run as host processes]"
        else:
            line = "takes NO task: " + "; ".join(spawner.get("problems") or ["not ready"])
        lines.append(f"{spawner.get('instance')}: {line}")
    lines += [f"WARNING: {w}" for w in health.get("warnings", [])]
    return lines
