"""The spawner's side of the deployment's daily budget: pause the intake while the hold
is in force, take tasks again once it is lifted (an admin's resume, the next UTC day).

A kill-all's hold is lifted by ``mosaic.kill.resume`` (``handlers``); the budget's is
also lifted by the date turning, which no message announces, so this polls the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.spawner.dispatcher import Dispatcher
from shared.store import StateStore

log = logging.getLogger(__name__)


class BudgetPause:
    """Pauses ``dispatcher`` for as long as the store says intake is held."""

    def __init__(self, dispatcher: Dispatcher, store: StateStore, poll_s: float) -> None:
        self.dispatcher = dispatcher
        self.store = store
        self.poll_s = poll_s
        self._watch: asyncio.Task[None] | None = None

    def hold(self) -> None:
        """A task met the budget's hold: stop taking tasks until it is lifted."""
        if self._watch is not None and not self._watch.done():
            return
        self.dispatcher.pause()
        log.warning("the daily budget is spent: intake paused until a resume or the next day")
        self._watch = asyncio.create_task(self._until_lifted())

    async def _until_lifted(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            with contextlib.suppress(Exception):  # Valkey away: ask again later
                if await self.store.held() is None:
                    log.warning("budget hold lifted; intake resumed")
                    self.dispatcher.resume()
                    return

    def close(self) -> None:
        """Stop watching (the spawner is stopping)."""
        if self._watch is not None:
            self._watch.cancel()
