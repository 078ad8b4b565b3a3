"""An agent controls what is scanned: no line it writes may make the rules backtrack."""

from __future__ import annotations

import time

import pytest

from shared.secrets_rules import find, redact

pytestmark = pytest.mark.unit

PATHOLOGICAL = {
    "one-identifier": "password_" * 20_000,
    "assignments": "token=" * 30_000,
    "base64-run": "aB3/" * 50_000,
    "letters": "A" * 200_000,
    "blanks": " " * 200_000,
    "url-like": "a://" * 50_000,
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_lines_scan_in_linear_time(name: str) -> None:
    started = time.monotonic()
    list(find(PATHOLOGICAL[name]))
    redact(PATHOLOGICAL[name])
    assert time.monotonic() - started < 10, name  # quadratic would take minutes
