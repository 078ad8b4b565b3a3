"""AgentPatch: the typed update of an agent's record (shared.messages.agents)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.messages.agents import AgentPatch, AgentRecord


def test_every_patch_field_is_a_record_field_of_the_same_type_and_default() -> None:
    record = AgentRecord.model_fields
    for name, field in AgentPatch.model_fields.items():
        assert name in record, name
        assert field.annotation == record[name].annotation, name
        assert field.default == record[name].default, name


@pytest.mark.parametrize(
    "name", ["agent_id", "task_id", "state", "task_state", "attempts", "attempt_reasons", "spend"]
)
def test_identity_states_attempts_and_spend_are_not_patchable(name: str) -> None:
    """They change only in the store's atomic scripts (transition, charge)."""
    assert name not in AgentPatch.model_fields
    with pytest.raises(ValidationError):
        AgentPatch.model_validate({name: None})


def test_written_holds_the_given_fields_only_a_none_included() -> None:
    patch = AgentPatch(worktree=None, salvage_branch="mosaic/salvage/a1")
    assert patch.written() == {"worktree": None, "salvage_branch": "mosaic/salvage/a1"}
    assert AgentPatch().written() == {}
    assert AgentPatch.model_validate({"mergeQueuePosition": 2}).written() == {
        "merge_queue_position": 2
    }
