"""Reading a repository at one commit without running anything the repository names.

What decides how an agent's work is checked (its environment, its gates) is read from
the commit the agent started from, never from its worktree, so the agent cannot change
it. Reads go through ``shared.git`` (explicit ``--git-dir``, program-naming keys
blanked, no system or global config) and only through plumbing that applies no
attribute, filter, textconv or hook: ``cat-file``, ``ls-tree`` and ``rev-parse``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shared.errors import MosaicError
from shared.git import Git, GitError

_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
GIT_TIMEOUT_S = 120.0
BATCH_OBJECTS = 256

MODE_FILE = "100644"
MODE_EXECUTABLE = "100755"
MODE_SYMLINK = "120000"


class GitReadError(MosaicError):
    """git could not read the repository (a missing commit, a broken git dir)."""

    code = "git_read_failed"


@dataclass(frozen=True)
class TreeEntry:
    """One file of a commit's tree: its path from the root, its mode and blob id."""

    path: str
    mode: str
    oid: str


class CommitView:
    """The files of one commit of the repository at ``git_dir`` (blocking calls)."""

    def __init__(self, git_dir: Path, commit: str) -> None:
        if not _COMMIT.match(commit):
            raise GitReadError(f"not a full commit id: {commit!r}")
        self.git_dir = git_dir
        self.commit = commit
        self._runner = Git(git_dir, timeout=GIT_TIMEOUT_S)

    def _git(self, *args: str, ok: tuple[int, ...] = (0,), stdin: bytes | None = None) -> bytes:
        try:
            return self._runner.run(*args, ok=ok, stdin=stdin).raw
        except GitError as exc:
            raise GitReadError(exc.message, retryable=exc.retryable) from exc

    def exists(self) -> bool:
        """Whether the commit is in the repository."""
        out = self._git("cat-file", "-t", self.commit, ok=(0, 128))
        return out.strip() == b"commit"

    def read(self, path: str) -> bytes | None:
        """The content of the file ``path`` at the commit, or None when it is not there."""
        kind = self._git("cat-file", "-t", f"{self.commit}:{path}", ok=(0, 128)).strip()
        if kind != b"blob":
            return None
        return self._git("cat-file", "blob", f"{self.commit}:{path}")

    def tree_id(self, path: str) -> str | None:
        """The object id of the directory (or file) ``path`` at the commit, if there."""
        spec = f"{self.commit}^{{tree}}" if path in ("", ".") else f"{self.commit}:{path}"
        out = self._git("rev-parse", "--verify", "--quiet", spec, ok=(0, 1, 128)).strip()
        return out.decode() if out else None

    def files(self, under: str = "") -> list[TreeEntry]:
        """Every file (blob or symlink; no submodule) at the commit, optionally under a dir."""
        args = ["ls-tree", "-r", "-z", "--full-tree", self.commit]
        if under not in ("", "."):
            args += ["--", under.rstrip("/") + "/"]
        entries = []
        for record in self._git(*args).split(b"\0"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, kind, oid = meta.decode().split(" ")
            if kind != "blob":
                continue  # submodules (commits) are not part of the tree's content
            entries.append(TreeEntry(raw_path.decode("utf-8", "surrogateescape"), mode, oid))
        return entries

    def blobs(self, oids: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """The content of each blob, in order, through ``cat-file --batch`` calls of
        ``BATCH_OBJECTS`` at a time (so a big tree is never all in memory at once)."""
        wanted = list(oids)
        for start in range(0, len(wanted), BATCH_OBJECTS):
            yield from self._batch(wanted[start : start + BATCH_OBJECTS])

    def _batch(self, wanted: list[str]) -> Iterator[tuple[str, bytes]]:
        out = self._git("cat-file", "--batch", stdin="".join(f"{o}\n" for o in wanted).encode())
        pos = 0
        for oid in wanted:
            end = out.index(b"\n", pos)
            header = out[pos:end].decode().split(" ")
            if len(header) != 3 or header[1] != "blob":
                raise GitReadError(f"object {oid} is not a blob in {self.git_dir}")
            size = int(header[2])
            start = end + 1
            yield oid, out[start : start + size]
            pos = start + size + 1
