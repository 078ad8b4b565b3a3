"""The scanner's recall and false blocks on the generated corpus, through a real git diff.

Run alone to see the figures docs/git.md reports:
``python -m pytest -q -s tests/unit/secrets/test_recall.py``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from services.gitops.commits import _STAGED_DIFF
from services.gitops.secrets import scan_diff
from tests.fakes.secret_corpus import Sample, lookalikes, secrets

pytestmark = pytest.mark.unit

RECALL_GOAL = 0.95
FALSE_BLOCK_GOAL = 0.05


def _blocked(tmp_path: Path, samples: list[Sample]) -> dict[str, set[str]]:
    """Stage every sample as a file of a real repository; the rules that flag each file."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for sample in samples:
        target = repo / sample.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(sample.text.encode())
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    diff = subprocess.run(
        ["git", "-C", str(repo), *_STAGED_DIFF], check=True, capture_output=True
    ).stdout.decode("utf-8", "replace")
    found: dict[str, set[str]] = {}
    for finding in scan_diff(diff):
        found.setdefault(finding.path, set()).add(finding.rule)
    return found


def test_recall_on_generated_secrets(tmp_path: Path) -> None:
    corpus = secrets()
    found = _blocked(tmp_path, corpus)
    missed = [sample.path for sample in corpus if sample.path not in found]
    recall = 1 - len(missed) / len(corpus)
    print(f"\nrecall: {recall:.1%} of {len(corpus)} secrets blocked; missed: {missed}")
    assert recall >= RECALL_GOAL, missed
    # Recall is not bought with one format the rules never see.
    for kind in {sample.kind for sample in corpus}:
        assert sum(path.startswith(f"secret/{kind}/") for path in missed) <= 1, kind


def test_false_blocks_on_lookalikes(tmp_path: Path) -> None:
    corpus = lookalikes()
    found = _blocked(tmp_path, corpus)
    blocked = {sample.path: sorted(found[sample.path]) for sample in corpus if sample.path in found}
    rate = len(blocked) / len(corpus)
    print(f"\nfalse blocks: {rate:.1%} of {len(corpus)} look-alikes; blocked: {blocked}")
    assert rate <= FALSE_BLOCK_GOAL, blocked
