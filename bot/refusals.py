"""What admission refuses and the direct-message policy, as a leaf: the settings
(``bot.config``), the decode budget (``bot.budget``) and admission itself all name them, and none
of those may import another in a circle.
"""

from __future__ import annotations

from enum import StrEnum

from bot.core.errors import VideoBotError


class RequestRefused(VideoBotError):
    """A request the rules refuse (blocked, too many jobs, cooldown, full queue, a word)."""


class DirectMessages(StrEnum):
    """What members get when they use the bot in a direct message."""

    OFF = "off"
    """Refused, with a line saying to use the bot in a server."""
    SAME_LIMITS = "same_limits"
    """Served with the bot's default cap and cooldown (no server can override them there), and
    refused to a member blocked in any server the bot shares with them."""


__all__ = ["DirectMessages", "RequestRefused"]
