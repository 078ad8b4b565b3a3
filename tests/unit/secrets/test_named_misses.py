"""The misses the security review found (issue 18), each in the formats it was seen in."""

from __future__ import annotations

import pytest

from services.gitops.secrets import scan_diff

pytestmark = pytest.mark.unit

PAT = "github_pat_" + "11ABCDEFG0" + "Zq8Wm3Rt6Yp9Lk2Jh5Gf8D_" + "s1Aq4Zx7Cv0Bn3Mm6NqWe" * 3
GOOGLE = "AIza" + "SyZq8Wm3Rt6Yp9Lk2Jh5Gf8Ds1Aq4Zx7Cv0"
AWS_SECRET = "Zq8Wm3Rt6Yp9Lk2Jh5Gf8Ds1" + "Aq4Zx7Cv0Bn3Mm6/+kLw"[:16]
PASSWORD = "Tango4411-river"


def _diff(path: str, text: str) -> str:
    lines = text.splitlines()
    added = "".join(f"+{line}\n" for line in lines)
    return (
        f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
        f"@@ -0,0 +1,{len(lines)} @@\n{added}"
    )


CASES = {
    "pat-env": (".env", f"GITHUB_TOKEN={PAT}\n"),
    "pat-yaml": ("ci.yaml", f"env:\n  token: {PAT}\n"),
    "pat-ini": ("setup.cfg", f"[gh]\ntoken = {PAT}\n"),
    "pat-shell": ("run.sh", f"export GH={PAT}\n"),
    "pat-dockerfile": ("Dockerfile", f"FROM alpine\nENV GH {PAT}\n"),
    "google-env": (".env", f"MAPS={GOOGLE}\n"),
    "google-yaml": ("app.yaml", f"maps: {GOOGLE}\n"),
    "db-password-env": (".env", f"DB_PASSWORD={PASSWORD}\n"),
    "password-shell": ("run.sh", f"password={PASSWORD}\n"),
    "password-dockerfile": ("Dockerfile", f"FROM alpine\nENV DB_PASSWORD={PASSWORD}\n"),
    "aws-secret-alone": ("notes.txt", f"{AWS_SECRET}\n"),
    "nul-byte": ("data.bin", f"\x00\x01\x02head\x00er\nkey={PAT}\n"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_reviewed_misses_are_blocked(case: str) -> None:
    path, text = CASES[case]
    assert scan_diff(_diff(path, text)), case


def test_the_values_are_what_the_review_described() -> None:
    assert len(AWS_SECRET) == 40
    assert PAT.startswith("github_pat_")
    assert len(GOOGLE) == 39
