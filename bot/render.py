"""Everything members see: status lines, progress bars, result embeds and the buttons under a
video. Shared by the cogs so every command looks the same; :mod:`bot.delivery` sends it.

Text a member typed is never echoed as a ping: the bot's ``allowed_mentions`` is "none" and prompts
are shown with markdown escaped.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord

from bot.interactions import error_text
from bot.lifecycle import JobKind, JobStatus

if TYPE_CHECKING:
    from bot.core.progress import Preview
    from bot.jobs import Job
    from bot.service import Finished

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
    if is_draft(finished):
        saving = (meta.get("draft") or {}).get("saving")
        what = f"draft ({clean(saving, 200)})" if saving else "draft"
        embed.add_field(name="Quality", value=f"{what}: press Refine for the full video")
    embed.add_field(name="Size", value=f"{width}x{height}")
    embed.add_field(name="Frames", value=f"{len(result.images)} at {result.frame_rate:g} fps")
    embed.add_field(name="Time", value=f"{result.generation_time:.1f} s")
    edits = meta.get("edits") or []
    if edits:
        embed.add_field(name="Edits", value=clean(", ".join(e["operation"] for e in edits), 100))
    embed.set_footer(text=f"job #{finished.job_id} · {finished.kind.value}")
    return embed


def is_draft(finished: Finished) -> bool:
    """A generated draft (``quality:draft``): its result gets the Refine button. An edit or an
    upscale of a draft is a result of its own, without one."""
    params = finished.result.params
    if finished.kind is not JobKind.GENERATE or params is None:
        return False
    return getattr(params, "quality", "full") == "draft"


@dataclass(frozen=True)
class RefineEstimate:
    """What refining a draft costs: the full render's steps, the draft's (when known) and the
    expected rendering time in seconds (when the draft's pace is known)."""

    full_steps: int
    draft_steps: int | None
    seconds: float | None


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"


def refine_note(draft_id: int, estimate: RefineEstimate) -> str:
    """The line above a refine's progress: what it does and how long it should take."""
    steps = f"{estimate.full_steps} steps"
    if estimate.draft_steps:
        steps += f" instead of the draft's {estimate.draft_steps}"
    when = ""
    if estimate.seconds is not None:
        when = f", about {duration(estimate.seconds)} of rendering once it starts"
    return f"💎 Refining draft #{draft_id} at full quality: {steps}{when}."


def error_embed(message: str, job_id: int | None = None) -> discord.Embed:
    embed = discord.Embed(description=error_text(message, 1500), colour=ERROR_COLOUR)
    if job_id is not None:
        embed.set_footer(text=f"job #{job_id}")
    return embed


# --- buttons --------------------------------------------------------------------------------------
#
# Drawn here, answered in the cogs: each button's custom id names its action and job, and the cog
# that does the action registers a ``DynamicItem`` whose template matches those ids (so a click
# works after a restart, and the behaviour sits beside the handler it runs).

BUTTONS: dict[str, tuple[str, str, discord.ButtonStyle]] = {
    "reroll": ("Reroll", "🎲", discord.ButtonStyle.secondary),
    "upscale": ("Upscale", "🔍", discord.ButtonStyle.secondary),
    "reverse": ("Reverse", "⏪", discord.ButtonStyle.secondary),
    "loop": ("Loop", "🔁", discord.ButtonStyle.secondary),
    "interpolate": ("Interpolate", "✨", discord.ButtonStyle.secondary),
    "extend": ("Extend", "⏩", discord.ButtonStyle.secondary),
    "cancel": ("Cancel", "✖️", discord.ButtonStyle.danger),
    "refine": ("Refine", "💎", discord.ButtonStyle.primary),
}
RESULT_ACTIONS = ("reroll", "upscale", "reverse", "loop", "interpolate", "extend")
"""The buttons under a finished video, in order (Discord puts five in a row; Extend starts the
second)."""


def button_id(action: str, job_id: int) -> str:
    return f"vb:{action}:{job_id}"


def button_template(*actions: str) -> str:
    """The ``DynamicItem`` template that matches :func:`button_id` for ``actions``."""
    return rf"vb:(?P<action>{'|'.join(actions)}):(?P<job_id>[0-9]+)"


def job_button(action: str, job_id: int) -> discord.ui.Button[Any]:
    label, emoji, style = BUTTONS[action]
    return discord.ui.Button(
        label=label, emoji=emoji, style=style, custom_id=button_id(action, job_id)
    )


def drawn_view(buttons: list[discord.ui.Button[Any]]) -> discord.ui.View:
    """Buttons as drawn. Clicks reach the cogs' ``DynamicItem`` by custom id, so the view is
    finished before it is sent: discord.py then sends it without keeping one view per message in
    its store for ever."""
    view = discord.ui.View(timeout=None)
    for button in buttons:
        view.add_item(button)
    view.stop()
    return view


def result_view(job_id: int, *, draft: bool = False) -> discord.ui.View:
    """The buttons under a result; a draft's first is Refine (the same video at full quality)."""
    actions = ("refine", *RESULT_ACTIONS) if draft else RESULT_ACTIONS
    return drawn_view([job_button(action, job_id) for action in actions])


def cancel_view(job_id: int) -> discord.ui.View:
    return drawn_view([job_button("cancel", job_id)])


def video_file(path: Path) -> discord.File:
    return discord.File(path, filename="video.mp4")


def preview_file(preview: Preview) -> discord.File:
    """A running job's live preview (a small looping picture Discord plays inline), attached
    under the progress line; its description says which step it shows."""
    return discord.File(
        io.BytesIO(preview.data),
        filename=preview.filename,
        description=f"preview at step {preview.step}",
    )


# --- reading the bot's and members' messages ------------------------------------------------------

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
