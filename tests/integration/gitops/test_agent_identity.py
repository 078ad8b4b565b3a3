"""The agent identity written into a new agent repository's config reads back exactly,
whatever characters the operator's configured name holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.agentrepo import identity_section
from tests.conftest import git

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "name",
    ["Mosaic Agent", 'A "quoted" name', "back\\slash", "semi; colon # hash", "ünïcode"],
)
def test_the_identity_reads_back_as_written(tmp_path: Path, name: str) -> None:
    config = tmp_path / "config"
    config.write_text(identity_section(name, "agent@mosaic.invalid"))
    assert git(tmp_path, "config", "--file", str(config), "user.name") == name
    assert git(tmp_path, "config", "--file", str(config), "user.email") == "agent@mosaic.invalid"
