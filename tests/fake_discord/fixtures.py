"""pytest fixtures for the fake Discord.

Use from a test module with ``pytest_plugins = ("fake_discord.fixtures",)`` (or import the
fixtures into a conftest). Async fixtures rely on ``asyncio_mode = "auto"``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .server import FakeDiscord


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started :class:`FakeDiscord`; fails the test if the bot hit a route the fake lacks.

    Set ``fake_discord.strict_routes = False`` in a test that expects unknown routes.
    """
    async with FakeDiscord() as fake:
        yield fake
        unknown = fake.unknown_requests
        if fake.strict_routes and unknown:
            keys = sorted({r.key for r in unknown})
            pytest.fail(f"the bot called routes the fake does not implement: {keys}")
