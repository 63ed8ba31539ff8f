"""The fake gateway: HELLO/IDENTIFY/READY, heartbeats, RESUME with replay, and connection drops.

Sessions outlive connections on purpose. Every dispatched event is numbered and kept in the
session's buffer, so when a connection drops (or the test drops it) the events dispatched in
the meantime are replayed on RESUME, exactly like Discord does. A test can therefore prove "no
event was lost across a reconnect" by comparing what the bot handled with what was dispatched.

Transport compression: discord.py always asks for ``compress=zlib-stream`` (or ``zstd-stream``
when a zstd module is importable). The fake honours zlib-stream for real (one deflate context
per connection, every frame ends in a Z_SYNC_FLUSH), implements zstd-stream when
``compression.zstd`` or ``zstandard`` is importable, and otherwise falls back to plain text
frames, which discord.py accepts regardless of what it asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .models import GatewayFrame

if TYPE_CHECKING:
    from .server import FakeDiscord

_log = logging.getLogger(__name__)

# Opcodes
DISPATCH = 0
HEARTBEAT = 1
IDENTIFY = 2
PRESENCE = 3
VOICE_STATE = 4
RESUME = 6
RECONNECT = 7
REQUEST_MEMBERS = 8
INVALIDATE_SESSION = 9
HELLO = 10
HEARTBEAT_ACK = 11

# Intents
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
GUILD_MESSAGE_TYPING = 1 << 11
DIRECT_MESSAGES = 1 << 12
DIRECT_MESSAGE_REACTIONS = 1 << 13
DIRECT_MESSAGE_TYPING = 1 << 14
GUILD_PRESENCES = 1 << 8
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT

_GUILD_EVENTS = ("GUILD_", "CHANNEL_", "THREAD_")
_MESSAGE_EVENTS = {"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK"}


def _zstd_compressor_factory() -> Callable[[], Callable[[bytes], bytes]] | None:
    """A factory of per-connection streaming zstd compressors, if any zstd module exists."""
    try:
        from compression import zstd  # type: ignore[import-not-found]

        def stdlib() -> Callable[[bytes], bytes]:
            compressor = zstd.ZstdCompressor()
            return lambda raw: compressor.compress(raw, mode=zstd.ZstdCompressor.FLUSH_BLOCK)

        return stdlib
    except ImportError:
        pass
    try:
        import zstandard  # type: ignore[import-not-found]

        def third_party() -> Callable[[bytes], bytes]:
            cobj = zstandard.ZstdCompressor().compressobj()
            return lambda raw: cobj.compress(raw) + cobj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

        return third_party
    except ImportError:
        return None


def _zlib_stream() -> Callable[[bytes], bytes]:
    compressor = zlib.compressobj()
    return lambda raw: compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)


def event_wanted(event: str, data: Any, intents: int) -> bool:
    """Whether Discord would deliver ``event`` to a session with these intents."""
    in_guild = isinstance(data, dict) and data.get("guild_id") is not None
    if event in _MESSAGE_EVENTS:
        return bool(intents & (GUILD_MESSAGES if in_guild else DIRECT_MESSAGES))
    if event.startswith("MESSAGE_REACTION_"):
        wanted = GUILD_MESSAGE_REACTIONS if in_guild else DIRECT_MESSAGE_REACTIONS
        return bool(intents & wanted)
    if event == "TYPING_START":
        return bool(intents & (GUILD_MESSAGE_TYPING if in_guild else DIRECT_MESSAGE_TYPING))
    if event.startswith("GUILD_MEMBER_") and event != "GUILD_MEMBERS_CHUNK":
        return bool(intents & GUILD_MEMBERS)
    if event.startswith(_GUILD_EVENTS):
        return bool(intents & GUILDS)
    return True


def strip_message_content(event: str, data: Any, intents: int, bot_id: int) -> Any:
    """Without MESSAGE_CONTENT, guild messages arrive with empty content/embeds/attachments/
    components, and without their poll.

    Discord exempts three kinds of message (its docs, "Message Content Intent", and the developer
    support article on working without it): those the app sent, those in DMs with it, and those in
    which it is @mentioned (a reply that pings the bot's message mentions the bot). A reply's
    ``referenced_message`` is a message of its own and follows the same rule.
    """
    if event not in ("MESSAGE_CREATE", "MESSAGE_UPDATE") or intents & MESSAGE_CONTENT:
        return data
    if not isinstance(data, dict):
        return data
    return content_for_app(data, bot_id, in_guild=data.get("guild_id") is not None)


def content_visible(message: dict[str, Any], bot_id: int, *, in_guild: bool) -> bool:
    """Whether a bot without MESSAGE_CONTENT still gets this message's content."""
    if not in_guild:
        return True
    if message.get("author", {}).get("id") == str(bot_id):
        return True
    return any(m.get("id") == str(bot_id) for m in message.get("mentions", []))


def content_for_app(message: dict[str, Any], bot_id: int, *, in_guild: bool) -> dict[str, Any]:
    """``message`` as an app without the Message Content intent receives it."""
    stripped = dict(message)
    referenced = message.get("referenced_message")
    if isinstance(referenced, dict):
        stripped["referenced_message"] = content_for_app(referenced, bot_id, in_guild=in_guild)
    if content_visible(message, bot_id, in_guild=in_guild):
        return stripped
    stripped.update(content="", embeds=[], attachments=[], components=[])
    stripped.pop("poll", None)
    return stripped


@dataclass(eq=False)
class GatewaySession:
    """A resumable gateway session (what ``session_id`` names)."""

    id: str
    user_id: int
    intents: int
    identify: dict[str, Any]
    seq: int = 0
    buffer: list[dict[str, Any]] = field(default_factory=list)
    connection: GatewayConnection | None = None
    invalidated: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def connected(self) -> bool:
        return self.connection is not None and not self.connection.closed


@dataclass(eq=False)
class GatewayConnection:
    """One websocket connection; a session may span several of them."""

    number: int
    path: str
    query: dict[str, str]
    ws: web.WebSocketResponse
    request: web.Request
    compress: Callable[[bytes], bytes] | None
    session: GatewaySession | None = None
    closed: bool = False
    close_code: int | None = None
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload, separators=(",", ":"))
        async with self.send_lock:
            if self.closed or self.ws.closed:
                raise ConnectionResetError("gateway connection is closed")
            if self.compress is None:
                await self.ws.send_str(raw)
            else:
                await self.ws.send_bytes(self.compress(raw.encode()))

    def abort(self) -> None:
        """Kill the TCP connection without a close frame (a network drop, not a close)."""
        self.closed = True
        transport = self.request.transport
        if transport is not None:
            transport.close()


