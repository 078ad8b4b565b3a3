"""The system under test: the embedded one (started here) or a given deployment."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mosaic.embedded import free_port
from mosaic.supervisor import Supervisor, SystemConfig


@dataclass
class Target:
    """Where to send requests, with what tokens, and which processes to watch."""

    url: str
    api_token: str
    admin_token: str
    repository: Path
    pids: dict[str, int] = field(default_factory=dict)
    valkey_url: str | None = None
    nats_url: str | None = None
    supervisor: Supervisor | None = None


def make_repository(root: Path, tests: str = "python3 -m unittest discover -q") -> Path:
    """A bare remote with one commit, for agents to branch from and push to.

    ``tests`` is the command of its tests gate (the chaos suite makes it slower, so that
    gates is killed mid-request)."""
    remote = root / "remote.git"
    if remote.exists():
        return remote
    seed = root / "seed"
    run = {"check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], **run)  # type: ignore[call-overload]
    subprocess.run(["git", "init", "-q", "-b", "main", str(seed)], **run)  # type: ignore[call-overload]
    (seed / "README.md").write_text("# load test\n")
    # gates fail closed: the repository names a test it can pass in any sandbox
    (seed / "test_readme.py").write_text(
        "import pathlib\nimport unittest\n\n\nclass ReadmeTest(unittest.TestCase):\n"
        "    def test_readme(self):\n"
        "        self.assertTrue(pathlib.Path('README.md').read_text().startswith('#'))\n"
    )
    (seed / ".mosaic").mkdir()
    (seed / ".mosaic" / "gates.toml").write_text(
        f'detect = false\n\n[gates]\ntests = "{tests}"\nlint = false\n'
    )
    for args in (
        ["add", "-A"],
        ["-c", "user.name=l", "-c", "user.email=l@l", "commit", "-qm", "seed"],
        ["push", "-q", str(remote), "main"],
    ):
        subprocess.run(["git", *args], cwd=seed, **run)  # type: ignore[call-overload]
    return remote


@contextlib.contextmanager
def embedded(
    home: Path, sandbox: str, concurrency: int, extra_env: dict[str, str] | None = None
) -> Iterator[Target]:
    """Start the embedded system sized for the scenario; stop it afterwards."""
    env = {
        "MOSAIC_PROVIDER": "scripted",
        "MOSAIC_SANDBOX": sandbox,
        "SPAWNER_CONCURRENCY": str(concurrency),
        "LOG_LEVEL": "WARNING",
        "GITOPS_MAX_CONCURRENCY": "64",
        "SPAWNER_ADMISSION": "true",
        **(extra_env or {}),
    }
    config = SystemConfig(home=home, gateway_port=free_port(), env=env)
    with Supervisor(config) as system:
        pids = {name: proc.pid for name, proc in system.procs.items()}
        pids |= {f"{name}-server": s.proc.pid for name, s in system.servers.items()}
        yield Target(
            url=system.gateway_url,
            api_token=system.tokens["MOSAIC_API_TOKEN"],
            admin_token=system.tokens["MOSAIC_ADMIN_TOKEN"],
            repository=make_repository(home / "load"),
            pids=pids,
            valkey_url=system.valkey_url,
            nats_url=system.nats_url,
            supervisor=system,
        )
