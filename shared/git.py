"""The one way any service runs git: nothing an agent wrote can make it run a program.

An agent owns every byte of its repository (``shared.agentrepo``), its ``.git`` included:
config with ``core.fsmonitor``, hooks, a clean filter that ``.gitattributes`` names, a
diff driver. Git started in its directory would follow that ``.git`` and run those
programs on the host, as the service's user. So every git command of every service
goes through ``Git``:

- the repository is named explicitly (``--git-dir``, and ``--work-tree`` when there is
  one); a ``.git`` found in a work tree is never followed. An agent's own repository is
  read only as ``shared.agentrepo`` says (its structure checked first, its files seen
  through the cache's git dir and a scratch index);
- the command line (which beats every config file) turns off hooks, fsmonitor, signing
  programs, the ``ext::``/``fd::`` transports, global attributes and submodule
  recursion, and blanks every program-naming key (filters, diff and merge drivers,
  textconv, ``core.sshCommand``, ``core.gitProxy``, pager, editor, askpass, credential
  helpers, upload/receive-pack) that repository-level config sets; repository config
  that includes another file is refused;
- the environment has no system config (``GIT_CONFIG_NOSYSTEM``), no system attributes
  (``GIT_ATTR_NOSYSTEM``), no prompt, no external diff, no pager; readers (gates,
  environments) also get no global config and a throwaway ``HOME``.

See docs/git.md ("Git on the host").
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shared import secrets_rules
from shared.errors import MosaicError
from shared.memo import Memo

WORKTREES_SUFFIX = "_worktrees"
"""A cache repository ``<slug>`` keeps its agents' worktrees in ``<slug>_worktrees/``."""

BASE_CONFIG: tuple[str, ...] = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.askPass=",
    "core.pager=cat",
    "core.attributesFile=/dev/null",
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
    "diff.ignoreSubmodules=dirty",
    "status.submoduleSummary=false",
    "diff.external=",
    "diff.noprefix=false",
    "diff.mnemonicPrefix=false",
)
"""``-c`` options of every git command. ``diff.ignoreSubmodules``
keeps git from starting a git in a nested repository an agent planted (whose config
this runner has not seen)."""

_BASE_ENV: dict[str, str] = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_ATTR_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "",
    "SSH_ASKPASS": "",
    "GIT_PAGER": "cat",
    "GIT_EDITOR": "true",
    "GIT_EXTERNAL_DIFF": "",
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_NO_REPLACE_OBJECTS": "1",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
}

_DROPPED_ENV = re.compile(
    r"^GIT_(DIR|WORK_TREE|INDEX_FILE|COMMON_DIR|OBJECT_DIRECTORY|ALTERNATE_OBJECT_DIRECTORIES"
    r"|NAMESPACE|CONFIG|CONFIG_PARAMETERS|CONFIG_COUNT|CONFIG_KEY_\d+|CONFIG_VALUE_\d+"
    r"|EXEC_PATH|TEMPLATE_DIR|ATTR_SOURCE|REPLACE_REF_BASE|CEILING_DIRECTORIES"
    r"|DISCOVERY_ACROSS_FILESYSTEM)$|^(EDITOR|VISUAL|PAGER)$"
)
"""Variables of the service's environment that would point git at another repository
or add config: never passed through (``GIT_SSH_COMMAND`` and the operator's global
config stay: they are how gitops is given credentials for its remotes)."""

# Keys that name a program, as (pattern, the value that neutralises it). Only values
# from repository scopes (local, worktree) are overridden: global config is the
# operator's, and system config is not read at all.
_PROGRAM_KEYS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^filter\..+\.(clean|smudge|process)$"), ""),
    (re.compile(r"^filter\..+\.required$"), "false"),
    (re.compile(r"^diff\..+\.(textconv|command)$"), ""),
    (re.compile(r"^diff\.external$"), ""),
    (re.compile(r"^merge\..+\.driver$"), "false"),
    (re.compile(r"^core\.sshcommand$"), "ssh"),
    (re.compile(r"^core\.gitproxy$"), ""),
    (re.compile(r"^core\.(fsmonitor|hookspath|askpass|attributesfile)$"), ""),
    (re.compile(r"^remote\..+\.uploadpack$"), "git-upload-pack"),
    (re.compile(r"^remote\..+\.receivepack$"), "git-receive-pack"),
    (re.compile(r"^remote\..+\.(proxy|vcs)$"), ""),
    (re.compile(r"^(core\.pager|core\.editor|sequence\.editor|gpg(\..+)?\.program)$"), "true"),
    (re.compile(r"^pager\..+$"), "false"),
)
_CREDENTIAL_HELPER = re.compile(r"^credential\.(.+\.)?helper$")
_INCLUDES = re.compile(r"^include(if\..+)?\.path$")
_REPOSITORY_SCOPES = frozenset({"local", "worktree"})
_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
EMPTY_TREE = _EMPTY_TREE
"""The id of the empty tree (diffs of a repository without commits start from it)."""


