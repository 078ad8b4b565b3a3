"""When an agent calls ``finish``: accept its work, or send it back with a reason.

Pure decisions, no I/O: the finish step (``services.spawner.finishing``) runs the gates,
the commit and the push, and asks this policy after each what the answer is. What the
policy remembers across the finishes of one attempt (a commit was made, the agent was
told its worktree is unchanged) lives here, not in the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.spawner.errors import StepFailedError
from services.spawner.merging import MergeResult
from services.spawner.runtime import tools
from shared.messages.gates import GateDecision, GatePhase
from shared.messages.gitops import CommitMade, PushDone
from shared.messages.tasks import AgentType


@dataclass(frozen=True)
class Accept:
    """The finish stands: the run ends ``completed``."""

    pushed: PushDone | None = None
    """Where the work landed; ``None`` when there was nothing to push."""

    @property
    def unchanged(self) -> bool:
        """The agent confirmed that the task needs no change: nothing was pushed."""
        return self.pushed is None


@dataclass(frozen=True)
class SendBack:
    """The finish is refused: ``text`` goes back to the agent, which works on."""

    text: str


@dataclass(frozen=True)
class Resolve:
    """The push met conflicts: the agent is sent back to resolve them (the text is
    built in its sandbox, where the conflicting files are)."""

    pushed: PushDone


class GoOn:
    """Nothing to answer yet: the finish step goes on to its next step."""


GO_ON = GoOn()


UNCHANGED_TEXT = (
    "Nothing to commit: the worktree has no change against the base branch, so none of "
    "your edits are there. If the task needs changes, make them (write_file, edit_file) "
    "and call finish again. If it needs no change at all, call finish again to end "
    "without pushing anything."
)


class FinishPolicy:
    """Answers each step of one attempt's finish: accept, send back, or go on."""

    def __init__(self, agent_type: AgentType, base_commit: str | None) -> None:
        self._can_change = can_change(agent_type)
        self._base = base_commit
        self.committed = False
        """This attempt made a commit (pushed or not), in this finish or an earlier one."""
        self._told_unchanged = False

    def gates(self, decision: GateDecision, phase: GatePhase) -> SendBack | GoOn:
        """Gates that did not run fail the attempt; a rejection goes back to the agent."""
        if decision.error is not None:
            raise StepFailedError("gates", decision.error)
        if not decision.approved:
            return SendBack(rejection_text(decision, phase))
        return GO_ON

    def commit(self, made: CommitMade) -> SendBack | Accept | GoOn:
        """After the commit: a blocked commit goes back; a branch still at its base is
        sent back once, and accepted with nothing pushed when the agent finishes again
        (at once for an agent type that cannot change files, such as the reviewer)."""
        if made.error is not None:
            if made.error.code == "secret_found":
                return SendBack(
                    f"Commit blocked by the secret scan: {made.error.message}. "
                    "Remove the secret and finish again."
                )
            if made.error.code == "wrong_branch":
                return SendBack(f"Not committed: {made.error.message}. Then finish again.")
            raise StepFailedError("commit", made.error)
        if made.commit is not None:
            self.committed = True
            return GO_ON
        if not self._branch_has_no_work(made):
            return GO_ON
        # Nothing the agent did reached the worktree: pushing would publish the base
        # as if it were the work.
        if not self._told_unchanged and self._can_change:
            self._told_unchanged = True
            return SendBack(UNCHANGED_TEXT)
        return Accept(pushed=None)

    def push(self, pushed: PushDone) -> Accept | Resolve:
        """Pushed: accepted; conflicts: back to the agent; any other failure fails."""
        if pushed.conflicts:
            return Resolve(pushed)
        if pushed.error is not None:
            raise StepFailedError("push", pushed.error)
        return Accept(pushed=pushed)

    def merged(self, result: MergeResult) -> Accept | Resolve | SendBack:
        """Through the merge queue: landed, a conflict for the agent, or a rejection by
        the pre-push gates on the integrated tree."""
        if result.conflict is not None:
            return Resolve(result.conflict)
        if result.rejected is not None:
            return SendBack(rejection_text(result.rejected, "pre-push"))
        if result.landed is None:
            raise AssertionError("a merge result is landed, conflicted or rejected")
        return Accept(
            PushDone(remote_branch=result.landed.remote_branch, commit=result.landed.head)
        )

    def _branch_has_no_work(self, made: CommitMade) -> bool:
        """Nothing committed now, in this attempt or before: the branch is still its base."""
        if self.committed:
            return False
        return made.head is None or self._base is None or made.head == self._base


def can_change(agent_type: AgentType) -> bool:
    """Whether the agent has a tool that changes files (a reviewer only reads)."""
    allowed = set(tools.TOOL_SETS.get(agent_type, ()))
    return bool(allowed & {"write_file", "edit_file", "run_command"})


def rejection_text(decision: GateDecision, phase: GatePhase = "pre-commit") -> str:
    """What the agent reads when the gates rejected its change."""
    if phase == "pre-push":
        lines = [
            "The pre-push quality gates (run again on your change on top of the updated "
            "base) rejected it:"
        ]
    else:
        lines = ["Quality gates rejected the change:"]
    for result in decision.results:
        if result.status == "failed":
            lines.append(f"- {result.name} failed:\n{result.excerpt[-2000:]}")
    lines.append("Fix these and call finish again.")
    return "\n".join(lines)
