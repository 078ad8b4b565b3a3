"""Pytest fixtures for the fakes; import them into a conftest.py::

from tests.fakes.fixtures import fake_messages_api, fake_messages_api_server  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.settings import ModelSettings
from tests.fakes.messages_api import FakeMessagesAPI

FAKE_API_KEY = "sk-ant-test-0000-fake-key-never-real"


@pytest.fixture(scope="session")
def fake_messages_api_server() -> Iterator[FakeMessagesAPI]:
    """One fake Messages API server for the whole session."""
    with FakeMessagesAPI() as server:
        yield server


@pytest.fixture
def fake_messages_api(fake_messages_api_server: FakeMessagesAPI) -> Iterator[FakeMessagesAPI]:
    """The session's fake server, emptied for this test and expecting ``FAKE_API_KEY``."""
    fake_messages_api_server.reset()
    fake_messages_api_server.api_key = FAKE_API_KEY
    yield fake_messages_api_server
    fake_messages_api_server.reset()


@pytest.fixture
def fake_model_settings(fake_messages_api: FakeMessagesAPI) -> ModelSettings:
    """``ModelSettings`` for the ``anthropic`` provider aimed at the fake server."""
    return ModelSettings(
        MOSAIC_PROVIDER="anthropic",
        ANTHROPIC_API_KEY=FAKE_API_KEY,
        ANTHROPIC_BASE_URL=fake_messages_api.url,
        ANTHROPIC_MODEL="claude-test",
        ANTHROPIC_MAX_TOKENS=1024,
    )
