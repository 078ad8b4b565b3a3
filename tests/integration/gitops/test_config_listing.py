"""A repository's config is listed once while it is unchanged, and again as soon as any
of its files changes (``shared.git._OverridesCache``): a program key an agent writes
after a listing is still blanked, however it writes it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.git import Git
from tests.conftest import git
from tests.integration.gitops.test_safety import evil_program

pytestmark = pytest.mark.integration


def listings(trace: Path) -> int:
    """How many ``git config --list`` ran, from a ``GIT_TRACE`` file."""
    if not trace.exists():
        return 0
    return sum("config --list" in line for line in trace.read_text().splitlines())


def repository(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    git(tmp_path, "init", "-q", str(root))
    (root / "file.txt").write_text("hello\n")
    git(root, "add", "file.txt")
    return root


def test_an_unchanged_config_is_listed_once(tmp_path: Path) -> None:
    root = repository(tmp_path)
    trace = tmp_path / "trace"
    for _ in range(3):  # a new runner each time, as gitops makes one per step
        Git(root / ".git", root, extra_env={"GIT_TRACE": str(trace)}).run("status", "--short")
    assert listings(trace) == 1


def test_a_key_written_in_place_after_a_listing_is_still_blanked(tmp_path: Path) -> None:
    root = repository(tmp_path)
    clean, marker = evil_program(tmp_path, "clean")
    (root / ".gitattributes").write_text("*.txt filter=evil\n")
    config = root / ".git" / "config"
    benign = f"\tclexn = {clean}\n"  # no key git knows: nothing to blank
    evil = f"\tclean = {clean}\n"
    with config.open("a") as handle:
        handle.write('[filter "evil"]\n' + benign)
    Git(root / ".git", root).run("add", "-A")
    before = os.stat(config)
    with config.open("r+") as handle:  # same size, same inode: only the content and ctime
        text = handle.read()
        handle.seek(0)
        handle.write(text.replace(benign, evil))
    after = os.stat(config)
    assert (after.st_size, after.st_ino) == (before.st_size, before.st_ino)
    (root / "file.txt").write_text("changed\n")
    Git(root / ".git", root).run("add", "-A")
    assert not marker.exists()


def test_a_config_with_an_include_is_listed_every_time(tmp_path: Path) -> None:
    # an included file can change without the including one changing: never kept
    root = repository(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    (home / "extra").write_text("[user]\n\tname = someone\n")
    (home / ".gitconfig").write_text(f"[include]\n\tpath = {home / 'extra'}\n")
    trace = tmp_path / "trace"
    env = {"GIT_CONFIG_GLOBAL": str(home / ".gitconfig"), "GIT_TRACE": str(trace)}
    for _ in range(2):
        Git(root / ".git", root, extra_env=env).run("status", "--short")
    assert listings(trace) == 2
