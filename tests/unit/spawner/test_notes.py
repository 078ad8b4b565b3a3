"""The note box's other direction: whether the agent has acted since someone looked."""

from __future__ import annotations

import pytest

from services.spawner.runtime.notes import NoteBox


def test_a_tool_call_moves_the_generation_as_it_begins_and_as_it_ends() -> None:
    box = NoteBox()
    seen = box.generation
    assert box.idle
    with box.acting():
        assert not box.idle
        inside = box.generation
        assert inside != seen
    assert box.idle
    assert box.generation not in (seen, inside)


def test_a_failed_tool_call_still_ends() -> None:
    box = NoteBox()
    with pytest.raises(RuntimeError), box.acting():
        raise RuntimeError("the sandbox went away")
    assert box.idle
    assert box.generation == 2


def test_a_finish_moves_the_generation_without_holding_the_agent_busy() -> None:
    box = NoteBox()
    box.moved()
    assert box.idle
    assert box.generation == 1
