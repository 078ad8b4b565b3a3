"""An agent's own repository, and the one way the host looks at it.

Layout (docs/git.md, "Repository layout")::

    <repos>/<slug>/                          bare cache (gitops only): refs/remotes/origin/*,
                                             refs/heads/mosaic/agent-<id> (pushed from)
    <repos>/<slug>_worktrees/
        agent-<agentId>-<taskId>/            the agent's repository, mounted at /workspace
            .git/                            a real repository the agent owns
                objects/info/alternates      <repos>/<slug>/objects (read-only in sandboxes)

gitops makes the agent's repository before any sandbox exists (``create``); from then on
the agent owns every byte of it and the host never writes into it. What the host needs
from it is read in two ways only:

- its refs (``HEAD``, the branch), through ``shared.git.Git`` on its ``.git`` (explicit
  ``--git-dir``, program-naming keys blanked, includes refused), after ``verify``
  checked the structure gitops made is still there: ``.git`` a real directory with no
  symlink anywhere under it (a link could point a host read at another repository) and
  ``objects/info/alternates`` exactly the cache's objects;
- its files, through ``files_view``: git with the CACHE as ``--git-dir``, the agent's
  directory as ``--work-tree``, a scratch index outside it, and either a scratch object
  directory (readers) or the cache's (gitops, whose commits must end up there). The
  agent's ``.git`` config, hooks and index are never read by that git at all.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shared.git import WORKTREES_SUFFIX, Git, GitTamperedError

GitFactory = Callable[[Path | None, Path | None, Mapping[str, str]], Git]
"""Makes the caller's runner: ``(git_dir, work_tree, extra_env) -> Git`` (gitops' raises
its own errors and has the operator's environment; readers use ``shared.git.Git``)."""

AGENT_BRANCH_PREFIX = "mosaic/agent-"

MAX_GIT_ENTRIES = 200_000
"""``verify`` walks ``.git``; an agent repository is small (its objects are the cache's)."""


def directory_name(agent_id: str, task_id: str) -> str:
    """The agent repository's directory, beside the others of its repository cache
    (the seed's ``agent-<agentId>-<taskId>``)."""
    return f"agent-{agent_id}-{task_id}"


@dataclass(frozen=True)
class AgentRepo:
    """One agent's repository (``path``) and the cache it borrows objects from."""

    path: Path
    cache: Path

    @property
    def git_dir(self) -> Path:
        return self.path / ".git"

    @property
    def shared_objects(self) -> Path:
        """The cache's object directory: the agent's alternates, read-only in sandboxes."""
        return (self.cache / "objects").absolute()

    @property
    def own_objects(self) -> Path:
        return self.git_dir / "objects"

    @classmethod
    def at(cls, path: Path) -> AgentRepo:
        """The agent repository at ``path``, its cache derived from where it lies."""
        return cls(path, cache_repository(path))


def cache_repository(path: Path) -> Path:
    """The cache an agent repository belongs to, from where it lies:
    ``<repos>/<slug>_worktrees/<name>`` belongs to ``<repos>/<slug>``."""
    parent = path.parent
    if not parent.name.endswith(WORKTREES_SUFFIX) or parent.name == WORKTREES_SUFFIX:
        raise GitTamperedError(
            f"{path} is not in a gitops worktree directory (<repo>{WORKTREES_SUFFIX}/)"
        )
    repo = parent.parent / parent.name.removesuffix(WORKTREES_SUFFIX)
    if repo.is_symlink() or not (repo / "HEAD").is_file():
        raise GitTamperedError(f"{path}: no repository cache at {repo}")
    return repo


def shared_objects_of(path: Path) -> Path:
    """The cache objects an agent repository at ``path`` borrows (for read-only mounts)."""
    return AgentRepo.at(path).shared_objects


def alternates_text(repo: AgentRepo) -> str:
    """What gitops writes to ``objects/info/alternates`` (``verify`` accepts only a line
    naming the same directory)."""
    return f"{repo.shared_objects}\n"


def create(
    repo: AgentRepo,
    *,
    branch: str,
    start: str,
    base_branch: str,
    base: str,
    identity: tuple[str, str],
    make: GitFactory,
) -> None:
    """Make the agent's repository (trusted: no sandbox exists yet).

    ``git init`` without templates (no sample hooks), the cache's objects as alternates,
    ``refs/remotes/origin/<base_branch>`` at ``base``, ``branch`` at ``start`` (the base,
    or the cache's agent branch when the agent had one), HEAD on it, files checked out,
    and the agent identity as ``user.name``/``user.email``.
    """
    init = ("init", "--quiet", "--template=", f"--initial-branch={branch}", str(repo.path))
    make(None, None, {}).run(*init)  # HEAD on the branch from the start
    info = repo.own_objects / "info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "alternates").write_text(alternates_text(repo), encoding="utf-8")
    with (repo.git_dir / "config").open("a", encoding="utf-8") as config:
        config.write(identity_section(*identity))  # the file git init just wrote: ours
    git = make(repo.git_dir, repo.path, {})
    refs = f"update refs/remotes/origin/{base_branch} {base}\nupdate refs/heads/{branch} {start}\n"
    git.run("update-ref", "--stdin", stdin=refs.encode())
    git.run("reset", "--hard", "--quiet")


