"""Jobs as data: what a GPU job is, in a form that pickles and crosses a process or a host.

A :class:`JobSpec` names the job's kind, its model, its parameters (plain JSON) and its input media
as bytes (a member's picture, or the video to upscale): no closures, no file paths that only exist
on the bot's host. The local executor and the Ray backend hand the same spec to the same
:class:`bot.worker.Worker`, so both run the same code. :class:`WorkerState` and
:class:`ModelReport` are what a worker tells the bot about itself, also plain data.

A leaf of floor 2: it imports only the lifecycle vocabulary, never asyncio, discord or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from bot.core.progress import DEFAULT_PREVIEWS_EVERY_S
from bot.lifecycle import JobKind


@dataclass(frozen=True)
class MediaBudget:
    """The limits a source video is decoded under on the worker: the bot's upload limits, its
    memory budget for one decode (every frame of an upscale's source is held), and the most
    frames the upscaler takes, so a file that lies about its length is cut off while decoding.
    The bot checked the probe against them before queueing the job."""

    max_bytes: int
    max_frames: int | None
    max_duration_s: float
    max_decoded_bytes: int


@dataclass(frozen=True)
class JobSpec:
    """One GPU job as data.

    ``params``: for a generation, ``GenerationParams`` as JSON (its ``image`` is replaced on the
    worker by a file written from ``media``); for an upscale, ``{"upscaler": key}``; for a
    restyle, ``{"strength": s, "seed": n or None}`` (``model`` is the restyler, ``prompt`` what the
    video should look like). ``media``: the picture (PNG bytes) or the source video (mp4 bytes);
    the Ray backend sends it through the object store. ``previews``: whether the worker builds live previews."""

    kind: JobKind
    model: str
    params: dict[str, Any]
    prompt: str = ""
    media: bytes | None = field(default=None, repr=False)
    end_media: bytes | None = field(default=None, repr=False)
    """A generation's last-frame picture (PNG bytes, a few hundred KB once fitted), beside the
    first one in ``media``; it travels inside the spec."""
    media_budget: MediaBudget | None = None
    previews: bool = False
    previews_every_s: float = DEFAULT_PREVIEWS_EVERY_S
    """How often a new preview is built (the bot's progress cadence)."""
    time_limit_s: float | None = None

    def without_media(self) -> JobSpec:
        """The spec with its bytes left out: they travel separately (Ray's object store)."""
        return replace(self, media=None)

    def with_media(self, media: bytes | None) -> JobSpec:
        return replace(self, media=media)


@dataclass(frozen=True)
class LoadedModelState:
    """One model held by a worker."""

    key: str
    memory_mb: float | None


@dataclass(frozen=True)
class WorkerState:
    """A worker as ``/models list`` shows it: its name, where it runs, what it holds, what it does.

    ``status``: ``idle``, ``busy`` (running ``job_id``) or ``down`` (lost, waiting for a restart).
    """

    name: str
    node: str
    device: str
    loaded: tuple[LoadedModelState, ...] = ()
    status: str = "idle"
    job_id: int | None = None

    @property
    def loaded_keys(self) -> frozenset[str]:
        return frozenset(model.key for model in self.loaded)


@dataclass(frozen=True)
class ModelReport:
    """What a ``/models load`` or ``unload`` did on one worker. ``error`` is one clear line."""

    worker: str
    key: str
    ok: bool
    changed: bool = True
    """load: the model was loaded now (not already); unload: it was loaded."""
    load_time_s: float = 0.0
    device: str = ""
    dtype: str = ""
    warmed: int = 0
    """Shape buckets compiled at load (CUDA only)."""
    error: str | None = None


__all__ = ["JobSpec", "LoadedModelState", "MediaBudget", "ModelReport", "WorkerState"]
