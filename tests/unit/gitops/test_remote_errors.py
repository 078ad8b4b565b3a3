"""A failed fetch or push is named by what git said, not by digits elsewhere in the
message (the scratch clone's random name once held ``403`` and a missing repository was
reported as refused credentials)."""

from __future__ import annotations

import pytest

from services.gitops.errors import AuthFailedError, GitCommandError, RepoNotFoundError
from services.gitops.repos import classify_remote_error

MISSING = (
    "fatal: '/tmp/x/nowhere.git' does not appear to be a git repository\n"
    "fatal: Could not read from remote repository.\n\n"
    "Please make sure you have the correct access rights\nand the repository exists."
)


@pytest.mark.parametrize("scratch", ["4031abcd", "ab403cde", "1404f00d"])
def test_a_missing_repository_is_not_found_whatever_the_scratch_name(scratch: str) -> None:
    failed = GitCommandError(
        f"git fetch in /home/.clone-nowhere.git-{scratch} failed (128): {MISSING}"
    )
    assert isinstance(classify_remote_error("/tmp/x/nowhere.git", failed), RepoNotFoundError)


def test_http_statuses_are_read_from_gits_own_words() -> None:
    refused = GitCommandError(
        "git fetch failed (128): fatal: unable to access 'https://example.test/r.git/': "
        "The requested URL returned error: 403"
    )
    assert isinstance(classify_remote_error("https://example.test/r.git", refused), AuthFailedError)
    missing = GitCommandError(
        "git fetch failed (128): fatal: unable to access 'https://example.test/r.git/': "
        "The requested URL returned error: 404"
    )
    assert isinstance(
        classify_remote_error("https://example.test/r.git", missing), RepoNotFoundError
    )
