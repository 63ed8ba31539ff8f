"""Who may reach a job: the one rule every lookup goes through.

Job ids are sequential, so any member can type any id; this rule, not the id, keeps one server's
work away from another's. A job's owner may always reach it. Anyone else only from inside the same
server, and only once its result was posted publicly there (in a channel they can see): a job still
queued, a result sent in a direct message, and a job of another server stay their owner's. That
covers the pictures members upload for image-to-video: the job that holds one is reachable only
where its result was posted, so a picture never leaves its server.

"A channel they can see" is Discord's View Channel, with one exception Discord's clients enforce but
its permission bits do not show: a private thread is seen only by its members and by those with
Manage Threads (discord.py's ``Thread.permissions_for`` returns the parent channel's permissions).
The channel check is the caller's (:func:`bot.interactions.channel_visibility`, which asks Discord
about thread membership); it is awaited, and anything it cannot settle counts as unseen.

A refusal never says whether the job exists: "no such job" and "not yours" read the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.store import JobRecord


@dataclass(frozen=True)
class Viewer:
    """Who is looking, and from where. ``can_view_channel`` answers for channels of the viewer's
    server (View Channel, and membership of a private thread); None means "every channel" (tests,
    the CLI)."""

    user_id: int
    guild_id: int | None
    can_view_channel: Callable[[int], Awaitable[bool]] | None = None


async def can_reach(viewer: Viewer, record: JobRecord) -> bool:
    """True when ``viewer`` may use ``record`` (rerun it, edit or upscale its video, press its
    buttons, see its prompt)."""
    if record.user_id == viewer.user_id:
        return True
    if record.guild_id is None or record.guild_id != viewer.guild_id:
        return False
    if record.message_id is None or record.channel_id is None:
        return False  # not posted: queued, running, failed before posting, or never announced
    return viewer.can_view_channel is None or await viewer.can_view_channel(record.channel_id)


def not_found(job_id: int) -> str:
    """The refusal for a job that is missing or out of reach: the same words for both."""
    return f"there is no job #{job_id} you can use here (see /history for your jobs)"


def may_cancel(viewer: Viewer, owner_id: int, guild_id: int | None, *, moderator: bool) -> bool:
    """A job's owner may cancel it; a moderator may cancel the jobs of their own server only."""
    if owner_id == viewer.user_id:
        return True
    return moderator and guild_id is not None and guild_id == viewer.guild_id


__all__ = ["Viewer", "can_reach", "may_cancel", "not_found"]
