"""Keeping unpushed work before a worktree goes: ``mosaic/salvage/<agentId>`` in the cache.

Uncommitted changes are snapshotted through ``shared.agentrepo.files_view`` (the cache's
git dir, a scratch index; the agent's repository is not touched), on top of the agent's
HEAD (detached in the middle of a rebase, too); its branch, when HEAD is elsewhere, is
kept as a second parent. Commits not on any remote branch are kept as they are. An
earlier salvage of the same agent is never overwritten: if the new tip does not contain
it, a merge commit keeps both. Salvage stays local to the cache and is never pushed,
so it is not secret-scanned.
"""

from __future__ import annotations

import logging

from services.gitops.repos import RepoCache
from services.gitops.safety import GitRunner, nested_repositories
from shared import agentrepo
from shared.git import EMPTY_TREE, Git

log = logging.getLogger(__name__)


def salvage_branch(agent_id: str) -> str:
    """Where an agent's unpushed work is kept."""
    return f"mosaic/salvage/{agent_id}"


def snapshot_tree(view: Git, head: str | None) -> str | None:
    """The tree of the agent's files as they are, if it differs from ``head``; else ``None``.

    ``view`` is a ``files_view`` whose index holds ``head``. Not taken (``None``, logged)
    when the agent planted a repository where a gitlink is: ``add`` would start a git in
    it (``shared.git.nested_repositories``).
    """
    nested = nested_repositories(view, head) if head else []  # the index holds head's tree
    if nested:
        log.warning("not salvaging uncommitted work: git repositories inside it at %s", nested)
        return None
    tree = agentrepo.snapshot_tree(view)
    if head and tree == view.out("rev-parse", f"{head}^{{tree}}"):
        return None
    if not head and tree == EMPTY_TREE:
        return None
    return tree


def salvage(
    cache: RepoCache,
    runner: GitRunner,
    view: Git | None,
    branch: str,
    agent_id: str,
    task_id: str,
    *,
    head: str | None = None,
    keep: list[str] | None = None,
) -> str | None:
    """Keep uncommitted and unpushed work of ``branch``; return the salvage branch name.

    ``head`` is the commit the files sit on (default: the cache's ``branch``), ``keep``
    further commits to keep (the agent's branch when its HEAD is detached).
    """
    extra = {"agent_id": agent_id, "task_id": task_id}
    identity = cache.identity_env()
    if head is None:
        found = runner.run("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", ok=(0, 1))
        head = found.stdout.strip() or None
    tip: str | None = None
    tree = snapshot_tree(view, head) if view is not None else None
    if tree is not None:
        parents = ["-p", head] if head else []
        message = f"mosaic: salvage of uncommitted work (agent {agent_id}, task {task_id})"
        tip = runner.run("commit-tree", tree, *parents, "-m", message, env=identity).stdout.strip()
    elif head and runner.out("rev-list", "-n1", head, "--not", "--remotes=origin"):
        tip = head
    for other in keep or []:
        if not runner.out("rev-list", "-n1", other, "--not", "--remotes=origin"):
            continue
        if tip is None:
            tip = other
        elif runner.run("merge-base", "--is-ancestor", other, tip, ok=(0, 1)).status != 0:
            message = f"mosaic: salvage (agent {agent_id}, task {task_id}) keeping {branch}"
            tip = runner.run(
                "commit-tree", f"{tip}^{{tree}}", "-p", tip, "-p", other, "-m", message,
                env=identity,
            ).stdout.strip()  # fmt: skip
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
