"""Learned finishing: RIFE 4.x frame interpolation and Real-ESRGAN-class upscaling, behind one
small interface (frames in, frames out, batched on a device), with ffmpeg's ``minterpolate`` as
the interpolation fallback. Design, weight sources and speed: docs/ENHANCE.md.

The two entry points the service calls:

- :func:`interpolate` picks RIFE on the GPU when its weights can be had (the hub cache, a local
  hub, a local file) and ``minterpolate`` otherwise, and caps the rate at what Discord plays;
- :func:`upscale` runs a spandrel-loaded super-resolution model (Real-ESRGAN x2 or x4 by default)
  on frames of any size.

Loaded networks are kept per source and device (RIFE is 23 MB, Real-ESRGAN 67 MB) until
:func:`unload`. Nothing here imports torch until a network is needed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from bot.core.enhance.base import Frames, Interpolator, Upscaler, resolve_device
from bot.core.enhance.names import UPSCALE_FACTORS
from bot.core.enhance.rates import MAX_OUTPUT_FPS, target_fps
from bot.core.enhance.weights import (
    DEFAULT_ESRGAN_SOURCES,
    DEFAULT_RIFE_SOURCE,
    RIFE_MEMBER,
    WeightsUnavailable,
)
from bot.core.errors import InvalidParameterError

if TYPE_CHECKING:
    from PIL import Image

    from bot.core.progress import JobControl

__all__ = [
    "DEFAULT_ESRGAN_SOURCES",
    "DEFAULT_RIFE_SOURCE",
    "MAX_OUTPUT_FPS",
    "MAX_UPSCALE_PIXELS",
    "RIFE_LABEL",
    "UPSCALE_FACTORS",
    "Frames",
    "Interpolator",
    "Upscaler",
    "WeightsUnavailable",
    "choose_interpolator",
    "interpolate",
    "interpolator_for",
    "load_rife",
    "load_upscaler",
    "runs_on_gpu",
    "target_fps",
    "unload",
    "upscale",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_UPSCALE_PIXELS = 3840 * 2160
"""The largest upscaled frame: 4K UHD. Past it a video no longer fits Discord's upload limits at
any useful quality, and each frame's activations alone would take gigabytes."""

_loaded: dict[tuple[str, ...], Any] = {}
_loaded_lock = threading.Lock()
_warned: set[str] = set()


def interpolate(
    frames: Frames,
    fps: float,
    factor: int | None = None,
    target_fps: float | None = None,
    *,
    device: str = "auto",
    control: JobControl | None = None,
    source: str | None = None,
    batch_size: int | None = None,
) -> tuple[list[Image.Image], float, str]:
    """Interpolate ``frames`` (played at ``fps``) by ``factor`` or up to ``target_fps``.

    Returns the frames, their rate and how they were made (``"rife"``, or ``"minterpolate"`` with
    the reason RIFE was not used). The rate is checked first (:func:`target_fps`: at most 60 fps),
    so a refused request costs nothing.
    """
    chosen, out_fps = _target(fps, factor, target_fps)
    interpolator, reason = choose_interpolator(
        fps, device=device, source=source, batch_size=batch_size
    )
    out = interpolator.interpolate(frames, chosen, control)
    return out, out_fps, interpolator.name if reason is None else f"{interpolator.name} ({reason})"


RIFE_LABEL = "RIFE 4.26"
"""What a result made by the default RIFE weights says it was smoothed with."""


def interpolator_for(fps: float, device: str = "auto") -> tuple[Interpolator, str]:
    """The interpolator an edit of a ``fps`` video uses on ``device`` (:func:`choose_interpolator`)
    and what the member is told of it: ``"RIFE 4.26"``, ``"minterpolate (no GPU)"`` or
    ``"minterpolate (RIFE weights unavailable)"``."""
    interpolator, reason = choose_interpolator(fps, device=device)
    if reason is not None:
        return interpolator, f"{interpolator.name} ({reason})"
    return interpolator, RIFE_LABEL if interpolator.name == "rife" else interpolator.name


def runs_on_gpu(device: str) -> bool:
    """Whether a learned enhancer on ``device`` (``auto`` included) would use a GPU here: such
    work takes the GPU's turn rather than running beside a generation."""
    return device != "cpu" and resolve_device(device) != "cpu"


def _target(fps: float, factor: int | None, fps_wanted: float | None) -> tuple[int, float]:
    """:func:`target_fps`, which :func:`interpolate`'s own ``target_fps`` argument hides."""
    return target_fps(fps, factor=factor, fps=fps_wanted)


