"""Discord JSON shapes, written once.

Every payload here mirrors what Discord's API v10 actually sends (field names, string snowflakes,
string permission bitfields, ISO timestamps), because the point of the fake is that discord.py's
real parsers run against it. When a field is optional on Discord and discord.py reads it with
``data[...]``, it is present here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from .models import (
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    StoredAttachment,
    StoredMessage,
)

# --------------------------------------------------------------------------------------------
# Permissions
# --------------------------------------------------------------------------------------------

PERMISSIONS: dict[str, int] = {
    "create_instant_invite": 1 << 0,
    "kick_members": 1 << 1,
    "ban_members": 1 << 2,
    "administrator": 1 << 3,
    "manage_channels": 1 << 4,
    "manage_guild": 1 << 5,
    "add_reactions": 1 << 6,
    "view_audit_log": 1 << 7,
    "priority_speaker": 1 << 8,
    "stream": 1 << 9,
    "view_channel": 1 << 10,
    "send_messages": 1 << 11,
    "send_tts_messages": 1 << 12,
    "manage_messages": 1 << 13,
    "embed_links": 1 << 14,
    "attach_files": 1 << 15,
    "read_message_history": 1 << 16,
    "mention_everyone": 1 << 17,
    "use_external_emojis": 1 << 18,
    "connect": 1 << 20,
    "speak": 1 << 21,
    "change_nickname": 1 << 26,
    "manage_nicknames": 1 << 27,
    "manage_roles": 1 << 28,
    "manage_webhooks": 1 << 29,
    "use_application_commands": 1 << 31,
    "manage_threads": 1 << 34,
    "create_public_threads": 1 << 35,
    "create_private_threads": 1 << 36,
    "send_messages_in_threads": 1 << 38,
    "moderate_members": 1 << 40,
}
ALL_PERMISSIONS = (1 << 53) - 1

DEFAULT_EVERYONE_PERMISSIONS = sum(
    PERMISSIONS[name]
    for name in (
        "create_instant_invite",
        "add_reactions",
        "stream",
        "view_channel",
        "send_messages",
        "embed_links",
        "attach_files",
        "read_message_history",
        "use_external_emojis",
        "connect",
        "speak",
        "change_nickname",
        "use_application_commands",
        "create_public_threads",
        "send_messages_in_threads",
    )
)

#: What an OAuth2 invite for a video bot would grant its managed role.
DEFAULT_BOT_PERMISSIONS = sum(
    PERMISSIONS[name]
    for name in (
        "view_channel",
        "send_messages",
        "embed_links",
        "attach_files",
        "read_message_history",
        "add_reactions",
        "use_application_commands",
        "send_messages_in_threads",
    )
)


def permission_bits(perms: Iterable[str | int] | str | int) -> int:
    """Accept ``"attach_files"``, a raw int, or any iterable of those (discord.py names)."""
    if isinstance(perms, int):
        return perms
    if isinstance(perms, str):
        perms = [perms]
    total = 0
    for perm in perms:
        if isinstance(perm, int):
            total |= perm
            continue
        try:
            total |= PERMISSIONS[perm]
        except KeyError:
            raise ValueError(f"unknown permission name {perm!r}") from None
    return total


def base_permissions(guild: FakeGuild, member: FakeMember) -> int:
    """Guild-level permissions (Discord's documented algorithm, before channel overwrites)."""
    if member.id == guild.owner_id:
        return ALL_PERMISSIONS
    perms = guild.everyone_role.permissions
    for role in guild.roles:
        if role.id in member.role_ids:
            perms |= role.permissions
    if perms & PERMISSIONS["administrator"]:
        return ALL_PERMISSIONS
    return perms


def channel_permissions(guild: FakeGuild, channel: FakeChannel, member: FakeMember) -> int:
    """Effective permissions in a channel: @everyone, then role, then member overwrites."""
    perms = base_permissions(guild, member)
    if perms == ALL_PERMISSIONS:
        return perms
    by_target = {(o.type, o.id): o for o in channel.overwrites}
    everyone = by_target.get((0, guild.id))
    if everyone:
        perms = (perms & ~everyone.deny) | everyone.allow
    allow = deny = 0
    for role_id in member.role_ids:
        overwrite = by_target.get((0, role_id))
        if overwrite:
            allow |= overwrite.allow
            deny |= overwrite.deny
    perms = (perms & ~deny) | allow
    own = by_target.get((1, member.id))
    if own:
        perms = (perms & ~own.deny) | own.allow
    if not perms & PERMISSIONS["view_channel"]:
        return 0
    return perms


def thread_permissions(
    guild: FakeGuild, parent: FakeChannel, thread: FakeChannel, member: FakeMember
) -> int:
    """A thread's permissions are its parent channel's (threads have no overwrites), except that
    a private thread is visible only to its members and to those with Manage Threads: Discord's
    docs, Topics > Threads ("private threads ... only viewable by those who are invited or have
    the MANAGE_THREADS permission"). discord.py's ``Thread.permissions_for`` applies the parent's
    permissions only, so this is the rule it cannot see."""
    perms = channel_permissions(guild, parent, member)
    if not thread.is_private_thread or perms & PERMISSIONS["manage_threads"]:
        return perms
    if member.id in thread.thread_member_ids:
        return perms
    return 0


# --------------------------------------------------------------------------------------------
# Users, members, roles, channels, guilds
# --------------------------------------------------------------------------------------------


def user_payload(user: FakeUser) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(user.id),
        "username": user.username,
        "discriminator": "0",
        "global_name": user.global_name,
        "avatar": user.avatar,
        "avatar_decoration_data": None,
        "banner": None,
        "accent_color": None,
        "public_flags": 0,
        "flags": 0,
        "primary_guild": None,
        "collectibles": None,
    }
    if user.bot:
        data["bot"] = True
    return data


