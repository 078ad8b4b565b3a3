"""The gateway's live feed (``GET /events/stream``, server-sent events) as the clients
read it: the parser, and the cursor that decides how to resume after a dropped
connection. Both clients use them; only the reading of lines differs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from mosaic.clienterrors import UnavailableError
from shared.messages.agents import AgentEvent

FEED_PATH = "/events/stream"
FEED_HEADERS = {"Accept": "text/event-stream"}


class SseParser:
    """Turns the lines of a ``text/event-stream`` into ``(event, data, id)`` triples."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id = ""

    def feed(self, line: str) -> tuple[str, str, str] | None:
        """One line in; a complete message out when the line ends one."""
        if not line:
            if not self._data:
                self._event = ""
                return None
            message = (self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._id = "", [], ""
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None


class FeedCursor:
    """Where a feed resumes and whether it may: with an ``agent_id`` a reconnect asks for
    the events after the last ``seq`` seen, so nothing is lost or repeated; without it,
    events during a reconnect are missed. Reconnects wait the client's backoff and stop
    when its retries are spent."""

    def __init__(
        self,
        agent_id: str | None,
        since: int | None,
        reconnect: bool,
        delay: Callable[[int], float | None],
    ) -> None:
        self.agent_id = agent_id
        self.since = since
        self.reconnect = reconnect
        self._delay = delay
        self._attempt = 0
        self._parser = SseParser()

    def params(self) -> dict[str, str | int]:
        """The query of the next connection."""
        params: dict[str, str | int] = {}
        if self.agent_id:
            params["agentId"] = self.agent_id
        if self.since is not None:
            params["since"] = self.since
        return params

    def connected(self) -> None:
        """A connection answered: retries start over, parsing starts clean."""
        self._attempt = 0
        self._parser = SseParser()

    def events(self, lines: Iterable[str]) -> Iterator[AgentEvent]:
        """The agent events in these lines (the cursor moves past each)."""
        for line in lines:
            message = self._parser.feed(line)
            if message is None:
                continue
            kind, data, _ = message
            if kind == "agent":
                event = AgentEvent.model_validate_json(data)
                if self.agent_id is not None:
                    self.since = event.seq
                yield event
            elif kind == "dropped":
                raise UnavailableError(0, "the gateway dropped this feed: " + data, code="too_slow")

    def lost(self, exc: Exception) -> float:
        """Seconds to wait before reconnecting, or ``UnavailableError`` when the feed may
        not (``reconnect`` off) or the retries are spent."""
        delay = self._delay(self._attempt) if self.reconnect else None
        if delay is None:
            raise UnavailableError(0, f"feed lost: {exc}") from exc
        self._attempt += 1
        return delay
