"""Delivery: getting what :mod:`bot.render` draws onto Discord and keeping it current.

``render`` decides what a message looks like; this module sends it and keeps it up to date: it
follows a job from the queue to its end (at most one edit per progress interval, since Discord
rate-limits edits), swaps the live preview in place, fits the finished video to the upload limit
(re-encoding when it is over, and again at half the size if Discord still answers 413), and records
which message holds the result so its buttons, replies and ``/history`` links find the job later.

Where a message goes is a :class:`Reply`: an interaction's deferred response (falling back to a
channel message once Discord's 15-minute token has expired), a reply to a member's message, or a
channel message that mentions the member (jobs resumed after a restart).
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import discord

from bot.core import media
from bot.render import (
    cancel_view,
    error_embed,
    is_draft,
    preview_file,
    result_embed,
    result_view,
    status_text,
    video_file,
)

if TYPE_CHECKING:
    from bot.core.progress import Preview
    from bot.jobs import Job
    from bot.service import Finished, VideoService

log = logging.getLogger(__name__)

DM_UPLOAD_LIMIT = 10 * 1024 * 1024
"""Discord's upload limit outside servers (and in servers without boosts)."""
UPLOAD_ATTEMPTS = 3


def upload_limit(channel: Any) -> int:
    """The bytes one upload may have in ``channel``: its server's limit (boosts raise it)."""
    guild = getattr(channel, "guild", None)
    return guild.filesize_limit if guild is not None else DM_UPLOAD_LIMIT


# --- where a job's status and result are shown ----------------------------------------------------


class Reply(Protocol):
    """A message the bot keeps editing while a job runs: an interaction's response or a reply to a
    member's message.

    ``show`` replaces the message's attachments with the video or the preview given; with neither
    the attachments are removed, unless ``keep_attachments`` (a progress edit that leaves the
    current preview where it is: Discord keeps attachments an edit does not mention)."""

    max_bytes: int

    async def show(
        self,
        content: str | None,
        *,
        embed: discord.Embed | None = None,
        file: Path | None = None,
        preview: Preview | None = None,
        keep_attachments: bool = False,
        view: discord.ui.View | None = None,
    ) -> discord.Message | None: ...


def attachments(file: Path | None, preview: Preview | None, keep: bool) -> list[discord.File] | Any:
    """The ``attachments`` of an edit: the new files (each edit lists every attachment the
    message keeps, so the old preview goes), or ``MISSING`` to leave them as they are."""
    if keep and file is None and preview is None:
        return discord.utils.MISSING
    files = [video_file(file)] if file is not None else []
    if preview is not None:
        files.append(preview_file(preview))
    return files


class SentReply:
    """A message the bot sends on the first ``show`` and edits on every later one."""

    allowed_mentions: discord.AllowedMentions | None = None

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._message: discord.Message | None = None

    async def show(
        self,
        content: str | None,
        *,
        embed: discord.Embed | None = None,
        file: Path | None = None,
        preview: Preview | None = None,
        keep_attachments: bool = False,
        view: discord.ui.View | None = None,
    ) -> discord.Message | None:
        content = self.text(content)
        files = attachments(file, preview, keep_attachments)
        if self._message is None:
            self._message = await self.send(
                content,
                embed=embed or discord.utils.MISSING,
                files=files or discord.utils.MISSING,
                view=view or discord.utils.MISSING,
            )
        else:
            self._message = await self._message.edit(
                content=content,
                embed=embed,
                attachments=files,
                view=view,
                allowed_mentions=self.allowed_mentions,
            )
        return self._message

    def text(self, content: str | None) -> str | None:
        return content

    async def send(self, content: str | None, **fields: Any) -> discord.Message:
        raise NotImplementedError


class MessageReply(SentReply):
    """A reply to a member's message (reply-to-video commands)."""

    def __init__(self, message: discord.Message) -> None:
        super().__init__(upload_limit(message.channel))
        self.message = message

    async def send(self, content: str | None, **fields: Any) -> discord.Message:
        return await self.message.reply(content, mention_author=False, **fields)


class ChannelReply(SentReply):
    """A channel message that mentions the member: for jobs resumed after a restart, and for
    results whose interaction token (valid 15 minutes) has expired."""

    def __init__(self, channel: discord.abc.Messageable, user_id: int, max_bytes: int) -> None:
        super().__init__(max_bytes)
        self.channel = channel
        self.user_id = user_id
        self.allowed_mentions = discord.AllowedMentions(users=[discord.Object(user_id)])

    @classmethod
    def to(cls, channel: discord.abc.Messageable, user_id: int) -> ChannelReply:
        return cls(channel, user_id, upload_limit(channel))

    def text(self, content: str | None) -> str:
        return f"<@{self.user_id}> {content or ''}".strip()

    async def send(self, content: str | None, **fields: Any) -> discord.Message:
        mentions = self.allowed_mentions or discord.AllowedMentions.none()
        return await self.channel.send(content, allowed_mentions=mentions, **fields)


class InteractionReply:
    """Edits the interaction's deferred response; once Discord's 15-minute token has expired,
    continues as a channel message that mentions the member."""

    def __init__(self, interaction: discord.Interaction) -> None:
        self.interaction = interaction
        self.max_bytes = interaction.filesize_limit
        self._fallback: ChannelReply | None = None

    async def show(
        self,
        content: str | None,
        *,
        embed: discord.Embed | None = None,
        file: Path | None = None,
        preview: Preview | None = None,
        keep_attachments: bool = False,
        view: discord.ui.View | None = None,
    ) -> discord.Message | None:
        if self._fallback is None:
            try:
                return await self.interaction.edit_original_response(
                    content=content,
                    embed=embed,
                    attachments=attachments(file, preview, keep_attachments),
                    view=view,
                )
            except discord.NotFound:
                log.info("interaction token of %s expired; falling back", self.interaction.id)
            except discord.HTTPException as exc:
                if exc.status != 401:
                    raise
            channel = self.interaction.channel
            assert isinstance(channel, discord.abc.Messageable)
            self._fallback = ChannelReply(channel, self.interaction.user.id, self.max_bytes)
        return await self._fallback.show(
            content,
            embed=embed,
            file=file,
            preview=preview,
            keep_attachments=keep_attachments,
            view=view,
        )