def current_user_payload(user: FakeUser) -> dict[str, Any]:
    """``GET /users/@me`` and READY's ``user``: the public user plus private account fields."""
    data = user_payload(user)
    data.update(
        {
            "verified": True,
            "mfa_enabled": False,
            "email": None,
            "locale": user.locale,
            "premium_type": 0,
            "bio": "",
        }
    )
    return data


def member_payload(member: FakeMember, *, with_user: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "avatar": None,
        "banner": None,
        "communication_disabled_until": None,
        "flags": 0,
        "joined_at": member.joined_at,
        "nick": member.nick,
        "pending": False,
        "premium_since": None,
        "roles": [str(r) for r in member.role_ids],
        "deaf": False,
        "mute": False,
    }
    if with_user:
        data["user"] = user_payload(member.user)
    return data


def role_payload(role: FakeRole) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(role.id),
        "name": role.name,
        "description": None,
        "permissions": str(role.permissions),
        "position": role.position,
        "color": role.color,
        "colors": {"primary_color": role.color, "secondary_color": None, "tertiary_color": None},
        "hoist": role.hoist,
        "managed": role.managed,
        "mentionable": role.mentionable,
        "icon": None,
        "unicode_emoji": None,
        "flags": 0,
    }
    if role.bot_id is not None:
        data["tags"] = {"bot_id": str(role.bot_id)}
    return data


def channel_payload(channel: FakeChannel, *, with_guild_id: bool = True) -> dict[str, Any]:
    if channel.type == 1:
        return dm_channel_payload(channel)
    if channel.is_thread:
        return thread_payload(channel)
    data: dict[str, Any] = {
        "id": str(channel.id),
        "type": channel.type,
        "name": channel.name,
        "position": channel.position,
        "flags": 0,
        "parent_id": str(channel.parent_id) if channel.parent_id else None,
        "topic": channel.topic,
        "nsfw": channel.nsfw,
        "rate_limit_per_user": channel.rate_limit_per_user,
        "last_message_id": str(channel.last_message_id) if channel.last_message_id else None,
        "permission_overwrites": [
            {"id": str(o.id), "type": o.type, "allow": str(o.allow), "deny": str(o.deny)}
            for o in channel.overwrites
        ],
        "default_thread_rate_limit_per_user": 0,
    }
    if with_guild_id and channel.guild_id is not None:
        data["guild_id"] = str(channel.guild_id)
    return data


