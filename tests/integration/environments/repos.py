"""Real git repositories for environment tests: a bare "cache" repository, as gitops
keeps one, with commits made from plain file maps."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


class Repo:
    """A work clone that commits and pushes into ``bare``; ``bare`` is what is read."""

    def __init__(self, root: Path, name: str = "demo") -> None:
        self.bare = root / name
        self.work = root / f"{name}-work"
        _git(root, "init", "-q", "--bare", "-b", "main", str(self.bare))
        _git(root, "init", "-q", "-b", "main", str(self.work))

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        """Write (or, for None, delete) files, commit, push; the new commit id."""
        for path, content in files.items():
            target = self.work / path
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        _git(self.work, "add", "-A")
        _git(self.work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)
        _git(self.work, "push", "-q", str(self.bare), "main")
        return _git(self.work, "rev-parse", "HEAD")
