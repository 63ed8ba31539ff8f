"""Everything members see: status lines, progress bars, result embeds and the buttons under a
video. Shared by the cogs so every command looks and behaves the same.

Text a member typed is never echoed as a ping: the bot's ``allowed_mentions`` is "none" and prompts
are shown with markdown escaped.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import discord

from bot.core.errors import VideoBotError
from bot.interactions import error_text, report_failure
from bot.jobs import Job
from bot.lifecycle import JobStatus

if TYPE_CHECKING:
    from bot.service import Finished, VideoService

log = logging.getLogger(__name__)

BAR_WIDTH = 16
EMBED_COLOUR = discord.Colour.from_rgb(88, 101, 242)
ERROR_COLOUR = discord.Colour.red()


# --- text -----------------------------------------------------------------------------------------


def progress_bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


def clean(text: str, limit: int = 200) -> str:
    """A member's text, safe to show: markdown escaped, mentions defused, length capped."""
    text = discord.utils.escape_markdown(discord.utils.escape_mentions(text.replace("\n", " ")))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_text(job: Job, wait_text: str = "") -> str:
    """One line for a queued or running job."""
    what = job.kind.label
    if job.state == JobStatus.QUEUED:
        eta = f", about {wait_text}" if wait_text else ""
        return f"⏳ {what} #{job.id} is queued: position {job.position or 1}{eta}."
    progress = job.progress
    elapsed = time.monotonic() - (job.started_at or time.monotonic())
    if progress is None:
        return f"🎬 {what} #{job.id} is starting… ({elapsed:.0f} s)"
    eta = f", ETA {progress.eta_s:.0f} s" if progress.eta_s is not None else ""
    return (
        f"🎬 {what} #{job.id}: `{progress_bar(progress.fraction)}` step {progress.step}/"
        f"{progress.total} ({progress.stage}), {elapsed:.0f} s elapsed{eta}"
    )


def result_embed(finished: Finished) -> discord.Embed:
    result = finished.result
    meta = result.metadata
    prompt = clean(meta.get("prompt") or (result.params.prompt if result.params else ""), 250)
    embed = discord.Embed(
        title=prompt or f"Job #{finished.job_id}",
        colour=EMBED_COLOUR,
    )
    width, height = result.size
    model = meta.get("upscaler") or meta.get("model")
    if model:
        from_picture = " · from a picture" if meta.get("image_to_video") else ""
        embed.add_field(name="Model", value=f"{model}{from_picture}")
    if result.params is not None:
        embed.add_field(name="Seed", value=str(result.seed_used))
    embed.add_field(name="Size", value=f"{width}x{height}")
    embed.add_field(name="Frames", value=f"{len(result.images)} at {result.frame_rate:g} fps")
    embed.add_field(name="Time", value=f"{result.generation_time:.1f} s")
    edits = meta.get("edits") or []
    if edits:
        embed.add_field(name="Edits", value=clean(", ".join(e["operation"] for e in edits), 100))
    embed.set_footer(text=f"job #{finished.job_id} · {finished.kind.value}")
    return embed


def error_embed(message: str, job_id: int | None = None) -> discord.Embed:
    embed = discord.Embed(description=error_text(message, 1500), colour=ERROR_COLOUR)
    if job_id is not None:
        embed.set_footer(text=f"job #{job_id}")
    return embed


# --- buttons --------------------------------------------------------------------------------------

ButtonHandler = Callable[[discord.Interaction, int], Awaitable[None]]

RESULT_ACTIONS: dict[str, tuple[str, str]] = {
    "reroll": ("Reroll", "🎲"),
    "upscale": ("Upscale", "🔍"),
    "reverse": ("Reverse", "⏪"),
    "loop": ("Loop", "🔁"),
    "interpolate": ("Interpolate", "✨"),
}


class ResultButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"vb:(?P<action>reroll|upscale|reverse|loop|interpolate):(?P<job_id>[0-9]+)",
):
    """A button under a finished video. Its custom id carries the action and the job, so it works
    after a restart: discord.py rebuilds it from the id (``DynamicItem``)."""

    def __init__(self, action: str, job_id: int) -> None:
        label, emoji = RESULT_ACTIONS[action]
        super().__init__(
            discord.ui.Button(
                label=label,
                emoji=emoji,
                style=discord.ButtonStyle.secondary,
                custom_id=f"vb:{action}:{job_id}",
            )
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> ResultButton:
        return cls(match["action"], int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await press(interaction, self.action, self.job_id)


class CancelButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"vb:cancel:(?P<job_id>[0-9]+)"
):
    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Cancel",
                emoji="✖️",
                style=discord.ButtonStyle.danger,
                custom_id=f"vb:cancel:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> CancelButton:
        return cls(int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await press(interaction, "cancel", self.job_id)


def button_handlers(client: discord.Client) -> dict[str, ButtonHandler]:
    """The cogs register what each button does on the client (render.py is below the cogs)."""
    return getattr(client, "button_handlers", {})


async def press(interaction: discord.Interaction, action: str, job_id: int) -> None:
    """Run a button's handler. discord.py only logs what a ``DynamicItem`` callback raises, so
    here any failure goes to the member through the one failure path."""
    handler = button_handlers(interaction.client).get(action)
    try:
        if handler is None:
            raise VideoBotError("this button is not available any more")
        await handler(interaction, job_id)
    except Exception as exc:
        await report_failure(interaction, exc)


def result_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in RESULT_ACTIONS:
        view.add_item(ResultButton(action, job_id))
    return view


def cancel_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


# --- where a job's status and result are shown ----------------------------------------------------


class Reply(Protocol):
    """A message the bot keeps editing while a job runs: an interaction's response or a reply to a
    member's message."""

    max_bytes: int

    async def show(
        self,
        content: str | None,
        *,
        embed: discord.Embed | None = None,
        file: Path | None = None,
        view: discord.ui.View | None = None,
    ) -> discord.Message | None: ...


def video_files(file: Path | None) -> list[discord.File]:
    return [discord.File(file, filename="video.mp4")] if file else []


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
        view: discord.ui.View | None = None,
    ) -> discord.Message | None:
        content = self.text(content)
        if self._message is None:
            self._message = await self.send(
                content,
                embed=embed or discord.utils.MISSING,
                files=video_files(file),
                view=view or discord.utils.MISSING,
            )
        else:
            self._message = await self._message.edit(
                content=content,
                embed=embed,
                attachments=video_files(file),
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
        super().__init__(message.guild.filesize_limit if message.guild else 10 * 1024 * 1024)
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
        view: discord.ui.View | None = None,
    ) -> discord.Message | None:
        if self._fallback is None:
            try:
                return await self.interaction.edit_original_response(
                    content=content, embed=embed, attachments=video_files(file), view=view
                )
            except discord.NotFound:
                log.info("interaction token of %s expired; falling back", self.interaction.id)
            except discord.HTTPException as exc:
                if exc.status != 401:
                    raise
            channel = self.interaction.channel
            assert isinstance(channel, discord.abc.Messageable)
            self._fallback = ChannelReply(channel, self.interaction.user.id, self.max_bytes)
        return await self._fallback.show(content, embed=embed, file=file, view=view)


async def follow_job(
    reply: Reply, service: VideoService, job: Job, *, interval_s: float
) -> Finished:
    """Keep ``reply`` showing the job's queue position and progress (at most one edit per
    ``interval_s``: Discord rate-limits edits), then show the result."""
    last_text = ""
    last_edit = 0.0
    finishing = asyncio.ensure_future(service.outcome(job))
    current = asyncio.current_task()
    if current is not None:  # the bot waits for result posts before it closes
        service.presenting.add(current)
    try:
        while not finishing.done():
            text = status_text(job, service.wait_text(job))
            if text != last_text and time.monotonic() - last_edit >= interval_s:
                try:
                    await reply.show(text, view=cancel_view(job.id))
                except discord.HTTPException as exc:
                    log.warning("progress edit of job %s failed: %s", job.id, exc)
                last_text, last_edit = text, time.monotonic()
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
    if finished.ok:
        await _upload_result(reply, service, finished)
    elif finished.result.cancelled:
        await reply.show(f"✖️ Job #{finished.job_id} was cancelled.", view=None)
    else:
        await reply.show(
            None, embed=error_embed(finished.error or "failed", finished.job_id), view=None
        )


UPLOAD_ATTEMPTS = 3


async def _upload_result(reply: Reply, service: VideoService, finished: Finished) -> None:
    """Upload the mp4 within the limit Discord announced; if Discord still answers 413 (a smaller
    limit than announced, or the rest of the request counted), re-encode at half and retry."""
    assert finished.path is not None
    budget = reply.max_bytes
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        path = await service.upload_copy(finished, budget)
        try:
            message = await reply.show(
                None, embed=result_embed(finished), file=path, view=result_view(finished.job_id)
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


_JOB_BUTTON = re.compile(r"vb:[a-z]+:([0-9]+)")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv", ".gif", ".m4v")


def job_id_of(message: discord.Message) -> int | None:
    """The job behind one of the bot's result messages, read from its buttons' custom ids."""
    for row in message.components:
        for child in getattr(row, "children", []):
            match = _JOB_BUTTON.fullmatch(getattr(child, "custom_id", None) or "")
            if match:
                return int(match.group(1))
    return None


PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")


def picture_attachment(message: discord.Message) -> discord.Attachment | None:
    """The first attachment that looks like a still picture (by content type or extension)."""
    for attachment in message.attachments:
        if is_picture(attachment):
            return attachment
    return None


def is_picture(attachment: discord.Attachment) -> bool:
    kind = (attachment.content_type or "").split(";")[0]
    return kind.startswith("image/") or attachment.filename.lower().endswith(PICTURE_EXTENSIONS)


def video_attachment(message: discord.Message) -> discord.Attachment | None:
    """The first attachment that looks like a video (by content type or extension)."""
    for attachment in message.attachments:
        kind = (attachment.content_type or "").split(";")[0]
        name = attachment.filename.lower()
        if kind.startswith("video/") or kind == "image/gif" or name.endswith(VIDEO_EXTENSIONS):
            return attachment
    return None