# --- following a job ------------------------------------------------------------------------------


def newest_preview(job: Job) -> Preview | None:
    """The job's latest live preview, when its engine made one (``JobControl(previews=True)``)."""
    progress = job.progress
    return getattr(progress, "preview", None) if progress is not None else None


async def follow_job(
    reply: Reply,
    service: VideoService,
    job: Job,
    *,
    interval_s: float,
    previews: bool | None = None,
    note: str = "",
) -> Finished:
    """Keep ``reply`` showing the job's queue position and progress (at most one edit per
    ``interval_s``: Discord rate-limits edits), with the newest live preview attached when
    ``previews`` is on (default: ``[discord] live_previews``; replaced in place, never piled
    up), then show the result. ``note`` is a line kept above the status until the end."""
    if previews is None:
        previews = service.settings.discord.live_previews
    last_text = ""
    last_preview: Preview | None = None
    last_edit = 0.0
    finishing = asyncio.ensure_future(service.outcome(job))
    current = asyncio.current_task()
    if current is not None:  # the bot waits for result posts before it closes
        service.presenting.add(current)
    try:
        while not finishing.done():
            text = status_text(job, service.wait_text(job))
            text = f"{note}\n{text}" if note else text
            preview = newest_preview(job) if previews else None
            # By value: a preview that crossed a process boundary is a new object each time.
            fresh = preview is not None and preview != last_preview
            if fresh and preview is not None and len(preview.data) > reply.max_bytes:
                fresh = False  # over the upload limit: the progress bar alone
            due = time.monotonic() - last_edit >= interval_s
            if (text != last_text or fresh) and due:
                try:
                    await reply.show(
                        text,
                        preview=preview if fresh else None,
                        keep_attachments=not fresh,
                        view=cancel_view(job.id),
                    )
                except discord.HTTPException as exc:
                    log.warning("progress edit of job %s failed: %s", job.id, exc)
                    if fresh and exc.status == 413:
                        previews = False  # Discord takes less than it announced: stop trying
                last_text, last_edit = text, time.monotonic()
                if fresh:
                    last_preview = preview
            job.changed.clear()
            changed = asyncio.ensure_future(job.changed.wait())
            try:
                await asyncio.wait(
                    [finishing, changed],
                    timeout=max(interval_s - (time.monotonic() - last_edit), 0.05),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                changed.cancel()
        finished = finishing.result()
        await show_finished(reply, service, finished)
        return finished
    finally:
        if not finishing.done():
            finishing.cancel()
        if current is not None:
            service.presenting.discard(current)


async def show_finished(reply: Reply, service: VideoService, finished: Finished) -> None:
    """The job's end replaces whatever the message showed (the preview included)."""
    if finished.ok:
        await upload_result(reply, service, finished)
    elif finished.result.cancelled:
        await reply.show(f"✖️ Job #{finished.job_id} was cancelled.", view=None)
    else:
        await reply.show(
            None, embed=error_embed(finished.error or "failed", finished.job_id), view=None
        )


# --- the finished video ---------------------------------------------------------------------------


async def fitted_copy(finished: Finished, max_bytes: int) -> Path:
    """The finished mp4, or a smaller re-encode of it (the sound's bitrate, then quality, then
    size, then frame rate go down: :func:`bot.core.media.encode_within`) when it exceeds
    ``max_bytes``; the sound counts in the budget. The kept file stays at full quality for
    edits and reruns."""
    assert finished.path is not None
    if finished.path.stat().st_size <= max_bytes:
        return finished.path
    smaller = finished.path.with_suffix(".upload.mp4")
    result = finished.result
    await asyncio.to_thread(
        partial(
            media.encode_within,
            result.images,
            smaller,
            result.frame_rate,
            max_bytes,
            sound=result.sound,
        )
    )
    return smaller


async def upload_result(reply: Reply, service: VideoService, finished: Finished) -> None:
    """Upload the mp4 within the limit Discord announced; if Discord still answers 413 (a smaller
    limit than announced, or the rest of the request counted), re-encode at half and retry. The
    message that holds it is recorded for the job."""
    assert finished.path is not None
    budget = reply.max_bytes
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        path = await fitted_copy(finished, budget)
        try:
            message = await reply.show(
                finished.result.metadata.get("note") or None,  # e.g. why the sound was left out
                embed=result_embed(finished),
                file=path,
                view=result_view(finished.job_id, draft=is_draft(finished)),
            )
        except discord.HTTPException as exc:
            if exc.status != 413 or attempt == UPLOAD_ATTEMPTS:
                raise
            budget = path.stat().st_size // 2
            log.info(
                "upload of job %s was too large; retrying under %d bytes", finished.job_id, budget
            )
            continue
        finally:
            if path != finished.path:  # a smaller copy made for this upload only
                path.unlink(missing_ok=True)
        if message is not None:
            await service.store.set_message(finished.job_id, message.channel.id, message.id)
        return


__all__ = [
    "ChannelReply",
    "InteractionReply",
    "MessageReply",
    "Reply",
    "SentReply",
    "fitted_copy",
    "follow_job",
    "show_finished",
    "upload_limit",
    "upload_result",
]
