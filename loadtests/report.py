"""Results as JSON, a short text table, and a PNG plot."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import psutil


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write(out: Path, name: str, result: dict[str, Any]) -> Path:
    """Write ``<out>/<name>.json`` (raw sample lists are left out)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    path.write_text(json.dumps(public, indent=2, default=str))
    return path


def table(result: dict[str, Any]) -> str:
    """The headline figures of one result as aligned text."""
    rows: list[tuple[str, str]] = []
    for key, value in result.items():
        if key.startswith("_") or key in ("valkey_before", "valkey_after", "nats", "resources"):
            continue
        if isinstance(value, dict) and "p50_ms" in value:
            rows.append(
                (
                    key,
                    f"p50 {value['p50_ms']} ms  p95 {value['p95_ms']} ms  "
                    f"p99 {value['p99_ms']} ms  (n={value['count']})",
                )
            )
        elif isinstance(value, dict) and "per_second" in value:
            extra = f" ({value['seconds']} s)" if "seconds" in value else ""
            rows.append((key, f"{value['per_second']} /s{extra}"))
        elif isinstance(value, dict) and "sandboxes" in value and "seconds" in value:
            rows.append((key, f"{value['seconds']} s for {value['sandboxes']} sandboxes"))
        elif isinstance(value, dict) and "busy_cpu_seconds" in value:
            rows.append(
                (
                    key,
                    f"{value['busy_cpu_seconds']} s busy in {value['wall_seconds']} s on "
                    f"{value['cores']} cores ({value['busy_share']:.0%}): "
                    f"{value['cpu_ms_per_unit']} ms per agent; the CPU alone needs "
                    f"{value['cpu_bound_wall_seconds']} s",
                )
            )
        elif isinstance(value, dict) and "docker_create_start" in value:
            for part, figures in value.items():
                if isinstance(figures, dict) and "p50_ms" in figures:
                    rows.append((f"{key}.{part}", f"p50 {figures['p50_ms']} ms"))
        elif not isinstance(value, dict | list):
            rows.append((key, str(value)))
    resources = result.get("resources", {}).get("processes", {})
    for name, figures in resources.items():
        rows.append(
            (f"{name} peak RSS / CPU", f"{figures['peak_rss_mb']} MB / {figures['cpu_seconds']} s")
        )
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def plot(out: Path, name: str, result: dict[str, Any]) -> Path | None:
    """Latency distributions (spawn and completion) as a PNG, when the run has them."""
    spawn, complete = result.get("_spawn"), result.get("_complete")
    if not spawn and not complete:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, values, title in (
        (axes[0], spawn, "spawn latency (accepted -> running)"),
        (axes[1], complete, "completion time (accepted -> completed)"),
    ):
        ms = sorted(v * 1000 for v in values or [])
        if ms:
            ax.plot(ms, [i / len(ms) for i in range(1, len(ms) + 1)])
        ax.set_title(title)
        ax.set_xlabel("ms")
        ax.set_ylabel("fraction of agents")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{name}: {result.get('agents', '')} agents")
    fig.tight_layout()
    path = out / f"{name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
