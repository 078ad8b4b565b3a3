"""What a branch or a running agent changes against its base: files and base line ranges.

The conflict forecast (docs/git.md, "Conflict forecast") compares what a pushed branch
changed with what each running agent is changing. Both sides are diffs against a base
commit, parsed from ``git diff -U0`` into the base lines each hunk replaces; a file git
cannot give lines for (binary, renamed, a mode change only) counts as a whole.

The agent side reads the agent's repository as it is, uncommitted and untracked files
included, through ``shared.agentrepo.files_view`` (scratch index and objects: nothing is
written, the agent's own index is never touched).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from services.gitops.errors import BranchNotFoundError, GitOpsError, WorktreeNotFoundError
from services.gitops.repos import RepoCache
from services.gitops.validation import validate_branch, validate_repository
from services.gitops.worktrees import locate, make_runner, open_agent_repo
from shared import agentrepo
from shared.git import Git, refuse_nested_repositories
from shared.messages.gitops import ChangesFound, ChangesRequested, FileChange, LineRange

MAX_FILES = 1000
"""Files listed per side; beyond it the rest is left out and ``truncated`` says so."""
MAX_RANGES = 200
"""Hunks kept per file; a file changed in more places counts as a whole."""

# No drivers, no textconv, explicit prefixes: the diff is what git stores.
DIFF_ARGS = (
    "diff",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--find-renames",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)
_HUNK = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@", re.MULTILINE)
_SECTION = re.compile(rb"^diff --git ", re.MULTILINE)


@dataclass(frozen=True)
class Changes:
    """A side's changes: the base commit they are against and the files."""

    base_commit: str
    files: tuple[FileChange, ...]
    truncated: bool = False


@dataclass(frozen=True)
class NumstatEntry:
    """One file of ``git diff --numstat -z``: its path(s) and whether it is binary."""

    paths: tuple[str, ...]
    binary: bool
    added: int | None = None
    deleted: int | None = None


def parse_numstat(raw: bytes) -> list[NumstatEntry]:
    """Parse ``--numstat -z``: ``added\\tdeleted\\tpath\\0``, or for a rename
    ``added\\tdeleted\\t\\0old\\0new\\0``; ``-`` counts mean a binary file."""
    fields = raw.split(b"\0")
    entries: list[NumstatEntry] = []
    index = 0
    while index < len(fields):
        field = fields[index]
        index += 1
        if not field:
            continue
        added, deleted, path = field.split(b"\t", 2)
        binary = added == b"-" and deleted == b"-"
        counts = (None, None) if binary else (int(added), int(deleted))
        if path:
            entries.append(NumstatEntry((_text(path),), binary, *counts))
            continue
        if index + 1 >= len(fields):
            raise GitOpsError("git diff --numstat ended inside a rename", code="diff_unparsed")
        old, new = fields[index], fields[index + 1]
        index += 2
        entries.append(NumstatEntry((_text(old), _text(new)), binary, *counts))
    return entries


def hunk_range(old_start: int, old_count: int) -> LineRange:
    """The base lines a ``@@ -old_start,old_count`` hunk replaces; an insertion
    (``old_count`` 0, after line ``old_start``) is the empty range between two lines."""
    if old_count == 0:
        return LineRange(start=old_start + 1, end=old_start)
    return LineRange(start=old_start, end=old_start + old_count - 1)


def parse_patch(patch: bytes) -> list[tuple[LineRange, ...]]:
    """The base line ranges of each file section of ``git diff -U0``, in order.

    Content lines are prefixed (``+``, ``-``, space, ``\\``), so a line starting with
    ``diff --git `` or ``@@ -`` is always a header.
    """
    starts = [match.start() for match in _SECTION.finditer(patch)]
    sections = []
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else len(patch)
        hunks = _HUNK.finditer(patch, start, end)
        sections.append(
            tuple(
                hunk_range(int(h.group(1)), int(h.group(2)) if h.group(2) is not None else 1)
                for h in hunks
            )
        )
    return sections


