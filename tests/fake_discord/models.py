"""Plain data objects for the fake Discord: the world (users, guilds, channels), the message
store, interactions and the request log.

They are deliberately dumb dataclasses: the server mutates them, tests read them. Turning them
into Discord JSON lives in ``payloads.py`` so that the shapes are written down in one place.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000

_last_snowflake = 0
_snowflake_lock = threading.Lock()


def new_snowflake() -> int:
    """A real-looking, strictly increasing snowflake.

    discord.py derives timestamps from snowflakes (``Message.created_at``, the sub-rate-limit on
    deleting fresh messages), so the ids must encode the current time, not be small integers.
    """
    global _last_snowflake
    with _snowflake_lock:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        _last_snowflake = max(ms << 22, _last_snowflake + 1)
        return _last_snowflake


def iso_now() -> str:
    """Discord's timestamp format (ISO 8601 with microseconds and an explicit UTC offset)."""
    return datetime.now(UTC).isoformat()


# --------------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class FakeUser:
    """A Discord user (a human member, or the bot itself)."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    avatar: str | None = None
    locale: str = "en-US"

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass(eq=False)
class FakeRole:
    """A guild role. The @everyone role has the guild's id, as on Discord."""

    id: int
    name: str
    permissions: int
    position: int = 0
    color: int = 0
    hoist: bool = False
    managed: bool = False
    mentionable: bool = False
    bot_id: int | None = None


@dataclass(eq=False)
class Overwrite:
    """A channel permission overwrite; ``type`` 0 targets a role, 1 a member."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0


@dataclass(eq=False)
class FakeChannel:
    """A guild text channel (type 0), a DM channel (type 1, ``guild_id`` None) or a thread: type
    11 public, 12 private (Discord's channel types), ``parent_id`` its text channel, ``owner_id``
    who started it and ``thread_member_ids`` who joined it. A thread has no overwrites of its own:
    Discord computes its permissions from the parent, and a private thread is seen only by its
    members and by those with Manage Threads (docs: Threads, "Permissions")."""

    id: int
    name: str
    guild_id: int | None
    type: int = 0
    position: int = 0
    topic: str | None = None
    nsfw: bool = False
    parent_id: int | None = None
    rate_limit_per_user: int = 0
    overwrites: list[Overwrite] = field(default_factory=list)
    recipient_id: int | None = None
    last_message_id: int | None = None
    owner_id: int | None = None
    thread_member_ids: list[int] = field(default_factory=list)
    archived: bool = False
    locked: bool = False
    created_at: str = field(default_factory=iso_now)

    PUBLIC_THREAD = 11
    PRIVATE_THREAD = 12

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    @property
    def is_thread(self) -> bool:
        return self.type in (10, self.PUBLIC_THREAD, self.PRIVATE_THREAD)

    @property
    def is_private_thread(self) -> bool:
        return self.type == self.PRIVATE_THREAD


@dataclass(eq=False)
class FakeMember:
    """A user's membership of one guild."""

    user: FakeUser
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=iso_now)

    @property
    def id(self) -> int:
        return self.user.id


@dataclass(eq=False)
class FakeGuild:
    """A guild with its roles, channels and members."""

    id: int
    name: str
    owner_id: int
    roles: list[FakeRole] = field(default_factory=list)
    channels: list[FakeChannel] = field(default_factory=list)
    members: dict[int, FakeMember] = field(default_factory=dict)
    threads: list[FakeChannel] = field(default_factory=list)
    """Active threads: sent in GUILD_CREATE's ``threads``, not among ``channels``."""
    preferred_locale: str = "en-US"
    premium_tier: int = 0

    @property
    def everyone_role(self) -> FakeRole:
        return next(r for r in self.roles if r.id == self.id)

    def role(self, name: str) -> FakeRole:
        return next(r for r in self.roles if r.name == name)

    def channel(self, name: str) -> FakeChannel:
        return next(c for c in self.channels if c.name == name)

    @property
    def text_channels(self) -> list[FakeChannel]:
        return [c for c in self.channels if c.type == 0]


@dataclass(frozen=True)
class Upload:
    """A file a fake *user* attaches (to a message or an attachment option)."""

    filename: str
    data: bytes
    content_type: str | None = None
    description: str | None = None


# --------------------------------------------------------------------------------------------
# The message store
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class StoredAttachment:
    """An attachment as Discord stores it; ``data`` is what gets served back at ``url``."""

    id: int
    filename: str
    content_type: str | None
    data: bytes
    url: str
    proxy_url: str
    description: str | None = None
    title: str | None = None
    ephemeral: bool = False

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def spoiler(self) -> bool:
        return self.filename.startswith("SPOILER_")


