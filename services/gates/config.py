"""Which command each gate runs: ``.mosaic/gates.toml`` first, detection as fallback.

The file is read at the base commit, so an agent cannot weaken the gates that check
its own change. Format (every key optional)::

    timeout = 300                     # default seconds per gate
    detect = true                     # fill gates the file does not name by detection

    [gates]
    lint = "ruff check ."             # a command string...
    typecheck = false                 # ...or false: turned off (reported as skipped)
    ai-review = false                 # the AI review can only be turned off
    tests = { command = "pytest -q", timeout = 120 }
    build = { command = "make build", writable = true, tool = "make" }

    [gates.coverage]
    command = "coverage run -m pytest -q && coverage report"
    threshold = 85                    # percent; the default comes from settings
    pattern = 'TOTAL.*\\s(\\d+(?:\\.\\d+)?)%'  # first group = the figure (optional)

Gates fail closed: a gate of the profile with no command (nothing configured, nothing
detected) is failed as "not checked"; only ``false`` in the file turns one off.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from services.gates.errors import GateConfigError
from services.gates.profiles import MECHANICAL
from services.gates.repo import RepoView
from shared import gatesfile
from shared.gatesfile import GatesFile, GateSpec

CONFIG_PATH = gatesfile.GATES_FILE
_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
NPM_DEFAULT_TEST = 'echo "Error: no test specified" && exit 1'


@dataclass(frozen=True)
class GateCommand:
    """What one gate runs, and where the choice came from."""

    name: str
    command: str
    tool: str
    """The program (or ``python3 -m <module>``) whose absence means "not checked"."""
    timeout: float
    writable: bool = False
    threshold: float | None = None
    pattern: str | None = None
    source: str = "detected"


@dataclass(frozen=True)
class RepoGates:
    """Each gate's command, or why it has none, or that the repository turned it off."""

    commands: dict[str, GateCommand] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    """Gates that cannot run, and why: each one fails as "not checked"."""
    off: frozenset[str] = frozenset()
    """Gates turned off in gates.toml (``false``): the only ones reported as skipped."""
    coverage_threshold: float = 85.0
    kind: str = "unknown"


def first_tool(command: str) -> str:
    """The program a command line starts with (past ``VAR=value`` assignments).

    ``python3 -m mypy ...`` names ``python3 -m mypy``: the interpreter with the module.
    """
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        words = command.split()
    for at, word in enumerate(words):
        if "=" in word and not word.startswith(("/", ".")) and word.split("=")[0].isidentifier():
            continue
        rest = words[at + 1 : at + 3]
        if len(rest) == 2 and rest[0] == "-m" and _PYTHON.match(Path(word).name):
            return f"{word} -m {rest[1]}"
        return word
    return ""


def parse_gates_file(text: str) -> GatesFile:
    """Validate gates.toml text (the format lives in ``shared.gatesfile``, which gitops's
    pre-check reads too); ``GateConfigError`` names what is wrong."""
    try:
        return gatesfile.parse_gates_file(text)
    except gatesfile.GatesFileError as exc:
        raise GateConfigError(exc.message) from exc


def _is_test_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    if name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py")):
        return True
    return "tests" in path.split("/")[:-1]


def _python(files: list[str]) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    found = {
        "typecheck": ("python3 -m mypy .", "python3 -m mypy"),
        "lint": ("python3 -m ruff check .", "python3 -m ruff"),
        "coverage": (
            "python3 -m coverage run -m pytest -q && python3 -m coverage report",
            "python3 -m coverage",
        ),
        # The prefix keeps the bytecode out of the worktree (only for this command: with
        # it set, imports cannot use the installed packages' bytecode).
        "build": ('PYTHONPYCACHEPREFIX="$TMPDIR/pycache" python3 -m compileall -q .', "python3"),
    }
    missing: dict[str, str] = {}
    if any(_is_test_file(f) for f in files):
        found["tests"] = ("python3 -m pytest -q", "python3 -m pytest")
    else:
        missing["tests"] = "no tests found (no test_*.py, *_test.py or tests/ directory)"
        missing["coverage"] = missing["tests"]
        del found["coverage"]
    return found, missing


