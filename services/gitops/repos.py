"""The repository cache: one bare clone per repository URL, fetched, cloned once.

Layout under ``<MOSAIC_HOME>/repos``::

    <name>-<hash>/              bare clone; remote branches in refs/remotes/origin/*
    <name>-<hash>_worktrees/    agent worktrees (see worktrees.py)
    .locks/<name>-<hash>.lock          flock: the clone and fetches of the repository
    .locks/<name>-<hash>.agent-<n>.lock flock: one agent's work (n: a stripe of its id)

Local branches (``refs/heads/*``) in a cache repository are ours: agent branches
``mosaic/agent-<id>`` and salvage branches ``mosaic/salvage/<id>``.

Locking (docs/git.md, "Locking"): a lock is held only where git needs one. Each agent's
work (its repository, its branch, its push) runs under that agent's lock, so agents on
one repository work in parallel; what they share is written by git under git's own ref
locks, which we let wait for each other (``LOCK_WAIT_CONFIG``) instead of failing. The
clone and fetches run under the repository's remote lock, and a fetch that began after a
caller asked serves that caller too: many agents waiting on one base branch share one
fetch.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from services.gitops.errors import (
    AuthFailedError,
    GitCommandError,
    GitOpsError,
    RepoNotFoundError,
    UnreachableError,
)
from services.gitops.prioritylock import NORMAL, URGENT, PriorityLock
from services.gitops.safety import GitRunner, redact
from services.gitops.settings import GitOpsSettings
from services.gitops.validation import validate_repository
from shared.git import WORKTREES_SUFFIX
from shared.settings import GitSettings, HomeSettings

T = TypeVar("T")

log = logging.getLogger(__name__)

_UNREACHABLE = re.compile(
    r"could not resolve|connection refused|failed to connect|couldn't connect|timed out"
    r"|network is unreachable|no route to host|connection reset|ssl|proxy",
    re.IGNORECASE,
)
_AUTH = re.compile(
    r"authentication failed|permission denied|could not read username|could not read password"
    r"|terminal prompts disabled|host key verification failed|returned error: 403",
    re.IGNORECASE,
)
_NOT_FOUND = re.compile(
    r"not found|does not appear to be a git repository|does not exist|no such file"
    r"|returned error: 404",
    re.IGNORECASE,
)


AGENT_LOCK_STRIPES = 64
"""Agents' flock files per repository (an agent's id picks one): a bounded set of files,
and two agents share one only by chance, for the length of one request."""

LOCK_WAIT_ENV = {
    "GIT_CONFIG_COUNT": "2",
    "GIT_CONFIG_KEY_0": "core.filesRefLockTimeout",
    "GIT_CONFIG_VALUE_0": "10000",
    "GIT_CONFIG_KEY_1": "core.packedRefsTimeout",
    "GIT_CONFIG_VALUE_1": "10000",
}
"""Agents' git commands on one cache run in parallel: when two update refs at the same
moment (a fetch and a push both touching ``refs/remotes/origin/*``, two deletions
rewriting ``packed-refs``), git waits up to 10 s for the other's ref lock instead of
failing at once (its defaults are 0 and 1 s)."""


def classify_remote_error(url: str, exc: GitCommandError) -> GitOpsError:
    """Turn a failed fetch/push into the error a caller can act on."""
    text = exc.message
    where = redact(url)
    if _UNREACHABLE.search(text):
        return UnreachableError(f"cannot reach {where}: {text}")
    if _AUTH.search(text):
        return AuthFailedError(f"{where} refused our credentials: {text}")
    if _NOT_FOUND.search(text):
        return RepoNotFoundError(f"no repository at {where}")
    return exc


class RepoCache:
    """Paths and locks of the repository cache; every git writer runs under ``run_locked``."""

    def __init__(
        self,
        home: HomeSettings,
        identity: GitSettings | None = None,
        settings: GitOpsSettings | None = None,
    ):
        self.settings = settings or GitOpsSettings()
        self.identity = identity or GitSettings()
        self.root = home.repos_dir
        self._locks: dict[str, PriorityLock] = {}
        self._worktree_locks: dict[str, asyncio.Lock] = {}
        self._fetched_at: dict[str, float] = {}
        self._remote_locks: dict[str, threading.Lock] = {}
        self._runners: dict[tuple[str, bool], GitRunner] = {}

    def worktree_lock(self, path: Path) -> asyncio.Lock:
        """An in-process lock for work inside one worktree (commits of one agent)."""
        return self._worktree_locks.setdefault(str(path), asyncio.Lock())

    @staticmethod
    def slug(url: str) -> str:
        """A directory name for ``url``: readable tail plus a hash that makes it unique."""
        tail = re.split(r"[/:]", url.rstrip("/"))[-1].removesuffix(".git")
        tail = re.sub(r"[^A-Za-z0-9._-]", "_", tail).strip("._") or "repo"
        return f"{tail[:40]}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"

    def repo_path(self, url: str) -> Path:
        return self.root / self.slug(url)

    def worktrees_root(self, url: str) -> Path:
        return self.root / f"{self.slug(url)}{WORKTREES_SUFFIX}"

    def identity_env(self) -> dict[str, str]:
        """Author and committer identity for commits gitops makes."""
        name, email = self.identity.git_author_name, self.identity.git_author_email
        return {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }

    def runner(self, url: str, *, network: bool = False) -> GitRunner:
        """A safe git runner on the cache repository of ``url`` (no work tree)."""
        key = (url, network)
        runner = self._runners.get(key)
        if runner is None:  # one per repository: it reads the repository's config once
            timeout = self.settings.network_timeout if network else self.settings.local_timeout
            runner = GitRunner(self.repo_path(url), timeout=timeout, env=LOCK_WAIT_ENV)
            self._runners[key] = runner
        return runner

    def tool_runner(self) -> GitRunner:
        """A runner outside any repository (``check-ref-format``, ``init``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return GitRunner(None, cwd=self.root, timeout=self.settings.local_timeout)

    async def run_for_agent(
        self, url: str, agent_id: str, fn: Callable[..., T], *args: Any, urgent: bool = False
    ) -> T:
        """Run blocking ``fn(*args)`` in a thread while holding the lock of ``agent_id``'s
        work in the repository of ``url``.

        Agents do not wait for each other here: only one agent's own requests are put in
        order (``urgent`` ones, its push and removal, before a queued creation). In-process
        callers queue on an asyncio lock (so they do not each park a thread); the flock,
        taken and released in the same thread as the work, keeps other gitops processes
        out and stays held until the work really ends, even if we are cancelled.
        """
        slug = self.slug(url)
        key = f"{slug}:{agent_id}"
        lock = self._locks.setdefault(key, PriorityLock())
        stripe = int(hashlib.sha256(agent_id.encode()).hexdigest()[:8], 16) % AGENT_LOCK_STRIPES
        lock_dir = self.root / ".locks"
        try:
            async with lock.hold(URGENT if urgent else NORMAL):
                lock_dir.mkdir(parents=True, exist_ok=True)
                path = lock_dir / f"{slug}.agent-{stripe}.lock"
                work = asyncio.ensure_future(asyncio.to_thread(_call_with_flock, path, fn, *args))
                return await asyncio.shield(work)
        finally:
            if not lock.locked() and self._locks.get(key) is lock:
                del self._locks[key]  # nobody holds or awaits it: one entry per live agent

    def _remote_lock(self, url: str) -> threading.Lock:
        return self._remote_locks.setdefault(self.slug(url), threading.Lock())

    def _with_remote_lock(self, url: str, fn: Callable[[], T]) -> T:
        """``fn()`` holding the repository's remote lock (in-process and flock): clones
        and fetches of one repository run one at a time."""
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with self._remote_lock(url):
            return _call_with_flock(lock_dir / f"{self.slug(url)}.lock", fn)

    def ensure(self, url: str, branch: str | None = None) -> Path:
        """Clone ``url`` if the cache lacks it, else fetch (only ``branch`` when given)
        unless this instance fetched it in the last ``fetch_max_age`` seconds.

        Blocking; takes the repository's remote lock itself.
        """
        validate_repository(url)
        path = self.repo_path(url)
        if not (path / "HEAD").is_file():

            def clone_once() -> None:
                if not (path / "HEAD").is_file():  # another caller's clone may have won
                    self._clone(url, path)

            self._with_remote_lock(url, clone_once)
            return path
        key = f"{path.name}:{branch or '*'}"
        age = time.monotonic() - self._fetched_at.get(key, float("-inf"))
        if age > self.settings.fetch_max_age:
            self.fetch(url, branch)
        return path

    def fetch(self, url: str, branch: str | None = None) -> None:
        """Bring ``refs/remotes/origin/*`` up to date (pruning deleted branches), or only
        ``refs/remotes/origin/<branch>``: the remote gathers one branch per agent, and a
        worktree or a conflict check needs just the base, so fetching everything would
        make every push cost more than the last.

        One fetch of a repository at a time; a caller that waited while a fetch of the
        same refs began and ended after it asked is served by that fetch (its refs are
        at least as new as when it asked), so a crowd waiting on one base pays one fetch.
        """
        asked = time.monotonic()
        key = f"{self.slug(url)}:{branch or '*'}"

        def once() -> None:
            if self._fetched_at.get(key, float("-inf")) >= asked:
                return  # a fetch that began after we asked has ended meanwhile
            began = time.monotonic()
            self._fetch(url, branch)
            self._fetched_at[key] = began

        self._with_remote_lock(url, once)

    def _fetch(self, url: str, branch: str | None) -> None:
        runner = self.runner(url, network=True)
        if branch is None:
            args = ("fetch", "--quiet", "--no-write-fetch-head", "--prune", "--no-tags", "origin")
        else:
            args = (
                "fetch",
                "--quiet",
                "--no-write-fetch-head",
                "--no-tags",
                "origin",
                f"+refs/heads/{branch}:refs/remotes/origin/{branch}",
            )
        try:
            runner.run(*args)
        except GitCommandError as exc:
            if branch is not None and "couldn't find remote ref" in str(exc).lower():
                return  # the caller checks the ref and names the missing branch
            raise classify_remote_error(url, exc) from exc

    def _clone(self, url: str, path: Path) -> None:
        # Clone into a scratch directory and rename: a cache directory that exists is
        # always complete, and a failed clone leaves nothing behind.
        scratch = self.root / f".clone-{path.name}-{uuid.uuid4().hex[:8]}"
        log.info("cloning %s into the cache", redact(url))
        try:
            self.tool_runner().run("init", "--quiet", "--bare", str(scratch))
            runner = GitRunner(scratch, timeout=self.settings.network_timeout)
            runner.run("remote", "add", "origin", url)
            try:
                runner.run("fetch", "--quiet", "--no-tags", "origin")
            except GitCommandError as exc:
                raise classify_remote_error(url, exc) from exc
            scratch.rename(path)
            self._fetched_at[f"{path.name}:*"] = time.monotonic()
        finally:
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)

    def has_ref(self, url: str, ref: str) -> bool:
        return self.commit_of(url, ref) is not None

    def commit_of(self, url: str, ref: str) -> str | None:
        """The commit ``ref`` names in the cache, or None: one git process where
        ``has_ref`` then ``rev`` took two."""
        result = self.runner(url).run(
            "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", ok=(0, 1)
        )
        return (result.stdout.strip() or None) if result.status == 0 else None

    def rev(self, url: str, ref: str) -> str:
        return self.runner(url).out("rev-parse", "--verify", f"{ref}^{{commit}}")


def _call_with_flock(path: Path, fn: Callable[..., T], *args: Any) -> T:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fn(*args)
    finally:
        os.close(fd)
