"""The names members, owners and job specs give the learned upscaler. Pure, no torch.

``realesrgan`` is what a member picks and an owner configures; a queued job names its scale too
(``realesrgan_x2``, ``realesrgan_x4``), so a job spec says everything the worker needs in its
``upscaler`` field, as it does for a diffusion upscaler's registry key.

``ltx2`` is LTX-2's x2 latent upsampler, for LTX-2 results only: the job's model is then the
LTX-2 model that made the video (its VAE encodes and decodes them), and the rules here say which
videos it takes, before anything is queued or loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.errors import InvalidParameterError

if TYPE_CHECKING:
    from bot.core.registry import ModelSpec

LEARNED_UPSCALER = "realesrgan"
"""Real-ESRGAN x2/x4 through spandrel: any size, the default upscaler."""

DIFFUSION_UPSCALER = "zeroscope_xl"
"""What a member picks for the model's diffusion upscaler (Zeroscope XL, at its own size)."""

LTX2_UPSCALER = "ltx2"
"""LTX-2's x2 latent upsampler: LTX-2 results only, through the model that made them."""

UPSCALER_CHOICES = (LEARNED_UPSCALER, DIFFUSION_UPSCALER, LTX2_UPSCALER)

LTX2_SCALE = 2
"""The latent upsampler doubles the width and the height (the frame count is kept)."""
LTX2_SIZE_MULTIPLE = 32
"""LTX-2's VAE compresses 32x in space: the source's sides are multiples of 32."""
LTX2_FRAME_STEP = 8
"""... and 8x in time: the source has 8k+1 frames."""
LTX2_LABEL = "LTX-2 latent upsampler x2"
"""What the result says it was upscaled with."""
_ANY_VIDEO = f"use {LEARNED_UPSCALER} (Real-ESRGAN, any video)"

UPSCALE_FACTORS = (2, 4)
"""The scales Real-ESRGAN's released weights come in."""


def learned_key(scale: int) -> str:
    """The job's upscaler for Real-ESRGAN at ``scale``: ``realesrgan_x2`` or ``realesrgan_x4``."""
    return f"{LEARNED_UPSCALER}_x{scale}"


def learned_scale(key: str | None) -> int | None:
    """The scale of a learned upscaler key (``realesrgan`` is 2x), None for any other key; a
    ``realesrgan_xN`` with another N is refused in one line."""
    if not isinstance(key, str):
        return None
    name = key.strip().lower()
    if name == LEARNED_UPSCALER:
        return 2
    if not name.startswith(f"{LEARNED_UPSCALER}_x"):
        return None
    scale = name.removeprefix(f"{LEARNED_UPSCALER}_x")
    if scale not in ("2", "4"):
        raise InvalidParameterError(
            "upscaler", f"Real-ESRGAN upscales 2x or 4x: realesrgan_x2 or realesrgan_x4 (got {key})"
        )
    return int(scale)


def learned_label(scale: int) -> str:
    """What the result says it was upscaled with."""
    return f"Real-ESRGAN x{scale}"


def is_ltx2_upscaler(key: str | None) -> bool:
    """Whether ``key`` names LTX-2's latent upsampler."""
    return isinstance(key, str) and key.strip().lower() == LTX2_UPSCALER


def ltx2_upscale_spec(model: str | None) -> ModelSpec:
    """The LTX-2 model whose VAE and x2 latent upsampler upscale a video it made: a two-stage
    model's own upsampler, or the one in the model repo's ``latent_upsampler/`` (LTX-2 2.0).
    Another model's video, an upload whose model is unknown, or an LTX-2 model without an
    upsampler (the one-stage tiny twin) is refused in one line naming Real-ESRGAN."""
    from bot.core.registry import REGISTRY

    spec = REGISTRY.get(model.strip().lower()) if isinstance(model, str) else None
    if spec is None:
        raise InvalidParameterError(
            "upscaler",
            f"{LTX2_UPSCALER} upscales LTX-2 results only and this video's model is unknown: "
            + _ANY_VIDEO,
        )
    if spec.family != "ltx2":
        raise InvalidParameterError(
            "upscaler",
            f"{LTX2_UPSCALER} upscales LTX-2 results only and this video is from {spec.key}: "
            + _ANY_VIDEO,
        )
    if spec.adapter_source is None and spec.tiny:
        raise InvalidParameterError(
            "upscaler", f"{spec.key} has no latent upsampler: " + _ANY_VIDEO
        )
    return spec


def check_ltx2_upscale(spec: ModelSpec, width: int, height: int, frames: int) -> tuple[int, int]:
    """The upscaled size of a ``width`` x ``height`` video of ``frames`` frames, or a one-line
    refusal: LTX-2's VAE takes sides in multiples of 32 and 8k+1 frames (an LTX-2 result already
    has them; a trimmed or re-timed one may not), and the result stays within the model's sizes
    and frame counts."""
    if width % LTX2_SIZE_MULTIPLE or height % LTX2_SIZE_MULTIPLE:
        raise InvalidParameterError(
            "video",
            f"is {width}x{height}; LTX-2's latent upsampler takes sides in multiples of "
            f"{LTX2_SIZE_MULTIPLE}: " + _ANY_VIDEO,
        )
    low, high = spec.frames.low, spec.max_frames
    if (frames - 1) % LTX2_FRAME_STEP or not low <= frames <= high:
        fits = [n for n in range(low, min(frames, high) + 1) if (n - 1) % LTX2_FRAME_STEP == 0]
        trim = f"trim it to {fits[-1]} or " if fits else ""
        raise InvalidParameterError(
            "video",
            f"has {frames} frames; LTX-2's latent upsampler takes {LTX2_FRAME_STEP}k+1 frames, "
            f"{low} to {high} on {spec.key}: {trim}{_ANY_VIDEO}",
        )
    target = (width * LTX2_SCALE, height * LTX2_SCALE)
    if max(target) > spec.max_size:
        raise InvalidParameterError(
            "video",
            f"is {width}x{height}; {spec.key} makes at most {spec.max_size} pixels a side and "
            f"this would give {target[0]}x{target[1]}: " + _ANY_VIDEO,
        )
    return target
