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
