"""The one small interface between a running job and whoever waits for it: progress out, cancel in.

A :class:`JobControl` is created by the caller (the CLI, the bot's executor), handed to the engine and
read by the per-family pipeline adapters at every denoising step. It is safe to call ``cancel`` from
any thread while the job runs in another.

With ``previews=True`` the reports also carry a small animated :class:`Preview` of the latents
(built by :mod:`bot.core.previews`), refreshed at most once per ``previews_every_s``. Progress and
Preview are plain frozen data, so they pickle: a backend in another process can send them on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.core.errors import GenerationCancelled, GenerationTimedOut

log = logging.getLogger(__name__)

DEFAULT_PREVIEWS_EVERY_S = 2.0


@dataclass(frozen=True)
class Preview:
    """A small looping picture of the video as it forms: the encoded file (``data``), the name to
    attach it under (``preview.gif``) and the denoising step it shows."""

    data: bytes
    filename: str
    step: int


PreviewBuilder = Callable[[], Preview]


@dataclass(frozen=True)
class Progress:
    """Step ``step`` of ``total`` of one stage of a job, with the time since the job started, and
    the newest preview of this stage when previews are on."""

    stage: str
    step: int
    total: int
    elapsed_s: float
    preview: Preview | None = None

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0

    @property
    def eta_s(self) -> float | None:
        """Remaining time at the average pace so far; ``None`` before the first step."""
        if self.step <= 0 or self.total <= 0:
            return None
        return self.elapsed_s / self.step * (self.total - self.step)


ProgressCallback = Callable[[Progress], None]


class JobControl:
    """Carries progress reports out of a job and a cancel request into it."""

    def __init__(
        self,
        on_progress: ProgressCallback | None = None,
        *,
        time_limit_s: float | None = None,
        previews: bool = False,
        previews_every_s: float = DEFAULT_PREVIEWS_EVERY_S,
    ) -> None:
        self._on_progress = on_progress
        self._cancel = threading.Event()
        self._started = time.monotonic()
        self.time_limit_s = time_limit_s
        self.last: Progress | None = None
        self.previews = previews
        """Whether the adapters build previews at all: off, no previewer exists and no latent is
        ever projected."""
        self.previews_every_s = previews_every_s
        self.preview: Preview | None = None
        self._preview_at = 0.0
        """When the last preview was built, or when the stage's first step ended."""
        self._preview_stage: str | None = None

    def restart_clock(self) -> None:
        """Start the time limit and the elapsed time now: called when a queued job starts."""
        self._started = time.monotonic()

    def preview_due(self, step: int, total: int, now: float) -> bool:
        """Whether a preview should be built at this step: once ``previews_every_s`` has passed
        since the last one (the first: since the stage's first step, so it shows more than the
        starting noise), and in any case at mid-run when the stage has none yet, so a job of few
        fast steps still shows one before it ends."""
        if not self.previews:
            return False
        if now - self._preview_at >= self.previews_every_s:
            return True
        return self.preview is None and total > 0 and 2 * step >= total

    def cancel(self) -> None:
        """Ask the job to stop; it raises :class:`GenerationCancelled` at its next step."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise :class:`GenerationCancelled` if a cancel was requested."""
        if self._cancel.is_set():
            raise GenerationCancelled("the job was cancelled")
        if self.time_limit_s is not None and time.monotonic() - self._started > self.time_limit_s:
            raise GenerationTimedOut(
                f"the job ran longer than its limit of {self.time_limit_s:g} s and was stopped"
            )

    def step(
        self, stage: str, step: int, total: int, preview: PreviewBuilder | None = None
    ) -> None:
        """Report that ``step`` of ``total`` is done, then stop here if a cancel arrived.

        ``preview`` builds a preview of this step; it is called only when one is due. A preview
        that fails is logged once and previews stop for this job: a picture must never cost a
        member the video."""
        now = time.monotonic()
        if stage != self._preview_stage:  # a new stage (an upscale after a render) starts afresh
            self._preview_stage = stage
            self._preview_at = now
            self.preview = None
        if preview is not None and self.preview_due(step, total, now):
            try:
                self.preview = preview()
            except Exception:
                log.warning("preview failed; previews are off for this job", exc_info=True)
                self.previews = False
            else:
                self._preview_at = now
        self.last = Progress(stage, step, total, now - self._started, self.preview)
        if self._on_progress is not None:
            self._on_progress(self.last)
        self.check()
