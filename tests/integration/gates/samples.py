"""A sample Python repository for gate tests, with defects that each gate catches.

``build_sample(root, defects)`` makes a git repository (optionally pushed to a bare
remote, so it has ``origin/main``) whose committed base is clean under every gate;
``apply_defect`` then changes the working tree the way an agent's bad change would.
Gate commands in ``.mosaic/gates.toml`` call the project venv's tools by absolute path,
so the tests do not depend on ``PATH``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import agent_repository

BIN = Path(sys.executable).parent
PY = BIN / "python"
FAST = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1"
"""pytest loads every plugin installed in the venv otherwise (seconds per run)."""

DEFECTS = {
    "type": "typecheck",
    "lint": "lint",
    "failing-test": "tests",
    "low-coverage": "coverage",
    "build": "build",
}
"""Each defect and the gate that must reject it."""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def gates_toml(mypy_cache: Path | None = None, *, only_tests: bool = False) -> str:
    """The sample's gate commands (``only_tests``: the tests gate alone, no detection).

    The AI review is turned off (these tests have no model; test_reviewer covers it).
    """
    tests = f'tests = "{FAST} {PY} -m pytest -q tests"'
    if only_tests:
        return f"detect = false\ntimeout = 60\n\n[gates]\n{tests}\n"
    cache = f" --cache-dir {mypy_cache}" if mypy_cache else ""
    return (
        "timeout = 60\n\n[gates]\n"
        f'typecheck = "{BIN}/mypy --strict{cache} calc"\n'
        f'lint = "{BIN}/ruff check --no-cache calc tests"\n'
        f"{tests}\n"
        f'build = "{PY} build.py"\n'
        "ai-review = false\n\n"
        "[gates.coverage]\n"
        f'command = "{FAST} {PY} -m coverage run --source=calc -m pytest -q tests && '
        f'{PY} -m coverage report"\n'
        "threshold = 85\n"
    )


FILES = {
    "pyproject.toml": (
        '[project]\nname = "calc"\nversion = "0.1.0"\n\n'
        '[tool.pytest.ini_options]\naddopts = "-p no:cacheprovider"\n\n'
        '[tool.ruff]\nline-length = 100\n\n[tool.ruff.lint]\nselect = ["E", "F"]\n'
    ),
    "calc/__init__.py": '"""A tiny calculator."""\n',
    "calc/ops.py": (
        '"""Operations."""\n\n\n'
        "def add(a: int, b: int) -> int:\n    return a + b\n\n\n"
        "def mul(a: int, b: int) -> int:\n    return a * b\n"
    ),
    "calc/VERSION": "0.1.0\n",
    "tests/__init__.py": "",
    "tests/test_ops.py": (
        "from calc.ops import add, mul\n\n\n"
        "def test_add() -> None:\n    assert add(2, 3) == 5\n\n\n"
        "def test_mul() -> None:\n    assert mul(2, 3) == 6\n"
    ),
    "build.py": (
        '"""The build: the version file must be a release number."""\n\n'
        "import re\nimport sys\nfrom pathlib import Path\n\n"
        'version = Path("calc/VERSION").read_text().strip()\n'
        'if not re.fullmatch(r"\\d+\\.\\d+\\.\\d+", version):\n'
        '    sys.exit(f"build failed: calc/VERSION is not a release number: {version!r}")\n'
        'print(f"built calc {version}")\n'
    ),
    ".gitignore": "__pycache__/\n.coverage\n",
}


def gitops_worktree(root: Path, source: Path, name: str) -> Path:
    """An agent repository laid out as gitops makes them, branched from ``source``'s ``main``.

    The gates read only such repositories (``shared.agentrepo``): a cache repository
    ``root/repos/<name>`` (bare, ``origin`` = ``source``, fetched) and the agent's own
    repository ``root/repos/<name>_worktrees/agent-<name>-t`` on ``mosaic/agent-<name>``.
    """
    cache = root / "repos" / name
    git(root, "init", "-q", "--bare", str(cache))
    git(cache, "remote", "add", "origin", str(source))
    git(cache, "fetch", "-q", "origin")
    return agent_repository(cache, f"agent-{name}-t", name)


def build_sample(
    root: Path, *, gates: str | None, remote: bool = True, name: str = "sample"
) -> tuple[Path, Path | None]:
    """(a gitops worktree of the clean sample, its bare remote when ``remote``)."""
    seed = root / f"{name}-seed"
    git(root, "init", "-q", "-b", "main", str(seed))
    for path, text in FILES.items():
        target = seed / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if gates is not None:
        (seed / ".mosaic").mkdir()
        (seed / ".mosaic/gates.toml").write_text(gates)
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "sample")
    if not remote:
        return gitops_worktree(root, seed, name), None
    bare = root / f"{name}.git"
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    git(seed, "push", "-q", str(bare), "main")
    return gitops_worktree(root, bare, name), bare


def apply_defect(work: Path, defect: str) -> None:
    """Change the working tree the way a bad agent change would (one gate's worth)."""
    if defect == "type":
        (work / "calc/label.py").write_text(
            '"""Labels."""\n\n\ndef label(n: int) -> str:\n    return n\n'
        )
    elif defect == "lint":
        ops = work / "calc/ops.py"
        ops.write_text("import os\n" + ops.read_text())
    elif defect == "failing-test":
        (work / "tests/test_more.py").write_text(
            "from calc.ops import add\n\n\ndef test_add_again() -> None:\n"
            "    assert add(2, 2) == 5, 'two and two make four'\n"
        )
    elif defect == "low-coverage":
        body = "".join(
            f"\n\ndef branch_{i}(x: int) -> int:\n    if x > {i}:\n        return x - {i}\n"
            f"    return x + {i}\n"
            for i in range(12)
        )
        (work / "calc/extra.py").write_text('"""Untested."""' + body)
    elif defect == "build":
        (work / "calc/VERSION").write_text("next\n")
    else:
        raise ValueError(defect)


PLAIN = {
    "shapes.py": (
        '"""Rectangles."""\n\n\n'
        "def area(w: int, h: int) -> int:\n    return w * h\n\n\n"
        "def perimeter(w: int, h: int) -> int:\n    return 2 * (w + h)\n"
    ),
    "test_shapes.py": (
        "from shapes import area, perimeter\n\n\n"
        "def test_area() -> None:\n    assert area(2, 3) == 6\n\n\n"
        "def test_perimeter() -> None:\n    assert perimeter(1, 1) == 4\n"
    ),
}
"""A Python project of plain files: no pyproject.toml, no gates.toml, a pytest test."""

BROKEN_PERIMETER = (
    '"""Rectangles."""\n\n\n'
    "def area(w: int, h: int) -> int:\n    return w * h\n\n\n"
    "def perimeter(w: int, h: int) -> int:\n    return w + h\n"
)
"""An agent's bad change to ``shapes.py``: ``test_perimeter`` fails."""


def build_plain(
    root: Path,
    *,
    name: str = "plain",
    files: dict[str, str] | None = None,
    only: dict[str, str] | None = None,
) -> Path:
    """A gitops worktree of a committed repository of ``PLAIN`` plus ``files`` (or of
    ``only``); the repository is its ``origin``."""
    work = root / f"{name}-seed"
    git(root, "init", "-q", "-b", "main", str(work))
    for path, text in (only if only is not None else {**PLAIN, **(files or {})}).items():
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "plain")
    return gitops_worktree(root, work, name)
