"""Event and finish summaries are masked with the scanner's rules, over the whole corpus."""

from __future__ import annotations

import pytest

from services.spawner.runtime import tools
from shared.secrets_rules import redact
from tests.fakes.secret_corpus import lookalikes, secrets

pytestmark = pytest.mark.unit

GITHUB = "ghp_" + "Zq8Wm3Rt6Yp9Lk2Jh5Gf8Ds1Aq4Zx7Cv0Bn3"
AWS_SECRET = "Zq8Wm3Rt6Yp9Lk2Jh5Gf8Ds1" + "Aq4Zx7Cv0Bn3Mm6N"


@pytest.mark.parametrize("sample", secrets(), ids=lambda sample: sample.path)
def test_every_corpus_secret_is_masked_in_a_finish_summary(sample: object) -> None:
    from tests.fakes.secret_corpus import Sample

    assert isinstance(sample, Sample)
    summary = f"Done. While testing I used this:\n{sample.text}\nAll tests pass."
    assert sample.value not in redact(summary)
    shown = tools.summarize("finish", tools.FinishInput(summary=summary), limit=10_000)
    assert sample.value not in shown


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"curl -H 'Authorization: Bearer {GITHUB}' https://api.github.com/user", GITHUB),
        (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET} aws s3 ls", AWS_SECRET),
        (f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET),
        ("psql postgres://app:S3cure-Pass-99@db:5432/app -c 'select 1'", "S3cure-Pass-99"),
        ("mysql --password=Hunter2-Very-Secret -e 'show tables'", "Hunter2-Very-Secret"),
    ],
)
def test_commands_in_progress_events_are_masked(text: str, secret: str) -> None:
    summary = tools.summarize("run_command", tools.RunCommandInput(command=text), limit=10_000)
    assert secret not in summary
    assert "***" in summary


def test_ordinary_summaries_are_left_alone() -> None:
    text = (
        "Fixed the token parser and the password-reset flow; added tests for "
        "commit 3f786850e387550fdab836ed7e6dc881de23001b. All 42 tests pass."
    )
    assert redact(text) == text


def test_lookalikes_mostly_survive_redaction() -> None:
    """Masking is not 'replace everything': checksums and UUIDs stay readable."""
    corpus = [s for s in lookalikes() if s.kind in {"git-sha", "sha256", "uuid", "code"}]
    assert all(redact(sample.text) == sample.text for sample in corpus)
