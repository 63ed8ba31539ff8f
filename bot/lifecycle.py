"""One job lifecycle for the whole bot: the kinds of job, the words for their states, and the retry
policy.

The executor, the store, the service and what members see all speak this vocabulary, so a job is
"queued", "running", "done", "failed" or "cancelled" wherever it is looked at, and a restart or an
out-of-memory error is retried by the same rule wherever it happens. A leaf module: it imports
nothing of the bot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class JobKind(StrEnum):
    GENERATE = "generate"
    EDIT = "edit"
    UPSCALE = "upscale"
    RESTYLE = "restyle"
    """A video redrawn after a prompt (video-to-video, ``bot.core.restyle``): a GPU job."""
    EXTEND = "extend"
    """A clip continued from its last frames (``bot.core.extend``): a GPU job."""

    @property
    def uses_gpu(self) -> bool:
        """Generations and upscales wait in the GPU queue; edits run on the CPU edit pool."""
        return self is not JobKind.EDIT

    @property
    def label(self) -> str:
        """How members see the kind: "Video #12", "Edit #13"."""
        return {
            "generate": "Video",
            "edit": "Edit",
            "upscale": "Upscale",
            "restyle": "Restyle",
            "extend": "Extend",
        }.get(self.value, self.value.capitalize())


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})
UNFINISHED_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)

INTERACTION_TOKEN_LIFETIME = timedelta(minutes=14, seconds=30)
"""Discord accepts an interaction's token for 15 minutes; a little margin for clock skew. Past it
a job's stored token is useless, so retention forgets it."""

MEMORY_SAVERS = ("cpu_offload", "vae_slicing", "vae_tiling", "forward_chunking")
"""The switches an out-of-memory retry turns on, for that one job's model only."""


@dataclass(frozen=True)
class RetryPolicy:
    """When a job is tried again.

    ``max_attempts`` counts starts: a job that was running when the process died is started again
    until it has been started this many times, then failed, so a job that crashes the bot cannot
    do so forever. ``retry_out_of_memory`` reruns a job once with :data:`MEMORY_SAVERS` on when it
    ran out of GPU memory. Edits are never resumed after a restart: they are quick to ask again and
    their member's interaction died with the process.
    """

    max_attempts: int = 2
    retry_out_of_memory: bool = True

    def resume_after_restart(self, kind: JobKind, status: JobStatus, attempts: int) -> str | None:
        """None when the job should be queued again, else the reason it is failed instead."""
        if kind is JobKind.EDIT:
            return "the bot restarted during this edit; please run it again"
        if status is JobStatus.RUNNING and attempts >= self.max_attempts:
            times = "twice" if self.max_attempts == 2 else f"{self.max_attempts} times"
            return f"the bot stopped {times} while this job ran, so it was not tried again"
        return None

    def retry_after_worker_lost(self, attempts: int) -> str | None:
        """A worker (a Ray actor, its host) died while running the job: None when the job should
        be queued again, else the reason it is failed instead. The same cap as a restart."""
        if attempts >= self.max_attempts:
            times = "twice" if self.max_attempts == 2 else f"{self.max_attempts} times"
            return f"the worker running this job stopped {times}, so it was not tried again"
        return None


DEFAULT_RETRY_POLICY = RetryPolicy()

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "FINAL_STATUSES",
    "INTERACTION_TOKEN_LIFETIME",
    "MEMORY_SAVERS",
    "UNFINISHED_STATUSES",
    "JobKind",
    "JobStatus",
    "RetryPolicy",
]
