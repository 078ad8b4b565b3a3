"""Fixtures shared by every tier: real servers on free ports, real git repositories."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from mosaic.embedded import ServerProcess, start_nats, start_valkey
from shared.store import StateStore


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Nothing a test starts writes to the real ``~/.mosaic``."""
    home = tmp_path_factory.mktemp("mosaic-home")
    previous = os.environ.get("MOSAIC_HOME")
    os.environ["MOSAIC_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("MOSAIC_HOME", None)
    else:
        os.environ["MOSAIC_HOME"] = previous


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real nats-server with JetStream, for the whole session."""
    server = start_nats(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real valkey-server, for the whole session."""
    server = start_valkey(tmp_path_factory.mktemp("valkey"))
    yield server
    server.stop()


@pytest.fixture
def nats_url(nats_server: ServerProcess) -> str:
    return f"nats://127.0.0.1:{nats_server.port}"


@pytest.fixture
def valkey_url(valkey_server: ServerProcess) -> str:
    return f"redis://127.0.0.1:{valkey_server.port}/0"


@pytest.fixture
def unique() -> str:
    """A short id unique to this test, for keys, subjects and names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def redis(valkey_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(valkey_url)
    yield client
    await client.aclose()


@pytest.fixture
async def store(redis: Redis, unique: str) -> StateStore:
    return StateStore(redis, prefix=f"t{unique}")


def git(cwd: Path, *args: str) -> str:
    """Run git for a test and return its stdout."""
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def agent_repository(cache: Path, name: str, agent: str, base: str = "main") -> Path:
    """An agent repository as gitops makes one (``shared.agentrepo.create``):
    ``<cache>_worktrees/<name>`` on ``mosaic/agent-<agent>`` at the bare ``cache``'s
    ``refs/remotes/origin/<base>``, borrowing its objects."""
    from shared import agentrepo
    from shared.git import Git

    path = cache.parent / f"{cache.name}_worktrees" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    start = git(cache, "rev-parse", f"refs/remotes/origin/{base}")
    agentrepo.create(
        agentrepo.AgentRepo(path, cache),
        branch=f"mosaic/agent-{agent}",
        start=start,
        base_branch=base,
        base=start,
        identity=("Mosaic Test", "mosaic@test.invalid"),
        make=lambda git_dir, work_tree, env: Git(git_dir, work_tree, extra_env=env),
    )
    return path


TEST_APP = (
    "import unittest\n\nimport app\n\n\n"
    "class AddTest(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(app.add(2, 3), 5)\n"
)
STDLIB_GATES = (
    'detect = false\n\n[gates]\ntests = "python3 -m unittest discover -q"\nlint = false\n'
)
"""Gates a test repository can pass in any sandbox with python3 (see ``remote_repo``)."""


@pytest.fixture
def remote_repo(tmp_path: Path) -> Path:
    """A bare "remote" with one commit on ``main`` (``make_remote``)."""
    return make_remote(tmp_path)


def make_remote(root: Path) -> Path:
    """A bare "remote" under ``root`` with one commit on ``main``: a README, a small
    Python file, its test.

    Gates fail closed, so the repository says what its gates run: its test, with the
    standard library only (it runs in any sandbox), and no linter (turned off).
    """
    bare = root / "remote.git"
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    seed = root / "seed"
    git(root, "init", "-q", "-b", "main", str(seed))
    (seed / "README.md").write_text("# demo\n")
    (seed / "app.py").write_text("def add(a, b):\n    return a + b\n")
    (seed / "test_app.py").write_text(TEST_APP)
    (seed / ".mosaic").mkdir()
    (seed / ".mosaic" / "gates.toml").write_text(STDLIB_GATES)
    git(seed, "add", "-A")
    git(seed, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "seed")
    git(seed, "push", "-q", str(bare), "main")
    return bare
