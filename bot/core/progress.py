"""The one small interface between a running job and whoever waits for it: progress out, cancel in.

A :class:`JobControl` is created by the caller (the CLI, the bot's executor), handed to the engine and
read by the per-family pipeline adapters at every denoising step. It is safe to call ``cancel`` from
any thread while the job runs in another.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.core.errors import GenerationCancelled, GenerationTimedOut


@dataclass(frozen=True)
class Progress:
    """Step ``step`` of ``total`` of one stage of a job, with the time since the job started."""

    stage: str
    step: int
    total: int
    elapsed_s: float

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
        self, on_progress: ProgressCallback | None = None, *, time_limit_s: float | None = None
    ) -> None:
        self._on_progress = on_progress
        self._cancel = threading.Event()
        self._started = time.monotonic()
        self.time_limit_s = time_limit_s
        self.last: Progress | None = None

    def restart_clock(self) -> None:
        """Start the time limit and the elapsed time now: called when a queued job starts."""
        self._started = time.monotonic()

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

    def step(self, stage: str, step: int, total: int) -> None:
        """Report that ``step`` of ``total`` is done, then stop here if a cancel arrived."""
        self.last = Progress(stage, step, total, time.monotonic() - self._started)
        if self._on_progress is not None:
            self._on_progress(self.last)
        self.check()
