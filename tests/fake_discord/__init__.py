"""A fake Discord (REST API v10 + gateway + CDN) on 127.0.0.1 for driving a real discord.py bot.

See ``server.FakeDiscord`` for the API and ``client`` for how discord.py is pointed at it.
"""

from __future__ import annotations

from .client import FAST_CLIENT_OPTIONS, default_intents, patch_discord, run_bot
from .models import (
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeRole,
    FakeUser,
    GatewayFrame,
    RecordedRequest,
    StoredAttachment,
    StoredMessage,
    Upload,
    UploadedFile,
)
from .server import FakeDiscord

__all__ = [
    "FAST_CLIENT_OPTIONS",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeRole",
    "FakeUser",
    "GatewayFrame",
    "RecordedRequest",
    "StoredAttachment",
    "StoredMessage",
    "Upload",
    "UploadedFile",
    "default_intents",
    "patch_discord",
    "run_bot",
]