def _node(view: RepoView) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    missing: dict[str, str] = {}
    try:
        package = json.loads(view.read("package.json") or "{}")
    except ValueError:
        package = {}
    package = package if isinstance(package, dict) else {}
    scripts = package.get("scripts")
    scripts = scripts if isinstance(scripts, dict) else {}
    dev = package.get("devDependencies")
    dev = dev if isinstance(dev, dict) else {}
    if view.exists("tsconfig.json"):
        found["typecheck"] = ("./node_modules/.bin/tsc --noEmit", "./node_modules/.bin/tsc")
    else:
        missing["typecheck"] = "no tsconfig.json (plain JavaScript)"
    if isinstance(scripts.get("lint"), str):
        found["lint"] = ("npm run --silent lint", "npm")
    elif "eslint" in dev:
        found["lint"] = ("./node_modules/.bin/eslint .", "./node_modules/.bin/eslint")
    else:
        missing["lint"] = "package.json has no lint script (and no eslint devDependency)"
    test = scripts.get("test")
    if isinstance(test, str) and test.strip() != NPM_DEFAULT_TEST:
        found["tests"] = ("npm test --silent", "npm")
    else:
        missing["tests"] = "package.json has no test script"
    if isinstance(scripts.get("coverage"), str):
        found["coverage"] = ("npm run --silent coverage", "npm")
    else:
        missing["coverage"] = "package.json has no coverage script"
    if isinstance(scripts.get("build"), str):
        found["build"] = ("npm run --silent build", "npm")
    else:
        missing["build"] = "package.json has no build script"
    return found, missing


def detect(view: RepoView) -> tuple[str, dict[str, tuple[str, str]], dict[str, str]]:
    """(project kind, gate -> (command, tool), gate -> why none) from the repository.

    Python: a ``pyproject.toml``, ``setup.py`` or ``setup.cfg``, or any ``*.py`` file
    (at the base or in the worktree); its tests gate needs test files. Node: a
    ``package.json``.
    """
    files = view.files()
    markers = ("pyproject.toml", "setup.py", "setup.cfg")
    if any(view.exists(p) for p in markers) or any(f.endswith(".py") for f in files):
        found, missing = _python(files)
        return "python", found, missing
    if view.exists("package.json"):
        found, missing = _node(view)
        return "node", found, missing
    why = "nothing detected: no Python (*.py) or Node (package.json) project, and no command"
    return "unknown", {}, dict.fromkeys(MECHANICAL, f"{why} in {CONFIG_PATH}")


def read_gates_file(view: RepoView) -> GatesFile:
    """gates.toml at the base commit (in the worktree only when there is no commit yet)."""
    text = view.read_base(CONFIG_PATH) if view.base is not None else None
    if text is None and view.base is None:
        text = view.read_current(CONFIG_PATH)
    return parse_gates_file(text) if text is not None else GatesFile()


def load_gates(
    view: RepoView, names: tuple[str, ...], *, default_timeout: float, coverage_threshold: float
) -> RepoGates:
    """The command of each gate in ``names`` for this repository (blocking: git reads)."""
    config = read_gates_file(view)
    named: dict[str, GateSpec | Literal[False]] = {str(k): v for k, v in config.gates.items()}
    off = frozenset(name for name in names if named.get(name) is False)
    mechanical = [n for n in names if n in MECHANICAL and n not in off]
    if not mechanical:
        return RepoGates(off=off, coverage_threshold=coverage_threshold)
    timeout = config.timeout or default_timeout
    kind, detected, why_not = detect(view) if config.detect else ("configured", {}, {})
    commands: dict[str, GateCommand] = {}
    missing: dict[str, str] = {}
    threshold = coverage_threshold
    for name in mechanical:
        spec = named.get(name)
        if spec is not None and spec is not False:
            commands[name] = GateCommand(
                name=name,
                command=spec.command,
                tool=spec.tool or first_tool(spec.command),
                timeout=spec.timeout or timeout,
                writable=spec.writable,
                threshold=spec.threshold,
                pattern=spec.pattern,
                source="config",
            )
            if name == "coverage" and spec.threshold is not None:
                threshold = spec.threshold
        elif name in detected:
            command, tool = detected[name]
            commands[name] = GateCommand(name=name, command=command, tool=tool, timeout=timeout)
        elif not config.detect:
            missing[name] = f"no command in {CONFIG_PATH} and detection is off"
        else:
            missing[name] = why_not.get(name, f"no {name} command configured or detected")
    return RepoGates(commands, missing, off, threshold, kind)
