"""Keeping unpushed work before a worktree goes: ``mosaic/salvage/<agentId>`` in the cache.

Uncommitted changes are snapshotted through a scratch index (the agent's index and
branch are not touched); commits not on any remote branch are kept as they are. An
earlier salvage of the same agent is never overwritten: if the new tip does not contain
it, a merge commit keeps both. Salvage stays local to the cache and is never pushed,
so it is not secret-scanned.
"""

from __future__ import annotations

import logging
import tempfile

from services.gitops.repos import RepoCache
from services.gitops.safety import GitRunner, nested_repositories

log = logging.getLogger(__name__)


def salvage_branch(agent_id: str) -> str:
    """Where an agent's unpushed work is kept."""
    return f"mosaic/salvage/{agent_id}"


def snapshot_tree(worktree: GitRunner, head: str | None) -> str | None:
    """The tree of the worktree as it is, if it differs from ``head``; else ``None``.

    Not taken (``None``, logged) when the agent planted a repository where a gitlink is:
    ``status`` and ``add`` would start a git in it (``shared.git.nested_repositories``).
    """
    nested = nested_repositories(worktree) + (nested_repositories(worktree, head) if head else [])
    if nested:
        log.warning("not salvaging uncommitted work: git repositories inside it at %s", nested)
        return None
    status = worktree.out("status", "--porcelain=v1", "-z", "--untracked-files=all")
    if not status:
        return None
    with tempfile.TemporaryDirectory(prefix="mosaic-salvage-") as scratch:
        env = {"GIT_INDEX_FILE": f"{scratch}/index"}
        if head:
            worktree.run("read-tree", head, env=env)
        worktree.run("add", "-A", env=env)
        tree = worktree.run("write-tree", env=env).stdout.strip()
    if head and tree == worktree.out("rev-parse", f"{head}^{{tree}}"):
        return None
    return tree


def salvage(
    cache: RepoCache,
    runner: GitRunner,
    worktree: GitRunner | None,
    branch: str,
    agent_id: str,
    task_id: str,
) -> str | None:
    """Keep uncommitted and unpushed work of ``branch``; return the salvage branch name."""
    extra = {"agent_id": agent_id, "task_id": task_id}
    identity = cache.identity_env()
    head_result = runner.run("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", ok=(0, 1))
    head = head_result.stdout.strip() or None
    tip: str | None = None
    tree = snapshot_tree(worktree, head) if worktree is not None else None
    if tree is not None:
        parents = ["-p", head] if head else []
        message = f"mosaic: salvage of uncommitted work (agent {agent_id}, task {task_id})"
        tip = runner.run("commit-tree", tree, *parents, "-m", message, env=identity).stdout.strip()
    elif head and runner.out("rev-list", "-n1", head, "--not", "--remotes=origin"):
        tip = head
    if tip is None:
        return None
    name = salvage_branch(agent_id)
    earlier = runner.run("rev-parse", "--verify", "--quiet", f"refs/heads/{name}", ok=(0, 1))
    old = earlier.stdout.strip()
    if old:
        contained = runner.run("merge-base", "--is-ancestor", old, tip, ok=(0, 1)).status == 0
        if not contained:
            message = f"mosaic: salvage (agent {agent_id}, task {task_id}) keeping earlier salvage"
            tip = runner.run(
                "commit-tree", f"{tip}^{{tree}}", "-p", tip, "-p", old, "-m", message, env=identity
            ).stdout.strip()
    runner.run("update-ref", f"refs/heads/{name}", tip)
    log.info("salvaged unpushed work of %s to %s", branch, name, extra=extra)
    return name
