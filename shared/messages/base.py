"""The base every bus and HTTP message derives from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Self

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


def utcnow() -> datetime:
    """Timezone-aware now, the only clock messages use."""
    return datetime.now(UTC)


class CamelModel(BaseModel):
    """camelCase on the wire, snake_case in Python: every model the bus or HTTP carries
    (messages, the gateway's answers, the client's view of them) says so here, once."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class Message(CamelModel):
    """Immutable and strict on top of the wire names (pydantic merges the configs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_bytes(self) -> bytes:
        """Serialise for the bus."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Self:
        """Parse and validate a message from the bus."""
        return cls.model_validate_json(data)


class Failure(Message):
    """A failure carried in a reply: what went wrong, in words a person can act on."""

    code: str
    message: str
    retryable: bool = False
    paths: tuple[str, ...] = ()
