"""Issue 18, item 1 in the docker tier: a non-root deployment, the agent's own ``.git``.

As in a non-root ``mosaic up`` (or compose), the services and the sandbox share one
uid, which owns the cache and the worktree. The agent, inside its hardened container,
replaces the worktree's ``.git`` with a repository of its own (objects borrowed from the
cache through ``objects/info/alternates``) whose config declares a clean filter and a
textconv that write ``id`` to a marker, and a ``.gitattributes`` that puts every file
through them (``tests/integration/gitops/attack.py``). Then, on the host and as that
uid: a control shows plain git in the worktree runs the filter; the gates' worktree
check, their repository view and the AI review's diff, and gitops' commit and push
refuse, naming the bad ``.git``; and the marker never appears.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from services.gitops import worktrees
from services.gitops.repos import RepoCache
from services.gitops.settings import GitOpsSettings
from shared.sandbox.base import Limits, SandboxSpec
from shared.sandbox.docker import DockerSandboxFactory
from shared.sandbox.settings import SandboxSettings
from shared.settings import GitSettings, HomeSettings
from tests.conftest import git, remote_repo  # noqa: F401
from tests.integration.gitops.attack import ATTACK
from tests.integration.gitops.conftest import wt_req

pytestmark = pytest.mark.docker

UID = 1000
ROOT = Path(__file__).resolve().parents[2]

HOST_SIDE = r"""
import asyncio, json, subprocess, sys
from pathlib import Path
from services.gates.errors import WorktreeError
from services.gates.repo import RepoView, check_worktree
from services.gitops import commits, conflicts
from services.gitops.errors import GitOpsError
from services.gitops.repos import RepoCache
from services.gitops.settings import GitOpsSettings
from shared.messages.gitops import CommitRequested, PushRequested
from shared.settings import GitSettings, HomeSettings

home, worktree, remote, marker = (Path(a) for a in sys.argv[1:5])
seen = {}
subprocess.run(["git", "diff", "--no-index", "/dev/null", "stolen.txt"], cwd=worktree,
               capture_output=True, check=False)
seen["control"] = marker.exists()
marker.unlink(missing_ok=True)
for name, look in (
    ("gates-check", lambda: check_worktree(str(worktree), home)),
    ("gates-review-diff", lambda: RepoView.open(worktree, None).diff(100_000)),
):
    try:
        look()
        seen[name] = "ran"
    except WorktreeError as exc:
        seen[name] = exc.message
cache = RepoCache(HomeSettings(mosaic_home=home), GitSettings(), GitOpsSettings())
ids = dict(agent_id="evil", task_id="t1", repository=str(remote))
for name, call in (
    ("gitops-commit", lambda: commits.commit(cache, CommitRequested(message="m", **ids))),
    ("gitops-push", lambda: conflicts.push(cache, PushRequested(**ids))),
):
    try:
        asyncio.run(call())
        seen[name] = "ran"
    except GitOpsError as exc:
        seen[name] = exc.message
seen["marker"] = marker.exists()
print(json.dumps(seen))
"""


def chown_tree(top: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(top):
        os.chown(dirpath, UID, UID)
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), UID, UID, follow_symlinks=False)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the deployment's uid can reach (pytest's own is root's, mode 0700)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to play a non-root deployment's uid (setpriv, chown)")
    top = Path(tempfile.mkdtemp(prefix="mosaic-git-attack-"))
    top.chmod(0o755)
    yield top
    shutil.rmtree(top, ignore_errors=True)


async def test_agent_repository_from_the_sandbox_runs_nothing_on_the_host(
    settings: SandboxSettings,
    docker_client: docker.DockerClient,
    remote_repo: Path,  # noqa: F811
    shared_dir: Path,
    unique: str,
) -> None:
    tmp_path = shared_dir
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(remote_repo), str(remote))
    home = tmp_path / "home"
    cache = RepoCache(
        HomeSettings(mosaic_home=home),
        GitSettings(git_author_name="Mosaic Test", git_author_email="mosaic@test.invalid"),
        GitOpsSettings(network_timeout=20, local_timeout=20),
    )
    ready = await worktrees.create_worktree(cache, wt_req(remote, "evil"))
    root = Path(ready.path or "")
    repo = cache.repo_path(str(remote))
    base = git(repo, "rev-parse", "refs/remotes/origin/main")
    # the non-root deployment: services, cache, worktree and sandbox share one uid
    chown_tree(tmp_path)
    marker = tmp_path / "markers" / "pwned"
    marker.parent.mkdir()
    os.chown(marker.parent, UID, UID)

    factory = DockerSandboxFactory(docker_client, settings)
    sandbox = await factory.create(
        SandboxSpec(
            agent_id=f"agent-git-{unique}", task_id=f"task-{unique}", worktree=root,
            network=False, limits=Limits(), owner=f"test-{unique}",
        )
    )  # fmt: skip
    try:
        quoted = ATTACK.replace("'", "'\"'\"'")
        done = await sandbox.exec(
            f"sh -c '{quoted}' sh /workspace {repo} {base} {marker}", timeout=30
        )
        assert done.exit_code == 0, done.output
    finally:
        await sandbox.close()
    assert (root / ".git").is_dir(), "the agent could not replace .git: not the attack"

    host = subprocess.run(
        ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups",
         sys.executable, "-c", HOST_SIDE, str(home), str(root), str(remote), str(marker)],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert host.returncode == 0, host.stderr[-3000:]
    seen = json.loads(host.stdout.strip().splitlines()[-1])
    assert seen.pop("control") is True, "plain git did not run the filter: the test proves nothing"
    assert seen.pop("marker") is False
    for path, said in seen.items():
        assert ".git" in said, f"{path}: {said}"
