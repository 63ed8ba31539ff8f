"""Pointing a real discord.py client at a :class:`FakeDiscord`.

discord.py has no per-client base URL: REST URLs come from the class attribute
``discord.http.Route.BASE`` (also used by interaction webhooks), the first gateway connection
from ``DiscordWebSocket.DEFAULT_GATEWAY`` (2.x no longer calls ``GET /gateway`` for a single
shard), and CDN URLs from ``discord.asset.Asset.BASE``. ``patch_discord`` swaps all three and
restores them on exit, so nothing can leak to discord.com even if a test forgets something.
Resumes go to READY's ``resume_gateway_url``, which the fake also points at itself.

Compression is left as discord.py requests it (``compress=zlib-stream`` on the gateway URL);
the fake implements that stream format, so no client option has to change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import discord
import discord.asset
import discord.gateway
import discord.http
import yarl

if TYPE_CHECKING:
    from .server import FakeDiscord

ClientT = TypeVar("ClientT", bound=discord.Client)

#: Constructor options that make a bot start fast against the fake. ``guild_ready_timeout`` is
#: how long discord.py waits for further GUILD_CREATEs before firing ``on_ready`` (default 2 s,
#: per connect); the fake sends them all right after READY, so a short wait is safe.
FAST_CLIENT_OPTIONS: dict[str, Any] = {"guild_ready_timeout": 0.2}

_patch_depth = 0


class FakeEndpoints(Protocol):
    """Where a fake Discord listens: a :class:`FakeDiscord` in this process, or a
    ``launch.RemoteFake`` naming one that runs in the test process of a bot started as a
    subprocess."""

    @property
    def base_url(self) -> str: ...

    @property
    def api_base(self) -> str: ...

    @property
    def gateway_url(self) -> str: ...


@contextlib.contextmanager
def patch_discord(fake: FakeEndpoints) -> Iterator[None]:
    """Route discord.py's REST, gateway and CDN traffic to ``fake`` for the duration."""
    global _patch_depth
    saved = (
        discord.http.Route.BASE,
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
        discord.asset.Asset.BASE,
    )
    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    discord.asset.Asset.BASE = f"{fake.base_url}/cdn"
    _patch_depth += 1
    try:
        yield
    finally:
        _patch_depth -= 1
        (
            discord.http.Route.BASE,
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
            discord.asset.Asset.BASE,
        ) = saved


def default_intents() -> discord.Intents:
    """What a bot like ours asks for: the defaults plus message content (privileged)."""
    intents = discord.Intents.default()
    intents.message_content = True
    return intents


@contextlib.asynccontextmanager
async def run_bot(
    fake: FakeDiscord, bot: ClientT, *, ready_timeout: float = 30.0
) -> AsyncIterator[ClientT]:
    """Start ``bot`` against ``fake`` and wait until it is ready with every guild cached.

    The bot runs in a background task for the body of the ``async with``; on exit it is closed
    (websocket close 1000, HTTP session closed) and the task awaited, and the patches undone.
    If the bot dies while starting (bad token, a crash in ``setup_hook``, a refused intent),
    its exception is raised here instead of a timeout.
    """
    with patch_discord(fake):
        # ``bot.start`` is ``login`` + ``connect``; logging in here surfaces a bad token or a
        # crashing ``setup_hook`` directly, and only the gateway loop runs in the background.
        try:
            await bot.login(fake.token)
        except BaseException:
            await bot.close()
            raise
        task = asyncio.create_task(bot.connect(), name="fake-discord-bot")
        try:
            await _wait_ready(fake, bot, task, ready_timeout)
            yield bot
        finally:
            await bot.close()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=10)


async def _wait_ready(
    fake: FakeDiscord, bot: discord.Client, task: asyncio.Task[None], timeout: float
) -> None:
    ready = asyncio.ensure_future(bot.wait_until_ready())
    try:
        done, _ = await asyncio.wait({ready, task}, timeout=timeout, return_when="FIRST_COMPLETED")
        if task in done:
            task.result()  # re-raise the start-up failure
            raise RuntimeError("bot.start() returned before the bot became ready")
        if ready not in done:
            raise TimeoutError(f"bot not ready after {timeout}s\n{fake.describe()}")
    finally:
        ready.cancel()

    def all_guilds_cached() -> bool:
        return all(
            (g := bot.get_guild(gid)) is not None and not g.unavailable for gid in fake.guilds
        )

    await fake.wait_until(all_guilds_cached, timeout=timeout, what="all guilds cached by the bot")
