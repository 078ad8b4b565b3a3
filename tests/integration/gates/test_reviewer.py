"""The AI reviewer against a fake Messages API, through the real anthropic SDK."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.messages.gates import GateCheckRequested, GateResult
from shared.settings import ModelSettings
from tests.fakes.messages_api import FakeMessagesAPI, reply, text, tool_use, unauthorized
from tests.integration.gates.conftest import MakeChecker
from tests.integration.gates.samples import apply_defect, build_sample

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

QUICK = (
    'detect = false\n[gates]\ntests = "true"\nlint = false\ntypecheck = false\n'
    "coverage = false\nbuild = false\n"
)


@pytest.fixture
def changed(tmp_path: Path) -> Path:
    work, _ = build_sample(tmp_path, gates=QUICK, name="review")
    apply_defect(work, "failing-test")  # a new, untracked test file
    (work / "calc/ops.py").write_text((work / "calc/ops.py").read_text() + "\n# touched\n")
    return work


def ask(work: Path) -> GateCheckRequested:
    return GateCheckRequested(
        agent_id="rev1",
        task_id="t-rev",
        worktree=str(work),
        profile="strict",
        work_items=("Add a test for add",),
    )


def review_of(results: tuple[GateResult, ...]) -> GateResult:
    return next(r for r in results if r.name == "ai-review")


def verdict(confidence: object, approve: object = True, **more: object) -> dict[str, object]:
    return {"confidence": confidence, "approve": approve, "findings": [], **more}


async def test_confident_approval_passes_and_sees_the_whole_diff(
    make_checker: MakeChecker,
    fake_messages_api: FakeMessagesAPI,
    fake_model_settings: ModelSettings,
    changed: Path,
) -> None:
    fake_messages_api.enqueue(reply(tool_use("submit_review", verdict(0.95))))
    decision = await make_checker(fake_model_settings).decide(ask(changed))
    review = review_of(decision.results)
    assert decision.approved, decision
    assert review.status == "passed"
    assert review.figure == 0.95
    assert "approved with confidence 0.95" in review.excerpt
    (request,) = fake_messages_api.requests
    body = request.body
    assert body["tool_choice"] == {"type": "tool", "name": "submit_review"}
    assert [t["name"] for t in body["tools"]] == ["submit_review"]
    prompt = request.last_user_blocks()[0]["text"]
    assert "Add a test for add" in prompt
    assert "+# touched" in prompt  # tracked change
    assert "tests/test_more.py" in prompt  # untracked new file
    assert "two and two make four" in prompt
    assert "independent code reviewer" in body["system"]
    assert len(body["messages"]) == 1  # its own conversation, nothing of the worker's


async def test_low_confidence_rejects_with_the_findings(
    make_checker: MakeChecker,
    fake_messages_api: FakeMessagesAPI,
    fake_model_settings: ModelSettings,
    changed: Path,
) -> None:
    finding = {"severity": "error", "file": "tests/test_more.py", "line": 5, "message": "2+2 is 4"}
    fake_messages_api.enqueue(reply(tool_use("submit_review", verdict(0.5, findings=[finding]))))
    decision = await make_checker(fake_model_settings).decide(ask(changed))
    review = review_of(decision.results)
    assert not decision.approved
    assert review.status == "failed"
    assert review.figure == 0.5
    assert "confidence 0.50 is below the threshold of 0.90" in review.excerpt
    assert "[error] tests/test_more.py:5: 2+2 is 4" in review.excerpt
    assert decision.summary.startswith("rejected: ai-review failed")


async def test_threshold_is_configurable(
    make_checker: MakeChecker,
    fake_messages_api: FakeMessagesAPI,
    fake_model_settings: ModelSettings,
    changed: Path,
) -> None:
    fake_messages_api.enqueue(reply(tool_use("submit_review", verdict(0.5))))
    checker = make_checker(fake_model_settings, GATES_REVIEW_THRESHOLD=0.4)
    assert (await checker.decide(ask(changed))).approved


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (reply(tool_use("submit_review", verdict("very"))), "confidence"),
        (reply(tool_use("submit_review", verdict(1.7))), "confidence"),
        (reply(tool_use("submit_review", {"approve": True})), "confidence: Field required"),
        (reply(tool_use("submit_review", "not an object")), "malformed"),
        (reply(text("LGTM, ship it")), "did not call submit_review"),
        (reply(tool_use("approve_everything", {})), "called approve_everything"),
    ],
)
async def test_malformed_answers_reject_with_a_reason_never_crash(
    make_checker: MakeChecker,
    fake_messages_api: FakeMessagesAPI,
    fake_model_settings: ModelSettings,
    changed: Path,
    answer: object,
    reason: str,
) -> None:
    fake_messages_api.enqueue(answer)  # type: ignore[arg-type]
    decision = await make_checker(fake_model_settings).decide(ask(changed))
    review = review_of(decision.results)
    assert decision.error is None
    assert not decision.approved
    assert review.status == "failed"
    assert review.excerpt.startswith("rejected:")
    assert reason in review.excerpt, review.excerpt


async def test_refused_credentials_are_an_error_not_a_verdict(
    make_checker: MakeChecker,
    fake_messages_api: FakeMessagesAPI,
    fake_model_settings: ModelSettings,
    changed: Path,
) -> None:
    fake_messages_api.enqueue(unauthorized())
    decision = await make_checker(fake_model_settings).decide(ask(changed))
    assert decision.error is not None
    assert decision.error.code == "reviewer_unavailable"
    assert not decision.error.retryable
    assert "sk-ant" not in decision.error.message


async def test_no_key_fails_the_review_closed_with_the_reason(
    make_checker: MakeChecker, changed: Path
) -> None:
    decision = await make_checker().decide(ask(changed))
    review = review_of(decision.results)
    assert not decision.approved
    assert decision.error is None
    assert review.status == "failed"
    assert review.excerpt.startswith("not checked: no model provider key is set")
    assert "ai-review = false" in review.excerpt  # says how to turn it off
    assert "rejected: ai-review failed (not checked: ai-review)" in decision.summary


async def test_a_review_turned_off_in_gates_toml_is_skipped_and_says_so(
    make_checker: MakeChecker, tmp_path: Path
) -> None:
    work, _ = build_sample(tmp_path, gates=QUICK + "ai-review = false\n", name="no-review")
    apply_defect(work, "failing-test")
    decision = await make_checker().decide(ask(work))
    review = review_of(decision.results)
    assert decision.approved, decision
    assert review.status == "skipped"
    assert review.excerpt == "skipped: turned off in .mosaic/gates.toml"
    assert "skipped (turned off in .mosaic/gates.toml): " in decision.summary
    assert "ai-review" in decision.summary


async def test_an_empty_change_passes_the_review_without_asking_the_model(
    make_checker: MakeChecker,
    fake_messages_api: FakeMessagesAPI,
    fake_model_settings: ModelSettings,
    tmp_path: Path,
) -> None:
    work, _ = build_sample(tmp_path, gates=QUICK, name="unchanged")
    decision = await make_checker(fake_model_settings).decide(ask(work))
    review = review_of(decision.results)
    assert decision.approved, decision
    assert review.status == "passed"
    assert review.excerpt == "empty diff: nothing to review"
    assert fake_messages_api.requests == []
