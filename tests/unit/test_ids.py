"""The one id rule (shared.ids): what the gateway accepts, gitops can serve."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.gitops.errors import InvalidRequestError
from services.gitops.validation import validate_id
from shared.ids import ID_MAX_LENGTH, id_problem
from shared.messages.tasks import SpawnAgentRequest


def _request(task_id: str) -> dict[str, object]:
    return {
        "taskId": task_id,
        "agentType": "worker",
        "context": {"repository": "/srv/repo", "workItems": ["x"]},
    }


@pytest.mark.parametrize("value", ["a", "task-1", "T_2.3", "x" * ID_MAX_LENGTH, "9lives"])
def test_usable_ids_pass_both_edges(value: str) -> None:
    assert id_problem(value) is None
    assert SpawnAgentRequest.model_validate(_request(value)).task_id == value
    assert validate_id("task id", value) == value


@pytest.mark.parametrize(
    "value",
    ["", "-x", ".x", "a/b", "a b", "x" * (ID_MAX_LENGTH + 1), "a..b", "x.lock", "x."],
)
def test_unusable_ids_are_refused_at_both_edges(value: str) -> None:
    assert id_problem(value) is not None
    with pytest.raises(ValidationError, match=r"task_id|taskId"):
        SpawnAgentRequest.model_validate(_request(value))
    with pytest.raises(InvalidRequestError, match="task id"):
        validate_id("task id", value)
