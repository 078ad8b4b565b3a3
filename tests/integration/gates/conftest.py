"""Fixtures of the gates tests: sample repositories and a checker on bare-host sandboxes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import DockerException

from services.gates.logic import GateChecker
from services.gates.reviewer import Reviewer
from services.gates.runner import FixedSandboxes, SandboxSource
from services.gates.settings import GatesSettings
from shared.messages.audit import AuditEntry
from shared.sandbox.host import HostSandboxFactory
from shared.sandbox.settings import SandboxSettings
from shared.settings import ModelSettings
from tests.fakes.fixtures import (  # noqa: F401
    fake_messages_api,
    fake_messages_api_server,
    fake_model_settings,
)
from tests.integration.gates.samples import build_sample, gates_toml

NO_MODEL = ModelSettings(MOSAIC_PROVIDER="scripted", ANTHROPIC_API_KEY=None)
NO_SUCH_IMAGE = "mosaic/no-such:0"


@pytest.fixture
def no_image_sandbox() -> SandboxSettings:
    """``MOSAIC_SANDBOX=docker`` with an image that does not exist (needs a daemon)."""
    try:
        client = docker.from_env(timeout=10)
        client.ping()
        client.close()
    except DockerException as exc:
        pytest.skip(f"no Docker daemon to refuse a missing image: {exc}")
    return SandboxSettings(MOSAIC_SANDBOX="docker", image=NO_SUCH_IMAGE)


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the session (a cold mypy run costs seconds)."""
    return tmp_path_factory.mktemp("mypy-cache")


@pytest.fixture
def sample(tmp_path: Path, mypy_cache: Path) -> Path:
    """A clone of the clean sample (with ``origin/main``), ready for a defect."""
    work, _ = build_sample(tmp_path, gates=gates_toml(mypy_cache))
    return work


def gates_settings(**overrides: Any) -> GatesSettings:
    values: dict[str, Any] = {"GATES_CHECK_BUDGET_S": 120}
    values.update(overrides)
    return GatesSettings(**values)


class AuditLog:
    """The audit sink of a checker that is not on the bus."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def __call__(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


MakeChecker = Callable[..., GateChecker]


@pytest.fixture
async def make_checker(tmp_path: Path) -> AsyncIterator[MakeChecker]:
    """``make_checker(model=..., sandboxes=..., **settings)`` -> a checker.

    Its gate commands run in ``none`` sandboxes (bare host processes, with Mosaic's own
    tools on ``PATH``) unless ``sandboxes`` says otherwise.
    """
    made: list[Reviewer] = []

    def make(
        model: ModelSettings = NO_MODEL, sandboxes: SandboxSource | None = None, **overrides: Any
    ) -> GateChecker:
        settings = gates_settings(**overrides)
        reviewer = Reviewer(
            model,
            threshold=settings.gates_review_threshold,
            timeout=30,
            max_diff_chars=settings.gates_review_max_diff_chars,
            excerpt_chars=settings.gates_excerpt_chars,
        )
        made.append(reviewer)
        source = sandboxes or FixedSandboxes(HostSandboxFactory())
        return GateChecker(settings, source, reviewer, AuditLog(), tmp_path, actor="test")

    yield make
    for reviewer in made:
        await reviewer.aclose()
