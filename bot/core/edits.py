"""Edits on frame sequences: trim, speed, reverse, loop, ping-pong and interpolation.

Pure functions: frames in, frames out, nothing written. Arguments are validated beforehand by
:func:`bot.core.params.validate_edit`; interpolation is motion-compensated by ffmpeg (media.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.core import media
from bot.core.params import EditRequest

if TYPE_CHECKING:
    from PIL import Image

Frames = Sequence["Image.Image"]


def apply_edit(request: EditRequest, frames: Frames, fps: float) -> tuple[list[Image.Image], float]:
    """Apply one validated edit; returns the new frames and their playback rate."""
    if request.operation == "trim":
        return trim(frames, request.start_frame, request.end_frame), fps
    if request.operation == "speed":
        return change_speed(frames, request.speed_factor), fps
    if request.operation == "reverse":
        return reverse(frames), fps
    if request.operation == "loop":
        return loop(frames, request.loops), fps
    return media.interpolate(frames, fps, request.factor)


def trim(frames: Frames, start_frame: int, end_frame: int) -> list[Image.Image]:
    """Frames ``start_frame`` up to but not including ``end_frame``."""
    return list(frames[start_frame:end_frame])


def change_speed(frames: Frames, speed_factor: float) -> list[Image.Image]:
    """Play ``speed_factor`` times faster at the same frame rate: frames are dropped (faster) or
    repeated (slower) at evenly spaced source positions, so the duration scales by 1/factor."""
    count = max(1, round(len(frames) / speed_factor))
    return [frames[min(len(frames) - 1, int(i * speed_factor))] for i in range(count)]


def reverse(frames: Frames) -> list[Image.Image]:
    return list(frames)[::-1]


def loop(frames: Frames, loops: int) -> list[Image.Image]:
    """The video ``loops`` times in a row."""
    return list(frames) * loops


def ping_pong(frames: Frames) -> list[Image.Image]:
    """Forward then backward without repeating the turning frames, so it loops seamlessly."""
    frames = list(frames)
    return frames + frames[-2:0:-1]
