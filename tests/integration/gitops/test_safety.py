"""Nothing an agent writes may make gitops run a program (hooks, fsmonitor, filters, .git)."""

from __future__ import annotations

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
    url = str(remote_repo)
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "evil"))
    root = Path(ready.path or "")
    repo = cache.repo_path(url)
    markers = []
    # hooks in the shared repository
    for hook in ("pre-commit", "commit-msg", "post-commit", "pre-push", "reference-transaction",
                 "post-checkout", "post-index-change"):  # fmt: skip
        script, marker = evil_program(tmp_path, hook)
        (repo / "hooks").mkdir(exist_ok=True)
        (repo / "hooks" / hook).write_bytes(script.read_bytes())
        (repo / "hooks" / hook).chmod(0o755)
        markers.append(marker)
    # worktree-scoped config: fsmonitor, a clean filter and a textconv driver
    fsmonitor, fs_marker = evil_program(tmp_path, "fsmonitor")
    clean, clean_marker = evil_program(tmp_path, "clean")
    textconv, tc_marker = evil_program(tmp_path, "textconv")
    markers += [fs_marker, clean_marker, tc_marker]
    git(tmp_path, "--git-dir", str(repo), "config", "extensions.worktreeConfig", "true")
    admin = Path(git(tmp_path, "--git-dir", str(repo), "worktree", "list", "--porcelain")
                 and next(p for p in (repo / "worktrees").iterdir()))  # fmt: skip
    config = admin / "config.worktree"
    for key, value in (
        ("core.fsmonitor", str(fsmonitor)),
        ("filter.evil.clean", str(clean)),
        ("filter.evil.smudge", str(clean)),
        ("filter.evil.required", "true"),
        ("diff.evil.textconv", str(textconv)),
    ):
        git(tmp_path, "config", "--file", str(config), key, value)
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
    ran = [m.name for m in markers if m.exists()]
    assert ran == []


async def test_git_file_pointing_elsewhere_is_refused(
    cache: RepoCache, remote_repo: Path, tmp_path: Path
) -> None:
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "tamper"))
    root = Path(ready.path or "")
    # the agent builds its own repository with a hook and fsmonitor, and points .git at it
    fake = tmp_path / "fake"
    git(tmp_path, "init", "-q", str(fake))
    hook, hook_marker = evil_program(tmp_path, "fake-hook")
    fsmonitor, fs_marker = evil_program(tmp_path, "fake-fsmonitor")
    (fake / ".git/hooks/pre-commit").write_bytes(hook.read_bytes())
    (fake / ".git/hooks/pre-commit").chmod(0o755)
    git(fake, "config", "core.fsmonitor", str(fsmonitor))
    (root / ".git").write_text(f"gitdir: {fake / '.git'}\n")
    (root / "work.txt").write_text("work\n")

    with pytest.raises(WorktreeTamperedError):
        await commits.commit(cache, commit_req(remote_repo, "tamper"))
    with pytest.raises(WorktreeTamperedError):
        await conflicts.push(cache, push_req(remote_repo, "tamper"))
    with pytest.raises(WorktreeTamperedError):
        await worktrees.create_worktree(cache, wt_req(remote_repo, "tamper"))
    # removal still works (it names our admin dir, never the agent's .git) and salvages
    removed = await worktrees.remove_worktree(cache, rm_req(remote_repo, "tamper"))
    assert removed.removed
    assert removed.salvage_branch == "mosaic/salvage/tamper"
    assert (
        git(cache.repo_path(str(remote_repo)), "show", "mosaic/salvage/tamper:work.txt") == "work"
    )
    assert not hook_marker.exists()
    assert not fs_marker.exists()


async def test_git_directory_instead_of_file_is_refused(
    cache: RepoCache, remote_repo: Path, tmp_path: Path
) -> None:
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "gitdir"))
    root = Path(ready.path or "")
    (root / ".git").unlink()
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n\tfsmonitor = /bin/false\n")
    with pytest.raises(WorktreeTamperedError):
        await commits.commit(cache, commit_req(remote_repo, "gitdir"))


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