def thread_payload(thread: FakeChannel, *, member_id: int | None = None) -> dict[str, Any]:
    """A thread channel (the spec's ``ThreadResponse``: its required fields, the metadata
    discord.py's ``Thread`` reads with ``data[...]``); ``member_id`` adds ``member``, the thread
    member object Discord includes for the current user where it joined (THREAD_CREATE when the
    bot is added, GUILD_CREATE's threads)."""
    metadata: dict[str, Any] = {
        "archived": thread.archived,
        "archive_timestamp": thread.created_at,
        "auto_archive_duration": 1440,
        "locked": thread.locked,
        "create_timestamp": thread.created_at,
    }
    if thread.is_private_thread:
        metadata["invitable"] = True
    data: dict[str, Any] = {
        "id": str(thread.id),
        "type": thread.type,
        "guild_id": str(thread.guild_id),
        "name": thread.name,
        "parent_id": str(thread.parent_id),
        "owner_id": str(thread.owner_id),
        "last_message_id": str(thread.last_message_id) if thread.last_message_id else None,
        "flags": 0,
        "rate_limit_per_user": thread.rate_limit_per_user,
        "message_count": 0,
        "member_count": min(50, len(thread.thread_member_ids)),  # Discord stops counting at 50
        "total_message_sent": 0,
        "thread_metadata": metadata,
    }
    if member_id is not None and member_id in thread.thread_member_ids:
        data["member"] = thread_member_payload(thread, member_id)
    return data


def thread_member_payload(thread: FakeChannel, user_id: int) -> dict[str, Any]:
    """The spec's ``ThreadMemberResponse`` (``GET /channels/{thread}/thread-members/{user}``)."""
    return {
        "id": str(thread.id),
        "user_id": str(user_id),
        "join_timestamp": thread.created_at,
        "flags": 0,
    }


def dm_channel_payload(channel: FakeChannel, recipient: FakeUser | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(channel.id),
        "type": 1,
        "flags": 0,
        "last_message_id": str(channel.last_message_id) if channel.last_message_id else None,
        "recipients": [user_payload(recipient)] if recipient else [],
    }
    return data


def guild_payload(guild: FakeGuild) -> dict[str, Any]:
    """The guild object as ``GET /guilds/{id}`` returns it (no members/channels)."""
    system_channel = guild.text_channels[0].id if guild.text_channels else None
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(guild.owner_id),
        "region": "deprecated",
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 1,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": guild.premium_tier,
        "premium_subscription_count": 0,
        "premium_progress_bar_enabled": False,
        "preferred_locale": guild.preferred_locale,
        "system_channel_id": str(system_channel) if system_channel else None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "vanity_url_code": None,
        "application_id": None,
        "max_members": 500000,
        "max_presences": None,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "features": [],
        "roles": [role_payload(r) for r in guild.roles],
        "emojis": [],
        "stickers": [],
        "hub_type": None,
        "incidents_data": None,
        "widget_enabled": False,
        "widget_channel_id": None,
    }


def guild_create_payload(
    guild: FakeGuild,
    *,
    include_members: list[FakeMember],
    threads: Iterable[FakeChannel] = (),
    bot_id: int | None = None,
) -> dict[str, Any]:
    """GUILD_CREATE: the guild plus the gateway-only fields (channels, members, counts).
    ``threads`` are the active threads the bot may view (Discord: "all active threads in the guild
    that current user has permission to view")."""
    data = guild_payload(guild)
    data.update(
        {
            "joined_at": next(iter(guild.members.values())).joined_at if guild.members else None,
            "large": False,
            "unavailable": False,
            "lazy": True,
            "member_count": len(guild.members),
            "members": [member_payload(m) for m in include_members],
            "channels": [channel_payload(c, with_guild_id=False) for c in guild.channels],
            "threads": [thread_payload(t, member_id=bot_id) for t in threads],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "embedded_activities": [],
            "activity_instances": [],
            "version": 0,
        }
    )
    return data


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


