"""``FakeDiscord``: a local Discord (REST + gateway + CDN) that a real discord.py client talks to.

Usage::

    async with FakeDiscord() as fake:
        async with fake.run_bot(bot):             # patches discord.py's URLs, starts, waits ready
            interaction = await fake.run_slash_command("video", {"prompt": "a cat"})
            followup = await fake.wait_for_followup(interaction)
            assert followup.attachments[0].filename.endswith(".mp4")

Everything the bot sends is kept in ``fake.requests`` (in arrival order), every message's current
state in ``fake.messages``, every interaction in ``fake.interactions``, every gateway frame in
``fake.gateway_log``. The ``wait_for_*`` helpers re-check their condition whenever any of those
change, so tests never sleep-poll.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import mimetypes
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from aiohttp import web

from . import payloads as P
from .faults import (
    Fault,
    Matcher,
    compile_matcher,
    error_response,
    rate_limit_response,
    too_large_response,
)
from .gateway import GUILD_MEMBERS, INVALIDATE_SESSION, RECONNECT, Gateway, GatewaySession
from .models import (
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeRole,
    FakeUser,
    GatewayFrame,
    Overwrite,
    RecordedRequest,
    StoredAttachment,
    StoredMessage,
    Upload,
    iso_now,
    new_snowflake,
)

if TYPE_CHECKING:
    import discord

T = TypeVar("T")
ClientT = TypeVar("ClientT", bound="discord.Client")
MiB = 1024 * 1024

#: Discord's per-request upload limit for an unboosted guild (and what interactions report).
DEFAULT_MAX_UPLOAD = 10 * MiB

# Interaction types
PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5

_MENTION_RE = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION_RE = re.compile(r"<@&(\d+)>")

_ONE_PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


class FakeDiscord:
    """A fake Discord server on 127.0.0.1 with an ephemeral port.

    Args:
        token: the bot token the fake accepts (REST ``Authorization`` and gateway IDENTIFY).
        heartbeat_interval_ms: sent in HELLO; short so heartbeats really happen in tests.
        token_lifetime: seconds an interaction token stays valid (Discord: 15 minutes).
        response_deadline: seconds the bot has for the *initial* interaction callback (Discord:
            3). ``None`` (default) disables it so loaded CI machines don't flake; tests can
            still assert on ``FakeInteraction.response_latency``.
        max_upload_size: bytes per request across all files before a 413 (code 40005); also
            reported to the bot as the interaction's ``attachment_size_limit``.
        privileged_intents: the privileged intents enabled for the application in the developer
            portal: members and presences by default, but not message content, as on a new
            application. Asking for one that is not enabled closes the gateway with 4014.
        followup_replaces_deferred: Discord turns the first follow-up after a "thinking" defer
            into an edit of the deferred message; on by default, as on Discord.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        heartbeat_interval_ms: int = 1000,
        token_lifetime: float = 15 * 60,
        response_deadline: float | None = None,
        max_upload_size: int = DEFAULT_MAX_UPLOAD,
        privileged_intents: int = (1 << 1) | (1 << 8),
        followup_replaces_deferred: bool = True,
    ) -> None:
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.token_lifetime = token_lifetime
        self.response_deadline = response_deadline
        self.max_upload_size = max_upload_size
        self.privileged_intents = privileged_intents
        self.followup_replaces_deferred = followup_replaces_deferred
        #: Read by the ``fake_discord`` fixture: fail the test if unknown routes were called.
        self.strict_routes = True
        #: Check every request against Discord's OpenAPI spec and documented limits; a request
        #: that breaks them gets Discord's 400 (50035) and lands in ``invalid_requests``.
        self.validate_requests = True
        #: Fail the test (on leaving ``async with``) if any request was invalid. Set it to
        #: ``False`` in a test that sends invalid requests on purpose.
        self.strict_requests = True
        #: ``wait_until`` re-checks at least this often, for conditions on state outside the
        #: fake (e.g. a list the bot appends to); fake-side changes wake it immediately.
        self.poll_interval = 0.05

        self.users: dict[int, FakeUser] = {}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, StoredMessage] = {}
        self.attachments: dict[int, StoredAttachment] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.commands: dict[int | None, dict[int, dict[str, Any]]] = {None: {}}
        self.requests: list[RecordedRequest] = []
        self.gateway_log: list[GatewayFrame] = []
        self.faults: list[Fault] = []
        self._dm_channels: dict[int, FakeChannel] = {}
        self._waiters: set[asyncio.Future[None]] = set()

        #: Members of the team that owns the application (user: role); empty: alice owns it.
        self.application_team: dict[FakeUser, str] = {}
        self.application_id = new_snowflake()
        self.bot_user = self.add_user("videobot", bot=True, user_id=self.application_id)
        self.token = token or self._make_token(self.bot_user.id)
        self.user = self.add_user("alice", global_name="Alice")
        self.other_user = self.add_user("bob", global_name="Bob")
        self.guild = self._build_default_guild()
        self.channel = self.guild.channel("general")

        self.gateway = Gateway(self)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle & URLs

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
        if exc_info[0] is None and self.strict_requests and self.invalid_requests:
            raise AssertionError(self.describe_invalid())

    async def start(self) -> None:
        from .rest import build_app

        app = build_app(self)
        self._runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """What ``discord.http.Route.BASE`` is patched to."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway/"

    @property
    def resume_gateway_url(self) -> str:
        """Sent in READY; a distinct path so tests can see that RESUME used it."""
        return f"ws://127.0.0.1:{self.port}/resume-gateway/"

    def patch_discord(self) -> contextlib.AbstractContextManager[None]:
        """Point discord.py's REST base, default gateway and CDN at this fake (reversibly)."""
        from .client import patch_discord

        return patch_discord(self)

    def run_bot(
        self, bot: ClientT, *, ready_timeout: float = 30.0
    ) -> contextlib.AbstractAsyncContextManager[ClientT]:
        """Patch discord.py, ``bot.start(fake.token)`` in a task, wait for ready, close after."""
        from .client import run_bot

        return run_bot(self, bot, ready_timeout=ready_timeout)

    @staticmethod
    def _make_token(user_id: int) -> str:
        head = base64.b64encode(str(user_id).encode()).decode().rstrip("=")
        return f"{head}.FAKE00.{secrets.token_urlsafe(27)}"

    # ------------------------------------------------------------------ world building

    def add_user(
        self,
        username: str,
        *,
        global_name: str | None = None,
        bot: bool = False,
        user_id: int | None = None,
    ) -> FakeUser:
        """A user known to the fake; add them to a guild with :meth:`add_member`."""
        user = FakeUser(user_id or new_snowflake(), username, global_name, bot=bot)
        self.users[user.id] = user
        return user

    def _build_default_guild(self) -> FakeGuild:
        guild = self._new_guild("Videobot Test Guild", owner=self.user, channels=("general",))
        self._new_channel(guild, "videos", topic="Generated videos land here")
        admin = self._new_role(guild, "Admin", P.PERMISSIONS["administrator"])
        self._join(guild, self.user, [admin.id])
        self._join(guild, self.other_user, [])
        return guild

    def _new_guild(
        self, name: str, *, owner: FakeUser | None, channels: Iterable[str]
    ) -> FakeGuild:
        owner = owner or self.user
        guild_id = new_snowflake()
        guild = FakeGuild(guild_id, name, owner.id)
        guild.roles.append(FakeRole(guild_id, "@everyone", P.DEFAULT_EVERYONE_PERMISSIONS))
        self.guilds[guild_id] = guild
        bot_role = self._new_role(guild, self.bot_user.username, P.DEFAULT_BOT_PERMISSIONS)
        bot_role.managed = True
        bot_role.bot_id = self.bot_user.id
        self._join(guild, self.bot_user, [bot_role.id])
        for channel_name in channels:
            self._new_channel(guild, channel_name)
        return guild

    def _new_role(self, guild: FakeGuild, name: str, permissions: int) -> FakeRole:
        role = FakeRole(new_snowflake(), name, permissions, position=len(guild.roles))
        guild.roles.append(role)
        return role

    def _new_channel(
        self, guild: FakeGuild, name: str, *, topic: str | None = None, nsfw: bool = False
    ) -> FakeChannel:
        channel = FakeChannel(
            new_snowflake(), name, guild.id, position=len(guild.channels), topic=topic, nsfw=nsfw
        )
        guild.channels.append(channel)
        self.channels[channel.id] = channel
        return channel

    def _join(self, guild: FakeGuild, user: FakeUser, role_ids: list[int]) -> FakeMember:
        member = FakeMember(user, list(role_ids))
        guild.members[user.id] = member
        return member

    async def add_guild(
        self, name: str, *, owner: FakeUser | None = None, channels: Sequence[str] = ("general",)
    ) -> FakeGuild:
        """A new guild the bot is in (GUILD_CREATE is dispatched if the bot is connected)."""
        guild = self._new_guild(name, owner=owner, channels=channels)
        owner_member = guild.members.get(guild.owner_id)
        if owner_member is None:
            self._join(guild, self.users[guild.owner_id], [])
        for session in self.gateway.live_sessions():
            data = self._guild_create(guild, session)
            # A guild joined (not one coming back from an outage) carries no ``unavailable``:
            # discord.py's ``parse_guild_create`` tells ``on_guild_join`` from
            # ``on_guild_available`` by exactly that.
            del data["unavailable"]
            await self._dispatch_to(session, "GUILD_CREATE", data)
        return guild

    async def add_channel(
        self,
        name: str,
        *,
        guild: FakeGuild | None = None,
        topic: str | None = None,
        nsfw: bool = False,
    ) -> FakeChannel:
        guild = guild or self.guild
        channel = self._new_channel(guild, name, topic=topic, nsfw=nsfw)
        await self.dispatch("CHANNEL_CREATE", P.channel_payload(channel))
        return channel

    async def add_role(
        self,
        name: str,
        permissions: Iterable[str | int] | str | int = 0,
        *,
        guild: FakeGuild | None = None,
    ) -> FakeRole:
        guild = guild or self.guild
        role = self._new_role(guild, name, P.permission_bits(permissions))
        await self.dispatch(
            "GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": P.role_payload(role)}
        )
        return role

    async def add_member(
        self,
        user: FakeUser,
        *,
        guild: FakeGuild | None = None,
        roles: Sequence[FakeRole] = (),
        nick: str | None = None,
    ) -> FakeMember:
        """``user`` joins ``guild`` (GUILD_MEMBER_ADD goes to bots with the members intent)."""
        guild = guild or self.guild
        member = self._join(guild, user, [r.id for r in roles])
        member.nick = nick
        data = P.member_payload(member)
        data["guild_id"] = str(guild.id)
        await self.dispatch("GUILD_MEMBER_ADD", data)
        return member

    def dm_channel(self, user: FakeUser) -> FakeChannel:
        """The DM channel between the bot and ``user`` (created on first use, like Discord)."""
        channel = self._dm_channels.get(user.id)
        if channel is None:
            channel = FakeChannel(new_snowflake(), "", None, type=1, recipient_id=user.id)
            self._dm_channels[user.id] = channel
            self.channels[channel.id] = channel
        return channel

    def member(self, user: FakeUser, guild: FakeGuild | None = None) -> FakeMember:
        guild = guild or self.guild
        return guild.members[user.id]

    def permissions_for(self, channel: FakeChannel, user: FakeUser | None = None) -> int:
        """Effective permission bits of ``user`` (default: the bot) in ``channel``; a thread's
        are its parent's, and a private thread's are nothing for a non-member without Manage
        Threads (:func:`payloads.thread_permissions`)."""
        user = user or self.bot_user
        if channel.guild_id is None:
            return P.DEFAULT_BOT_PERMISSIONS if user.bot else P.DEFAULT_EVERYONE_PERMISSIONS
        guild = self.guilds[channel.guild_id]
        member = guild.members.get(user.id)
        if member is None:
            return 0
        if channel.is_thread:
            parent = self.channels[channel.parent_id or 0]
            return P.thread_permissions(guild, parent, channel, member)
        return P.channel_permissions(guild, channel, member)

    # ------------------------------------------------------------------ threads

    async def add_thread(
        self,
        name: str,
        *,
        parent: FakeChannel | None = None,
        private: bool = True,
        owner: FakeUser | None = None,
        members: Sequence[FakeUser] = (),
    ) -> FakeChannel:
        """``owner`` (default alice) starts a thread in ``parent`` and ``members`` are added.

        As on Discord (Gateway > Thread Create: "sent when a thread is created, relevant to the
        current user, or when the current user is added to a thread"), the bot gets THREAD_CREATE
        only for a thread it can view: a public one whose parent it sees, a private one it was
        added to or holds Manage Threads for."""
        parent = parent or self.channel
        owner = owner or self.user
        if parent.guild_id is None or parent.is_thread:
            raise ValueError("threads start in a guild text channel")
        guild = self.guilds[parent.guild_id]
        thread = FakeChannel(
            new_snowflake(),
            name,
            guild.id,
            type=FakeChannel.PRIVATE_THREAD if private else FakeChannel.PUBLIC_THREAD,
            parent_id=parent.id,
            owner_id=owner.id,
            thread_member_ids=list(dict.fromkeys([owner.id, *(m.id for m in members)])),
        )
        guild.threads.append(thread)
        self.channels[thread.id] = thread
        if self.has_permissions(thread, "view_channel"):
            data = P.thread_payload(thread, member_id=self.bot_user.id)
            data["newly_created"] = True
            await self.dispatch("THREAD_CREATE", data)
        return thread

    async def add_thread_member(self, thread: FakeChannel, user: FakeUser) -> None:
        """``user`` joins ``thread``. THREAD_MEMBERS_UPDATE reaches the bot only with the Server
        Members intent or when the bot itself was added (Gateway > Thread Members Update); the
        bot added to a private thread also gets THREAD_CREATE with its thread member."""
        if user.id in thread.thread_member_ids:
            return
        could_view = self.has_permissions(thread, "view_channel")
        thread.thread_member_ids.append(user.id)
        if user.id == self.bot_user.id and not could_view:
            await self.dispatch("THREAD_CREATE", P.thread_payload(thread, member_id=user.id))
        added = P.thread_member_payload(thread, user.id)
        added["guild_id"] = str(thread.guild_id)
        await self._thread_members_update(thread, user, {"added_members": [added]})

    async def remove_thread_member(self, thread: FakeChannel, user: FakeUser) -> None:
        """``user`` leaves ``thread`` (or is removed from it)."""
        if user.id not in thread.thread_member_ids:
            return
        thread.thread_member_ids.remove(user.id)
        await self._thread_members_update(thread, user, {"removed_member_ids": [str(user.id)]})

    async def _thread_members_update(
        self, thread: FakeChannel, user: FakeUser, change: dict[str, Any]
    ) -> None:
        data = {
            "id": str(thread.id),
            "guild_id": str(thread.guild_id),
            "member_count": min(50, len(thread.thread_member_ids)),
            **change,
        }
        for session in self.gateway.live_sessions():
            if session.intents & GUILD_MEMBERS or user.id == self.bot_user.id:
                await self._dispatch_to(session, "THREAD_MEMBERS_UPDATE", data)

    def has_permissions(
        self, channel: FakeChannel, *names: str, user: FakeUser | None = None
    ) -> bool:
        needed = P.permission_bits(names)
        return self.permissions_for(channel, user) & needed == needed

    async def deny_permission(
        self,
        channel: FakeChannel,
        *permissions: str,
        target: FakeUser | FakeRole | None = None,
    ) -> None:
        """Add a deny overwrite (default target: the bot's member) and send CHANNEL_UPDATE.

        REST then enforces it: sending without ``send_messages`` answers 403 code 50013, sending
        files without ``attach_files`` answers 403 code 50013, lacking ``view_channel`` 50001.
        """
        await self._overwrite(channel, target, deny=P.permission_bits(permissions))

    async def allow_permission(
        self,
        channel: FakeChannel,
        *permissions: str,
        target: FakeUser | FakeRole | None = None,
    ) -> None:
        await self._overwrite(channel, target, allow=P.permission_bits(permissions))

    async def clear_overwrites(self, channel: FakeChannel) -> None:
        channel.overwrites.clear()
        await self.dispatch("CHANNEL_UPDATE", P.channel_payload(channel))

    async def _overwrite(
        self,
        channel: FakeChannel,
        target: FakeUser | FakeRole | None,
        *,
        allow: int = 0,
        deny: int = 0,
    ) -> None:
        if channel.guild_id is None:
            raise ValueError("DM channels have no permission overwrites")
        target = target or self.bot_user
        kind = 0 if isinstance(target, FakeRole) else 1
        overwrite = next(
            (o for o in channel.overwrites if o.id == target.id and o.type == kind), None
        )
        if overwrite is None:
            overwrite = Overwrite(target.id, kind)
            channel.overwrites.append(overwrite)
        overwrite.allow = (overwrite.allow | allow) & ~deny
        overwrite.deny = (overwrite.deny | deny) & ~allow
        await self.dispatch("CHANNEL_UPDATE", P.channel_payload(channel))

    # ------------------------------------------------------------------ gateway payloads

    def _ready_payload(self, session: GatewaySession) -> dict[str, Any]:
        data: dict[str, Any] = {
            "v": 10,
            "user": P.current_user_payload(self.bot_user),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in self.bot_guilds()],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(self.application_id), "flags": 1 << 19 | 1 << 23},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "user_settings": {},
            "geo_ordered_rtc_regions": ["fake-local"],
            "auth": {},
            "_trace": ['["fake-gateway",{"micros":0}]'],
        }
        shard = session.identify.get("shard")
        if shard is not None:
            data["shard"] = shard
        return data

    def _guild_create(self, guild: FakeGuild, session: GatewaySession) -> dict[str, Any]:
        # Without the members intent Discord only sends the bot's own member.
        if session.intents & GUILD_MEMBERS:
            members = list(guild.members.values())
        else:
            members = [m for m in guild.members.values() if m.id == self.bot_user.id]
        threads = [t for t in guild.threads if self.has_permissions(t, "view_channel")]
        return P.guild_create_payload(
            guild, include_members=members, threads=threads, bot_id=self.bot_user.id
        )

    def _guild_create_payloads(self, session: GatewaySession) -> list[dict[str, Any]]:
        return [self._guild_create(g, session) for g in self.bot_guilds()]

    def bot_guilds(self) -> list[FakeGuild]:
        """The guilds the bot is in (it may have left some: ``DELETE /users/@me/guilds/{id}``)."""
        return [g for g in self.guilds.values() if self.bot_user.id in g.members]

    def _member_chunk_payloads(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        guild_ids = request.get("guild_id")
        ids = guild_ids if isinstance(guild_ids, list) else [guild_ids]
        chunks = []
        for gid in ids:
            guild = self.guilds.get(int(gid or 0))
            if guild is None:
                continue
            members = list(guild.members.values())
            wanted = request.get("user_ids")
            query = request.get("query")
            if wanted:
                members = [m for m in members if str(m.id) in {str(u) for u in wanted}]
            elif query:
                members = [m for m in members if m.user.username.startswith(query)]
            limit = request.get("limit") or 0
            if limit:
                members = members[:limit]
            chunk: dict[str, Any] = {
                "guild_id": str(guild.id),
                "members": [P.member_payload(m) for m in members],
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
            }
            if request.get("nonce"):
                chunk["nonce"] = request["nonce"]
            chunks.append(chunk)
        return chunks

    async def _dispatch_to(self, session: GatewaySession, event: str, data: Any) -> None:
        async with session.lock:
            await self.gateway._dispatch_locked(session, event, data)

    async def dispatch(self, event: str, data: Any) -> list[int]:
        """Send a raw DISPATCH to the bot (escape hatch for events the driver doesn't model)."""
        return await self.gateway.dispatch(event, data)

    # ------------------------------------------------------------------ gateway controls

    @property
    def ack_heartbeats(self) -> bool:
        """Set False to simulate a zombie connection (heartbeats go unanswered)."""
        return self.gateway.ack_heartbeats

    @ack_heartbeats.setter
    def ack_heartbeats(self, value: bool) -> None:
        self.gateway.ack_heartbeats = value

    def is_connected(self) -> bool:
        return any(s.connected for s in self.gateway.live_sessions())

    async def wait_until_connected(self, timeout: float = 10.0) -> GatewaySession:
        def check() -> GatewaySession | None:
            return next((s for s in self.gateway.live_sessions() if s.connected), None)

        return await self.wait_until(check, timeout=timeout, what="a connected gateway session")

    async def drop_connection(self, code: int | None = None) -> None:
        """Drop the bot's websocket so discord.py reconnects and RESUMEs.

        ``code=None`` kills the TCP connection with no close frame (a network failure);
        ``code=4000`` (or another resumable code) sends a proper close frame first. Events
        dispatched while the bot is away are buffered and replayed on RESUME.
        """
        if not await self.gateway.drop(code):
            raise RuntimeError("no connected gateway session to drop")

    async def send_reconnect(self) -> None:
        """Opcode 7: ask the bot to reconnect and resume."""
        await self.gateway.send_op(RECONNECT)

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Opcode 9: with ``resumable=False`` the bot must IDENTIFY again."""
        await self.gateway.send_op(INVALIDATE_SESSION, resumable)

    def _log_frame(self, frame: GatewayFrame) -> None:
        self.gateway_log.append(frame)
        self._notify()

    def frames(self, *, direction: str | None = None, op: int | None = None) -> list[GatewayFrame]:
        return [
            f
            for f in self.gateway_log
            if (direction is None or f.direction == direction) and (op is None or f.op == op)
        ]

    def dispatched(self, event: str) -> list[GatewayFrame]:
        """Every DISPATCH of ``event`` actually written to a socket (replays included)."""
        return [f for f in self.gateway_log if f.direction == "send" and f.t == event]

    # ------------------------------------------------------------------ waiting

    def _notify(self) -> None:
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait_until(
        self, check: Callable[[], T | None], *, timeout: float = 10.0, what: str = "condition"
    ) -> T:
        """Re-evaluate ``check`` on every recorded change until it returns something truthy.

        On timeout the error lists the last requests and any unknown routes, which is usually
        the fastest way to see what the bot did instead.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"timed out after {timeout}s waiting for {what}\n{self.describe()}"
                )
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout=min(remaining, self.poll_interval))

    def describe(self, last: int = 15) -> str:
        """A short human-readable dump of recent activity (used in timeout errors)."""
        lines = ["recent requests:"]
        lines += [f"  {r!r}" for r in self.requests[-last:]] or ["  (none)"]
        unknown = self.unknown_requests
        if unknown:
            lines.append("UNKNOWN ROUTES (answered 404): " + ", ".join(r.key for r in unknown))
        if self.invalid_requests:
            lines.append(self.describe_invalid())
        sessions = self.gateway.live_sessions()
        lines.append(
            f"gateway: {len(sessions)} live session(s), connected={self.is_connected()}, "
            f"{len(self.gateway.connections)} connection(s) so far"
        )
        return "\n".join(lines)

    def mark(self) -> int:
        """Index of the next request; pass as ``since=`` to only wait for newer requests."""
        return len(self.requests)

    def requests_for(
        self,
        match: str | Matcher | None = None,
        *,
        since: int = 0,
        api_only: bool = True,
    ) -> list[RecordedRequest]:
        """Recorded requests matching ``"METHOD /path/glob"`` (or a predicate), oldest first."""
        matcher = compile_matcher(match)
        return [
            r
            for r in self.requests[since:]
            if (r.api or not api_only) and r.status is not None and matcher(r)
        ]

    async def wait_for_request(
        self,
        match: str | Matcher | None = None,
        predicate: Callable[[RecordedRequest], bool] | None = None,
        *,
        timeout: float = 10.0,
        since: int = 0,
        count: int = 1,
    ) -> RecordedRequest:
        """Wait until ``count`` answered requests match; returns the ``count``-th one."""
        matcher = compile_matcher(match)

        def check() -> RecordedRequest | None:
            hits = [
                r
                for r in self.requests_for(None, since=since, api_only=False)
                if matcher(r) and (predicate is None or predicate(r))
            ]
            return hits[count - 1] if len(hits) >= count else None

        return await self.wait_until(check, timeout=timeout, what=f"request {match or predicate}")

    async def wait_for_message(
        self,
        predicate: Callable[[StoredMessage], bool],
        *,
        timeout: float = 10.0,
        include_deleted: bool = False,
    ) -> StoredMessage:
        def check() -> StoredMessage | None:
            for message in self.messages.values():
                if (include_deleted or not message.deleted) and predicate(message):
                    return message
            return None

        return await self.wait_until(check, timeout=timeout, what="a matching message")

    async def wait_for_response(
        self, interaction: FakeInteraction, *, timeout: float = 10.0
    ) -> FakeInteraction:
        """Wait until the bot made its initial callback (any type) for ``interaction``."""

        def check() -> FakeInteraction | None:
            return interaction if interaction.responded else None

        return await self.wait_until(
            check, timeout=timeout, what=f"the initial response to interaction {interaction.id}"
        )

    async def wait_for_followup(
        self, interaction: FakeInteraction, *, count: int = 1, timeout: float = 10.0
    ) -> StoredMessage:
        """The ``count``-th follow-up message of ``interaction`` (after it exists)."""

        def check() -> StoredMessage | None:
            ids = interaction.followup_message_ids
            return self.messages[ids[count - 1]] if len(ids) >= count else None

        return await self.wait_until(check, timeout=timeout, what=f"follow-up #{count}")

    async def wait_for_gateway(
        self, predicate: Callable[[GatewayFrame], bool], *, timeout: float = 10.0
    ) -> GatewayFrame:
        def check() -> GatewayFrame | None:
            return next((f for f in self.gateway_log if predicate(f)), None)

        return await self.wait_until(check, timeout=timeout, what="a gateway frame")

    async def wait_for_resume(self, *, timeout: float = 15.0, since: int = 0) -> GatewayFrame:
        """Wait for a RESUMED dispatch (the end of a successful RESUME handshake).

        ``since`` is an index into ``gateway_log`` (``len(fake.gateway_log)`` before the drop).
        """

        def check() -> GatewayFrame | None:
            return next(
                (f for f in self.gateway_log[since:] if f.direction == "send" and f.t == "RESUMED"),
                None,
            )

        return await self.wait_until(check, timeout=timeout, what="RESUMED")

    # ------------------------------------------------------------------ message store queries

    def message(self, message_id: int | StoredMessage) -> StoredMessage:
        if isinstance(message_id, StoredMessage):
            return message_id
        return self.messages[int(message_id)]

    def messages_in(
        self,
        channel: FakeChannel | None = None,
        *,
        include_deleted: bool = False,
        as_user: FakeUser | None = None,
    ) -> list[StoredMessage]:
        """Every message of ``channel``; with ``as_user``, only those that user's client shows
        (ephemeral messages are seen by the member whose interaction they answer, no one else)."""
        channel = channel or self.channel
        return [
            m
            for m in self.messages.values()
            if m.channel_id == channel.id
            and (include_deleted or not m.deleted)
            and (as_user is None or self.visible_to(m, as_user))
        ]

    def visible_to(self, message: StoredMessage | int, user: FakeUser) -> bool:
        """Whether ``user`` can see ``message``: ephemeral ones only by their interaction's user."""
        stored = self.message(message)
        if not stored.ephemeral:
            return True
        interaction = self.interactions.get(stored.interaction_id or 0)
        return interaction is not None and interaction.user.id == user.id

    def _require_visible(self, message: StoredMessage, user: FakeUser, action: str) -> None:
        if not self.visible_to(message, user):
            raise LookupError(
                f"{user.username} cannot {action} message {message.id}: it is ephemeral, shown "
                "only to the member whose interaction it answers"
            )

    def messages_by_bot(self, channel: FakeChannel | None = None) -> list[StoredMessage]:
        return [m for m in self.messages_in(channel) if m.author.id == self.bot_user.id]

    @property
    def unknown_requests(self) -> list[RecordedRequest]:
        """Requests to routes the fake doesn't implement (answered 404 code 0)."""
        return [r for r in self.requests if r.unknown_route]

    @property
    def invalid_requests(self) -> list[RecordedRequest]:
        """Requests real Discord would reject as an Invalid Form Body (answered 400, 50035)."""
        return [r for r in self.requests if r.invalid]

    def describe_invalid(self) -> str:
        lines = ["the bot sent requests Discord would reject (400 Invalid Form Body):"]
        for record in self.invalid_requests:
            lines.append(f"  {record!r}")
            lines += [f"    {error}" for error in record.invalid]
        return "\n".join(lines)

    def original_response(self, interaction: FakeInteraction) -> StoredMessage | None:
        if interaction.original_message_id is None:
            return None
        return self.messages.get(interaction.original_message_id)

    def followups(self, interaction: FakeInteraction) -> list[StoredMessage]:
        return [self.messages[i] for i in interaction.followup_message_ids]

    # ------------------------------------------------------------------ fault injection

    def add_fault(
        self,
        kind: str,
        match: str | Matcher | None,
        build: Callable[[RecordedRequest], web.StreamResponse],
        *,
        count: int = 1,
    ) -> Fault:
        fault = Fault(kind, compile_matcher(match), count, build)
        self.faults.append(fault)
        return fault

    def rate_limit_next(
        self,
        match: str | Matcher | None,
        *,
        retry_after: float = 0.25,
        count: int = 1,
        is_global: bool = False,
        scope: str = "user",
        cloudflare: bool = False,
    ) -> Fault:
        """The next ``count`` matching requests get 429 (headers + ``retry_after`` body).

        ``cloudflare=True`` sends the 429 without a ``Via`` header and with a text body, which
        discord.py treats as a ban and raises immediately instead of retrying.
        """
        scope = "global" if is_global else scope
        return self.add_fault(
            "rate_limit",
            match,
            lambda r: rate_limit_response(
                r,
                retry_after=retry_after,
                is_global=is_global,
                scope=scope,
                via_cloudflare_proxy=not cloudflare,
            ),
            count=count,
        )

    def too_large_next(self, match: str | Matcher | None, *, count: int = 1) -> Fault:
        """The next ``count`` matching requests get 413 code 40005 (Request entity too large)."""
        return self.add_fault("too_large", match, lambda _r: too_large_response(), count=count)

    def fail_next(
        self,
        match: str | Matcher | None,
        *,
        status: int = 500,
        code: int = 0,
        message: str = "Internal Server Error",
        count: int = 1,
    ) -> Fault:
        """The next ``count`` matching requests get ``status`` with a Discord-style JSON body.

        Note discord.py silently retries 500/502/504/524 up to 5 times (with 1 s, 3 s, ...
        sleeps), so ``count`` >= 5 is needed for a 5xx to surface as ``DiscordServerError``.
        """
        return self.add_fault(
            f"status_{status}",
            match,
            lambda _r: error_response(status, code, message),
            count=count,
        )

    def _take_fault(self, request: RecordedRequest) -> Fault | None:
        for fault in self.faults:
            if not fault.exhausted and fault.matcher(request):
                fault.remaining -= 1
                fault.hits.append(request)
                return fault
        return None

    def expire_interaction(self, interaction: FakeInteraction) -> None:
        """Make ``interaction``'s token expire now (callback -> 404 10062, webhooks -> 401)."""
        now = time.monotonic()
        interaction.expires_at = now
        interaction.expired_manually = True

    # ------------------------------------------------------------------ message store mutation

    def store_upload(self, upload: Upload, *, scope: str, scope_id: int) -> StoredAttachment:
        """Keep ``upload``'s bytes and give it a URL on this fake (``Attachment.read()`` works)."""
        att_id = new_snowflake()
        filename = sanitize_filename(upload.filename)
        content_type = upload.content_type or guess_content_type(filename)
        query = signed_query()
        path = f"{scope}/{scope_id}/{att_id}/{quote(filename)}"
        attachment = StoredAttachment(
            id=att_id,
            filename=filename,
            content_type=content_type,
            data=upload.data,
            url=f"{self.base_url}/{path}?{query}",
            proxy_url=f"{self.base_url}/proxy/{path}?{query}",
            description=upload.description,
            ephemeral=scope == "ephemeral-attachments",
        )
        self.attachments[att_id] = attachment
        return attachment

    def message_payload(
        self, message: StoredMessage, *, for_gateway: bool = False, nested: bool = False
    ) -> dict[str, Any]:
        """The JSON Discord would send for ``message`` right now."""
        member = None
        if message.guild_id is not None:
            member = self.guilds[message.guild_id].members.get(message.author.id)
        referenced = None
        if message.message_reference is not None and not nested:
            ref_id = int(message.message_reference.get("message_id", 0))
            ref = self.messages.get(ref_id)
            if ref is not None and not ref.deleted:
                referenced = self.message_payload(ref, nested=True)
        return P.message_payload(
            message,
            users=self.users,
            member=member,
            referenced=referenced,
            interaction_metadata=self._interaction_metadata(message),
            for_gateway=for_gateway,
        )

    def _interaction_metadata(self, message: StoredMessage) -> dict[str, Any] | None:
        interaction = self.interactions.get(message.interaction_id or 0)
        if interaction is None:
            return None
        data: dict[str, Any] = {
            "id": str(interaction.id),
            "type": interaction.type,
            "user": P.user_payload(interaction.user),
            "authorizing_integration_owners": interaction.payload.get(
                "authorizing_integration_owners", {}
            ),
        }
        inner = interaction.payload.get("data", {})
        if interaction.type == APPLICATION_COMMAND:
            data["name"] = inner.get("name")
            data["command_type"] = inner.get("type", 1)
            if inner.get("type") == 3:
                data["target_message_id"] = inner.get("target_id")
        if interaction.type == MESSAGE_COMPONENT and interaction.source_message_id:
            data["interacted_message_id"] = str(interaction.source_message_id)
        if message.id != interaction.original_message_id and interaction.original_message_id:
            data["original_response_message_id"] = str(interaction.original_message_id)
        return data

    def _new_message(self, channel: FakeChannel, author: FakeUser, **fields: Any) -> StoredMessage:
        message = StoredMessage(
            id=new_snowflake(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=author,
            **fields,
        )
        self.messages[message.id] = message
        channel.last_message_id = message.id
        self._notify()
        return message

    async def _emit_create(self, message: StoredMessage) -> None:
        if not message.ephemeral:
            await self.dispatch("MESSAGE_CREATE", self.message_payload(message, for_gateway=True))

    async def _emit_update(self, message: StoredMessage) -> None:
        if not message.ephemeral:
            await self.dispatch("MESSAGE_UPDATE", self.message_payload(message, for_gateway=True))

    async def _emit_delete(self, message: StoredMessage) -> None:
        if message.ephemeral:
            return
        data: dict[str, Any] = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        await self.dispatch("MESSAGE_DELETE", data)

    def _snapshot(self, message: StoredMessage) -> None:
        message.history.append(self.message_payload(message))

    # ------------------------------------------------------------------ driver: users acting

    def _resolve_channel(self, channel: FakeChannel | None, guild: FakeGuild | None) -> FakeChannel:
        if channel is not None:
            return channel
        if guild is not None:
            return guild.text_channels[0]
        return self.channel

    def _require_session(self) -> None:
        if not self.gateway.live_sessions():
            raise RuntimeError("no bot session: start the bot (fake.run_bot) first")

    async def send_message(
        self,
        content: str = "",
        *,
        user: FakeUser | None = None,
        channel: FakeChannel | None = None,
        attachments: Sequence[Upload | tuple[str, bytes, str]] = (),
        reply_to: StoredMessage | int | None = None,
        mentions: Sequence[FakeUser] = (),
        embeds: Sequence[dict[str, Any]] = (),
    ) -> StoredMessage:
        """A user posts a message (MESSAGE_CREATE).

        ``mentions`` that are not already written in ``content`` are prepended as ``<@id>``,
        because Discord derives mentions from the content. ``reply_to`` makes it a reply
        (type 19, ``message_reference`` + ``referenced_message``, the replied author pinged).
        """
        self._require_session()
        user = user or self.user
        channel = channel or self.channel
        for mentioned in mentions:
            if f"<@{mentioned.id}>" not in content and f"<@!{mentioned.id}>" not in content:
                content = f"<@{mentioned.id}> {content}".rstrip()
        stored = [
            self.store_upload(_as_upload(a), scope="attachments", scope_id=channel.id)
            for a in attachments
        ]
        reference = None
        mention_ids = [int(i) for i in _MENTION_RE.findall(content)]
        if reply_to is not None:
            target = self.message(reply_to)
            if target.ephemeral:
                raise ValueError("Discord offers no reply to an ephemeral message")
            reference = {
                "type": 0,
                "message_id": str(target.id),
                "channel_id": str(target.channel_id),
            }
            if target.guild_id is not None:
                reference["guild_id"] = str(target.guild_id)
            if target.author.id not in mention_ids:
                mention_ids.append(target.author.id)
        message = self._new_message(
            channel,
            user,
            content=content,
            embeds=[dict(e) for e in embeds],
            attachments=stored,
            type=19 if reference else 0,
            message_reference=reference,
            mention_user_ids=[i for i in dict.fromkeys(mention_ids) if i in self.users],
            mention_role_ids=[int(i) for i in _ROLE_MENTION_RE.findall(content)],
            mention_everyone="@everyone" in content or "@here" in content,
        )
        await self._emit_create(message)
        return message

    async def edit_message_as_user(self, message: StoredMessage, content: str) -> StoredMessage:
        """The (human) author edits their message (MESSAGE_UPDATE)."""
        self._snapshot(message)
        message.content = content
        message.edited_timestamp = iso_now()
        self._notify()
        await self._emit_update(message)
        return message

    async def delete_message_as_user(self, message: StoredMessage) -> None:
        message.deleted = True
        self._notify()
        await self._emit_delete(message)

    async def add_reaction(
        self, message: StoredMessage, emoji: str, *, user: FakeUser | None = None
    ) -> None:
        """``user`` reacts with a unicode emoji (or ``"name:id"``) (MESSAGE_REACTION_ADD)."""
        user = user or self.user
        message.reactions.setdefault(emoji, set()).add(user.id)
        self._notify()
        name, _, emoji_id = emoji.partition(":")
        data: dict[str, Any] = {
            "user_id": str(user.id),
            "channel_id": str(message.channel_id),
            "message_id": str(message.id),
            "message_author_id": str(message.author.id),
            "emoji": {"id": emoji_id or None, "name": name},
            "burst": False,
            "type": 0,
        }
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
            data["member"] = P.member_payload(self.guilds[message.guild_id].members[user.id])
        await self.dispatch("MESSAGE_REACTION_ADD", data)

    # ------------------------------------------------------------------ driver: interactions

    async def _start_interaction(
        self,
        itype: int,
        data: dict[str, Any],
        *,
        user: FakeUser,
        channel: FakeChannel,
        locale: str,
        message: StoredMessage | None = None,
    ) -> FakeInteraction:
        self._require_session()
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        interaction_id = new_snowflake()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": itype,
            "data": data,
            "token": token,
            "version": 1,
            "locale": locale,
            "entitlements": [],
            "attachment_size_limit": self.max_upload_size,
            "app_permissions": str(self.permissions_for(channel)),
            "channel_id": str(channel.id),
            "channel": P.interaction_channel_payload(channel, self.permissions_for(channel, user)),
        }
        if guild is not None:
            member = guild.members.get(user.id)
            if member is None:
                raise ValueError(f"{user.username} is not a member of {guild.name}")
            if not self.has_permissions(channel, "view_channel", user=user):
                # Discord's client shows no channel (nor private thread) the user cannot view.
                raise ValueError(f"{user.username} cannot see #{channel.name}")
            member_data = P.member_payload(member)
            member_data["permissions"] = str(self.permissions_for(channel, user))
            payload.update(
                guild_id=str(guild.id),
                guild={"id": str(guild.id), "locale": guild.preferred_locale, "features": []},
                guild_locale=guild.preferred_locale,
                member=member_data,
                authorizing_integration_owners={"0": str(guild.id)},
                context=0,
            )
        else:
            payload.update(
                user=P.user_payload(user),
                # A guild-installed app in its DM with the user: guild owner "0", as on Discord.
                authorizing_integration_owners={"0": "0"},
                context=1,
            )
            payload["channel"] = P.dm_channel_payload(channel, user)
        if message is not None:
            payload["message"] = self.message_payload(message)
        now = time.monotonic()
        interaction = FakeInteraction(
            id=interaction_id,
            token=token,
            type=itype,
            payload=payload,
            channel_id=channel.id,
            guild_id=guild.id if guild else None,
            user=user,
            created_at=now,
            expires_at=now + self.token_lifetime,
            deadline_at=now + self.response_deadline if self.response_deadline else None,
            source_message_id=message.id if message else None,
        )
        self.interactions[interaction_id] = interaction
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    def find_command(
        self, name: str, *, command_type: int = 1, guild: FakeGuild | None = None
    ) -> dict[str, Any] | None:
        """A command the bot registered (guild scope first, then global), by name and type."""
        scopes: list[int | None] = [guild.id] if guild else []
        scopes.append(None)
        for scope in scopes:
            for command in self.commands.get(scope, {}).values():
                if command["name"] == name and command.get("type", 1) == command_type:
                    return command
        return None

    def _command_data(
        self, name: str, command_type: int, guild: FakeGuild | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``data`` naming a command the bot registered; Discord shows members no other."""
        command = self.find_command(name, command_type=command_type, guild=guild)
        if command is None:
            scopes = [None, guild.id] if guild else [None]
            known = sorted(
                c["name"]
                for scope in scopes
                for c in self.commands.get(scope, {}).values()
                if c.get("type", 1) == command_type
            )
            kind = {1: "slash", 2: "user", 3: "message"}[command_type]
            raise LookupError(
                f"the bot has not registered the {kind} command {name!r} here (registered: "
                f"{known}); a member cannot run it. Does the bot sync its commands?"
            )
        data: dict[str, Any] = {"name": name, "type": command_type, "id": command["id"]}
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        return data, command

    async def run_slash_command(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        user: FakeUser | None = None,
        channel: FakeChannel | None = None,
        guild: FakeGuild | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A user runs ``/name`` (``"group sub"`` or ``"group subgroup sub"`` for subcommands).

        Option values: ``str``/``int``/``float``/``bool``; :class:`FakeUser`/:class:`FakeMember`
        (user), :class:`FakeChannel`, :class:`FakeRole`; :class:`Upload` or
        :class:`StoredAttachment` (attachment: the bytes are served back, and
        ``resolved.attachments`` is filled in). The command must be one the bot registered
        (``LookupError`` otherwise), and the values must be ones Discord's client lets a member
        send for the synced schema: the option's type, one of its choices, within
        ``min_value``/``max_value`` and ``min_length``/``max_length``, channel types; unknown,
        missing-required or impossible values raise ``ValueError`` here.
        """
        user = user or self.user
        channel = self._resolve_channel(channel, guild)
        data = self._chat_input_data(name, options or {}, channel, focused=None)
        return await self._start_interaction(
            APPLICATION_COMMAND, data, user=user, channel=channel, locale=locale
        )

    async def run_autocomplete(
        self,
        name: str,
        options: Mapping[str, Any],
        focused: str,
        *,
        user: FakeUser | None = None,
        channel: FakeChannel | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A user is typing option ``focused`` of ``/name`` (APPLICATION_COMMAND_AUTOCOMPLETE).

        ``options`` holds what is typed so far (required options may be missing); the bot's
        choices end up in ``FakeInteraction.autocomplete_choices``.
        """
        if focused not in options:
            raise ValueError(f"focused option {focused!r} must be in options")
        channel = channel or self.channel
        data = self._chat_input_data(name, options, channel, focused=focused)
        return await self._start_interaction(
            AUTOCOMPLETE, data, user=user or self.user, channel=channel, locale=locale
        )

    def _chat_input_data(
        self,
        name: str,
        options: Mapping[str, Any],
        channel: FakeChannel,
        *,
        focused: str | None,
    ) -> dict[str, Any]:
        """``data`` of a chat-input interaction, with subcommand nesting and ``resolved``."""
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        path = name.split()
        data, command = self._command_data(path[0], 1, guild)
        schema = _leaf_schema(command, path[1:])
        resolved: dict[str, dict[str, Any]] = {}
        leaf = self._build_options(options, schema, resolved, channel, guild, focused=focused)
        for option in leaf:
            if option["name"] == focused:
                option["focused"] = True
        for depth, part in reversed(list(enumerate(path[1:], start=1))):
            kind = 1 if depth == len(path) - 1 else 2
            leaf = [{"type": kind, "name": part, "options": leaf}]
        data["options"] = leaf
        if resolved:
            data["resolved"] = resolved
        return data

    async def run_message_command(
        self,
        name: str,
        target: StoredMessage,
        *,
        user: FakeUser | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A user picks the message context-menu command ``name`` on ``target``."""
        user = user or self.user
        if target.ephemeral:
            raise ValueError("Discord shows no Apps menu on an ephemeral message")
        channel = self.channels[target.channel_id]
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        data, _ = self._command_data(name, 3, guild)
        data["target_id"] = str(target.id)
        data["resolved"] = {"messages": {str(target.id): self.message_payload(target)}}
        return await self._start_interaction(
            APPLICATION_COMMAND, data, user=user, channel=channel, locale=locale
        )

    async def run_user_command(
        self,
        name: str,
        target: FakeUser,
        *,
        user: FakeUser | None = None,
        channel: FakeChannel | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        user = user or self.user
        channel = channel or self.channel
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        data, _ = self._command_data(name, 2, guild)
        data["target_id"] = str(target.id)
        resolved: dict[str, dict[str, Any]] = {}
        self._resolve_user(target, resolved, channel, guild)
        data["resolved"] = resolved
        return await self._start_interaction(
            APPLICATION_COMMAND, data, user=user, channel=channel, locale=locale
        )

    async def click_button(
        self,
        message: StoredMessage | int,
        custom_id: str,
        *,
        user: FakeUser | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A user presses the button ``custom_id`` on ``message`` (MESSAGE_COMPONENT).

        Raises ``LookupError`` if the message has no such component and ``ValueError`` if it is
        disabled, because a real user could not press it either.
        """
        return await self._component(message, custom_id, None, user=user, locale=locale)

    async def select_option(
        self,
        message: StoredMessage | int,
        custom_id: str,
        values: Sequence[str],
        *,
        user: FakeUser | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A user picks ``values`` in the string select ``custom_id``."""
        return await self._component(message, custom_id, list(values), user=user, locale=locale)

    async def _component(
        self,
        message: StoredMessage | int,
        custom_id: str,
        values: list[str] | None,
        *,
        user: FakeUser | None,
        locale: str,
    ) -> FakeInteraction:
        stored = self.message(message)
        if stored.deleted:
            raise LookupError(f"message {stored.id} was deleted")
        self._require_visible(stored, user or self.user, "press a component on")
        component = stored.find_component(custom_id)
        if component is None:
            raise LookupError(f"no component {custom_id!r} on message; has {stored.custom_ids()}")
        if component.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component["type"]}
        if component.get("id") is not None:
            data["id"] = component["id"]
        if values is not None:
            data["values"] = values
        channel = self.channels[stored.channel_id]
        return await self._start_interaction(
            MESSAGE_COMPONENT,
            data,
            user=user or self.user,
            channel=channel,
            locale=locale,
            message=stored,
        )

    async def submit_modal(
        self,
        interaction: FakeInteraction,
        values: Mapping[str, str | Sequence[str]] | None = None,
        *,
        user: FakeUser | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """Submit the modal the bot opened in response to ``interaction`` (MODAL_SUBMIT).

        ``values`` maps text-input ``custom_id`` to what the user typed (a list for selects);
        inputs not given keep their pre-filled ``value``.
        """
        modal = interaction.modal
        if modal is None:
            raise ValueError("the bot did not answer this interaction with a modal")
        values = dict(values or {})
        components = _modal_submit_components(modal["components"], values)
        if values:
            raise LookupError(f"modal has no inputs {sorted(values)}")
        data = {"custom_id": modal["custom_id"], "components": components}
        channel = self.channels[interaction.channel_id] if interaction.channel_id else self.channel
        source = (
            self.messages.get(interaction.source_message_id)
            if interaction.source_message_id
            else None
        )
        return await self._start_interaction(
            MODAL_SUBMIT,
            data,
            user=user or interaction.user,
            channel=channel,
            locale=locale,
            message=source,
        )

    # ------------------------------------------------------------------ option building

    def _build_options(
        self,
        options: Mapping[str, Any],
        schema: list[dict[str, Any]],
        resolved: dict[str, dict[str, Any]],
        channel: FakeChannel,
        guild: FakeGuild | None,
        *,
        focused: str | None = None,
    ) -> list[dict[str, Any]]:
        by_name = {o["name"]: o for o in schema}
        unknown = set(options) - set(by_name)
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)}; command has {sorted(by_name)}")
        missing = [o["name"] for o in schema if o.get("required") and o["name"] not in options]
        if missing and focused is None:
            raise ValueError(f"missing required option(s) {missing}")
        built = []
        for name, value in options.items():
            declared = by_name[name]
            option_type = declared["type"]
            if name == focused:
                # What the member is typing: Discord sends the partial text as a string.
                built.append({"name": name, "type": option_type, "value": str(value)})
                continue
            check_option_value(declared, value)
            built.append(
                {
                    "name": name,
                    "type": option_type,
                    "value": self._option_value(option_type, value, resolved, channel, guild),
                }
            )
        return built

    def _option_value(
        self,
        option_type: int,
        value: Any,
        resolved: dict[str, dict[str, Any]],
        channel: FakeChannel,
        guild: FakeGuild | None,
    ) -> Any:
        if option_type == 3:
            return str(value)
        if option_type == 4:
            return int(value)
        if option_type == 5:
            return bool(value)
        if option_type == 10:
            return float(value)
        if option_type in (6, 9) and isinstance(value, FakeUser | FakeMember):
            user = value.user if isinstance(value, FakeMember) else value
            self._resolve_user(user, resolved, channel, guild)
            return str(user.id)
        if option_type in (8, 9) and isinstance(value, FakeRole):
            resolved.setdefault("roles", {})[str(value.id)] = P.role_payload(value)
            return str(value.id)
        if option_type == 7 and isinstance(value, FakeChannel):
            data = P.interaction_channel_payload(value, self.permissions_for(value))
            resolved.setdefault("channels", {})[str(value.id)] = data
            return str(value.id)
        if option_type == 11:
            attachment = value
            if not isinstance(attachment, StoredAttachment):
                scope_id = self.application_id
                attachment = self.store_upload(
                    _as_upload(value), scope="ephemeral-attachments", scope_id=scope_id
                )
            resolved.setdefault("attachments", {})[str(attachment.id)] = P.attachment_payload(
                attachment
            )
            return str(attachment.id)
        raise TypeError(f"cannot use {value!r} as an option of type {option_type}")

    def _resolve_user(
        self,
        user: FakeUser,
        resolved: dict[str, dict[str, Any]],
        channel: FakeChannel,
        guild: FakeGuild | None,
    ) -> None:
        resolved.setdefault("users", {})[str(user.id)] = P.user_payload(user)
        member = guild.members.get(user.id) if guild else None
        if member is not None:
            data = P.member_payload(member, with_user=False)
            data["permissions"] = str(self.permissions_for(channel, user))
            resolved.setdefault("members", {})[str(user.id)] = data


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _as_upload(value: Upload | tuple[str, bytes, str] | tuple[str, bytes]) -> Upload:
    if isinstance(value, Upload):
        return value
    return Upload(*value)


_OPTION_TYPES: dict[int, tuple[str, tuple[type, ...]]] = {
    3: ("a string", (str,)),
    4: ("an integer", (int,)),
    5: ("a boolean", (bool,)),
    6: ("a user", (FakeUser, FakeMember)),
    7: ("a channel", (FakeChannel,)),
    8: ("a role", (FakeRole,)),
    9: ("a user or a role", (FakeUser, FakeMember, FakeRole)),
    10: ("a number", (int, float)),
    11: ("an attachment", (Upload, StoredAttachment, tuple)),
}
#: Discord's bounds where a command sets none: integers and numbers within +-2^53, strings
#: up to 6000 characters.
_NUMBER_BOUND = 2**53
_STRING_MAX = 6000


def check_option_value(option: Mapping[str, Any], value: Any) -> None:
    """Raise ``ValueError`` unless Discord's client would let a member send ``value`` for the
    synced ``option``: its type, one of its choices, its value and length bounds, channel types.
    """
    name, option_type = option["name"], option["type"]
    if option_type not in _OPTION_TYPES:
        raise ValueError(f"{name!r} is a subcommand or group, not an option")
    what, kinds = _OPTION_TYPES[option_type]
    given: Any = value  # isinstance on a runtime tuple would narrow ``value`` to object
    if not isinstance(value, kinds) or (isinstance(value, bool) and option_type != 5):
        raise ValueError(f"option {name!r} takes {what}, not {value!r}")
    choices = option.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        allowed = [c["value"] for c in choices]
        raise ValueError(f"option {name!r} must be one of its choices {allowed}, not {value!r}")
    if option_type in (4, 10):
        low = option.get("min_value", -_NUMBER_BOUND)
        high = option.get("max_value", _NUMBER_BOUND)
        if not low <= value <= high:
            raise ValueError(f"option {name!r} must be between {low} and {high}, not {value!r}")
    if option_type == 3:
        low, high = option.get("min_length", 0), option.get("max_length", _STRING_MAX)
        if not low <= len(given) <= high:
            raise ValueError(
                f"option {name!r} must be {low}-{high} characters long, not {len(given)}"
            )
    channel_types = option.get("channel_types")
    if option_type == 7 and channel_types and given.type not in channel_types:
        raise ValueError(f"option {name!r} takes channels of types {channel_types}")


def _leaf_schema(command: dict[str, Any], path: list[str]) -> list[dict[str, Any]]:
    options: list[dict[str, Any]] = command.get("options") or []
    for part in path:
        sub = next((o for o in options if o["name"] == part and o["type"] in (1, 2)), None)
        if sub is None:
            raise ValueError(f"command {command['name']!r} has no subcommand {part!r}")
        options = sub.get("options") or []
    return options


def _modal_submit_components(
    components: list[dict[str, Any]], values: dict[str, str | Sequence[str]]
) -> list[dict[str, Any]]:
    """Mirror the modal's layout (action rows or labels) with the user's input filled in."""
    out: list[dict[str, Any]] = []
    for component in components:
        ctype = component.get("type")
        if ctype == 1:
            out.append(
                {"type": 1, "components": _modal_submit_components(component["components"], values)}
            )
        elif ctype == 18:
            inner = _modal_submit_components([component["component"]], values)
            if inner:
                out.append({"type": 18, "id": component.get("id"), "component": inner[0]})
        elif "custom_id" in component:
            out.append(_modal_input(component, values))
    return out


def _modal_input(
    component: dict[str, Any], values: dict[str, str | Sequence[str]]
) -> dict[str, Any]:
    custom_id = component["custom_id"]
    given = values.pop(custom_id, None)
    entry: dict[str, Any] = {"type": component["type"], "custom_id": custom_id}
    if component.get("id") is not None:
        entry["id"] = component["id"]
    if component["type"] == 4:
        text = str(given) if given is not None else component.get("value") or ""
        low, high = component.get("min_length", 0), component.get("max_length", 4000)
        required = component.get("required", True)
        if (required and not text) or (text and not low <= len(text) <= high):
            raise ValueError(
                f"text input {custom_id!r} takes {low}-{high} characters"
                f"{'' if required else ' or nothing'}, not {len(text)}: Discord's client "
                "would not submit the modal"
            )
        entry["value"] = text
    else:
        entry["values"] = list(given) if given is not None else []
    return entry


def sanitize_filename(filename: str) -> str:
    """Discord replaces spaces and path separators in uploaded filenames."""
    cleaned = re.sub(r"[\s/\\]+", "_", filename.strip())
    return cleaned or "unknown"


def guess_content_type(filename: str) -> str | None:
    """Discord sniffs the type; the fake goes by extension (discord.py sends octet-stream)."""
    guessed, _ = mimetypes.guess_type(filename)
    if guessed and guessed.startswith("text/"):
        guessed += "; charset=utf-8"
    return guessed


def signed_query() -> str:
    """CDN URLs carry ``ex``/``is``/``hm`` signing params; bots must not assume a bare path."""
    issued = int(time.time())
    return f"ex={issued + 86400:x}&is={issued:x}&hm={secrets.token_hex(32)}&"
