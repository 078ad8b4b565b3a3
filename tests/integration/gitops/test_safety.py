"""Nothing an agent writes may make gitops run a program (hooks, fsmonitor, filters, .git),
and gitops reads an agent repository only in the structure it made."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from services.gitops import commits, conflicts, worktrees
from services.gitops.errors import WorktreeTamperedError
from services.gitops.repos import RepoCache
from shared.git import program_overrides
from tests.conftest import git
from tests.integration.gitops.conftest import commit_req, push_req, rm_req, wt_req

pytestmark = pytest.mark.integration


def evil_program(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """An executable that leaves a marker file when anyone runs it."""
    marker = tmp_path / f"{name}.ran"
    script = tmp_path / f"{name}.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\ncat\n")
    script.chmod(0o755)
    return script, marker


async def test_planted_hooks_fsmonitor_filters_never_run(
    cache: RepoCache, remote_repo: Path, tmp_path: Path
) -> None:
    """The agent owns its repository's config and hooks: host-side commit, push and
    removal (salvage) read its files through the cache's git dir and its refs with
    every program-naming key blanked, so none of them runs."""
    url = str(remote_repo)
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "evil"))
    root = Path(ready.path or "")
    repo = cache.repo_path(url)
    markers = []
    hooks = ("pre-commit", "commit-msg", "post-commit", "pre-push", "reference-transaction",
             "post-checkout", "post-index-change", "pre-receive", "update",
             "post-update")  # fmt: skip
    for where in (repo / "hooks", root / ".git" / "hooks"):  # the cache's and the agent's
        where.mkdir(exist_ok=True)
        for hook in hooks:
            script, marker = evil_program(tmp_path, f"{where.parent.name}-{hook}")
            (where / hook).write_bytes(script.read_bytes())
            (where / hook).chmod(0o755)
            markers.append(marker)
    fsmonitor, fs_marker = evil_program(tmp_path, "fsmonitor")
    clean, clean_marker = evil_program(tmp_path, "clean")
    textconv, tc_marker = evil_program(tmp_path, "textconv")
    markers += [fs_marker, clean_marker, tc_marker]
    for key, value in (
        ("core.fsmonitor", str(fsmonitor)),
        ("core.hooksPath", str(root / ".git" / "hooks")),
        ("filter.evil.clean", str(clean)),
        ("filter.evil.smudge", str(clean)),
        ("filter.evil.process", str(clean)),
        ("filter.evil.required", "true"),
        ("diff.evil.textconv", str(textconv)),
    ):
        git(tmp_path, "config", "--file", str(root / ".git" / "config"), key, value)
    (root / ".gitattributes").write_text("*.txt filter=evil diff=evil\n")
    (root / "notes.txt").write_text("agent notes\n")

    made = await commits.commit(cache, commit_req(remote_repo, "evil", message="notes"))
    assert made.commit
    assert made.error is None
    assert git(repo, "show", f"{made.commit}:notes.txt") == "agent notes"
    done = await conflicts.push(cache, push_req(remote_repo, "evil"))
    assert done.remote_branch == "mosaic/agent-evil"
    (root / "notes.txt").write_text("more, never committed\n")
    removed = await worktrees.remove_worktree(cache, rm_req(remote_repo, "evil"))
    assert removed.salvage_branch == "mosaic/salvage/evil"
    assert git(repo, "show", "mosaic/salvage/evil:notes.txt") == "more, never committed"
    ran = [m.name for m in markers if m.exists()]
    assert ran == []


async def test_config_that_includes_another_file_is_refused(
    cache: RepoCache, remote_repo: Path, tmp_path: Path
) -> None:
    """A key blanked on the command line could come back from an included file: gitops
    refuses to read refs of a repository whose config includes one (naming it), and
    removal still keeps the agent's files."""
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "incl"))
    root = Path(ready.path or "")
    fsmonitor, marker = evil_program(tmp_path, "included-fsmonitor")
    extra = tmp_path / "extra.config"
    extra.write_text(f"[core]\n\tfsmonitor = {fsmonitor}\n")
    with (root / ".git" / "config").open("a") as config:
        config.write(f"[include]\n\tpath = {extra}\n")
    (root / "work.txt").write_text("work\n")
    with pytest.raises(WorktreeTamperedError, match="include"):
        await commits.commit(cache, commit_req(remote_repo, "incl"))
    removed = await worktrees.remove_worktree(cache, rm_req(remote_repo, "incl"))
    assert removed.salvage_branch == "mosaic/salvage/incl"
    assert git(cache.repo_path(str(remote_repo)), "show", "mosaic/salvage/incl:work.txt") == "work"
    assert not marker.exists()


