"""The generated build: setup as root with the CA for every tool, non-root at the end."""

from __future__ import annotations

import json
import subprocess

import pytest

from shared.environments.build import (
    CA_PATH,
    CA_VARIABLES,
    SETUP_ENV,
    final_user,
    setup_dockerfile,
    setup_exports,
)

pytestmark = pytest.mark.unit


def test_setup_dockerfile_runs_each_step_as_root_then_drops_to_a_user() -> None:
    text = setup_dockerfile("base:1", ["apt-get update", "make 'x'"], has_ca=True, user="agent")
    lines = text.splitlines()
    assert lines[:2] == ["FROM base:1", "USER root"]
    assert f"COPY mosaic-ca.crt {CA_PATH}" in lines
    assert "COPY src/ /workspace/" in lines
    runs = [json.loads(line[4:]) for line in lines if line.startswith("RUN ")]
    assert runs[0] == ["/bin/sh", "-ec", f". {SETUP_ENV}\napt-get update"]
    assert runs[1] == ["/bin/sh", "-ec", f". {SETUP_ENV}\nmake 'x'"]
    assert "node_modules" in runs[2][2]
    assert lines[-1] == "USER agent"


def test_without_setup_only_the_user_changes() -> None:
    text = setup_dockerfile("base:1", [], has_ca=True, user="1000:1000")
    assert text.splitlines() == ["FROM base:1", "USER root", "WORKDIR /workspace", "USER 1000:1000"]


def test_exports_quote_values_and_name_the_ca_for_every_tool() -> None:
    env = {"A": "it's $HOME; rm -rf /"}
    script = setup_exports(env, has_ca=True) + 'printf "%s" "$A"; echo; echo "$NODE_EXTRA_CA_CERTS"'
    out = subprocess.run(["sh", "-ec", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["it's $HOME; rm -rf /", CA_PATH]
    assert all(
        f"export {name}={CA_PATH}" in setup_exports({}, has_ca=True) for name in CA_VARIABLES
    )
    assert CA_PATH not in setup_exports({}, has_ca=False)


@pytest.mark.parametrize(
    ("declared", "base", "user"),
    [
        ("vscode", "", "vscode"),
        ("root", "agent", "agent"),
        (None, "agent", "agent"),
        (None, "", "1000:1000"),
        (None, "root", "1000:1000"),
        (None, "0:0", "1000:1000"),
    ],
)
def test_the_final_user_is_never_root(declared: str | None, base: str, user: str) -> None:
    assert final_user(declared, base) == user