@dataclass(eq=False)
class StoredMessage:
    """The current state of one message; ``history`` keeps every earlier version's payload."""

    id: int
    channel_id: int
    guild_id: int | None
    author: FakeUser
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[StoredAttachment] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    tts: bool = False
    timestamp: str = field(default_factory=iso_now)
    edited_timestamp: str | None = None
    mention_user_ids: list[int] = field(default_factory=list)
    mention_role_ids: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    message_reference: dict[str, Any] | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_id: int | None = None
    poll: dict[str, Any] | None = None
    sticker_ids: list[int] = field(default_factory=list)
    reactions: dict[str, set[int]] = field(default_factory=dict)
    nonce: str | None = None
    deleted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    EPHEMERAL = 1 << 6
    LOADING = 1 << 7

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & self.EPHEMERAL)

    @property
    def loading(self) -> bool:
        """True while this is a deferred "bot is thinking..." placeholder."""
        return bool(self.flags & self.LOADING)

    @property
    def edits(self) -> int:
        return len(self.history)

    def custom_ids(self) -> list[str]:
        """Every component custom_id on the message, in layout order (handy for asserts)."""
        return [c["custom_id"] for c in walk_components(self.components) if "custom_id" in c]

    def find_component(self, custom_id: str) -> dict[str, Any] | None:
        for component in walk_components(self.components):
            if component.get("custom_id") == custom_id:
                return component
        return None


def walk_components(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten both layouts discord.py emits: action rows (v1) and containers/sections (v2)."""
    out: list[dict[str, Any]] = []
    for component in components:
        out.append(component)
        out.extend(walk_components(component.get("components", [])))
        for key in ("accessory", "component"):
            child = component.get(key)
            if isinstance(child, dict):
                out.extend(walk_components([child]))
    return out


# --------------------------------------------------------------------------------------------
# Interactions
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class FakeInteraction:
    """One interaction the fake sent to the bot, and what the bot did with it."""

    id: int
    token: str
    type: int
    payload: dict[str, Any]
    channel_id: int | None
    guild_id: int | None
    user: FakeUser
    created_at: float
    expires_at: float
    deadline_at: float | None
    source_message_id: int | None = None
    response_type: int | None = None
    response_data: dict[str, Any] | None = None
    responded_at: float | None = None
    original_message_id: int | None = None
    followup_message_ids: list[int] = field(default_factory=list)
    modal: dict[str, Any] | None = None
    autocomplete_choices: list[dict[str, Any]] | None = None
    expired_manually: bool = False

    @property
    def responded(self) -> bool:
        return self.response_type is not None

    @property
    def response_latency(self) -> float | None:
        """Seconds between dispatching the interaction and the bot's initial callback.

        Lets a test assert "the bot acknowledged within Discord's 3 s window" without the fake
        enforcing it (which would make loaded CI machines flaky).
        """
        if self.responded_at is None:
            return None
        return self.responded_at - self.created_at

    def token_expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.monotonic()) >= self.expires_at

    def callback_window_closed(self, now: float | None = None) -> bool:
        now = now if now is not None else time.monotonic()
        if self.token_expired(now):
            return True
        return self.deadline_at is not None and now >= self.deadline_at


# --------------------------------------------------------------------------------------------
# The request log and gateway log
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadedFile:
    """One multipart file part exactly as the bot sent it."""

    field_name: str
    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(eq=False)
class RecordedRequest:
    """One HTTP request the bot made, with what the fake answered.

    ``route`` is the path template without the ``/api/v10`` prefix (e.g.
    ``/channels/{channel_id}/messages``) so tests can match requests without knowing ids.
    """

    index: int
    method: str
    path: str
    route: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    files: list[UploadedFile] = field(default_factory=list)
    multipart: bool = False
    api: bool = True
    status: int | None = None
    response: Any = None
    fault: str | None = None
    unknown_route: bool = False
    #: What Discord would reject in it (spec schema or documented limit): ``FormError``s.
    invalid: list[Any] = field(default_factory=list)
    interaction_id: int | None = None
    message_id: int | None = None
    channel_id: int | None = None
    received_at: float = field(default_factory=time.monotonic)
    answered_at: float | None = None

    @property
    def key(self) -> str:
        """``"METHOD /route/{template}"``, the form used by :meth:`FakeDiscord.requests_for`."""
        return f"{self.method} {self.route}"

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def body(self) -> dict[str, Any]:
        """The JSON body (or multipart ``payload_json``) as a dict, empty when there was none."""
        return self.json if isinstance(self.json, dict) else {}

    def __repr__(self) -> str:
        files = f" files={[f.filename for f in self.files]}" if self.files else ""
        fault = f" fault={self.fault}" if self.fault else ""
        return f"<#{self.index} {self.method} {self.path} -> {self.status}{fault}{files}>"


@dataclass(frozen=True)
class GatewayFrame:
    """One gateway frame, in either direction (``"recv"`` = sent by the bot)."""

    direction: str
    op: int
    t: str | None
    s: int | None
    d: Any
    session_id: str | None
    connection: int
    at: float = field(default_factory=time.monotonic)