def _git_file_pointing_elsewhere(root: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake"
    git(tmp_path, "init", "-q", str(fake))
    shutil.rmtree(root / ".git")
    (root / ".git").write_text(f"gitdir: {fake / '.git'}\n")


def _git_symlink_to_another_repository(root: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake"
    git(tmp_path, "init", "-q", str(fake))
    shutil.rmtree(root / ".git")
    (root / ".git").symlink_to(fake / ".git")


def _symlink_inside_git(root: Path, tmp_path: Path) -> None:
    cache = Path((root / ".git/objects/info/alternates").read_text().strip()).parent
    (root / ".git" / "refs" / "cache").symlink_to(cache / "refs")


def _alternates_elsewhere(root: Path, tmp_path: Path) -> None:
    (tmp_path / "objects").mkdir()
    (root / ".git/objects/info/alternates").write_text(f"{tmp_path / 'objects'}\n")


@pytest.mark.parametrize(
    "tamper",
    [
        _git_file_pointing_elsewhere,
        _git_symlink_to_another_repository,
        _symlink_inside_git,
        _alternates_elsewhere,
    ],
)
async def test_a_repository_not_as_gitops_made_it_is_refused(
    cache: RepoCache, remote_repo: Path, tmp_path: Path, tamper: Callable[[Path, Path], None]
) -> None:
    """gitops reads an agent's refs only from the structure it made (a real ``.git``
    directory, no link anywhere in it, alternates exactly the cache's objects); anything
    else is refused, naming it, and removal keeps the agent's files all the same."""
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "tamper"))
    root = Path(ready.path or "")
    tamper(root, tmp_path)
    (root / "work.txt").write_text("work\n")
    refs_before = git(cache.repo_path(str(remote_repo)), "for-each-ref")

    with pytest.raises(WorktreeTamperedError, match=r"\.git|alternates"):
        await commits.commit(cache, commit_req(remote_repo, "tamper"))
    with pytest.raises(WorktreeTamperedError):
        await conflicts.push(cache, push_req(remote_repo, "tamper"))
    with pytest.raises(WorktreeTamperedError):
        await worktrees.create_worktree(cache, wt_req(remote_repo, "tamper"))
    assert git(cache.repo_path(str(remote_repo)), "for-each-ref") == refs_before
    removed = await worktrees.remove_worktree(cache, rm_req(remote_repo, "tamper"))
    assert removed.removed
    assert removed.salvage_branch == "mosaic/salvage/tamper"
    assert (
        git(cache.repo_path(str(remote_repo)), "show", "mosaic/salvage/tamper:work.txt") == "work"
    )
    assert not root.exists()


@pytest.mark.unit
def test_program_keys_from_repository_scopes_are_blanked() -> None:
    entries = [
        ("global", "filter.lfs.clean", "git-lfs clean -- %f"),
        ("local", "filter.evil.clean", "/tmp/x"),
        ("worktree", "diff.evil.textconv", "/tmp/y"),
        ("worktree", "merge.evil.driver", "/tmp/z"),
        ("local", "remote.origin.uploadpack", "/tmp/u"),
        ("local", "user.name", "someone"),
        ("global", "credential.helper", "store"),
        ("local", "credential.helper", "!sh -c 'id > /tmp/m'"),
        ("local", "core.sshcommand", "sh -c 'id > /tmp/m'"),
    ]
    assert program_overrides(entries) == (
        "filter.evil.clean=",
        "diff.evil.textconv=",
        "merge.evil.driver=false",
        "remote.origin.uploadpack=git-upload-pack",
        "credential.helper=",
        "credential.helper=store",
        "core.sshcommand=ssh",
    )
