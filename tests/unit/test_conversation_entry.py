"""Conversation entries are masked before they are cut, and cut to a bound."""

from __future__ import annotations

from shared.messages.conversation import ENTRY_MAX_CHARS, conversation_entry

SECRET = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


def test_text_is_masked_and_kept_whole_when_short() -> None:
    entry = conversation_entry("tool_result", f"TOKEN={SECRET}\nok", tool="run_command")
    assert entry.text == "TOKEN=***\nok"
    assert entry.truncated is False
    assert entry.tool == "run_command"


def test_a_tool_input_is_shown_as_json_and_masked() -> None:
    entry = conversation_entry("tool_call", {"command": f"curl -H 'token: {SECRET}'"})
    assert entry.text.startswith('{"command": "curl')
    assert SECRET not in entry.text


def test_long_text_is_cut_and_says_by_how_much() -> None:
    entry = conversation_entry("tool_result", "x" * (ENTRY_MAX_CHARS + 500))
    assert entry.truncated is True
    assert entry.text.startswith("x" * ENTRY_MAX_CHARS)
    assert entry.text.endswith("[… cut: 500 more characters]")


def test_a_secret_across_the_cut_is_not_half_shown() -> None:
    text = "x" * (ENTRY_MAX_CHARS - 11) + " " + SECRET + " " + "y" * 100
    entry = conversation_entry("tool_result", text)
    assert SECRET[:10] not in entry.text  # masked first, so no prefix survives the cut
    assert "***" in entry.text