def file_changes(
    entries: list[NumstatEntry], sections: list[tuple[LineRange, ...]]
) -> tuple[FileChange, ...]:
    """One ``FileChange`` per path: line ranges when git gave them, else the whole file
    (binary, renamed, no hunk, more than ``MAX_RANGES`` hunks)."""
    if len(entries) != len(sections):
        raise GitOpsError(
            f"git diff listed {len(entries)} files but its patch has {len(sections)} sections",
            code="diff_unparsed",
        )
    changes: list[FileChange] = []
    for entry, ranges in zip(entries, sections, strict=True):
        whole = entry.binary or len(entry.paths) > 1 or not ranges or len(ranges) > MAX_RANGES
        for path in entry.paths:
            changes.append(FileChange(path=path, ranges=None if whole else ranges))
    return tuple(changes)


def diff_changes(
    runner: Git, base: str, target: str | None, env: dict[str, str] | None = None
) -> tuple[tuple[FileChange, ...], bool]:
    """Files changed from commit ``base`` to commit ``target`` (to the work tree when
    ``target`` is None), and whether more than ``MAX_FILES`` were left out."""
    span = (base,) if target is None else (base, target)
    numstat = runner.run(*DIFF_ARGS, "--numstat", "-z", *span, "--", env=env).raw
    entries = parse_numstat(numstat)
    truncated = len(entries) > MAX_FILES
    if truncated:
        kept = entries[:MAX_FILES]
        return tuple(FileChange(path=p, ranges=None) for e in kept for p in e.paths), True
    if not entries:
        return (), False
    patch = runner.run(*DIFF_ARGS, "--unified=0", *span, "--", env=env).raw
    return file_changes(entries, parse_patch(patch)), False


def pushed_changes(cache: RepoCache, repository: str, head: str, base_branch: str) -> Changes:
    """What commit ``head`` (just pushed) changes against where it forked from the base."""
    runner = cache.runner(validate_repository(repository))
    base = merge_base(runner, head, f"refs/remotes/origin/{base_branch}")
    files, truncated = diff_changes(runner, base, head)
    return Changes(base, files, truncated)


async def agent_changes(cache: RepoCache, request: ChangesRequested) -> ChangesFound:
    """The agent's changes against its base, as its repository holds them right now.

    The agent's own repository (``shared.agentrepo``), structure verified, read through
    a ``files_view``: the cache as git dir, a scratch index and scratch objects, the
    agent's objects readable, so nothing is written anywhere and the agent's index is
    never touched. The base is where its HEAD (detached mid-rebase is fine) forked from
    ``origin/<base>``. Under the worktree's lock, so a commit of it never runs meanwhile.
    """
    ref = locate(cache, request.repository, request.agent_id, request.task_id)
    validate_branch(request.base_branch, cache.tool_runner())

    def read() -> ChangesFound:
        repo = open_agent_repo(cache, ref)
        make = make_runner(cache)
        head = agentrepo.resolve(agentrepo.reader(repo, make), "HEAD")
        if head is None:
            raise WorktreeNotFoundError(f"agent {ref.agent_id} has no commit checked out")
        with agentrepo.files_view(repo, head, make) as view:
            refuse_nested_repositories(view, head)  # never start a git in one
            base = merge_base(view, head, f"refs/remotes/origin/{request.base_branch}")
            refuse_nested_repositories(view)
            tree = agentrepo.snapshot_tree(view)
            files, truncated = diff_changes(view, base, tree)
        return ChangesFound(base_commit=base, files=files, truncated=truncated)

    async with cache.worktree_lock(ref.path):
        return await asyncio.to_thread(read)


def merge_base(runner: Git, head: str, base_ref: str) -> str:
    """Where ``head`` forked from ``base_ref``, or ``BranchNotFoundError``."""
    result = runner.run("merge-base", head, base_ref, ok=(0, 1, 128))
    if result.status != 0 or not result.stdout.strip():
        raise BranchNotFoundError(
            f"{head} and {base_ref} have no common commit (or one is missing)"
        )
    return result.stdout.strip()


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")