class Gateway:
    """Websocket endpoint plus session bookkeeping for one :class:`FakeDiscord`."""

    def __init__(self, server: FakeDiscord) -> None:
        self.server = server
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: list[GatewayConnection] = []
        self.ack_heartbeats = True
        self._zstd = _zstd_compressor_factory()

    # ---------------------------------------------------------------- connection lifecycle

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoclose=False, max_msg_size=0, compress=False)
        await ws.prepare(request)
        conn = GatewayConnection(
            number=len(self.connections) + 1,
            path=request.path,
            query=dict(request.query),
            ws=ws,
            request=request,
            compress=self._compressor_for(request.query.get("compress")),
        )
        self.connections.append(conn)
        if request.query.get("encoding", "json") != "json":
            await self._close(conn, 4002, "Error while decoding payload.")
            return ws
        await self._send(conn, {"op": HELLO, "d": self._hello()})
        try:
            await self._read_loop(conn)
        finally:
            self._detach(conn)
        return ws

    def _compressor_for(self, requested: str | None) -> Callable[[bytes], bytes] | None:
        if requested == "zlib-stream":
            return _zlib_stream()
        if requested == "zstd-stream" and self._zstd is not None:
            return self._zstd()
        return None

    def _hello(self) -> dict[str, Any]:
        return {
            "heartbeat_interval": self.server.heartbeat_interval_ms,
            "_trace": ['["fake-gateway",{"micros":0}]'],
        }

    async def _read_loop(self, conn: GatewayConnection) -> None:
        # Not ``async for``: it swallows the CLOSE frame, and its code decides resumability.
        while True:
            msg = await conn.ws.receive()
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                raw = msg.data if isinstance(msg.data, str) else msg.data.decode()
                try:
                    frame = json.loads(raw)
                except ValueError:
                    await self._close(conn, 4002, "Error while decoding payload.")
                    return
                await self._on_frame(conn, frame)
                continue
            if msg.type == WSMsgType.CLOSE:
                if conn.close_code is None:
                    conn.close_code = int(msg.data)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.ws.close(), 5)
            return

    def _detach(self, conn: GatewayConnection) -> None:
        conn.closed = True
        if conn.close_code is None:
            conn.close_code = conn.ws.close_code
        session = conn.session
        if session is not None and session.connection is conn:
            session.connection = None
            # A client closing with 1000/1001 ends its session, as on Discord.
            if conn.close_code in (1000, 1001):
                session.invalidated = True

    async def _close(self, conn: GatewayConnection, code: int, reason: str) -> None:
        conn.close_code = code
        self._detach(conn)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.ws.close(code=code, message=reason.encode()), 5)

    async def close_all(self) -> None:
        for conn in self.connections:
            if not conn.ws.closed:
                await self._close(conn, 1001, "server shutting down")

    # ---------------------------------------------------------------- frames from the client

    async def _on_frame(self, conn: GatewayConnection, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        if not isinstance(op, int):
            await self._close(conn, 4002, "Error while decoding payload.")
            return
        session_id = conn.session.id if conn.session else None
        self.server._log_frame(
            GatewayFrame("recv", op, None, None, frame.get("d"), session_id, conn.number)
        )
        handlers = {
            HEARTBEAT: self._on_heartbeat,
            IDENTIFY: self._on_identify,
            RESUME: self._on_resume,
            REQUEST_MEMBERS: self._on_request_members,
            PRESENCE: self._ignore,
            VOICE_STATE: self._ignore,
        }
        handler = handlers.get(op)  # type: ignore[arg-type]
        if handler is None:
            await self._close(conn, 4001, "Unknown opcode.")
            return
        await handler(conn, frame.get("d"))

    async def _ignore(self, conn: GatewayConnection, data: Any) -> None:
        """Presence and voice updates are only recorded (in the gateway log)."""

    async def _on_heartbeat(self, conn: GatewayConnection, data: Any) -> None:
        if self.ack_heartbeats:
            await self._send(conn, {"op": HEARTBEAT_ACK})

    async def _on_identify(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        if conn.session is not None:
            await self._close(conn, 4005, "Already authenticated.")
            return
        if data.get("token") != self.server.token:
            await self._close(conn, 4004, "Authentication failed.")
            return
        intents = int(data.get("intents", 0))
        # Privileged intents must be enabled for the application in the developer portal (a new
        # application has none); asking for one that is not ends the connection with 4014.
        if intents & PRIVILEGED_INTENTS & ~self.server.privileged_intents:
            await self._close(conn, 4014, "Disallowed intent(s).")
            return
        session = GatewaySession(
            id=secrets.token_hex(16),
            user_id=self.server.bot_user.id,
            intents=intents,
            identify=data,
        )
        # A fresh IDENTIFY supersedes sessions nobody is connected to any more, so they stop
        # buffering events and don't count as "live" in the test helpers.
        for stale in self.live_sessions():
            if not stale.connected:
                stale.invalidated = True
        self.sessions[session.id] = session
        async with session.lock:
            session.connection = conn
            conn.session = session
            await self._dispatch_locked(session, "READY", self.server._ready_payload(session))
            if intents & GUILDS:
                for payload in self.server._guild_create_payloads(session):
                    await self._dispatch_locked(session, "GUILD_CREATE", payload)

    async def _on_resume(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or session.invalidated or data.get("token") != self.server.token:
            await self._send(conn, {"op": INVALIDATE_SESSION, "d": False})
            return
        async with session.lock:
            old = session.connection
            if old is not None and old is not conn:
                old.abort()
            session.connection = conn
            conn.session = session
            last_seen = int(data.get("seq") or 0)
            for frame in session.buffer:
                if frame["s"] > last_seen:
                    await self._send(conn, frame)
            await self._dispatch_locked(session, "RESUMED", {"_trace": ['["fake-gateway"]']})

    async def _on_request_members(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        session = conn.session
        if session is None:
            await self._close(conn, 4003, "Not authenticated.")
            return
        for payload in self.server._member_chunk_payloads(data):
            async with session.lock:
                await self._dispatch_locked(session, "GUILD_MEMBERS_CHUNK", payload)

    # ---------------------------------------------------------------- frames to the client

    async def _send(self, conn: GatewayConnection, payload: dict[str, Any]) -> None:
        session_id = conn.session.id if conn.session else None
        self.server._log_frame(
            GatewayFrame(
                "send",
                payload["op"],
                payload.get("t"),
                payload.get("s"),
                payload.get("d"),
                session_id,
                conn.number,
            )
        )
        try:
            await conn.send(payload)
        except (ConnectionResetError, RuntimeError) as exc:
            _log.debug("fake gateway: send on dead connection %s: %s", conn.number, exc)
            self._detach(conn)

    async def _dispatch_locked(self, session: GatewaySession, event: str, data: Any) -> int:
        session.seq += 1
        frame = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
        session.buffer.append(frame)
        if session.connected:
            assert session.connection is not None
            await self._send(session.connection, frame)
        return session.seq

    async def dispatch(self, event: str, data: Any) -> list[int]:
        """Send a DISPATCH to every live session that would receive it; returns the seqs used.

        A session whose connection is down still numbers and buffers the event: it is delivered
        on RESUME. Sessions that ended (client closed with 1000, or IDENTIFY replaced them) are
        skipped.
        """
        seqs: list[int] = []
        for session in list(self.sessions.values()):
            if session.invalidated or not event_wanted(event, data, session.intents):
                continue
            payload = strip_message_content(event, data, session.intents, session.user_id)
            async with session.lock:
                seqs.append(await self._dispatch_locked(session, event, payload))
        return seqs

    # ---------------------------------------------------------------- test controls

    def live_sessions(self) -> list[GatewaySession]:
        return [s for s in self.sessions.values() if not s.invalidated]

    async def drop(self, code: int | None = None) -> int:
        """Drop every live connection; ``code`` None means no close frame (network failure)."""
        dropped = 0
        for session in self.live_sessions():
            conn = session.connection
            if conn is None or conn.closed:
                continue
            async with session.lock:
                session.connection = None
            dropped += 1
            if code is None:
                conn.abort()
            else:
                await self._close(conn, code, "fake gateway closed the connection")
        return dropped

    async def send_op(self, op: int, data: Any = None) -> None:
        """Send a raw non-dispatch opcode (RECONNECT, INVALIDATE_SESSION, HEARTBEAT)."""
        for session in self.live_sessions():
            if session.connection is not None:
                await self._send(session.connection, {"op": op, "d": data})
            if op == INVALIDATE_SESSION and not data:
                session.invalidated = True
