"""Issues 17 and 18 in the docker tier: git in the agent's container, on its own repository.

- git works there (status, diff, log, add, commit, a conflicting rebase resolved and
  continued, merge, cherry-pick, stash), the cache's objects read-only at their path;
- an agent cannot move another agent's branch or the cache's refs from its container,
  and the links it plants in its ``.git`` are refused (``sandbox_attack.py``);
- a non-root deployment: the services and the sandbox share one uid, which owns the
  cache and the agent's repository. The agent, in its hardened container, makes its
  repository's config and hooks name programs that write ``id`` to a marker
  (``tests/integration/gitops/attack.py``). Then, on the host and as that uid: a
  control shows plain git in the repository runs them; the gates' worktree check,
  their repository view and the AI review's diff, and gitops' commit, push and removal
  (salvage) all do their work; and the marker never appears.
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
from tests.integration.gitops.sandbox_attack import attack_from_sandbox
from tests.integration.sandbox.gitwork import GIT_WORKOUT

pytestmark = pytest.mark.docker

UID = 1000
ROOT = Path(__file__).resolve().parents[2]

HOST_SIDE = r"""
import asyncio, json, subprocess, sys
from pathlib import Path
from services.gates.errors import WorktreeError
from services.gates.repo import RepoView, check_worktree
from services.gitops import commits, conflicts, worktrees
from services.gitops.errors import GitOpsError
from services.gitops.repos import RepoCache
from services.gitops.settings import GitOpsSettings
from shared.messages.gitops import CommitRequested, PushRequested, WorktreeRemoveRequested
from shared.settings import GitSettings, HomeSettings

home, worktree, remote, marker = (Path(a) for a in sys.argv[1:5])
seen = {}
subprocess.run(["git", "diff", "--no-index", "/dev/null", "stolen.txt"], cwd=worktree,
               capture_output=True, check=False)
seen["control"] = marker.exists()
marker.unlink(missing_ok=True)

def review_diff():
    view = RepoView.open(worktree, None)
    try:
        return "+new work" in view.diff(100_000)[0]
    finally:
        view.close()

for name, look in (
    ("gates-check", lambda: check_worktree(str(worktree), home) is not None),
    ("gates-review-diff", review_diff),
):
    try:
        seen[name] = "ran" if look() else "wrong answer"
    except WorktreeError as exc:
        seen[name] = exc.message
cache = RepoCache(HomeSettings(mosaic_home=home), GitSettings(), GitOpsSettings())
ids = dict(agent_id="evil", task_id="t1", repository=str(remote))
for name, call in (
    ("gitops-commit", lambda: commits.commit(cache, CommitRequested(message="m", **ids))),
    ("gitops-push", lambda: conflicts.push(cache, PushRequested(**ids))),
    ("gitops-remove", lambda: worktrees.remove_worktree(cache, WorktreeRemoveRequested(**ids))),
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


def make_cache(home: Path) -> RepoCache:
    return RepoCache(
        HomeSettings(mosaic_home=home),
        GitSettings(git_author_name="Mosaic Test", git_author_email="mosaic@test.invalid"),
        GitOpsSettings(network_timeout=20, local_timeout=20),
    )


async def test_git_works_in_the_container_on_the_agents_repository(
    settings: SandboxSettings,
    docker_client: docker.DockerClient,
    remote_repo: Path,  # noqa: F811
    shared_dir: Path,
    unique: str,
) -> None:
    cache = make_cache(shared_dir / "home")
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "gitwork"))
    factory = DockerSandboxFactory(docker_client, settings)
    sandbox = await factory.create(
        SandboxSpec(
            agent_id=f"agent-git-{unique}", task_id=f"task-{unique}",
            worktree=Path(ready.path or ""), limits=Limits(), owner=f"test-{unique}",
            readonly=(Path(ready.shared_objects or ""),),
        )
    )  # fmt: skip
    try:
        done = await sandbox.exec(GIT_WORKOUT, timeout=120)
    finally:
        await sandbox.close()
    assert done.exit_code == 0, done.output
    assert "GIT-WORKS" in done.output
    assert "Mosaic Test <mosaic@test.invalid>" in done.output


async def test_an_agent_cannot_touch_the_cache_or_another_agent_from_its_container(
    settings: SandboxSettings,
    docker_client: docker.DockerClient,
    remote_repo: Path,  # noqa: F811
    shared_dir: Path,
    unique: str,
) -> None:
    cache = make_cache(shared_dir / "home")
    factory = DockerSandboxFactory(docker_client, settings)
    await attack_from_sandbox(cache, remote_repo, factory, unique)


async def test_agent_repository_config_from_the_sandbox_runs_nothing_on_the_host(
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
    cache = RepoCache(HomeSettings(mosaic_home=home), GitSettings(), GitOpsSettings())
    ready = await worktrees.create_worktree(cache, wt_req(remote, "evil"))
    root = Path(ready.path or "")
    # the non-root deployment: services, cache, repository and sandbox share one uid
    chown_tree(tmp_path)
    marker = tmp_path / "markers" / "pwned"
    marker.parent.mkdir()
    os.chown(marker.parent, UID, UID)

    factory = DockerSandboxFactory(docker_client, settings)
    sandbox = await factory.create(
        SandboxSpec(
            agent_id=f"agent-git-{unique}", task_id=f"task-{unique}", worktree=root,
            network=False, limits=Limits(), owner=f"test-{unique}",
            readonly=(Path(ready.shared_objects or ""),),
        )
    )  # fmt: skip
    try:
        quoted = ATTACK.replace("'", "'\"'\"'")
        done = await sandbox.exec(f"sh -c '{quoted}' sh /workspace {marker}", timeout=30)
        assert done.exit_code == 0, done.output
    finally:
        await sandbox.close()
    assert "evil" in (root / ".git" / "config").read_text(), "the agent could not write its config"

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
    assert seen == dict.fromkeys(seen, "ran"), seen
    pushed = git(tmp_path, "--git-dir", str(remote), "show", "mosaic/agent-evil:stolen.txt")
    assert pushed == "new work"
