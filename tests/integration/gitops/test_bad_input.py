"""Bad input gets a clear, typed error and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.gitops import worktrees
from services.gitops.errors import GitOpsError
from services.gitops.repos import RepoCache
from services.gitops.validation import validate_repository
from shared.repository import check_repository
from tests.conftest import git
from tests.integration.gitops.conftest import wt_req

pytestmark = pytest.mark.integration


def leftovers(cache: RepoCache) -> list[str]:
    """Everything in the cache except lock files."""
    if not cache.root.exists():
        return []
    return sorted(p.name for p in cache.root.iterdir() if p.name != ".locks")


@pytest.mark.parametrize(
    ("repository", "code"),
    [
        ("/nonexistent/nowhere.git", "repo_not_found"),
        ("file:///nonexistent/nowhere.git", "repo_not_found"),
        ("https://127.0.0.1:9/x.git", "unreachable"),
        ("ext::sh -c touch% /tmp/mosaic-pwned", "invalid_repository"),
        ("ext::sh", "invalid_repository"),
        ("fd::17", "invalid_repository"),
        ("http://127.0.0.1:9/x.git", "invalid_repository"),
        ("-uhttps://x", "invalid_repository"),
        ("ssh://-oProxyCommand=touch%20x/y", "invalid_repository"),
        ("relative/path", "invalid_repository"),
    ],
)
async def test_bad_repository(cache: RepoCache, repository: str, code: str) -> None:
    with pytest.raises(GitOpsError) as caught:
        await worktrees.create_worktree(cache, wt_req(repository, "a1"))
    assert caught.value.code == code, caught.value.message
    assert leftovers(cache) == []
    assert not Path("/tmp/mosaic-pwned").exists()


@pytest.mark.parametrize("branch", ["a..b", "-evil", "--upload-pack=x", "bad branch", "x.lock", ""])
async def test_bad_branch(cache: RepoCache, remote_repo: Path, branch: str) -> None:
    with pytest.raises(GitOpsError) as caught:
        await worktrees.create_worktree(cache, wt_req(remote_repo, "a1", base=branch))
    assert caught.value.code == "invalid_branch"
    assert leftovers(cache) == []


@pytest.mark.parametrize("agent", ["../up", "-x", "a/b", "a..b", "has space"])
async def test_bad_agent_id(cache: RepoCache, remote_repo: Path, agent: str) -> None:
    with pytest.raises(GitOpsError) as caught:
        await worktrees.create_worktree(cache, wt_req(remote_repo, agent))
    assert caught.value.code == "invalid_request"
    assert leftovers(cache) == []


async def test_missing_base_branch(cache: RepoCache, remote_repo: Path) -> None:
    with pytest.raises(GitOpsError) as caught:
        await worktrees.create_worktree(cache, wt_req(remote_repo, "a1", base="no-such-branch"))
    assert caught.value.code == "branch_not_found"
    # the clone stays (it is valid and shared), but no worktree and no agent branch
    repo = cache.repo_path(str(remote_repo))
    assert not cache.worktrees_root(str(remote_repo)).exists() or not any(
        cache.worktrees_root(str(remote_repo)).iterdir()
    )
    assert git(repo, "branch", "--list") == ""


@pytest.mark.unit
@pytest.mark.parametrize(
    "url",
    [
        "/srv/git/repo.git",
        "file:///srv/git/repo.git",
        "https://example.invalid/org/repo.git",
        "ssh://git@example.invalid/org/repo.git",
        "git@example.invalid:org/repo.git",
    ],
)
def test_allowed_repository_forms(url: str) -> None:
    assert validate_repository(url)


@pytest.mark.unit
@pytest.mark.parametrize(
    "url",
    ["ssh://-oProxyCommand=touch%20x/y", "https://bot:tok3n@example.invalid/r.git", " /srv/r"],
)
def test_the_http_edge_refuses_what_gitops_refuses(url: str) -> None:
    """One rule (shared.repository): a URL the gateway accepted used to fail only in gitops."""
    with pytest.raises(ValueError, match="must"):
        check_repository(url)
    with pytest.raises(GitOpsError, match="repository") as caught:
        validate_repository(url)
    assert "tok3n" not in caught.value.message
