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
    """A started :class:`FakeDiscord`; fails the test if the bot hit a route the fake lacks, or
    sent a request real Discord would reject (its OpenAPI spec or documented limits).

    Set ``fake_discord.strict_routes = False`` in a test that expects unknown routes, and
    ``fake_discord.strict_requests = False`` in one that sends invalid requests on purpose.
    """
    async with FakeDiscord() as fake:
        yield fake
        unknown = fake.unknown_requests
        if fake.strict_routes and unknown:
            keys = sorted({r.key for r in unknown})
            pytest.fail(f"the bot called routes the fake does not implement: {keys}")
        if fake.strict_requests and fake.invalid_requests:
            pytest.fail(fake.describe_invalid(), pytrace=False)
