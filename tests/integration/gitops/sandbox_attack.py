"""Issue 17's attack from inside a sandbox, for any backend: one agent against the cache
and another agent's repository.

The attacker, in its sandbox, tries to move the victim's branch and the cache's refs:
``update-ref`` through a ``--git-dir`` on the cache and on the victim's repository, a
push into the cache, plain writes into the cache's refs and objects, a ``gc`` of its own
repository (which borrows the cache's objects), and finally symlinks in its ``.git``
pointing at the cache, left for the host to follow when it finishes. Every attempt
fails; the host refuses the planted links; and the refs and objects of the cache and of
the victim's repository are identical before and after.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.gitops import commits, conflicts, worktrees
from services.gitops.errors import WorktreeTamperedError
from services.gitops.repos import RepoCache
from shared.sandbox.base import Limits, SandboxFactory, SandboxSpec
from tests.conftest import git
from tests.integration.gitops.conftest import align, commit_req, push_req, rm_req, wt_req


def state(cache: Path, victim: Path) -> dict[str, object]:
    """Refs and object files of the cache and of the victim's repository."""

    def files(top: Path) -> list[tuple[str, int]]:
        found = []
        for dirpath, _dirs, names in os.walk(top):
            for name in names:
                path = Path(dirpath, name)
                found.append((str(path.relative_to(top)), path.stat().st_size))
        return sorted(found)

    return {
        "cache refs": git(cache, "for-each-ref"),
        "cache objects": files(cache / "objects"),
        "victim refs": git(victim, "for-each-ref"),
        "victim head": (victim / ".git" / "HEAD").read_text(),
        "victim objects": files(victim / ".git" / "objects"),
    }


def attempts(cache: Path, victim: Path) -> list[str]:
    branch = "refs/heads/mosaic/agent-victim"
    objects = cache / "objects"
    return [
        f"git --git-dir={cache} update-ref {branch} HEAD",
        f"git --git-dir={cache} update-ref refs/remotes/origin/main HEAD",
        f"git --git-dir={victim}/.git update-ref {branch} HEAD",
        f"git push {cache} HEAD:{branch}",
        f"git push {victim} HEAD:{branch}",
        f"echo 0000000000000000000000000000000000000000 > {cache}/refs/heads/mosaic/agent-victim",
        f"echo x > {objects}/planted",
        f"echo x > {objects}/info/alternates",
        f"rm -rf {objects}/*",
    ]


async def attack_from_sandbox(
    cache: RepoCache, remote: Path, factory: SandboxFactory, unique: str
) -> None:
    url = str(remote)
    repo = cache.repo_path(url)
    attacker = Path((await worktrees.create_worktree(cache, wt_req(remote, "attacker"))).path or "")
    victim = Path((await worktrees.create_worktree(cache, wt_req(remote, "victim"))).path or "")
    (victim / "victim.txt").write_text("the victim's work\n")
    made = await commits.commit(cache, commit_req(remote, "victim", message="victim work"))
    align(victim, made.commit)
    before = state(repo, victim)

    sandbox = await factory.create(
        SandboxSpec(
            agent_id=f"attacker-{unique}", task_id=f"t-{unique}", worktree=attacker,
            limits=Limits(), owner=f"test-{unique}", readonly=(repo / "objects",),
        )
    )  # fmt: skip
    try:
        done = await sandbox.exec("git commit -q --allow-empty -m mine && git gc -q", timeout=60)
        assert done.exit_code == 0, done.output  # its own repository is its to change
        for command in attempts(repo, victim):
            tried = await sandbox.exec(command, timeout=30)
            assert tried.exit_code != 0, f"{command} worked: {tried.output}"
        planted = await sandbox.exec(
            f"ln -s {repo}/refs/heads .git/refs/heads/cache && "
            f"rm -rf .git/refs/remotes && ln -s {repo}/refs/remotes .git/refs/remotes && "
            "echo more > attacker.txt",
            timeout=30,
        )
        assert planted.exit_code == 0, planted.output
    finally:
        await sandbox.close()

    with pytest.raises(WorktreeTamperedError, match="symlink"):
        await commits.commit(cache, commit_req(remote, "attacker"))
    with pytest.raises(WorktreeTamperedError, match="symlink"):
        await conflicts.push(cache, push_req(remote, "attacker"))
    assert state(repo, victim) == before
    removed = await worktrees.remove_worktree(cache, rm_req(remote, "attacker"))
    assert removed.removed
    assert git(repo, "show", "mosaic/salvage/attacker:attacker.txt") == "more"
    after = state(repo, victim)
    for key in ("victim refs", "victim head", "victim objects"):
        assert after[key] == before[key], key
    assert git(repo, "rev-parse", "mosaic/agent-victim") == made.commit
