"""The batch file of ``mosaic dispatch``: formats, defaults, generated task ids, refusals;
and the summary's rules (which failed checks are shown, the exit code)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from mosaic.batch import Dispatched
from mosaic.client import MosaicClient
from mosaic.dispatch import (
    BatchFileError,
    Progress,
    causes,
    exit_code,
    load_batch,
    summary_lines,
)
from mosaic.embedded import free_port
from shared.messages.checks import Check, PreCheck


def test_a_list_and_a_mapping_with_defaults_load_alike(tmp_path: Path) -> None:
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([{"taskId": "a", "context": {"repository": "/r"}}]))
    assert load_batch(listed) == [{"taskId": "a", "context": {"repository": "/r"}}]
    mapped = tmp_path / "batch.yaml"
    mapped.write_text(
        "defaults:\n  priority: 3\n  context: {repository: /r, branch: main}\n"
        "tasks:\n  - taskId: b\n    priority: 1\n    context: {branch: dev, workItems: [x]}\n"
    )
    (task,) = load_batch(mapped)
    assert task == {
        "taskId": "b",
        "priority": 1,  # the task's own value wins
        "context": {"repository": "/r", "branch": "dev", "workItems": ["x"]},  # merged
    }


def test_missing_task_ids_are_stable_per_file_content_and_position(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("- {agentType: worker}\n- {agentType: worker}\n")
    first = [t["taskId"] for t in load_batch(path)]
    assert first == [t["taskId"] for t in load_batch(path)]
    assert len(set(first)) == 2
    assert all(i.startswith("batch-") and len(i) == len("batch-") + 12 for i in first)
    path.write_text("- {agentType: worker}\n- {agentType: reviewer}\n")
    assert [t["taskId"] for t in load_batch(path)] != first


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.yaml", "tasks: [unclosed\n", "is not valid YAML"),
        ("a.json", "[1,", "is not valid JSON"),
        ("a.yaml", "tasks: []\n", "expected a non-empty list of tasks"),
        ("a.yaml", "{}\n", "expected a non-empty list of tasks"),
        ("a.yaml", "task: [{}]\n", "unknown top-level keys ['task']"),
        ("a.yaml", "defaults: [1]\ntasks: [{}]\n", "defaults must be a mapping"),
        ("a.yaml", "- {}\n- 5\n", "task 2 is not a mapping"),
    ],
)
def test_a_file_that_is_not_a_batch_is_refused_naming_why(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(BatchFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_batch(path)
    with pytest.raises(BatchFileError, match="cannot read"):
        load_batch(tmp_path / "absent.yaml")


def verdict(*checks: tuple[str, bool, str]) -> PreCheck:
    return PreCheck.of([Check(name=n, ok=ok, detail=d) for n, ok, d in checks])


def test_the_summary_shows_the_checks_to_act_on_and_the_exit_code_follows_refusals() -> None:
    refused = verdict(
        ("intake", True, "intake open"),
        ("branch", False, "the repository has no branch 'x'"),
        ("gates", False, "not checked: the branch check failed"),
    )
    assert [c.name for c in causes(refused)] == ["branch"]
    silent = verdict(("repository", False, "not checked: gitops did not answer"))
    assert [c.name for c in causes(silent)] == ["repository"]  # nothing else to show
    outcomes = [
        Dispatched(task_id="a", queued=True, agent_id="1"),
        Dispatched(task_id="b", queued=False, reason=refused.reason(), precheck=refused),
    ]
    lines = summary_lines(outcomes, None)
    assert lines == [
        "queued 1, refused 1",
        "  refused b:",
        "    branch: the repository has no branch 'x'",
    ]
    assert exit_code(outcomes, None) == 1
    assert exit_code(outcomes[:1], None) == 0


def test_a_gateway_that_does_not_answer_refuses_the_rest_unsent() -> None:
    seen: list[str] = []
    tasks = [{"taskId": f"t{n}"} for n in range(3)]
    with MosaicClient(f"http://127.0.0.1:{free_port()}", "t", retries=1, backoff=0.01) as c:
        outcomes = c.dispatch(tasks, on_each=lambda d: seen.append(str(d.task_id)))
    assert seen == ["t0", "t1", "t2"]
    assert not any(o.queued for o in outcomes)
    assert "cannot reach" in str(outcomes[0].reason)
    assert all(str(o.reason).startswith("not sent: cannot reach") for o in outcomes[1:])


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_one_line_on_a_terminal_and_writes_lines_otherwise() -> None:
    tty = Terminal()
    bar = Progress("dispatch", 4, tty)
    bar.step("t1: queued", "queued 1  refused 0")
    bar.step("t2: refused (branch)", "queued 1  refused 1")
    bar.finish()
    drawn = tty.getvalue()
    assert drawn.count("\r") == 2
    assert drawn.count("\n") == 1  # only the last one, after the bar
    assert "[" + "#" * 15 + "-" * 15 + "] 2/4  queued 1  refused 1" in drawn
    piped = io.StringIO()
    lines = Progress("dispatch", 2, piped)
    lines.step("t1: queued", "")
    lines.step("t2: refused (branch)", "")
    lines.finish()
    assert piped.getvalue() == "dispatch 1/2: t1: queued\ndispatch 2/2: t2: refused (branch)\n"
