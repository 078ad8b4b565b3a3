"""Git the orchestrator runs in an agent's own repository, in its sandbox.

The host never writes into an agent's repository (``shared.agentrepo``): the agent owns
it and could have planted links anywhere in it. The two writes the conflict loop needs
are commands the agent could run itself, so running them inside its sandbox is safe by
construction:

- ``point_base``: before the agent hears of a conflict, its ``origin/<base>`` moves to
  the freshly fetched base (the objects are the cache's, seen through alternates), so
  ``git rebase origin/<base>`` and ``git merge origin/<base>`` work without a network;
- ``align``: after gitops committed what the agent left uncommitted, the agent's branch
  moves to that commit (``git reset --mixed``): its status is clean and its history is
  what was pushed.

And one read, ``looks_unchanged``: a hint that the agent changed nothing, so its finish
need not run the gates on the base (the commit step checks for itself).

An environment image without git (a repository may declare any image) cannot run
any of them: they then return ``False`` and the caller says so (the agent could not have
used git there either, so its repository holds no history of its own to keep).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Awaitable, Callable

from shared.errors import MosaicError
from shared.messages.gitops import PushDone
from shared.sandbox.base import Sandbox

NoGit = Callable[[str], Awaitable[None]]
"""Told what could not be done because the sandbox has no git (logs, records an event)."""

GIT_TIMEOUT_S = 60.0
_NOT_FOUND = 127
"""The shell's exit status for a command it cannot find."""
_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_BRANCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$")


class AgentGitError(MosaicError):
    """A git command the spawner ran in the agent's sandbox failed."""

    code = "agent_git_failed"
    retryable = True


async def point_base(sandbox: Sandbox, base_branch: str, commit: str) -> bool:
    """Make ``refs/remotes/origin/<base_branch>`` in the agent's repository ``commit``;
    ``False`` when the sandbox has no git."""
    if not _BRANCH.match(base_branch) or ".." in base_branch:
        raise AgentGitError(f"not a base branch name: {base_branch!r}", retryable=False)
    ref = f"refs/remotes/origin/{base_branch}"
    return await _git(sandbox, "update-ref", ref, _commit(commit))


async def align(sandbox: Sandbox, commit: str) -> bool:
    """Move the agent's branch (and index) to ``commit``, leaving its files as they are;
    ``False`` when the sandbox has no git."""
    return await _git(sandbox, "reset", "--mixed", "-q", _commit(commit))


async def conflict_text(sandbox: Sandbox, base_branch: str, pushed: PushDone, no_git: NoGit) -> str:
    """Bring the agent's ``origin/<base>`` to the base the conflicts were found against,
    then the tool result that says how to resolve them. Any source of conflicts (the
    push, the merge queue) answers through ``PushDone.conflicts`` + ``base_commit``."""
    if pushed.base_commit is None:
        raise AgentGitError("a conflict came without its base commit", retryable=False)
    base, paths = base_branch, ", ".join(pushed.conflicts)
    if not await point_base(sandbox, base, pushed.base_commit):
        await no_git(f"origin/{base} could not be updated there")
        return (
            f"Merge conflict with origin/{base} in: {paths}. This environment has no git, "
            "so the conflict cannot be resolved here: finish with a summary that says so."
        )
    return (
        f"Merge conflict with origin/{base} in: {paths}. origin/{base} in your repository "
        f"is now the updated base: run `git rebase origin/{base}` (or `git merge "
        f"origin/{base}`), resolve the files, `git add` them, continue (`GIT_EDITOR=true "
        "git rebase --continue`, or `git commit` for a merge), then finish again."
    )


async def looks_unchanged(sandbox: Sandbox, base: str) -> bool:
    """Whether the agent's own git says its repository is its base, untouched: HEAD is
    ``base`` and ``git status`` lists nothing. A hint, read where the agent could have
    arranged it: it only lets the finish ask the commit step (which looks at the files
    for itself) before the gates; False without git or on any doubt."""
    check = (
        f"command -v git >/dev/null || exit {_NOT_FOUND}; "
        f'test "$(git rev-parse -q --verify HEAD)" = {shlex.quote(_commit(base))} && '
        'test -z "$(git --no-optional-locks status --porcelain --untracked-files=all)"'
    )
    done = await sandbox.exec(check, timeout=GIT_TIMEOUT_S, max_output=4000)
    return done.exit_code == 0


def _commit(commit: str) -> str:
    if not _COMMIT.match(commit):
        raise AgentGitError(f"not a commit id: {commit!r}", retryable=False)
    return commit


async def _git(sandbox: Sandbox, *args: str) -> bool:
    command = "git " + " ".join(shlex.quote(arg) for arg in args)
    done = await sandbox.exec(
        f"command -v git >/dev/null || exit {_NOT_FOUND}; {command}",
        timeout=GIT_TIMEOUT_S,
        max_output=4000,
    )
    if done.exit_code == _NOT_FOUND:
        return False
    if done.exit_code != 0:
        raise AgentGitError(
            f"`{command}` failed in the agent's sandbox ({done.exit_code}): "
            f"{done.output.strip()[:500]}"
        )
    return True