def choose_interpolator(
    fps: float,
    *,
    device: str = "auto",
    source: str | None = None,
    batch_size: int | None = None,
) -> tuple[Interpolator, str | None]:
    """RIFE on ``device`` when its weights load, else ``minterpolate``, with the reason.

    ``device="auto"`` without a GPU also takes ``minterpolate``: RIFE on a few CPU cores is
    slower than it (docs/ENHANCE.md); naming ``"cpu"`` runs RIFE there all the same."""
    from bot.core.enhance.fallback import MinterpolateInterpolator

    resolved = resolve_device(device)
    if device == "auto" and resolved == "cpu":
        return MinterpolateInterpolator(fps), "no GPU"
    try:
        return load_rife(source or DEFAULT_RIFE_SOURCE, resolved, batch_size=batch_size), None
    except WeightsUnavailable as exc:
        key = source or DEFAULT_RIFE_SOURCE
        if key not in _warned:  # once per source: every later job would say the same
            _warned.add(key)
            log.warning("RIFE is not available, interpolating with minterpolate: %s", exc)
        return MinterpolateInterpolator(fps), "RIFE weights unavailable"


def upscale(
    frames: Frames,
    scale: int = 2,
    *,
    device: str = "auto",
    control: JobControl | None = None,
    source: str | None = None,
    batch_size: int | None = None,
) -> list[Image.Image]:
    """``frames`` of any size, ``scale`` (2 or 4) times wider and taller, through the
    super-resolution model at ``source`` (Real-ESRGAN x2 or x4 by default)."""
    check_upscale(*_frame_size(frames), scale)
    upscaler = load_upscaler(
        source or DEFAULT_ESRGAN_SOURCES[scale], resolve_device(device), batch_size=batch_size
    )
    if upscaler.scale != scale:
        raise InvalidParameterError(
            "scale", f"the model at {source} upscales {upscaler.scale}x, not {scale}x"
        )
    return upscaler.upscale(frames, control)


def check_upscale(width: int, height: int, scale: int) -> None:
    """Refuse, before anything loads or is queued, a scale other than 2 or 4 or a result past
    :data:`MAX_UPSCALE_PIXELS`, naming the largest scale that fits."""
    if isinstance(scale, bool) or scale not in UPSCALE_FACTORS:
        raise InvalidParameterError("scale", f"must be 2 or 4 (got {scale!r})")
    if width * scale * height * scale > MAX_UPSCALE_PIXELS:
        fits = [s for s in UPSCALE_FACTORS if width * s * height * s <= MAX_UPSCALE_PIXELS]
        raise InvalidParameterError(
            "scale",
            f"{scale}x of {width}x{height} would be {width * scale}x{height * scale}, past "
            f"3840x2160 (4K), the largest upscale: "
            + (f"use {fits[-1]}x" if fits else "the video is already large enough"),
        )


def load_rife(source: str, device: str, *, batch_size: int | None = None) -> Interpolator:
    """The RIFE interpolator for ``source`` on ``device`` (kept loaded until :func:`unload`)."""

    def build() -> Interpolator:
        from bot.core.enhance.rife import RifeInterpolator, load_ifnet
        from bot.core.enhance.weights import load_state_dict

        net = load_ifnet(load_state_dict(source, RIFE_MEMBER))
        return RifeInterpolator(net, device, batch_size=batch_size)

    return _cached(("rife", source, device, str(batch_size)), build)


def load_upscaler(source: str, device: str, *, batch_size: int | None = None) -> Upscaler:
    """The spandrel upscaler for ``source`` on ``device`` (kept loaded until :func:`unload`)."""

    def build() -> Upscaler:
        from bot.core.enhance.esrgan import SpandrelUpscaler, load_descriptor
        from bot.core.enhance.weights import load_state_dict

        return SpandrelUpscaler(
            load_descriptor(load_state_dict(source)), device, batch_size=batch_size
        )

    return _cached(("upscale", source, device, str(batch_size)), build)


def unload() -> None:
    """Forget every loaded network (their memory is freed once no job holds them)."""
    with _loaded_lock:
        _loaded.clear()


def _cached(key: tuple[str, ...], build: Callable[[], T]) -> T:
    with _loaded_lock:
        if key not in _loaded:
            _loaded[key] = build()  # a failure caches nothing: the next call tries again
        return _loaded[key]


def _frame_size(frames: Frames) -> tuple[int, int]:
    import numpy as np

    if isinstance(frames, np.ndarray):
        if frames.ndim != 4:
            raise InvalidParameterError(
                "video", f"frames must be (n, h, w, 3) (got {frames.shape})"
            )
        return int(frames.shape[2]), int(frames.shape[1])
    if not frames:
        raise InvalidParameterError("video", "has no frames to enhance")
    return frames[0].size
