"""The fake Discord's threads and guild membership, exercised by a real discord.py client: what the
bot's access rules rely on must behave as on Discord (sources cited in the fake's comments)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import pytest
from discord.ext import commands
from fake_discord import FAST_CLIENT_OPTIONS, FakeDiscord

pytest_plugins = ("fake_discord.fixtures",)


class Listener(commands.Bot):
    """A bot with the default intents (no Server Members) that remembers guild events."""

    def __init__(self) -> None:
        super().__init__(
            command_prefix="!", intents=discord.Intents.default(), **FAST_CLIENT_OPTIONS
        )
        self.joined: list[int] = []
        self.removed: list[int] = []

    async def on_guild_join(self, guild: discord.Guild) -> None:
        self.joined.append(guild.id)

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        self.removed.append(guild.id)


@pytest.fixture
async def bot(fake_discord: FakeDiscord) -> AsyncIterator[Listener]:
    async with fake_discord.run_bot(Listener()) as running:
        yield running


async def test_a_private_thread_is_seen_by_its_members_and_manage_threads_only(
    fake_discord: FakeDiscord, bot: Listener
) -> None:
    fake = fake_discord
    bob, carol = fake.other_user, fake.add_user("carol")
    await fake.add_member(carol)
    thread = await fake.add_thread("secret", members=[bob])
    guild = bot.get_guild(fake.guild.id)
    assert guild is not None
    # the bot is not in it and lacks Manage Threads: no THREAD_CREATE, no access
    assert guild.get_thread(thread.id) is None
    with pytest.raises(discord.Forbidden) as denied:
        await bot.http.get_thread_member(thread.id, bob.id)
    assert denied.value.code == 50001

    await fake.add_thread_member(thread, fake.bot_user)
    cached = await fake.wait_until(lambda: guild.get_thread(thread.id), what="THREAD_CREATE")
    assert cached.is_private() and cached.parent_id == fake.channel.id
    assert (await cached.fetch_member(bob.id)).id == bob.id
    with pytest.raises(discord.NotFound) as missing:
        await cached.fetch_member(carol.id)
    assert missing.value.code == 10007
    # discord.py answers with the parent's permissions, membership or not: the bot must ask
    outsider = await guild.fetch_member(carol.id)
    assert cached.permissions_for(outsider).view_channel
    assert fake.permissions_for(thread, carol) == 0
    assert fake.has_permissions(thread, "view_channel", user=bob)
    keepers = await fake.add_role("Thread keepers", "manage_threads")
    await fake.add_member(carol, roles=[keepers])
    assert fake.has_permissions(thread, "view_channel", user=carol)


async def test_a_public_thread_reaches_the_bot_and_membership_changes_need_the_intent(
    fake_discord: FakeDiscord, bot: Listener
) -> None:
    fake = fake_discord
    thread = await fake.add_thread("open", private=False)
    guild = bot.get_guild(fake.guild.id)
    assert guild is not None
    cached = await fake.wait_until(lambda: guild.get_thread(thread.id), what="THREAD_CREATE")
    assert not cached.is_private()
    await fake.add_thread_member(thread, fake.other_user)
    # without the Server Members intent Discord sends no THREAD_MEMBERS_UPDATE about others ...
    assert fake.dispatched("THREAD_MEMBERS_UPDATE") == []
    assert thread.thread_member_ids == [fake.user.id, fake.other_user.id]
    # ... but does when the bot itself joins
    await fake.add_thread_member(thread, fake.bot_user)
    [update] = fake.dispatched("THREAD_MEMBERS_UPDATE")
    assert update.d["added_members"][0]["user_id"] == str(fake.bot_user.id)


async def test_joining_and_leaving_guilds(fake_discord: FakeDiscord, bot: Listener) -> None:
    fake = fake_discord
    joined = await fake.add_guild("New place")
    await fake.wait_until(lambda: joined.id in bot.joined or None, what="on_guild_join")
    guild = bot.get_guild(joined.id)
    assert guild is not None
    await guild.leave()
    await fake.wait_until(lambda: joined.id in bot.removed or None, what="on_guild_remove")
    assert bot.get_guild(joined.id) is None
    assert joined not in fake.bot_guilds() and fake.guild in fake.bot_guilds()
