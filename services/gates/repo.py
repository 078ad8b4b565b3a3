"""Read-only git views of an agent's repository: its base, files at the base, its diff.

Git runs only through ``shared.agentrepo``: on an agent repository gitops made, whose
structure is checked first; its HEAD read through ``shared.git`` (program-naming config
blanked, includes refused), its files through the cache's git dir with a scratch index
and a scratch object directory (``files_view``), so looking at an agent's work runs no
code from it and writes nothing into it or the cache. The gates' own config is read at
the base commit, so a change cannot weaken the gates it is checked by.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.gates.errors import WorktreeError
from shared import agentrepo
from shared.agentrepo import AgentRepo
from shared.git import EMPTY_TREE, Git, GitError, GitTamperedError

_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@^~-]{0,250}$")
_BASE_CANDIDATES = (
    "refs/remotes/origin/HEAD",
    "refs/remotes/origin/main",
    "refs/remotes/origin/master",
)
GIT_TIMEOUT_S = 60.0
MAX_UNTRACKED_FILES = 200
MAX_LISTED_FILES = 100_000


@dataclass(frozen=True)
class GitOut:
    """A finished git command."""

    code: int
    out: str
    err: str


def _git(runner: Git, *args: str, ok: tuple[int, ...] = (0,)) -> GitOut:
    try:
        done = runner.run(*args, ok=tuple(range(256)))
    except GitError as exc:
        raise WorktreeError(
            f"git {args[0]} failed in {runner.work_tree}: {exc.message}", retryable=exc.retryable
        ) from exc
    result = GitOut(done.status, done.raw.decode("utf-8", errors="replace"), done.stderr)
    if result.code not in ok:
        raise WorktreeError(
            f"git {args[0]} failed in {runner.work_tree}: {result.err.strip()[:500]}"
        )
    return result


def _make(git_dir: Path | None, work_tree: Path | None, env: Mapping[str, str]) -> Git:
    return Git(git_dir, work_tree, timeout=GIT_TIMEOUT_S, extra_env=env)


def open_repo(worktree: Path) -> AgentRepo:
    """The agent repository at ``worktree``, once its structure is what gitops made."""
    try:
        repo = AgentRepo.at(worktree)
        agentrepo.verify(repo)
    except GitTamperedError as exc:
        raise WorktreeError(f"refusing to read {worktree} with git: {exc.message}") from exc
    return repo


def check_worktree(path: str, root: Path | None) -> Path:
    """The real path of the worktree, if it is a directory under ``root`` that is an
    agent repository gitops made (its ``.git`` checked: see ``open_repo``)."""
    raw = Path(path)
    if not raw.is_absolute():
        raise WorktreeError(f"worktree must be an absolute path, got {path!r}")
    real = raw.resolve()
    if root is not None:
        top = root.resolve()
        if real != top and top not in real.parents:
            raise WorktreeError(f"worktree {path} is outside the allowed root {top}")
    if not real.is_dir():
        raise WorktreeError(f"worktree {path} does not exist")
    open_repo(real)
    return real


class RepoView:
    """What the gates read from one worktree (blocking: call through ``asyncio.to_thread``).

    Holds a scratch directory (the view's index and objects): ``close`` it.
    """

    def __init__(
        self,
        worktree: Path,
        git: Git,
        head: str | None,
        base: str | None,
        scratch: contextlib.ExitStack | None = None,
    ) -> None:
        self.worktree = worktree
        self.git = git
        self.head = head
        self.base = base
        self._scratch = scratch or contextlib.ExitStack()

    @classmethod
    def open(cls, worktree: Path, requested_base: str | None) -> RepoView:
        """Check the repository's structure, read its HEAD, then resolve the base: the
        one asked for, else the merge base with origin's default branch."""
        repo = open_repo(worktree)
        try:
            head = agentrepo.resolve(agentrepo.reader(repo, _make), "HEAD")
        except GitError as exc:
            raise WorktreeError(f"cannot read HEAD of {worktree}: {exc.message}") from exc
        scratch = contextlib.ExitStack()
        try:
            git = scratch.enter_context(agentrepo.files_view(repo, head, _make))
            view = cls(worktree, git, head, None, scratch)
            view.base = _resolve_base(git, head, requested_base)
        except BaseException:
            scratch.close()
            raise
        return view

    def close(self) -> None:
        """Remove the view's scratch index and objects."""
        self._scratch.close()

    def read_base(self, path: str) -> str | None:
        """The text of ``path`` at the base commit, or ``None`` when it is not there."""
        if self.base is None:
            return None
        found = _git(self.git, "cat-file", "blob", f"{self.base}:{path}", ok=(0, 128))
        return found.out if found.code == 0 else None

    def read_current(self, path: str) -> str | None:
        """The text of ``path`` in the worktree (a regular file inside it), else ``None``."""
        target = (self.worktree / path).resolve()
        if self.worktree not in target.parents or not target.is_file():
            return None
        try:
            return target.read_text(encoding="utf-8", errors="replace")[:1_000_000]
        except OSError:
            return None

    def read(self, path: str) -> str | None:
        """``path`` at the base when the repository has one there, else in the worktree."""
        at_base = self.read_base(path)
        return at_base if at_base is not None else self.read_current(path)

    def exists(self, path: str) -> bool:
        """Whether ``path`` is at the base or in the worktree (removing it does not help)."""
        if self.base is not None:
            found = _git(self.git, "cat-file", "-e", f"{self.base}:{path}", ok=(0, 128))
            if found.code == 0:
                return True
        return (self.worktree / path).exists()

    def files(self) -> list[str]:
        """Paths at the base and in the worktree (tracked or new, not ignored), for detection.

        The union: a change can add files but cannot hide what the base has. At most
        ``MAX_LISTED_FILES`` of each side.
        """
        names: dict[str, None] = {}
        if self.base is not None:
            tree = _git(self.git, "ls-tree", "-r", "-z", "--name-only", self.base, ok=(0, 128))
            names.update(dict.fromkeys(n for n in tree.out.split("\0")[:MAX_LISTED_FILES] if n))
        here = _git(self.git, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        names.update(dict.fromkeys(n for n in here.out.split("\0")[:MAX_LISTED_FILES] if n))
        return list(names)

    def diff(self, max_chars: int) -> tuple[str, bool]:
        """The change against the base (committed, staged, unstaged and new files).

        Returns the diff text, cut at ``max_chars``, and whether it was cut.
        """
        against = self.base or self.head or EMPTY_TREE
        parts = [
            _git(
                self.git,
                "diff", "--no-ext-diff", "--no-textconv", "--no-color", "--find-renames",
                "--ignore-submodules=dirty",
                against, "--",
            ).out
        ]  # fmt: skip
        untracked = _git(self.git, "ls-files", "--others", "--exclude-standard", "-z").out
        names = [n for n in untracked.split("\0") if n][:MAX_UNTRACKED_FILES]
        for name in names:
            parts.append(
                _git(
                    self.git,
                    "diff", "--no-index", "--no-ext-diff", "--no-textconv", "--no-color",
                    "--", "/dev/null", name,
                    ok=(0, 1),
                ).out
            )  # fmt: skip
            if sum(len(p) for p in parts) > max_chars:
                break
        text = "".join(parts)
        if len(text) > max_chars:
            return text[:max_chars], True
        return text, False


def _resolve_base(git: Git, head: str | None, requested: str | None) -> str | None:
    if requested is not None:
        if not _REF.match(requested) or ".." in requested:
            raise WorktreeError(f"not a usable base: {requested!r}")
        found = _git(
            git, "rev-parse", "--verify", "--quiet", f"{requested}^{{commit}}", ok=(0, 1, 128)
        )
        if found.code != 0:
            raise WorktreeError(f"base {requested!r} is not a commit of this repository")
        return found.out.strip()
    if head is None:
        return None
    for candidate in _BASE_CANDIDATES:
        merge = _git(git, "merge-base", head, candidate, ok=(0, 1, 128))
        if merge.code == 0 and merge.out.strip():
            return merge.out.strip()
    return head


async def open_view(worktree: Path, base: str | None) -> RepoView:
    """``RepoView.open`` off the event loop."""
    return await asyncio.to_thread(RepoView.open, worktree, base)
