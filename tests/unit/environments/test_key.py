"""The cache key: what joins it (and so rebuilds) and what does not."""

from __future__ import annotations

import pytest

from shared.environments.declaration import parse_mosaic
from shared.environments.key import (
    cache_key,
    glob_regex,
    image_tag,
    matching,
    repository_slug,
)
from shared.gitread import TreeEntry

pytestmark = pytest.mark.unit

DECL = parse_mosaic(b'setup = ["make deps"]\ninputs = ["requirements*.txt", "**/package.json"]\n')


def entry(path: str, oid: str = "a" * 40) -> TreeEntry:
    return TreeEntry(path, "100644", oid)


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("requirements*.txt", "requirements-dev.txt", True),
        ("requirements*.txt", "sub/requirements.txt", False),  # * stays in one directory
        ("**/package.json", "package.json", True),
        ("**/package.json", "web/app/package.json", True),
        ("src/**", "src/a/b.py", True),
        ("pyproject.toml", "pyproject.toml", True),
        ("pyproject.toml", "pyproject.toml.bak", False),
        ("a?.txt", "ab.txt", True),
        ("a?.txt", "a/.txt", False),
    ],
)
def test_globs(pattern: str, path: str, hit: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is hit


def test_matching_is_sorted_and_filtered() -> None:
    found = matching(
        [entry("web/package.json"), entry("requirements.txt"), entry("README.md")], DECL.inputs
    )
    assert [e.path for e in found] == ["requirements.txt", "web/package.json"]


def test_key_changes_with_what_the_build_depends_on() -> None:
    base = cache_key(DECL, [entry("requirements.txt")], base_image_id="sha256:1")
    assert base == cache_key(DECL, [entry("requirements.txt")], base_image_id="sha256:1")
    changed_input = cache_key(DECL, [entry("requirements.txt", "b" * 40)], base_image_id="sha256:1")
    extra_input = cache_key(
        DECL, [entry("requirements.txt"), entry("package.json")], base_image_id="sha256:1"
    )
    other_base = cache_key(DECL, [entry("requirements.txt")], base_image_id="sha256:2")
    other_decl = cache_key(
        parse_mosaic(DECL.raw + b"\n# comment\n"),
        [entry("requirements.txt")],
        base_image_id="sha256:1",
    )
    context = cache_key(DECL, [], base_image_id=None, dockerfile_oid="c" * 40, context_tree="d")
    other_context = cache_key(
        DECL, [], base_image_id=None, dockerfile_oid="c" * 40, context_tree="e"
    )
    keys = [base, changed_input, extra_input, other_base, other_decl, context, other_context]
    assert len(set(keys)) == len(keys)


def test_tag_and_slug() -> None:
    assert repository_slug("Org_Name--My.Repo") == "org-name-my-repo"
    assert repository_slug("___") == "repository"
    assert image_tag("demo", "0123456789abcdef" * 4) == "mosaic-env/demo:0123456789ab"