def attachment_payload(att: StoredAttachment) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(att.id),
        "filename": att.filename,
        "size": att.size,
        "url": att.url,
        "proxy_url": att.proxy_url,
        "flags": 0,
    }
    if att.content_type:
        data["content_type"] = att.content_type
    if att.description is not None:
        data["description"] = att.description
    if att.title is not None:
        data["title"] = att.title
    if att.ephemeral:
        data["ephemeral"] = True
    if att.content_type and att.content_type.startswith(("image/", "video/")):
        # Discord probes media; the fake does not decode files, so it reports a plausible size.
        data["width"] = 128
        data["height"] = 128
    if att.content_type and att.content_type.startswith("video/"):
        data["placeholder"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        data["placeholder_version"] = 1
    return data


def message_payload(
    message: StoredMessage,
    *,
    users: dict[int, FakeUser],
    member: FakeMember | None = None,
    referenced: dict[str, Any] | None = None,
    interaction_metadata: dict[str, Any] | None = None,
    for_gateway: bool = False,
) -> dict[str, Any]:
    """A message object; ``for_gateway`` adds ``guild_id``/``member`` like MESSAGE_CREATE does."""
    data: dict[str, Any] = {
        "id": str(message.id),
        "type": message.type,
        "channel_id": str(message.channel_id),
        "author": user_payload(message.author),
        "content": message.content,
        "timestamp": message.timestamp,
        "edited_timestamp": message.edited_timestamp,
        "tts": message.tts,
        "mention_everyone": message.mention_everyone,
        "mentions": [user_payload(users[uid]) for uid in message.mention_user_ids if uid in users],
        "mention_roles": [str(r) for r in message.mention_role_ids],
        "attachments": [attachment_payload(a) for a in message.attachments],
        "embeds": message.embeds,
        "components": message.components,
        "pinned": False,
        "flags": message.flags,
    }
    if message.reactions:
        data["reactions"] = [
            reaction_payload(e, who, users) for e, who in message.reactions.items()
        ]
    if message.nonce is not None:
        data["nonce"] = message.nonce
    if message.webhook_id is not None:
        data["webhook_id"] = str(message.webhook_id)
    if message.application_id is not None:
        data["application_id"] = str(message.application_id)
    if message.message_reference is not None:
        data["message_reference"] = message.message_reference
        data["referenced_message"] = referenced
    if interaction_metadata is not None:
        data["interaction_metadata"] = interaction_metadata
    if message.poll is not None:
        data["poll"] = message.poll
    if for_gateway and message.guild_id is not None:
        data["guild_id"] = str(message.guild_id)
        if member is not None and message.webhook_id is None:
            data["member"] = member_payload(member, with_user=False)
    return data


def reaction_payload(emoji: str, who: set[int], users: dict[int, FakeUser]) -> dict[str, Any]:
    name, _, emoji_id = emoji.partition(":")
    bot_ids = {uid for uid, user in users.items() if user.bot}
    return {
        "count": len(who),
        "count_details": {"burst": 0, "normal": len(who)},
        "me": bool(who & bot_ids),
        "me_burst": False,
        "burst_colors": [],
        "emoji": {"id": emoji_id or None, "name": name},
    }


# --------------------------------------------------------------------------------------------
# Application data
# --------------------------------------------------------------------------------------------


def application_payload(
    app_id: int, bot: FakeUser, owner: FakeUser, team: dict[FakeUser, str] | None = None
) -> dict[str, Any]:
    """``GET /oauth2/applications/@me``. No ``interactions_endpoint_url``: events come via WS.
    ``team`` (member: role, Discord's roles ``admin``, ``developer``, ``read_only``; the first
    owns the team) makes it a team's application: ``owner`` is then the team's own user."""
    team_data = None
    if team:
        team_id = app_id + 1
        team_data = {
            "id": str(team_id),
            "name": "videobot team",
            "icon": None,
            "owner_user_id": str(next(iter(team)).id),
            "members": [
                {
                    "membership_state": 2,  # accepted
                    "team_id": str(team_id),
                    "user": user_payload(member),
                    "role": role,
                    "permissions": ["*"],
                }
                for member, role in team.items()
            ],
        }
        owner = FakeUser(team_id, f"team{team_id}")
    return {
        "id": str(app_id),
        "name": bot.username,
        "icon": None,
        "description": "videobot test application",
        "summary": "",
        "type": None,
        "bot": user_payload(bot),
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": hashlib.sha256(str(app_id).encode()).hexdigest(),
        "flags": 1 << 19 | 1 << 23,  # GATEWAY_MESSAGE_CONTENT_LIMITED + APPLICATION_COMMAND_BADGE
        "owner": user_payload(owner),
        "team": team_data,
        "tags": [],
        "redirect_uris": [],
        "interactions_endpoint_url": None,
        "role_connections_verification_url": None,
        "approximate_guild_count": 1,
        "integration_types_config": {"0": {}},
        "hook": True,
        "is_monetized": False,
    }


def interaction_channel_payload(channel: FakeChannel, permissions: int) -> dict[str, Any]:
    """The partial channel an interaction carries; ``permissions`` are the invoker's."""
    data = channel_payload(channel)
    data["permissions"] = str(permissions)
    return data


def rate_limit_bucket(route_key: str) -> str:
    """A stable fake bucket hash per route, shaped like Discord's 32-hex-char buckets."""
    return hashlib.md5(route_key.encode(), usedforsecurity=False).hexdigest()
