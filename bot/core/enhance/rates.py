"""The frame rate an interpolation may reach: a member gives a factor or a target rate, and the
result never goes past what Discord plays smoothly.

Pure functions, no torch: the cogs and the CLI can check a request before anything is queued.
"""

from __future__ import annotations

import math

from bot.core.errors import InvalidParameterError
from bot.core.rules import INTERPOLATE_FACTOR, display

MAX_OUTPUT_FPS = 60.0
"""The highest frame rate an interpolation may produce. Discord's player (and most phone screens)
shows at most 60 frames a second: a 120 fps file from a 60 fps upload only costs bytes, upload
budget and encode time, and plays no smoother."""

DEFAULT_FACTOR = 2
"""The factor used when a member gives neither a factor nor a target rate."""

_FACTORS = range(int(INTERPOLATE_FACTOR.low), int(INTERPOLATE_FACTOR.high) + 1)


def target_fps(
    source_fps: float, factor: int | None = None, fps: float | None = None
) -> tuple[int, float]:
    """The factor and the resulting frame rate of an interpolation of a ``source_fps`` video.

    A member gives either ``factor`` (2, 3 or 4: the output has that many times the frames) or
    ``fps`` (a target rate: the largest factor whose rate does not exceed it), not both; with
    neither the factor is 2. Whatever is asked, the output rate stays at or below
    :data:`MAX_OUTPUT_FPS`: a request past it is refused with the factor that would fit, so
    nothing silently turns out different from what was asked. The factor stays an integer so the
    interpolated video keeps every source frame and lasts exactly as long (both RIFE and the
    ``minterpolate`` fallback put source frame ``k`` at output frame ``k * factor``).
    """
    if isinstance(source_fps, bool) or not _positive(source_fps):
        raise InvalidParameterError(
            "fps", f"the video's frame rate must be a positive number (got {display(source_fps)})"
        )
    if factor is not None and fps is not None:
        raise InvalidParameterError(
            "factor", "give a factor or a target fps, not both (a factor of 2 doubles the rate)"
        )
    if fps is not None:
        return _from_target(float(source_fps), fps)
    chosen = DEFAULT_FACTOR if factor is None else factor
    if isinstance(chosen, bool) or not isinstance(chosen, int) or chosen not in _FACTORS:
        raise InvalidParameterError(
            "factor", f"must be 2, 3 or 4 (got {display(chosen)}); or give a target fps instead"
        )
    out = source_fps * chosen
    if out > MAX_OUTPUT_FPS + 1e-9:
        raise InvalidParameterError("factor", _over_cap(source_fps, f"{chosen}x", out))
    return chosen, out


def _from_target(source_fps: float, fps: float) -> tuple[int, float]:
    if isinstance(fps, bool) or not _positive(fps):
        raise InvalidParameterError("fps", f"must be a positive number (got {display(fps)})")
    if fps > MAX_OUTPUT_FPS + 1e-9:
        raise InvalidParameterError(
            "fps",
            f"must be at most {MAX_OUTPUT_FPS:g}, the most Discord plays smoothly "
            f"(got {display(fps)})",
        )
    factor = min(math.floor(fps / source_fps + 1e-9), _FACTORS[-1])
    if factor < _FACTORS[0]:
        doubled = source_fps * _FACTORS[0]
        if doubled > MAX_OUTPUT_FPS + 1e-9:
            raise InvalidParameterError("fps", _over_cap(source_fps, "2x", doubled))
        raise InvalidParameterError(
            "fps",
            f"{display(fps)} fps is less than twice the video's {source_fps:g} fps: interpolation "
            f"at least doubles the rate, so ask for {doubled:g} fps or more (at most "
            f"{MAX_OUTPUT_FPS:g})",
        )
    return factor, source_fps * factor


def _over_cap(source_fps: float, asked: str, out: float) -> str:
    """The refusal of a rate past the cap, with the largest factor that fits (if any)."""
    fitting = [f for f in _FACTORS if source_fps * f <= MAX_OUTPUT_FPS + 1e-9]
    advice = (
        f"use {fitting[-1]}x ({source_fps * fitting[-1]:g} fps)"
        if fitting
        else "this video is already smooth enough to play as it is"
    )
    return (
        f"{asked} of the video's {source_fps:g} fps would be {out:g} fps, past the "
        f"{MAX_OUTPUT_FPS:g} fps Discord plays smoothly: {advice}"
    )


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0
