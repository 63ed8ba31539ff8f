"""Extend a clip: continue it from its last frames with a model that can, so it plays on without a
visible seam.

Pure functions of the registry, the video's probe and numpy arrays (no torch), so the service
refuses an extension up front with the same numbers the engine would, and the seam can be measured
anywhere:

- **the extender**: a model whose spec says how it continues a clip (``ModelSpec.extends``), in
  the order of :data:`METHODS`, best first: Wan VACE takes the tail as video context with a mask
  (``vace``); LTX-Video 0.9.7 takes the tail as a video condition at frame 0 (``tail``); an
  image-to-video model starts from the last frame alone (``last_frame``, the single-frame
  fallback). The owner can name one (``[models] extender``); otherwise the first enabled model
  of that order runs, or for a clip with sound the first enabled one that makes sound.
- **the context**: several frames of the tail (one only for ``last_frame``), at the model's
  nearest allowed size for the clip's aspect ratio; the model renders the context again at the
  start of its output, and those overlapping frames are dropped so nothing repeats.
- **colour**: the continuation's per-channel mean and spread are matched to the tail's
  (:func:`match_colour`), since a model drifts in colour from its conditioning.
- **the seam**: :func:`seam_ratio`, the frame difference at the join over the median difference
  inside the clip (about 1 for an invisible join).
- **the result**: the original followed by the continuation, at the original's size and frame
  rate, with the original's sound then silence (``apad``), or then the continuation's own sound
  where the extender makes sound (LTX-2, :func:`continued_sound`), within the upload and memory
  limits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bot.core.errors import InvalidParameterError, MediaError
from bot.core.registry import REGISTRY, ModelSpec, spec_able_to

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from PIL import Image

    from bot.core.media import MediaLimits, Sound

Method = Literal["vace", "tail", "last_frame"]
METHODS: tuple[Method, ...] = ("vace", "tail", "last_frame")
"""How a model continues a clip, best first: many frames of context with a mask, many frames as a
condition, one frame."""

CONTEXT_SECONDS_FRAMES = 17
"""The most tail frames a multi-frame extender is given (about 0.7 s at 24 fps, 1 s at 16 fps):
enough for the motion's direction and speed, short enough to leave the model room for new
frames. Cut down to the model's frame rule and to the clip's own length."""
STATS_FRAMES = 8
"""How many tail frames the colour statistics come from when the model saw only one."""
SEAM_FLOOR = 0.5
"""The smallest inside-difference (0-255 units) a seam ratio divides by: a still clip's median
difference is about 0, and the ratio would be infinite for any change at all."""


def extend_models() -> list[str]:
    """The models that can extend a clip, best method first; within a method those that make
    their own sound first (LTX-2 before LTX-Video 0.9.7: it continues the clip's sound too),
    then registry order."""
    ranked = [(METHODS.index(s.extends), not s.sound, k) for k, s in REGISTRY.items() if s.extends]
    return [key for *_, key in sorted(ranked, key=lambda item: item[:2])]


def extender_spec(key: str) -> ModelSpec:
    """The spec of a model that extends; any other is refused naming those that can."""
    return spec_able_to(key, "extends", "extend a clip", extend_models())


def choose_extender(
    enabled: Sequence[str], configured: str | None, requested: str | None, sound: bool = False
) -> str:
    """The extender a job runs on: the one asked for (it must extend and be enabled), else the
    owner's ``[models] extender``, else the first enabled model of :func:`extend_models`; for a
    clip with ``sound``, the first enabled one that makes sound (LTX-2) before it, since only
    that one continues the sound (the others pad it with silence)."""
    for key in (requested, configured):
        if key:
            spec = extender_spec(key)
            if spec.key not in enabled:
                raise InvalidParameterError(
                    "model",
                    f"{spec.key} is not enabled on this bot; enabled extenders: "
                    f"{', '.join(k for k in extend_models() if k in enabled) or 'none'}",
                )
            return spec.key
    order = extend_models()
    if sound:  # a stable sort: the usual order within those that make sound and those that don't
        order = sorted(order, key=lambda key: not REGISTRY[key].sound)
    for key in order:
        if key in enabled:
            return key
    raise InvalidParameterError(
        "model",
        "no model on this bot can extend a clip; an owner can enable one of: "
        + ", ".join(extend_models()),
    )


@dataclass(frozen=True)
class ExtendPlan:
    """What an extension renders and what it gives.

    ``width`` x ``height``: the size the model renders at (its nearest allowed size for the
    clip's aspect ratio); ``context``: tail frames given to the model (and rendered again at the
    start of its output, so dropped); ``render_frames``: the frame count the model is asked for
    (its frame rule); ``new_frames``: frames added to the clip; ``total_frames``: the result's."""

    model: str
    method: Method
    width: int
    height: int
    context: int
    render_frames: int
    new_frames: int
    source_frames: int
    fps: float

    @property
    def total_frames(self) -> int:
        return self.source_frames + self.new_frames

    @property
    def overlap(self) -> int:
        """The output's first frames that repeat the context (the last frame for ``last_frame``)."""
        return self.context

    def as_metadata(self) -> dict[str, Any]:
        return {
            "extender": self.model,
            "method": self.method,
            "context_frames": self.context,
            "new_frames": self.new_frames,
            "render_size": [self.width, self.height],
        }


def render_size(spec: ModelSpec, width: int, height: int) -> tuple[int, int]:
    """The model's nearest allowed size for a ``width`` x ``height`` clip: its native pixel count
    at the clip's aspect ratio, each side a multiple of its step within its limits."""
    if width <= 0 or height <= 0:
        raise MediaError(f"the video has no picture size ({width}x{height})")
    aspect = width / height
    area = spec.native_width * spec.native_height
    step = spec.size_multiple

    def fit(value: float) -> int:
        snapped = max(step, round(value / step) * step)
        low = math.ceil(spec.min_size / step) * step
        high = spec.max_size // step * step
        return min(max(snapped, low), high)

    return fit(math.sqrt(area * aspect)), fit(math.sqrt(area / aspect))


def _context_frames(spec: ModelSpec, method: Method, available: int) -> int:
    """Tail frames a model is given: one for ``last_frame``; else the most, up to
    :data:`CONTEXT_SECONDS_FRAMES` and the clip's length, that its frame rule allows as a
    conditioning length (``step*k + offset``: LTX's VAE keeps 8k+1 frames of a condition)."""
    if method == "last_frame":
        return 1
    rule = spec.frames
    most = min(CONTEXT_SECONDS_FRAMES, available)
    count = most - (most - rule.offset) % rule.step if rule.step > 1 else most
    return max(1, count)


def plan_extend(
    spec: ModelSpec,
    width: int,
    height: int,
    source_frames: int,
    fps: float,
    new_frames: int | None = None,
) -> ExtendPlan:
    """The render for extending a ``source_frames``-frame clip by about ``new_frames`` (default:
    the model's own default length); the model's frame rule decides the exact count."""
    if not spec.extends:
        extender_spec(spec.key)  # raises, naming the extenders
    if source_frames < 1:
        raise MediaError("the video has no frames to extend")
    method: Method = spec.extends  # type: ignore[assignment]
    context = _context_frames(spec, method, source_frames)
    wanted = new_frames if new_frames is not None else spec.default_frames
    if wanted < 1:
        raise InvalidParameterError("frames", f"is {wanted}; add at least 1 frame")
    rule = spec.frames
    most_new = rule.high - context
    if most_new < 1:
        raise InvalidParameterError(
            "model", f"{spec.key} renders at most {rule.high} frames, no room after the context"
        )
    render = min(rule.nearest(context + min(wanted, most_new))[-1], rule.high)
    if render <= context:
        render = next(n for n in range(context + 1, rule.high + 1) if rule.accepts(n))
    w, h = render_size(spec, width, height)
    return ExtendPlan(
        model=spec.key,
        method=method,
        width=w,
        height=h,
        context=context,
        render_frames=render,
        new_frames=render - context,
        source_frames=source_frames,
        fps=fps,
    )


def check_limits(plan: ExtendPlan, width: int, height: int, limits: MediaLimits) -> None:
    """Refuse, with the numbers, an extension whose result the bot could not post or open again:
    longer than the upload limits, or more frames than one decode may hold (the worker holds the
    original, the continuation and the render at once)."""
    duration = plan.total_frames / plan.fps
    if duration > limits.max_duration_s + 1e-6:
        raise InvalidParameterError(
            "video",
            f"the result would last {duration:.1f} s ({plan.source_frames} + {plan.new_frames} "
            f"frames at {plan.fps:g} fps); the limit is {limits.max_duration_s:g} s: trim it first",
        )
    if limits.max_frames is not None and plan.total_frames > limits.max_frames:
        raise InvalidParameterError(
            "video",
            f"the result would have {plan.total_frames} frames ({plan.source_frames} + "
            f"{plan.new_frames}); the limit is {limits.max_frames}: trim it first",
        )
    need = memory_bytes(plan, width, height)
    if need > limits.max_decoded_bytes:
        from bot.core.media import format_size

        raise MediaError(
            f"extending this video would take {format_size(need)} of memory ({width}x{height} x "
            f"{plan.total_frames} frames, plus {plan.render_frames} at {plan.width}x"
            f"{plan.height}); the limit is {format_size(limits.max_decoded_bytes)}: trim it first"
        )


def plan_within_limits(
    spec: ModelSpec,
    width: int,
    height: int,
    source_frames: int,
    fps: float,
    new_frames: int | None,
    limits: MediaLimits | None,
) -> ExtendPlan:
    """:func:`plan_extend`, then under ``limits`` (None: none) :func:`check_limits`: the one
    planning step of the CLI, the service (from the clip's probe) and the engine (from its
    frames), so each refuses with the same numbers before anything loads."""
    plan = plan_extend(spec, width, height, source_frames, fps, new_frames)
    if limits is not None:
        check_limits(plan, width, height, limits)
    return plan


def memory_bytes(plan: ExtendPlan, width: int, height: int) -> int:
    """RGB bytes held at once: the whole result at the clip's size plus the model's output."""
    return (
        plan.total_frames * width * height * 3 + plan.render_frames * plan.width * plan.height * 3
    )


# --- frames ----------------------------------------------------------------------------------------


def tail_frames(images: Sequence[Image.Image], plan: ExtendPlan) -> list[Image.Image]:
    """The clip's last ``plan.context`` frames at the render size: what the model is given."""
    from PIL import Image

    tail = list(images[-plan.context :])
    return [
        frame.convert("RGB").resize((plan.width, plan.height), Image.Resampling.LANCZOS)
        for frame in tail
    ]


def stats_frames(images: Sequence[Image.Image], plan: ExtendPlan) -> NDArray[np.uint8]:
    """The tail the colour statistics come from: the context, or for a one-frame extender the
    last :data:`STATS_FRAMES` frames, at the render size."""
    from PIL import Image

    count = max(plan.context, min(STATS_FRAMES, len(images)))
    return np.stack(
        [
            np.asarray(f.convert("RGB").resize((plan.width, plan.height), Image.Resampling.LANCZOS))
            for f in list(images[-count:])
        ]
    )


def match_colour(frames: NDArray[np.uint8], reference: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """``frames`` (N, H, W, 3) with each channel's mean and standard deviation over all of them
    moved to ``reference``'s: one affine map per channel for the whole continuation, so a model's
    colour cast or fade is undone without flicker between frames. A flat channel (no spread) is
    only shifted."""
    source = frames.astype(np.float32)
    target = reference.astype(np.float32)
    axes = (0, 1, 2)
    mean_s, std_s = source.mean(axis=axes), source.std(axis=axes)
    mean_t, std_t = target.mean(axis=axes), target.std(axis=axes)
    scale = np.where(std_s > 1e-3, std_t / np.maximum(std_s, 1e-3), 1.0)
    corrected = (source - mean_s) * scale + mean_t
    return np.clip(np.rint(corrected), 0, 255).astype(np.uint8)


def frame_differences(frames: Sequence[Any]) -> NDArray[np.float64]:
    """The mean absolute difference (0-255 units) between each frame and the next; frames are
    arrays or pictures of one size. One pair at a time, so only two frames are ever converted."""
    diffs = np.empty(max(0, len(frames) - 1), dtype=np.float64)
    if not len(frames):
        return diffs
    previous = np.asarray(frames[0], dtype=np.int16)
    for index in range(1, len(frames)):
        current = np.asarray(frames[index], dtype=np.int16)
        diffs[index - 1] = float(np.abs(current - previous).mean())
        previous = current
    return diffs


def seam_ratio(frames: Sequence[Any], join: int) -> float:
    """How visible the join before frame ``join`` is: the mean absolute difference between frames
    ``join - 1`` and ``join``, over the median of every other consecutive difference in the clip
    (floored at :data:`SEAM_FLOOR`). About 1: the join moves like the clip does; much more: a
    visible jump."""
    if not 1 <= join < len(frames):
        raise ValueError(f"the join must fall inside the clip (1..{len(frames) - 1}), got {join}")
    diffs = frame_differences(frames)
    inside = np.delete(diffs, join - 1)
    median = float(np.median(inside)) if inside.size else 0.0
    return float(diffs[join - 1] / max(median, SEAM_FLOOR))


def extended_sound(sound: Sound | None, total_s: float) -> Sound | None:
    """The original's sound, then silence up to the extended length (``apad``): the encoder
    reads it straight from its source, nothing is decoded here."""
    if sound is None:
        return None
    return sound.then(f"apad=whole_dur={total_s:.6f}", total_s)


def continued_sound(
    sound: Sound | None, made: Sound | None, plan: ExtendPlan, render_fps: float
) -> Sound | None:
    """The extended clip's sound when the extender made sound with its frames (LTX-2): the
    original's, then the continuation's own from where its new frames begin (the context's
    ``plan.overlap`` frames at ``render_fps`` are skipped), cut or padded to the new frames'
    length at the clip's rate. ffmpeg joins them (:func:`bot.core.media.joined_sound`). Without
    a made sound, the original's then silence (:func:`extended_sound`); a silent clip stays
    silent, as a sound starting mid-clip would be a seam of its own."""
    total_s = plan.total_frames / plan.fps
    if sound is None or made is None:
        return extended_sound(sound, total_s)
    from bot.core.media import joined_sound

    original_s = plan.source_frames / plan.fps
    new_s = plan.new_frames / plan.fps
    skip_s = plan.overlap / render_fps
    tail = made.then(f"atrim=start={skip_s:.6f},asetpts=PTS-STARTPTS", made.duration_s - skip_s)
    return joined_sound([(sound, original_s), (tail, new_s)])


__all__ = [
    "METHODS",
    "ExtendPlan",
    "check_limits",
    "choose_extender",
    "continued_sound",
    "extend_models",
    "extended_sound",
    "extender_spec",
    "frame_differences",
    "match_colour",
    "memory_bytes",
    "plan_extend",
    "plan_within_limits",
    "render_size",
    "seam_ratio",
    "stats_frames",
    "tail_frames",
]
