"""Reading the declaration at the base commit, with real git, and refusing what cannot run.

No Docker here: what needs an image is in tests/docker/test_environments.py.
"""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest
from redis.asyncio import Redis

from shared.environments import (
    NO_ENVIRONMENT,
    DeclarationError,
    Environments,
    NeedsDockerError,
    read_declaration,
)
from shared.environments.build import BuildRequest, setup_context
from shared.gitread import BATCH_OBJECTS, CommitView, GitReadError
from tests.integration.environments.repos import Repo

pytestmark = pytest.mark.integration

TOML = ".mosaic/environment.toml"


def environments(redis: Redis, unique: str, kind: str = "bwrap") -> Environments:
    return Environments(
        redis=redis,
        prefix=f"t{unique}",
        docker_client=None,
        sandbox_kind=kind,
        default_image="mosaic/sandbox:latest",
    )


def test_the_declaration_is_read_at_the_base_not_at_later_commits(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    base = repo.commit({TOML: 'setup = ["echo base"]\n', "app.py": "x = 1\n"})
    later = repo.commit({TOML: 'setup = ["echo changed by the agent"]\n'})
    (repo.work / TOML).write_text('setup = ["echo uncommitted"]\n')
    at_base = read_declaration(CommitView(repo.bare, base))
    assert at_base is not None
    assert at_base.setup == ("echo base",)
    at_later = read_declaration(CommitView(repo.bare, later))
    assert at_later is not None
    assert at_later.setup == ("echo changed by the agent",)


def test_the_mosaic_file_wins_over_devcontainer_and_nothing_means_none(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    both = repo.commit(
        {TOML: 'image = "a:1"\n', ".devcontainer/devcontainer.json": '{"image": "b:1"}'}
    )
    only_dev = repo.commit({TOML: None})
    nothing = repo.commit({".devcontainer/devcontainer.json": None, "README.md": "x\n"})
    first = read_declaration(CommitView(repo.bare, both))
    second = read_declaration(CommitView(repo.bare, only_dev))
    assert first is not None
    assert first.image == "a:1"
    assert second is not None
    assert second.image == "b:1"
    assert read_declaration(CommitView(repo.bare, nothing)) is None


def test_reading_runs_no_program_the_repository_config_names(tmp_path: Path) -> None:
    """The attack: the repository's config names an fsmonitor, hooks, a smudge filter and
    a textconv, and its attributes apply them; reading must run none of them."""
    repo = Repo(tmp_path)
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.sh"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\ncat\n")
    evil.chmod(0o755)
    commit = repo.commit(
        {
            ".gitattributes": "* filter=evil diff=evil\n",
            TOML: 'setup = ["true"]\n',
            "hooks-bait.txt": "x\n",
        }
    )
    for key, value in [
        ("core.fsmonitor", str(evil)),
        ("core.hooksPath", str(tmp_path)),
        ("filter.evil.smudge", str(evil)),
        ("filter.evil.clean", str(evil)),
        ("filter.evil.required", "true"),
        ("diff.evil.textconv", str(evil)),
    ]:
        subprocess.run(["git", "--git-dir", str(repo.bare), "config", key, value], check=True)
    view = CommitView(repo.bare, commit)
    assert read_declaration(view) is not None
    files = view.files()
    assert {f.path for f in files} == {".gitattributes", TOML, "hooks-bait.txt"}
    contents = dict(view.blobs(f.oid for f in files))
    assert b"x\n" in contents.values()
    assert view.tree_id(".mosaic") is not None
    assert not marker.exists()


def test_a_commit_that_is_not_a_full_id_is_refused(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.commit({"a": "1"})
    with pytest.raises(GitReadError):
        CommitView(repo.bare, "HEAD")
    with pytest.raises(GitReadError):
        CommitView(repo.bare, "--output=/tmp/x")


async def test_a_declared_environment_needs_docker_and_says_so(
    tmp_path: Path, redis: Redis, unique: str
) -> None:
    repo = Repo(tmp_path)
    commit = repo.commit({TOML: 'setup = ["apt-get install -y python3-pytest"]\n'})
    for kind in ("bwrap", "none"):
        with pytest.raises(NeedsDockerError) as caught:
            await environments(redis, unique, kind).prepare(repo.bare, commit)
        message = caught.value.message
        assert TOML in message
        assert "docker" in message
        assert f"MOSAIC_SANDBOX={kind}" in message
        assert not caught.value.retryable


async def test_without_a_declaration_nothing_changes_for_any_sandbox(
    tmp_path: Path, redis: Redis, unique: str
) -> None:
    repo = Repo(tmp_path)
    commit = repo.commit({"app.py": "x = 1\n"})
    assert await environments(redis, unique).prepare(repo.bare, commit) is NO_ENVIRONMENT
    assert await environments(redis, unique).prepare(None, None) is NO_ENVIRONMENT


async def test_a_broken_declaration_fails_before_anything_is_built(
    tmp_path: Path, redis: Redis, unique: str
) -> None:
    repo = Repo(tmp_path)
    commit = repo.commit(
        {".devcontainer/devcontainer.json": '{"image": "x", "features": {"f:1": {}}}'}
    )
    with pytest.raises(DeclarationError, match=r"features: .*f:1"):
        await environments(redis, unique, "docker").prepare(repo.bare, commit)


def test_many_blobs_come_back_in_order_across_batches(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    count = BATCH_OBJECTS * 2 + 7
    commit = repo.commit({f"files/f{n:04}.txt": f"content {n}\n" for n in range(count)})
    view = CommitView(repo.bare, commit)
    entries = view.files("files")
    assert len(entries) == count
    contents = [data for _, data in view.blobs(e.oid for e in entries)]
    assert contents == [f"content {n}\n".encode() for n in range(count)]


def test_the_build_context_is_the_base_tree_with_modes_and_links(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    (repo.work / "bin").mkdir()
    (repo.work / "bin" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (repo.work / "bin" / "run.sh").chmod(0o755)
    (repo.work / "link").symlink_to("bin/run.sh")
    commit = repo.commit({TOML: 'setup = ["true"]\nenv = { A = "b c" }\n', "app.py": "x\n"})
    (repo.work / "app.py").write_text("changed after the commit\n")
    declaration = read_declaration(CommitView(repo.bare, commit))
    assert declaration is not None
    request = BuildRequest(
        declaration=declaration,
        view=CommitView(repo.bare, commit),
        tag="mosaic-env/t:1",
        labels={},
        base_image="base:1",
        ca_bundle=b"-----BEGIN CERTIFICATE-----\n",
    )
    with setup_context(request, "base:1", "agent") as context, tarfile.open(fileobj=context) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["src/bin/run.sh"].mode == 0o755
        assert members["src/app.py"].mode == 0o644
        assert members["src/link"].issym()
        assert members["src/link"].linkname == "bin/run.sh"
        assert tar.extractfile("src/app.py").read() == b"x\n"  # type: ignore[union-attr]
        assert tar.extractfile("mosaic-ca.crt") is not None
        setup_env = tar.extractfile("mosaic-setup.env").read().decode()  # type: ignore[union-attr]
        assert "export A='b c'" in setup_env
        assert "FROM base:1" in tar.extractfile("Dockerfile").read().decode()  # type: ignore[union-attr]
