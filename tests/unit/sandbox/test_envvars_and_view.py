"""Pure pieces of the sandbox layer: the environment rule and bwrap's view of the host."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from shared.sandbox.base import SandboxError, SandboxSpec
from shared.sandbox.bwrap import _unreadable, view_args
from shared.sandbox.envvars import checked_extra, command_env, looks_secret
from shared.sandbox.settings import SandboxSettings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "name",
    ["ANTHROPIC_API_KEY", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "apikey"],
)
def test_secret_looking_names(name: str) -> None:
    assert looks_secret(name)
    with pytest.raises(SandboxError, match="secret"):
        checked_extra([(name, "x")])


@pytest.mark.parametrize("name", ["PIP_DISABLE_PIP_VERSION_CHECK", "NODE_ENV", "KEYBOARD"])
def test_ordinary_names_pass(name: str) -> None:
    assert not looks_secret(name)
    assert checked_extra([(name, "1")]) == {name: "1"}


@pytest.mark.parametrize("name", ["HOME", "TMPDIR", "MOSAIC_AGENT_ID", "MOSAIC_ANYTHING"])
def test_the_sandbox_names_are_its_own(name: str) -> None:
    with pytest.raises(SandboxError, match="sets"):
        checked_extra([(name, "x")])


@pytest.mark.parametrize(("name", "value"), [("1BAD", "x"), ("A-B", "x"), ("OK", "a\x00b")])
def test_malformed_variables_are_refused(name: str, value: str) -> None:
    with pytest.raises(SandboxError, match="invalid"):
        checked_extra([(name, value)])


def test_path_may_be_extended_and_nothing_else_leaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-x")
    spec = SandboxSpec("a", "t", tmp_path, env=(("PATH", "/opt/tool/bin:/usr/bin"),))
    env = command_env(spec, path="/usr/bin", home="/home/agent", tmpdir="/tmp")
    assert env["PATH"] == "/opt/tool/bin:/usr/bin"
    assert env["MOSAIC_AGENT_ID"] == "a"
    assert "ANTHROPIC_API_KEY" not in env


def test_world_unreadable_entries_are_found_not_entered(tmp_path: Path) -> None:
    (tmp_path / "open").mkdir()
    (tmp_path / "open" / "readable").write_text("x")
    (tmp_path / "open" / "private").write_text("x")
    os.chmod(tmp_path / "open" / "private", 0o600)
    (tmp_path / "closed").mkdir()
    (tmp_path / "closed" / "inside").write_text("x")
    os.chmod(tmp_path / "closed", 0o700)
    os.symlink("/etc/shadow", tmp_path / "open" / "link")
    found = set(_unreadable([str(tmp_path)]))
    assert found == {tmp_path / "open" / "private", tmp_path / "closed"}


def at(args: list[str], run: list[str]) -> int:
    """Where ``run`` occurs contiguously in ``args`` (-1 if not)."""
    return next((i for i in range(len(args)) if args[i : i + len(run)] == run), -1)


def test_view_hides_data_dirs_under_shown_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSAIC_HOME", "/etc")  # a shown directory, so it must be covered
    args = view_args(SandboxSettings(), network=False, tmp_size_mb=8)
    shown = at(args, ["--ro-bind", "/etc", "/etc"])
    covered = at(args, ["--tmpfs", "/etc", "--remount-ro", "/etc"])
    assert 0 <= shown < covered  # covered after being shown, so the cover wins
    assert "--unshare-net" in args
    assert "--unshare-net" not in view_args(SandboxSettings(), network=True, tmp_size_mb=8)


def test_an_older_bwrap_gets_unsized_tmpfs() -> None:
    sized = view_args(SandboxSettings(), network=False, tmp_size_mb=8)
    assert at(sized, ["--size", str(8 << 20), "--tmpfs", "/tmp"]) >= 0
    unsized = view_args(SandboxSettings(), network=False, tmp_size_mb=None)
    assert "--size" not in unsized
    assert at(unsized, ["--tmpfs", "/tmp"]) >= 0


def test_view_hides_the_services_virtualenv(monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path("/opt").is_dir():
        pytest.skip("no /opt on this host")
    monkeypatch.setattr(sys, "prefix", "/opt")  # a virtualenv living in a shown directory
    args = view_args(SandboxSettings(), network=False, tmp_size_mb=8)
    assert at(args, ["--tmpfs", "/opt", "--remount-ro", "/opt"]) > at(
        args, ["--ro-bind", "/opt", "/opt"]
    )