def identity_section(name: str, email: str) -> str:
    """A ``[user]`` section of git config naming ``name`` and ``email``, each quoted and
    escaped as git's config syntax reads it (one process fewer than ``git config`` each:
    a repository is made per agent)."""

    def quoted(value: str) -> str:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'

    return f"[user]\n\tname = {quoted(name)}\n\temail = {quoted(email)}\n"


def verify(repo: AgentRepo) -> None:
    """Raise ``GitTamperedError`` unless the structure gitops made is intact (module doc)."""
    git_dir = repo.git_dir
    if repo.path.is_symlink() or not repo.path.is_dir():
        raise GitTamperedError(f"{repo.path} is not a directory (refusing)")
    try:
        mode = os.lstat(git_dir).st_mode
    except OSError as exc:
        raise GitTamperedError(f"{git_dir} is missing (refusing)") from exc
    if not stat.S_ISDIR(mode):
        raise GitTamperedError(f"{git_dir} is not a directory (refusing)")
    seen = 0
    for dirpath, dirnames, filenames in os.walk(git_dir):
        for name in (*dirnames, *filenames):
            seen += 1
            entry = os.path.join(dirpath, name)
            if os.path.islink(entry):
                raise GitTamperedError(f"{entry} is a symlink (refusing to read this .git)")
        if seen > MAX_GIT_ENTRIES:
            raise GitTamperedError(f"{git_dir} holds more than {MAX_GIT_ENTRIES} entries")
    alternates = repo.own_objects / "info" / "alternates"
    try:
        written = alternates.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GitTamperedError(f"{alternates} cannot be read (refusing)") from exc
    # one line naming the cache's objects (compared resolved: the host path may hold a
    # link, such as a home under /tmp on macOS; that part is the host's, not the agent's)
    line = written.removesuffix("\n")
    if "\n" in line or not line or Path(line).resolve() != repo.shared_objects.resolve():
        raise GitTamperedError(
            f"{alternates} is not the cache's objects gitops wrote there (refusing)"
        )
    if not (git_dir / "HEAD").is_file():
        raise GitTamperedError(f"{git_dir}/HEAD is missing (refusing)")


def head_branch(repo: AgentRepo) -> str | None:
    """The branch HEAD is on (``None``: detached, as in the middle of a rebase), read
    from the file itself: no git runs."""
    try:
        text = (repo.git_dir / "HEAD").read_text(encoding="utf-8")[:4096]
    except (OSError, UnicodeDecodeError):
        return None
    line = text.strip()
    if "\n" in line or not line.startswith("ref: refs/heads/"):
        return None
    return line.removeprefix("ref: refs/heads/")


def reader(repo: AgentRepo, make: GitFactory) -> Git:
    """git on the agent's ``.git`` without a work tree, for reading refs (call ``verify``
    first). Its config is read and its program-naming keys blanked by ``shared.git``."""
    return make(repo.git_dir, None, {})


def resolve(git: Git, ref: str) -> str | None:
    """The commit ``ref`` names in ``git``'s repository, or ``None``."""
    found = git.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", ok=(0, 1, 128))
    return found.stdout.strip() or None if found.status == 0 else None


@contextmanager
def files_view(
    repo: AgentRepo, head: str | None, make: GitFactory, *, into_cache: bool = False
) -> Iterator[Git]:
    """git on the agent's files as they are: ``--git-dir`` the cache, ``--work-tree`` the
    agent's directory, a scratch index holding ``head``'s tree (empty without one).

    ``into_cache``: objects git writes (``add``) go into the cache, and ``head`` must be
    there already (gitops imports it first). Otherwise they go to a scratch directory and
    the agent's own objects are read too, so a reader writes nothing anywhere.
    """
    with tempfile.TemporaryDirectory(prefix="mosaic-view-") as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch, "index"))}
        if not into_cache:
            objects = Path(scratch, "objects")
            (objects / "pack").mkdir(parents=True)
            (objects / "info").mkdir()
            env["GIT_OBJECT_DIRECTORY"] = str(objects)
            env["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = os.pathsep.join(
                (str(repo.shared_objects), str(repo.own_objects.absolute()))
            )
        git = make(repo.cache, repo.path, env)
        if head is not None:
            git.run("read-tree", head)
        yield git


def snapshot_tree(view: Git) -> str:
    """The tree of the agent's files as they are (``.gitignore`` honoured), from a
    ``files_view``; its objects are written where the view writes them."""
    view.run("add", "-A")
    return view.out("write-tree")


def is_agent_repository(path: Path) -> bool:
    """Whether ``path`` looks like an agent repository (a real ``.git`` directory)."""
    try:
        return stat.S_ISDIR(os.lstat(path / ".git").st_mode) and not path.is_symlink()
    except OSError:
        return False
