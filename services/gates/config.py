"""Which command each gate runs: ``.mosaic/gates.toml`` first, detection as fallback.

The file is read at the base commit, so an agent cannot weaken the gates that check
its own change. Format (every key optional)::

    timeout = 300                     # default seconds per gate
    detect = true                     # fill gates the file does not name by detection

    [gates]
    lint = "ruff check ."             # a command string...
    typecheck = false                 # ...or false: never run (reported as skipped)
    tests = { command = "pytest -q", timeout = 120 }
    build = { command = "make build", writable = true, tool = "make" }

    [gates.coverage]
    command = "coverage run -m pytest -q && coverage report"
    threshold = 85                    # percent; the default comes from settings
    pattern = 'TOTAL.*\\s(\\d+(?:\\.\\d+)?)%'  # first group = the figure (optional)
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.gates.errors import GateConfigError
from services.gates.profiles import MECHANICAL, GateName
from services.gates.repo import RepoView

CONFIG_PATH = ".mosaic/gates.toml"
NPM_DEFAULT_TEST = 'echo "Error: no test specified" && exit 1'


class GateSpec(BaseModel):
    """One gate's entry in gates.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str = Field(min_length=1, max_length=4000)
    timeout: float | None = Field(default=None, gt=0, le=7200)
    writable: bool = False
    tool: str | None = Field(default=None, max_length=200)
    threshold: float | None = Field(default=None, ge=0, le=100)
    pattern: str | None = Field(default=None, max_length=500)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                if re.compile(value).groups < 1:
                    raise ValueError("pattern needs a group capturing the figure")
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from exc
        return value


class GatesFile(BaseModel):
    """The whole of gates.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float | None = Field(default=None, gt=0, le=7200)
    detect: bool = True
    gates: dict[GateName, GateSpec | Literal[False]] = {}

    @field_validator("gates", mode="before")
    @classmethod
    def _strings_are_commands(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                name: {"command": spec} if isinstance(spec, str) and spec.strip() else spec
                for name, spec in value.items()
            }
        return value


@dataclass(frozen=True)
class GateCommand:
    """What one gate runs, and where the choice came from."""

    name: str
    command: str
    tool: str
    timeout: float
    writable: bool = False
    threshold: float | None = None
    pattern: str | None = None
    source: str = "detected"


@dataclass(frozen=True)
class RepoGates:
    """Each mechanical gate's command, or why it has none."""

    commands: dict[str, GateCommand] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    coverage_threshold: float = 85.0
    kind: str = "unknown"


def first_tool(command: str) -> str:
    """The program a command line starts with (past ``VAR=value`` assignments)."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        words = command.split()
    for word in words:
        if "=" in word and not word.startswith(("/", ".")) and word.split("=")[0].isidentifier():
            continue
        return word
    return ""


def parse_gates_file(text: str) -> GatesFile:
    """Validate gates.toml text; ``GateConfigError`` names what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GateConfigError(f"{CONFIG_PATH} is not valid TOML: {exc}") from exc
    try:
        return GatesFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise GateConfigError(f"{CONFIG_PATH} is invalid: {problems}") from exc


def _python(view: RepoView) -> dict[str, tuple[str, str]]:
    return {
        "typecheck": ("mypy .", "mypy"),
        "lint": ("ruff check .", "ruff"),
        "tests": ("pytest -q", "pytest"),
        "coverage": ("coverage run -m pytest -q && coverage report", "coverage"),
        # The prefix keeps the bytecode out of the worktree (only for this command: with
        # it set, imports cannot use the installed packages' bytecode).
        "build": ('PYTHONPYCACHEPREFIX="$TMPDIR/pycache" python3 -m compileall -q .', "python3"),
    }


def _node(view: RepoView) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    missing: dict[str, str] = {}
    try:
        package = json.loads(view.read("package.json") or "{}")
    except ValueError:
        package = {}
    scripts = package.get("scripts") if isinstance(package, dict) else None
    scripts = scripts if isinstance(scripts, dict) else {}
    if view.exists("tsconfig.json"):
        found["typecheck"] = ("./node_modules/.bin/tsc --noEmit", "./node_modules/.bin/tsc")
    else:
        missing["typecheck"] = "no tsconfig.json (plain JavaScript)"
    if isinstance(scripts.get("lint"), str):
        found["lint"] = ("npm run --silent lint", "npm")
    else:
        found["lint"] = ("./node_modules/.bin/eslint .", "./node_modules/.bin/eslint")
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
    """(project kind, gate -> (command, tool), gate -> why none) from the repository."""
    if any(view.exists(p) for p in ("pyproject.toml", "setup.py", "setup.cfg")):
        return "python", _python(view), {}
    if view.exists("package.json"):
        found, missing = _node(view)
        return "node", found, missing
    why = "no command configured and no Python or Node project detected"
    return "unknown", {}, dict.fromkeys(MECHANICAL, why)


def load_gates(view: RepoView, *, default_timeout: float, coverage_threshold: float) -> RepoGates:
    """Every mechanical gate's command for this repository (blocking: git reads)."""
    text = view.read_base(CONFIG_PATH) if view.base is not None else None
    if text is None and view.base is None:
        text = view.read_current(CONFIG_PATH)
    config = parse_gates_file(text) if text is not None else GatesFile()
    timeout = config.timeout or default_timeout
    kind, detected, why_not = detect(view) if config.detect else ("configured", {}, {})
    commands: dict[str, GateCommand] = {}
    missing: dict[str, str] = {}
    threshold = coverage_threshold
    for name in MECHANICAL:
        spec = config.gates.get(name)
        if spec is False:
            missing[name] = f"disabled in {CONFIG_PATH}"
        elif spec is not None:
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
            missing[name] = f"no command in {CONFIG_PATH} (detection is off)"
        else:
            missing[name] = why_not.get(name, f"no {name} command configured or detected")
    return RepoGates(commands, missing, threshold, kind)
