"""Running git so that nothing an agent wrote can make it run a program on the host.

An agent controls every byte of its worktree: it can plant a ``.git`` file pointing at
a repository of its own (with hooks, ``core.fsmonitor``, filters), a ``.gitattributes``
that names a filter or diff driver, and, where the sandbox is weak, worktree config.
So every git command here:

- names its repository explicitly (``--git-dir`` / ``--work-tree``), never trusting the
  worktree's ``.git`` file, and that file is checked before each operation anyway;
- overrides, on the command line (which beats every config file), hooks, fsmonitor,
  signing programs and the ``ext::`` transport, and blanks every filter, textconv,
  diff or merge driver and transport command that repository-level config defines;
- runs with ``GIT_CONFIG_NOSYSTEM=1`` and ``GIT_TERMINAL_PROMPT=0``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import git

from services.gitops.errors import GitCommandError, GitTimeoutError, WorktreeTamperedError

log = logging.getLogger(__name__)

BASE_CONFIG: tuple[str, ...] = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.askPass=",
    "protocol.ext.allow=never",
    "protocol.fd.allow=never",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "push.gpgSign=false",
    "core.quotePath=false",
    "color.ui=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "submodule.recurse=false",
    "fetch.recurseSubmodules=false",
    "push.recurseSubmodules=no",
    "diff.noprefix=false",
    "diff.mnemonicPrefix=false",
)

BASE_ENV: dict[str, str] = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "",
    "GIT_PAGER": "cat",
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_EXTERNAL_DIFF": "",
}

# Config keys that name a program, as (pattern, the value that neutralises it). Only
# values from repository scopes (local, worktree) are overridden: global config is the
# operator's, and system config is not read at all.
_PROGRAM_KEYS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^filter\..+\.(clean|smudge|process)$"), ""),
    (re.compile(r"^filter\..+\.required$"), "false"),
    (re.compile(r"^diff\..+\.(textconv|command)$"), ""),
    (re.compile(r"^diff\.external$"), ""),
    (re.compile(r"^merge\..+\.driver$"), "false"),
    (re.compile(r"^core\.sshcommand$"), "ssh"),
    (re.compile(r"^core\.gitproxy$"), ""),
    (re.compile(r"^remote\..+\.uploadpack$"), "git-upload-pack"),
    (re.compile(r"^remote\..+\.receivepack$"), "git-receive-pack"),
    (re.compile(r"^(core\.pager|core\.editor|sequence\.editor|gpg\.program)$"), "true"),
)

_CREDENTIALS_IN_URL = re.compile(r"(?<=://)[^/@\s]+@")


def redact(text: str) -> str:
    """Drop credentials embedded in URLs (``https://user:token@host``) from text we show."""
    return _CREDENTIALS_IN_URL.sub("***@", text)


@dataclass(frozen=True)
class GitResult:
    """What a git command said."""

    status: int
    stdout: str
    stderr: str


class GitRunner:
    """Runs git (through GitPython) against one repository with the safety options on."""

    def __init__(
        self,
        git_dir: Path | None,
        work_tree: Path | None = None,
        *,
        cwd: Path | None = None,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ):
        self.git_dir = git_dir
        self.work_tree = work_tree
        self.timeout = timeout
        self._env = {**BASE_ENV, **(env or {})}
        self._cwd = cwd or work_tree or git_dir or Path.cwd()
        self._git = git.Git(str(self._cwd))
        self._overrides: tuple[str, ...] | None = None

    def _prefix(self, overrides: Sequence[str]) -> list[str]:
        command = [git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git"]
        for item in (*BASE_CONFIG, *overrides):
            command += ["-c", item]
        if self.git_dir is not None:
            command.append(f"--git-dir={self.git_dir}")
        if self.work_tree is not None:
            command.append(f"--work-tree={self.work_tree}")
        return command

    def _repository_overrides(self) -> tuple[str, ...]:
        """``-c`` values that blank every program named by repository-level config."""
        if self._overrides is None:
            overrides: list[str] = []
            if self.git_dir is not None:
                listing = self._exec([*self._prefix(()), "config", "--list", "--show-scope", "-z"])
                overrides = list(program_overrides(parse_config_listing(listing.stdout)))
            self._overrides = tuple(overrides)
        return self._overrides

    def run(
        self,
        *args: str,
        ok: Sequence[int] = (0,),
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> GitResult:
        """Run ``git <args>``; raise ``GitCommandError`` unless the status is in ``ok``."""
        command = [*self._prefix(self._repository_overrides()), *args]
        result = self._exec(command, env=env, timeout=timeout)
        if result.status not in ok:
            raise GitCommandError(
                f"git {args[0]} failed ({result.status}): {redact(result.stderr.strip())[:800]}"
            )
        return result

    def out(self, *args: str, timeout: float | None = None) -> str:
        """Run ``git <args>`` and return its standard output."""
        return self.run(*args, timeout=timeout).stdout

    def _exec(
        self,
        command: list[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> GitResult:
        limit = timeout or self.timeout
        status, stdout, stderr = self._git.execute(
            command,
            with_extended_output=True,
            with_exceptions=False,
            kill_after_timeout=limit,
            env={**self._env, **(env or {})},
            stdout_as_string=True,
        )
        if status == -9 or (status != 0 and "Timeout: the command" in str(stderr)):
            raise GitTimeoutError(f"git {command[-1]!r} took longer than {limit}s")
        return GitResult(int(status), str(stdout), str(stderr))


def parse_config_listing(listing: str) -> list[tuple[str, str, str]]:
    """Split ``git config --list --show-scope -z`` output into (scope, key, value)."""
    parts = listing.split("\0")
    entries = []
    for scope, item in zip(parts[0::2], parts[1::2], strict=False):
        key, _, value = item.partition("\n")
        entries.append((scope, key.lower(), value))
    return entries


def program_overrides(entries: Sequence[tuple[str, str, str]]) -> tuple[str, ...]:
    """``key=value`` overrides for program-naming keys set in repository scopes."""
    overrides: dict[str, str] = {}
    for scope, key, _value in entries:
        if scope not in {"local", "worktree"}:
            continue
        for pattern, neutral in _PROGRAM_KEYS:
            if pattern.match(key):
                overrides[key] = neutral
                break
    return tuple(f"{key}={value}" for key, value in overrides.items())


def worktree_admin_dir(repo: Path, worktree: Path) -> Path | None:
    """The admin dir (``<repo>/worktrees/<id>``) that git registered for ``worktree``."""
    admin_root = repo / "worktrees"
    if not admin_root.is_dir():
        return None
    target = (worktree / ".git").absolute()
    for admin in admin_root.iterdir():
        gitdir_file = admin / "gitdir"
        try:
            recorded = Path(gitdir_file.read_text(encoding="utf-8").strip())
        except (OSError, UnicodeDecodeError):
            continue
        if recorded == target or recorded.resolve() == target.resolve():
            return admin
    return None


def verify_worktree(repo: Path, worktree: Path) -> Path:
    """Check that ``worktree/.git`` still points at our admin dir; return that dir.

    Raises ``WorktreeTamperedError`` if the agent replaced or rewrote the ``.git`` file.
    """
    admin = worktree_admin_dir(repo, worktree)
    dotgit = worktree / ".git"
    if admin is None:
        raise WorktreeTamperedError(f"{worktree} is not registered with the repository cache")
    if dotgit.is_symlink() or not dotgit.is_file():
        raise WorktreeTamperedError(f"{dotgit} is no longer the file git wrote (refusing)")
    try:
        content = dotgit.read_bytes()[:4096].decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise WorktreeTamperedError(f"{dotgit} cannot be read as a gitdir link") from exc
    prefix = "gitdir: "
    if not content.startswith(prefix) or "\n" in content:
        raise WorktreeTamperedError(f"{dotgit} is not a gitdir link (refusing)")
    pointed = Path(content[len(prefix) :])
    if not pointed.is_absolute():
        pointed = worktree / pointed
    if pointed.resolve() != admin.resolve():
        raise WorktreeTamperedError(f"{dotgit} points outside the repository cache (refusing)")
    return admin
