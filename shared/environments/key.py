"""The cache key of an environment and the image tag it is built under.

The key is a hash of everything the build depends on and that Mosaic can see without
building: the declaration file, the content of every file its ``inputs`` globs match at
the base commit (by git blob id, a hash of the content), the base image's id, and for a
Dockerfile build the Dockerfile and the whole context directory (by tree id: a Dockerfile
may ``COPY`` any of it). The rest of the repository does not join the key of a
``setup`` build: that is what ``inputs`` are for.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from shared.environments.declaration import Declaration
from shared.gitread import TreeEntry

IMAGE_REPOSITORY = "mosaic-env"
KEY_VERSION = "mosaic-env/1"
"""Bumped whenever the generated build changes, so old images are not reused for it."""

LABEL_KEY = "mosaic.environment"
LABEL_SOURCE = "mosaic.environment.source"
LABEL_REPOSITORY = "mosaic.environment.repository"
LABEL_CREATED = "mosaic.environment.created"


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob over paths from the repository root: ``*`` and ``?`` stay within one
    directory, ``**`` crosses directories (``**/package.json`` matches at any depth)."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(out) + "$")


def matching(entries: Iterable[TreeEntry], patterns: Iterable[str]) -> list[TreeEntry]:
    """The entries any pattern matches, sorted by path."""
    regexes = [glob_regex(p) for p in patterns]
    found = [e for e in entries if any(r.match(e.path) for r in regexes)]
    return sorted(found, key=lambda e: e.path)


def repository_slug(name: str) -> str:
    """A Docker repository path component from the cache directory's name."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return (slug or "repository")[:64].rstrip("-")


def cache_key(
    declaration: Declaration,
    inputs: Iterable[TreeEntry],
    *,
    base_image_id: str | None,
    dockerfile_oid: str | None = None,
    context_tree: str | None = None,
) -> str:
    """The full hex key (sha256)."""
    digest = hashlib.sha256()

    def part(label: str, value: str | bytes) -> None:
        data = value.encode() if isinstance(value, str) else value
        digest.update(f"{label}:{len(data)}:".encode())
        digest.update(data)

    part("version", KEY_VERSION)
    part("source", declaration.source)
    part("declaration", declaration.raw)
    for entry in sorted(inputs, key=lambda e: e.path):
        part("input", f"{entry.path}\0{entry.mode}\0{entry.oid}")
    part("base", base_image_id or "")
    part("dockerfile", dockerfile_oid or "")
    part("context", context_tree or "")
    return digest.hexdigest()


def image_tag(slug: str, key: str) -> str:
    """``mosaic-env/<slug>:<first 12 of the key>``."""
    return f"{IMAGE_REPOSITORY}/{slug}:{key[:12]}"
