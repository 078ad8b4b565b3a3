"""FinishPolicy: what a finish is answered after each step (pure decisions, no I/O)."""

from __future__ import annotations

import pytest

from services.spawner.errors import StepFailedError
from services.spawner.finish_policy import (
    GO_ON,
    UNCHANGED_TEXT,
    Accept,
    FinishPolicy,
    Resolve,
    SendBack,
    can_change,
    rejection_text,
)
from services.spawner.merging import MergeResult
from shared.messages.base import Failure
from shared.messages.gates import GateDecision, GateResult
from shared.messages.gitops import CommitMade, Landed, PushDone

BASE = "a" * 40
WORK = "b" * 40


def policy(agent_type: str = "worker", base: str | None = BASE) -> FinishPolicy:
    return FinishPolicy(agent_type, base)  # type: ignore[arg-type]


def rejected(*failed: str) -> GateDecision:
    return GateDecision(
        approved=False,
        results=(
            GateResult(name="lint", status="passed", excerpt="fine"),
            *(GateResult(name=n, status="failed", excerpt=f"{n} says no") for n in failed),
        ),
    )


def test_approved_gates_go_on() -> None:
    decision = GateDecision(approved=True, results=(GateResult(name="t", status="passed"),))
    assert policy().gates(decision, "pre-commit") is GO_ON


def test_rejected_gates_send_back_the_failed_ones_only() -> None:
    answer = policy().gates(rejected("tests"), "pre-commit")
    assert isinstance(answer, SendBack)
    assert answer.text.startswith("Quality gates rejected the change:")
    assert "tests failed:\ntests says no" in answer.text
    assert "lint" not in answer.text


def test_pre_push_rejection_says_it_ran_on_the_updated_base() -> None:
    answer = policy().gates(rejected("tests"), "pre-push")
    assert isinstance(answer, SendBack)
    assert "pre-push quality gates" in answer.text


def test_gates_that_did_not_run_fail_the_attempt_with_their_retryability() -> None:
    failure = Failure(code="gates_unavailable", message="gates unavailable", retryable=True)
    with pytest.raises(StepFailedError) as raised:
        policy().gates(GateDecision(error=failure), "pre-commit")
    assert raised.value.retryable
    assert raised.value.step == "gates"


@pytest.mark.parametrize(
    ("code", "start"),
    [("secret_found", "Commit blocked by the secret scan: "), ("wrong_branch", "Not committed: ")],
)
def test_a_blocked_commit_goes_back_to_the_agent(code: str, start: str) -> None:
    made = CommitMade(error=Failure(code=code, message="because"))
    answer = policy().commit(made)
    assert isinstance(answer, SendBack)
    assert answer.text.startswith(start + "because")


def test_any_other_commit_failure_fails_the_attempt() -> None:
    made = CommitMade(error=Failure(code="git_failed", message="disk full", retryable=True))
    with pytest.raises(StepFailedError, match="commit: disk full"):
        policy().commit(made)


def test_a_commit_goes_on_to_the_push() -> None:
    p = policy()
    assert p.commit(CommitMade(commit=WORK, head=WORK)) is GO_ON
    assert p.committed


def test_nothing_new_on_a_branch_with_work_goes_on() -> None:
    """Committed by the agent itself (its head is past the base): push that."""
    assert policy().commit(CommitMade(nothing_to_commit=True, head=WORK)) is GO_ON


def test_an_unchanged_worktree_is_sent_back_once_then_accepted_with_nothing_pushed() -> None:
    p = policy()
    unchanged = CommitMade(nothing_to_commit=True, head=BASE)
    first = p.commit(unchanged)
    assert isinstance(first, SendBack)
    assert first.text == UNCHANGED_TEXT
    second = p.commit(unchanged)
    assert isinstance(second, Accept)
    assert second.unchanged
    assert second.pushed is None


def test_a_reader_is_accepted_unchanged_at_once() -> None:
    assert not can_change("reviewer")
    answer = policy("reviewer").commit(CommitMade(nothing_to_commit=True, head=BASE))
    assert isinstance(answer, Accept)
    assert answer.unchanged


@pytest.mark.parametrize("head", [None, BASE])
def test_no_head_or_no_base_counts_as_no_work(head: str | None) -> None:
    answer = policy(base=None if head == BASE else BASE).commit(
        CommitMade(nothing_to_commit=True, head=head)
    )
    assert isinstance(answer, SendBack)


def test_a_commit_earlier_in_the_attempt_is_work_even_when_the_head_is_the_base() -> None:
    """The agent reset its branch after a commit of this attempt: still not 'unchanged'."""
    p = policy()
    p.commit(CommitMade(commit=WORK, head=WORK))
    assert p.commit(CommitMade(nothing_to_commit=True, head=BASE)) is GO_ON


def test_a_push_is_accepted_with_where_it_landed() -> None:
    pushed = PushDone(remote_branch="mosaic/agent/x", commit=WORK)
    answer = policy().push(pushed)
    assert isinstance(answer, Accept)
    assert answer.pushed == pushed
    assert not answer.unchanged


def test_push_conflicts_go_back_to_be_resolved() -> None:
    pushed = PushDone(conflicts=("a.py",), base_commit=BASE)
    assert policy().push(pushed) == Resolve(pushed)


def test_a_failed_push_fails_the_attempt() -> None:
    pushed = PushDone(error=Failure(code="push_failed", message="remote hung up"))
    with pytest.raises(StepFailedError, match="push: remote hung up"):
        policy().push(pushed)


def test_merge_queue_answers() -> None:
    p = policy()
    conflict = PushDone(conflicts=("a.py",), base_commit=BASE)
    assert p.merged(MergeResult(conflict=conflict)) == Resolve(conflict)
    back = p.merged(MergeResult(rejected=rejected("tests")))
    assert back == SendBack(rejection_text(rejected("tests"), "pre-push"))
    landed = Landed(commit=WORK, remote_branch="mosaic/agent/x", head=WORK)
    accepted = p.merged(MergeResult(landed=landed))
    assert accepted == Accept(PushDone(remote_branch="mosaic/agent/x", commit=WORK))
    with pytest.raises(AssertionError):
        p.merged(MergeResult())