_OVERRIDES_KEPT = 4096
"""How many repositories' overrides ``_OverridesCache`` keeps (oldest dropped first)."""

FileStamp = tuple[int, int, int, int] | None
"""A config file as (inode, size, mtime ns, ctime ns), or None when it does not exist:
any write changes the ctime, which no one can set back."""


def _stamp(path: Path) -> FileStamp:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


def _config_files(git_dir: Path, env: Mapping[str, str]) -> list[Path]:
    """Every file ``git config --list`` reads for ``git_dir`` in ``env`` (no system
    config: ``GIT_CONFIG_NOSYSTEM``): the repository's and worktree's, the global ones."""
    files = [git_dir / "config", git_dir / "config.worktree"]
    try:
        common = (git_dir / "commondir").read_text().strip()
    except OSError:
        common = ""
    if common:
        shared = (git_dir / common).resolve()
        files += [shared / "config", shared / "config.worktree"]
    if "GIT_CONFIG_GLOBAL" in env:
        files.append(Path(env["GIT_CONFIG_GLOBAL"]))
    else:
        home = Path(env.get("HOME", "/nonexistent"))
        xdg = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
        files += [home / ".gitconfig", xdg / "git" / "config"]
    return files


class _OverridesCache:
    """Each repository's ``-c`` overrides, kept while none of its config files changed.

    Listing a repository's config is one git process per ``Git`` object, and gitops
    makes several per request: 6 of the 57 git processes of a no-op agent. The listing
    depends only on the files ``_config_files`` names (includes are refused in
    repository config, and a listing with an include anywhere is never kept, as an
    included file's change would not show), so their stamps decide whether it still holds.
    """

    def __init__(self) -> None:
        self._kept: dict[tuple[object, ...], tuple[tuple[FileStamp, ...], tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def key(self, git_dir: Path, env: Mapping[str, str]) -> tuple[object, ...]:
        steering = tuple(sorted((k, v) for k, v in env.items() if k.startswith("GIT_CONFIG")))
        return (str(git_dir), env.get("HOME"), env.get("XDG_CONFIG_HOME"), steering)

    def get(self, key: tuple[object, ...], stamps: tuple[FileStamp, ...]) -> tuple[str, ...] | None:
        with self._lock:
            found = self._kept.get(key)
        return found[1] if found is not None and found[0] == stamps else None

    def put(
        self, key: tuple[object, ...], stamps: tuple[FileStamp, ...], overrides: tuple[str, ...]
    ) -> None:
        with self._lock:
            self._kept.pop(key, None)
            self._kept[key] = (stamps, overrides)
            while len(self._kept) > _OVERRIDES_KEPT:
                del self._kept[next(iter(self._kept))]


_OVERRIDES = _OverridesCache()


class GitError(MosaicError):
    """A git command failed in a way its caller did not expect."""

    code = "git_failed"


class GitTimeoutError(GitError):
    """A git command ran past its time limit and was killed (retryable: the same command
    on a less busy host or remote may finish). The one timeout error of every git runner."""

    code = "timeout"
    retryable = True


class GitTamperedError(GitError):
    """An agent repository's ``.git`` (or a repository's config) is not what gitops made,
    or not what host-side git may safely read: refused."""

    code = "worktree_tampered"


@dataclass(frozen=True)
class GitResult:
    """What a git command said (``stdout`` decoded, one trailing newline dropped)."""

    status: int
    raw: bytes
    stderr: str

    @property
    def stdout(self) -> str:
        text = self.raw.decode("utf-8", errors="replace")
        return text[:-1] if text.endswith("\n") else text


def reader_env() -> dict[str, str]:
    """The environment of host-side readers (gates, environments): the base variables,
    no global config and a throwaway ``HOME``, nothing else of the service's."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": tempfile.gettempdir(),
        "GIT_CONFIG_GLOBAL": "/dev/null",
        **_BASE_ENV,
    }


def operator_env() -> dict[str, str]:
    """The environment of gitops, which talks to remotes: the service's environment
    (``HOME`` with the operator's global config and SSH keys, ``SSH_AUTH_SOCK``) minus
    every variable that steers git, plus the base variables."""
    kept = {k: v for k, v in os.environ.items() if not _DROPPED_ENV.match(k)}
    return {**kept, **_BASE_ENV}


class Git:
    """Runs git on one explicitly named repository with the safety options on (blocking).

    ``git_dir`` is the repository (a bare cache, or an agent's ``.git`` once
    ``shared.agentrepo.verify`` passed), or None for commands outside any repository (``init``,
    ``check-ref-format``). ``env`` (from ``reader_env`` or ``operator_env``) is the
    whole environment, plus ``extra_env``.
    """

    def __init__(
        self,
        git_dir: Path | None,
        work_tree: Path | None = None,
        *,
        cwd: Path | None = None,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.git_dir = git_dir
        self.work_tree = work_tree
        self.timeout = timeout
        self._env = {**(reader_env() if env is None else env), **(extra_env or {})}
        self._cwd = cwd or work_tree or git_dir or Path(tempfile.gettempdir())
        self._overrides: tuple[str, ...] | None = None

    def _prefix(self, overrides: Sequence[str]) -> list[str]:
        command = ["git"]
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
            self._overrides = () if self.git_dir is None else self._list_overrides(self.git_dir)
        return self._overrides

    def _list_overrides(self, git_dir: Path) -> tuple[str, ...]:
        """The overrides from a listing of ``git_dir``'s config, or the kept ones while
        its config files are unchanged (``_OverridesCache``); stamped before listing, so
        a write during the listing makes the next call list again."""
        key = _OVERRIDES.key(git_dir, self._env)
        stamps = tuple(_stamp(path) for path in _config_files(git_dir, self._env))
        kept = _OVERRIDES.get(key, stamps)
        if kept is not None:
            return kept
        listing = self._exec(
            [*self._prefix(()), "config", "--list", "--show-scope", "-z"], None, None, None
        )
        entries = parse_config_listing(listing.raw.decode("utf-8", "replace"))
        refuse_includes(entries, git_dir)
        overrides = program_overrides(entries)
        if not any(_INCLUDES.match(name) for _, name, _ in entries):
            _OVERRIDES.put(key, stamps, overrides)
        return overrides

    def run(
        self,
        *args: str,
        ok: Sequence[int] = (0,),
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> GitResult:
        """Run ``git <args>``; raise ``GitError`` unless the status is in ``ok``."""
        command = [*self._prefix(self._repository_overrides()), *args]
        result = self._exec(command, env, timeout, stdin)
        if result.status not in ok:
            where = f" in {self.git_dir}" if self.git_dir else ""
            raise GitError(
                f"git {args[0]}{where} failed ({result.status}): "
                f"{redact(result.stderr.strip())[:800]}"
            )
        return result

    def out(self, *args: str, timeout: float | None = None) -> str:
        """Run ``git <args>`` and return its standard output (without the last newline)."""
        return self.run(*args, timeout=timeout).stdout

    def _exec(
        self,
        command: list[str],
        env: Mapping[str, str] | None,
        timeout: float | None,
        stdin: bytes | None,
    ) -> GitResult:
        limit = timeout or self.timeout
        try:
            done = subprocess.run(
                command,
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                env={**self._env, **(env or {})},
                cwd=self._cwd,
                timeout=limit,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise GitTimeoutError(f"git {_verb(command)} took longer than {limit}s") from exc
        except OSError as exc:
            raise GitError(f"git {_verb(command)} could not start: {exc}", retryable=True) from exc
        return GitResult(done.returncode, done.stdout, done.stderr.decode("utf-8", "replace"))


def _verb(command: Sequence[str]) -> str:
    for part in command[1:]:
        if part == "-c" or part.startswith(("-c", "--git-dir", "--work-tree")) or "=" in part:
            continue
        return part
    return "?"


_CREDENTIALS_IN_URL = re.compile(r"(?<=://)[^/@\s]+@")


def redact(text: str) -> str:
    """Text of git we show (errors, output): credentials embedded in URLs
    (``https://user:token@host``) dropped, and whatever the secret rules find masked."""
    return secrets_rules.redact(_CREDENTIALS_IN_URL.sub("***@", text))


def parse_config_listing(listing: str) -> list[tuple[str, str, str]]:
    """Split ``git config --list --show-scope -z`` output into (scope, key, value)."""
    parts = listing.split("\0")
    entries = []
    for scope, item in zip(parts[0::2], parts[1::2], strict=False):
        key, _, value = item.partition("\n")
        entries.append((scope, key.lower(), value))
    return entries


def program_overrides(entries: Sequence[tuple[str, str, str]]) -> tuple[str, ...]:
    """``key=value`` overrides for program-naming keys set in repository scopes.

    Credential helpers are a list that an empty value resets: a repository's helper is
    dropped by a reset followed by the operator's (global) helpers again, in order.
    """
    overrides: dict[str, str] = {}
    helpers: dict[str, list[str]] = {}
    for scope, key, value in entries:
        if _CREDENTIAL_HELPER.match(key):
            helpers.setdefault(key, [])
            if scope in _REPOSITORY_SCOPES:
                overrides[key] = ""
            else:
                helpers[key].append(value)
            continue
        if scope not in _REPOSITORY_SCOPES:
            continue
        for pattern, neutral in _PROGRAM_KEYS:
            if pattern.match(key):
                overrides[key] = neutral
                break
    result: list[str] = []
    for key, value in overrides.items():
        result.append(f"{key}={value}")
        if _CREDENTIAL_HELPER.match(key):
            result += [f"{key}={kept}" for kept in helpers[key] if kept]
    return tuple(result)


def refuse_includes(entries: Sequence[tuple[str, str, str]], git_dir: Path) -> None:
    """Repository config that pulls in another file is refused: gitops never writes one,
    and a blanked key could be set again, under another name, in the included file."""
    bad = sorted({key for scope, key, _ in entries if scope in _REPOSITORY_SCOPES
                  and _INCLUDES.match(key)})  # fmt: skip
    if bad:
        raise GitTamperedError(
            f"the config of {git_dir} includes other files ({', '.join(bad)}): refusing to run git"
        )


def nested_repositories(git: Git, tree: str | None = None) -> list[str]:
    """Paths of gitlinks (in the index, or in ``tree``) that have a ``.git`` in the work tree.

    Such a repository is the agent's: its config was never read here, and porcelain
    commands (``add -A``, ``status``) start a git inside it to see whether it is dirty,
    which would run the filters it declares. Callers refuse (or skip) such a worktree.
    """
    if git.work_tree is None:
        return []
    return [path for path in _gitlinks(git, tree) if os.path.lexists(git.work_tree / path / ".git")]


_FULL_ID = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_GITLINKS: Memo[tuple[str, str], tuple[str, ...]] = Memo(1024)
"""The gitlink paths of a commit or tree named by its full id, which can never change:
every commit check and removal asked again for the same base commit's."""


def _gitlinks(git: Git, tree: str | None) -> tuple[str, ...]:
    """The gitlink paths of ``tree`` (a tree-ish), or of the index when None."""
    if tree and _FULL_ID.match(tree):
        return _GITLINKS.remembered((str(git.git_dir), tree), lambda: _list_gitlinks(git, tree))
    return _list_gitlinks(git, tree)


def _list_gitlinks(git: Git, tree: str | None) -> tuple[str, ...]:
    listing = (
        git.run("ls-tree", "-r", "-z", "--full-tree", tree).raw
        if tree
        else git.run("ls-files", "--stage", "-z").raw
    )
    paths = []
    for record in listing.split(b"\0"):
        meta, _, raw_path = record.partition(b"\t")
        if meta.startswith(b"160000"):
            paths.append(raw_path.decode("utf-8", "surrogateescape"))
    return tuple(paths)


def refuse_nested_repositories(git: Git, tree: str | None = None) -> None:
    """Raise ``GitTamperedError`` naming each ``<path>/.git`` ``nested_repositories`` finds."""
    nested = nested_repositories(git, tree)
    if nested:
        shown = ", ".join(f"{path}/.git" for path in nested[:10])
        raise GitTamperedError(
            f"a git repository inside the worktree ({shown}): git would run what its config "
            "names, so gitops does not touch it; remove that .git (a repository inside the "
            "worktree is committed as a bare link, never its files)"
        )
