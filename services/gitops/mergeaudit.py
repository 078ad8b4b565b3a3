"""Every merge the queue lands is written to the audit trail, with its commit range.

The entry is written right after the remote accepted the push (``KIND_MERGE``: who,
which repository and base, ``<old base>..<new base>``, the agent's head). The push
cannot be taken back, so an audit trail that stays unavailable does not undo it: the
reply then carries the merge *and* an ``audit_unavailable`` failure, the spawner records
that on the agent (a ``warning`` event), and gitops logs it as an error.
"""

from __future__ import annotations

import asyncio
import logging

from faststream.nats import NatsBroker

from services.gitops.integrate import land
from services.gitops.repos import RepoCache
from services.gitops.safety import redact
from shared.audit import KIND_MERGE, audit
from shared.messages.audit import AuditEntry
from shared.messages.base import Failure
from shared.messages.gitops import Landed, LandRequested
from shared.service import instance_name

log = logging.getLogger(__name__)

AUDIT_ATTEMPTS = 3


class MergeAudit:
    """Lands merges and audits each one on the broker's JetStream."""

    def __init__(self, broker: NatsBroker) -> None:
        self._broker = broker
        self._actor = instance_name("gitops")

    async def land(self, cache: RepoCache, request: LandRequested) -> Landed:
        """``integrate.land``, then the audit entry of the merge it made."""
        landed = await land(cache, request)
        if landed.commit is None:
            return landed
        entry = AuditEntry(
            kind=KIND_MERGE,
            actor=self._actor,
            reason=f"merge queue: {landed.remote_branch} into {request.base_branch}",
            agent_id=request.agent_id,
            task_id=request.task_id,
            detail={
                "repository": redact(request.repository),
                "baseBranch": request.base_branch,
                "range": landed.range,
                "commit": landed.commit,
                "head": request.head,
                "agentBranch": landed.remote_branch,
            },
        )
        delay = 0.5
        for attempt in range(1, AUDIT_ATTEMPTS + 1):
            try:
                await audit(self._broker.connection.jetstream(), entry)
                return landed
            except Exception as exc:
                if attempt == AUDIT_ATTEMPTS:
                    log.error(
                        "merge %s landed but could not be audited: %s",
                        landed.range,
                        exc,
                        extra={"agent_id": request.agent_id, "task_id": request.task_id},
                    )
                    failure = Failure(
                        code="audit_unavailable",
                        message=f"merged {landed.range}, but the audit trail is unavailable: {exc}",
                    )
                    return landed.model_copy(update={"error": failure})
                await asyncio.sleep(delay)
                delay *= 2
        return landed  # unreachable: the loop returns
