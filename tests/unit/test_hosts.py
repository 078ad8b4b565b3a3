"""The host id (``MOSAIC_HOST_ID``) and the host-scoped subjects built from it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mosaic.natsauth import PERMISSIONS
from shared import subjects
from shared.settings import HostSettings, default_host_id, sanitise_host_id
from shared.subjects import GitOp


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Build-01.example.org", "build-01"),
        ("worker_7", "worker_7"),
        ("a b*c>d", "a-b-c-d"),
        ("...", "host"),
        ("-x-", "x"),
        ("h" * 80, "h" * 63),
    ],
)
def test_a_machine_name_becomes_one_safe_subject_token(name: str, expected: str) -> None:
    assert sanitise_host_id(name) == expected


def test_the_default_is_this_machine_and_valid() -> None:
    assert HostSettings().mosaic_host_id == default_host_id()


@pytest.mark.parametrize("bad", ["h.1", "h*", "h>", "H1", "a b", "-h", "x" * 64])
def test_a_host_id_that_is_not_one_token_stops_with_the_reason(
    bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOSAIC_HOST_ID", bad)
    with pytest.raises(ValidationError, match="MOSAIC_HOST_ID must be"):
        HostSettings()


def test_an_empty_host_id_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSAIC_HOST_ID", " ")
    assert HostSettings().mosaic_host_id == default_host_id()


def test_subjects_of_a_host() -> None:
    assert subjects.gitops("h2", GitOp.WORKTREE_CREATE) == "mosaic.gitops.h2.worktree.create"
    assert subjects.gates_check("h2") == "mosaic.gates.h2.check"
    assert subjects.gitops_queue("h2") != subjects.gitops_queue("h3")
    assert subjects.health_on("spawner", "h2") == "mosaic.health.spawner.h2"
    with pytest.raises(ValueError, match="not a host id"):
        subjects.gitops("h.2", GitOp.COMMIT)


def test_no_host_scoped_subject_is_an_unscoped_one() -> None:
    """A host called ``check`` or ``repository`` cannot take the unscoped questions."""
    unscoped = {subjects.GITOPS_CHECK, subjects.GITOPS_REPOSITORY_EXISTS}
    for host in ("check", "repository", "h1"):
        assert not unscoped & {subjects.gitops(host, op) for op in GitOp}


def test_the_gateway_may_ask_only_reads_of_any_host() -> None:
    allowed = PERMISSIONS["gateway"]["publish"]
    assert subjects.gitops_any_host(GitOp.DIFF) in allowed
    assert subjects.GATES_CHECK_ANY_HOST in allowed
    assert not [s for s in allowed if s.startswith(subjects.GITOPS_PREFIX + ".*.w")]


@pytest.mark.parametrize(
    ("subject", "name", "host"),
    [
        (subjects.gitops("build-01", GitOp.PUSH), "gitops.push", "build-01"),
        (subjects.gitops("vm", GitOp.WORKTREE_CREATE), "gitops.worktree.create", "vm"),
        (subjects.gates_check("h2"), "gates.check", "h2"),
        (subjects.spawner_environment_check("h3"), "spawner.environment.check", "h3"),
        (subjects.GITOPS_CHECK, "gitops.check", None),
        (subjects.GITOPS_REPOSITORY_EXISTS, "gitops.repository.exists", None),
        ("mosaic.health.gitops", "health.gitops", None),
    ],
)
def test_a_span_is_named_by_the_operation_and_the_host_is_an_attribute(
    subject: str, name: str, host: str | None
) -> None:
    """One span name per operation on every host (a trace viewer groups by name)."""
    assert subjects.span_name(subject) == name
    assert subjects.subject_host(subject) == host
