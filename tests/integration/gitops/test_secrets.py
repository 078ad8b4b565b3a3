"""Secret scan on commit: real secrets are blocked, ordinary code and allowlisted fixtures pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.gitops import commits, worktrees
from services.gitops.errors import SecretFoundError
from services.gitops.handlers import error_reply
from services.gitops.repos import RepoCache
from services.gitops.secrets import Allowlist, Finding
from shared.messages.gitops import CommitMade
from tests.conftest import git
from tests.integration.gitops.conftest import commit_req, push_to_remote, wt_req

pytestmark = pytest.mark.integration

# Built from pieces so this file itself does not read as a leaked key.
ANTHROPIC = "sk-ant-" + "api03-" + "Zx9Qw7Lm2Np4Rt6Vy8Ab1Cd3Ef5Gh7Ij9Kl0Mn2Op4Qr6St8Uv"
SK48 = "sk-" + "Qw7Lm2Np4Rt6Vy8Ab1Cd3Ef5Gh7Ij9Kl0Mn2Op4Qr6St8Uv0"
AWS_ID = "AKIA" + "Z7QW3RT5YU8IO2PL"
AWS_SECRET = "Zq8Wm3Rt6Yp9Lk2Jh5Gf8Ds1" + "Aq4Zx7Cv0Bn3Mm6N"
GITHUB = "ghp_" + "Zq8Wm3Rt6Yp9Lk2Jh5Gf8Ds1Aq4Zx7Cv0Bn3"
PRIVATE_KEY = (
    "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MbPT\n"
    "-----END RSA PRIVATE KEY-----\n"
)
PASSWORD = "Hunter2-Very-Secret-42"
PAT = "github_pat_" + "11ABCDEFG0Zq8Wm3Rt6Yp9_" + "Lk2Jh5Gf8Ds1Aq4Zx7Cv0Bn3Mm6NqWeRt" * 2
GOOGLE = "AIza" + "SyZq8Wm3Rt6Yp9Lk2Jh5Gf8Ds1Aq4Zx7Cv0"

CASES = {
    "anthropic": ("settings.py", f'API_KEY = "{ANTHROPIC}"\n', [ANTHROPIC]),
    "sk48": ("client.py", f"call({SK48!r})\n", [SK48]),
    "aws": (
        "deploy/aws.py",
        f'aws_access_key_id = "{AWS_ID}"\naws_secret_access_key = "{AWS_SECRET}"\n',
        [AWS_ID, AWS_SECRET],
    ),
    "github": ("ci.sh", f"export GH={GITHUB}\n", [GITHUB]),
    "private_key": ("keys/id_rsa", PRIVATE_KEY, ["MIIEowIBAAKCAQEA0Z3VS5JJ"]),
    "password": ("config/db.yaml", f'db:\n  password: "{PASSWORD}"\n', [PASSWORD]),
    # The misses of the security review (issue 18): unquoted, in config formats.
    "github_pat_env": (".env", f"GITHUB_TOKEN={PAT}\n", [PAT]),
    "google_yaml": ("config/maps.yaml", f"maps:\n  key: {GOOGLE}\n", [GOOGLE]),
    "password_dockerfile": ("Dockerfile", f"FROM alpine\nENV DB_PASSWORD={PASSWORD}\n", [PASSWORD]),
    "password_shell": ("run.sh", f"#!/bin/sh\npassword={PASSWORD} ./start\n", [PASSWORD]),
    "aws_secret_alone": ("notes.txt", f"rotate {AWS_SECRET} soon\n", [AWS_SECRET]),
    "nul_byte": ("data.bin", f"\x00\x01head\x00er\nTOKEN={GITHUB}\n", [GITHUB]),
}

ORDINARY = '''"""Ordinary code that must not trip the scanner."""
import hashlib
import uuid

COMMIT = "3f786850e387550fdab836ed7e6dc881de23001b"
SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
REQUEST_ID = "123e4567-e89b-12d3-a456-426614174000"
password = os.environ["DB_PASSWORD"]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_id() -> str:
    return str(uuid.uuid4())
'''


async def _commit_file(cache: RepoCache, remote: Path, agent: str, name: str, text: str,
                       **kwargs: object) -> CommitMade:  # fmt: skip
    ready = await worktrees.create_worktree(cache, wt_req(remote, agent))
    target = Path(ready.path or "") / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return await commits.commit(cache, commit_req(remote, agent, **kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize("case", sorted(CASES))
async def test_secrets_block_the_commit(cache: RepoCache, remote_repo: Path, case: str) -> None:
    name, text, values = CASES[case]
    head = git(remote_repo, "rev-parse", "main")
    with pytest.raises(SecretFoundError) as caught:
        await _commit_file(cache, remote_repo, f"s-{case.replace('_', '-')}", name, text, yolo=True)
    exc = caught.value
    assert exc.code == "secret_found"
    assert exc.paths == (name,)
    assert all(line >= 1 and rule for _, line, rule in exc.findings)
    if case in {"anthropic", "sk48"}:
        assert {rule for _, _, rule in exc.findings} & {"anthropic-api-key", "sk-api-key"}
    reply = error_reply(CommitMade, exc)
    wire = reply.to_bytes().decode()
    assert reply.findings
    assert reply.error is not None
    assert reply.error.paths == (name,)
    assert f"{name}:" in reply.error.message
    for value in values:
        assert value not in wire
        assert value[:16] not in wire
    # nothing committed; the change is still in the worktree, unstaged
    path = cache.worktrees_root(str(remote_repo)) / f"agent-s-{case.replace('_', '-')}-t1"
    assert git(path, "rev-parse", "HEAD") == head
    assert git(path, "diff", "--cached", "--name-only") == ""


async def test_ordinary_code_passes(cache: RepoCache, remote_repo: Path) -> None:
    made = await _commit_file(cache, remote_repo, "plain", "src/ids.py", ORDINARY)
    assert made.commit
    assert made.error is None


async def test_base_branch_allowlist_excuses_fixtures(
    cache: RepoCache, remote_repo: Path, tmp_path: Path
) -> None:
    push_to_remote(
        remote_repo,
        tmp_path,
        {".mosaic/secrets-allowlist": "# test fixtures\ntests/fixtures/**\nconfig/demo.yaml:2\n"},
    )
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "fx"))
    root = Path(ready.path or "")
    (root / "tests/fixtures").mkdir(parents=True)
    (root / "tests/fixtures/fake_keys.py").write_text(f'FAKE = "{ANTHROPIC}"\n')
    (root / "config").mkdir()
    (root / "config/demo.yaml").write_text(f'demo:\n  password: "{PASSWORD}"\n')
    made = await commits.commit(cache, commit_req(remote_repo, "fx"))
    assert made.commit
    assert made.error is None


async def test_agent_cannot_allowlist_its_own_secret(cache: RepoCache, remote_repo: Path) -> None:
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "sneaky"))
    root = Path(ready.path or "")
    (root / ".mosaic").mkdir(exist_ok=True)
    (root / ".mosaic/secrets-allowlist").write_text("**\n")
    (root / "leak.py").write_text(f'KEY = "{ANTHROPIC}"  # pragma: allowlist secret\n')
    with pytest.raises(SecretFoundError) as caught:
        await commits.commit(cache, commit_req(remote_repo, "sneaky"))
    assert caught.value.paths == ("leak.py",)


async def test_secret_in_commit_message_is_blocked(cache: RepoCache, remote_repo: Path) -> None:
    with pytest.raises(SecretFoundError):
        await _commit_file(cache, remote_repo, "msg", "a.txt", "hello\n", message=f"use {SK48}")


async def test_nothing_to_commit(cache: RepoCache, remote_repo: Path) -> None:
    ready = await worktrees.create_worktree(cache, wt_req(remote_repo, "idle"))
    made = await commits.commit(cache, commit_req(remote_repo, "idle"))
    assert made.nothing_to_commit
    assert made.commit is None
    assert made.head == ready.base_commit  # the branch holds no work at all


@pytest.mark.unit
def test_allowlist_format() -> None:
    allow = Allowlist.parse(
        "# comment\n\ntests/fixtures/*   # trailing comment\n"
        "docs/setup.md:12\nexamples/*.env secret-keyword base64-high-entropy-string\n"
    )
    assert allow.allows(Finding("tests/fixtures/deep/k.py", 3, "aws-access-key"))
    assert allow.allows(Finding("docs/setup.md", 12, "private-key"))
    assert not allow.allows(Finding("docs/setup.md", 13, "private-key"))
    assert allow.allows(Finding("examples/dev.env", 1, "secret-keyword"))
    assert not allow.allows(Finding("examples/dev.env", 1, "aws-access-key"))
    assert not allow.allows(Finding("src/app.py", 1, "secret-keyword"))
