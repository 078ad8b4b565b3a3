"""Samples CPU and memory of the system's processes while a scenario runs."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psutil


@dataclass
class ProcessFigures:
    """Peak RSS and CPU seconds of one process over the run."""

    peak_rss_mb: float = 0.0
    cpu_seconds: float = 0.0
    peak_cpu_percent: float = 0.0


@dataclass
class Sampler:
    """Polls named processes every ``interval`` seconds in a background thread."""

    pids: dict[str, int]
    interval: float = 0.25
    figures: dict[str, ProcessFigures] = field(default_factory=dict)
    system_cpu: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._procs = {}
        for name, pid in self.pids.items():
            try:
                proc = psutil.Process(pid)
                proc.cpu_percent(None)
                self._procs[name] = (proc, proc.cpu_times())
                self.figures[name] = ProcessFigures()
            except psutil.Error:
                continue
        psutil.cpu_percent(None)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.system_cpu.append(psutil.cpu_percent(None))
            for name, (proc, _) in self._procs.items():
                try:
                    figures = self.figures[name]
                    rss = proc.memory_info().rss / 2**20
                    for child in proc.children(recursive=True):
                        rss += child.memory_info().rss / 2**20 if name != "spawner" else 0
                    figures.peak_rss_mb = max(figures.peak_rss_mb, round(rss, 1))
                    figures.peak_cpu_percent = max(figures.peak_cpu_percent, proc.cpu_percent(None))
                except psutil.Error:
                    continue

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for name, (proc, start) in self._procs.items():
            try:
                now = proc.cpu_times()
                used = (now.user - start.user) + (now.system - start.system)
                self.figures[name].cpu_seconds = round(used, 2)
            except psutil.Error:
                continue

    def report(self) -> dict[str, object]:
        """Figures per process and the machine's CPU load over the run."""
        cpu = self.system_cpu or [0.0]
        return {
            "processes": {n: vars(f) for n, f in self.figures.items()},
            "machine_cpu_percent": {"mean": round(sum(cpu) / len(cpu), 1), "peak": max(cpu)},
            "duration_samples": len(self.system_cpu),
            "sampled_at": time.time(),
        }


class MachineCpu:
    """CPU seconds the whole machine spent busy between ``start`` and ``stop``: with the
    wall time and the number of cores it says whether a scenario was bound by CPU (the
    wall can be no shorter than the busy seconds over the cores). Everything running on
    the machine counts, the scenario's system and whatever else shares it."""

    def __init__(self) -> None:
        self._began = time.perf_counter()
        self._start = _busy()

    def stop(self, units: int) -> dict[str, float]:
        """The figures, with the busy CPU per unit of work (per agent)."""
        wall = time.perf_counter() - self._began
        busy = _busy() - self._start
        cores = psutil.cpu_count() or 1
        return {
            "wall_seconds": round(wall, 3),
            "busy_cpu_seconds": round(busy, 2),
            "cores": cores,
            "busy_share": round(busy / (wall * cores), 3) if wall else 0.0,
            "cpu_bound_wall_seconds": round(busy / cores, 2),
            "cpu_ms_per_unit": round(1000 * busy / units, 1) if units else 0.0,
        }


def _busy() -> float:
    """Busy CPU seconds of all cores since boot (guest time is inside ``user``)."""
    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))
