"""Aspect ratios as sizes a model was trained for: pure functions, no torch.

A member asks for a shape (``16:9``, ``9:16``, ...), not for pixels. Each model was trained around
one pixel count (its native size: Wan 2.2 A14B at 1280x720, LTX-Video at 768x512) in sizes that
are multiples of its VAE-and-patch step, so a ratio becomes the size of that ratio with about the
native pixel count, on the model's step and inside its limits. For the models whose native size
is one of the shapes asked for (Wan 2.1/2.2 14B at 1280x720 gives 16:9 and 9:16 at exactly
1280x720 and 720x1280, the buckets their repos list), that is the trained size itself.
"""

from __future__ import annotations

import math
from typing import Protocol

from bot.core.errors import InvalidParameterError

ASPECTS: tuple[str, ...] = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9")
"""The shapes members pick from (``/video aspect:``, ``--ar``)."""

MAX_RATIO = 21 / 9
"""The widest (and, upside down, the tallest) shape a size is made for; a picture of a more
extreme shape is cropped to this."""


class Sized(Protocol):
    """What the size of a ratio depends on: a model's native size, step and limits
    (``bot.core.registry.ModelSpec`` has them)."""

    @property
    def native_width(self) -> int: ...
    @property
    def native_height(self) -> int: ...
    @property
    def size_multiple(self) -> int: ...
    @property
    def min_size(self) -> int: ...
    @property
    def max_size(self) -> int: ...


def parse_aspect(text: str) -> tuple[int, int]:
    """``"16:9"`` -> ``(16, 9)``: two whole numbers joined by ``:`` (``x`` and ``/`` too), no
    wider than :data:`MAX_RATIO` either way; anything else is refused naming the shapes."""
    allowed = f"use one of {', '.join(ASPECTS)}"
    raw = text.strip().lower() if isinstance(text, str) else ""
    for separator in ("x", "/"):
        raw = raw.replace(separator, ":")
    left, colon, right = raw.partition(":")
    if not (colon and left.isdigit() and right.isdigit() and int(left) and int(right)):
        raise InvalidParameterError("aspect", f"{text!r} is not a shape like 16:9; {allowed}")
    width, height = int(left), int(right)
    if not 1 / MAX_RATIO - 1e-9 <= width / height <= MAX_RATIO + 1e-9:
        raise InvalidParameterError(
            "aspect", f"{text!r} is wider or taller than 21:9 allows; {allowed}"
        )
    divisor = math.gcd(width, height)
    return width // divisor, height // divisor


def aspect_of(width: int, height: int) -> str:
    """A picture's shape as an aspect (``4032x3024`` -> ``"4:3"``), kept within 21:9 either way
    (a more extreme picture is cropped to that)."""
    ratio = min(max(width / height, 1 / MAX_RATIO), MAX_RATIO)
    if ratio != width / height:
        return "21:9" if ratio > 1 else "9:21"
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


TRAINED_TOLERANCE = 0.03
"""How far (3 %) a model's native shape may be from the shape asked for and still be taken as
it: Wan 2.1 1.3B's 832x480 and Zeroscope's 576x320 are the 16:9 their cards mean."""


def size_for_aspect(spec: Sized, aspect: str) -> tuple[int, int]:
    """The width and height of ``aspect`` for ``spec``: its native size (or that turned upright)
    where that is the shape within :data:`TRAINED_TOLERANCE`; else about its native pixel count
    on its size step and inside its limits, the candidate nearest the shape first and the pixel
    count next (``cost = |log(shape error)| + |log(area error)| / 2``). A shape and its upright
    twin (16:9 and 9:16) get the same two sides, swapped."""
    shape_w, shape_h = parse_aspect(aspect)
    ratio = shape_w / shape_h
    native = (spec.native_width, spec.native_height)
    for width, height in (native, native[::-1]):
        if abs(math.log(width / height / ratio)) <= TRAINED_TOLERANCE:
            return width, height
    wide = max(ratio, 1 / ratio)
    area = spec.native_width * spec.native_height
    step = spec.size_multiple
    low = -(-spec.min_size // step) * step
    high = spec.max_size // step * step
    best: tuple[float, int, int] | None = None
    centre = round(math.sqrt(area / wide) / step)
    for k in range(centre - 4, centre + 5):
        short = min(max(k * step, low), high)
        long = min(max(round(short * wide / step) * step, low), high)
        cost = abs(math.log(long / short / wide)) + abs(math.log(long * short / area)) / 2
        if best is None or cost < best[0] - 1e-12:
            best = (cost, long, short)
    assert best is not None
    _, long, short = best
    return (long, short) if ratio >= 1 else (short, long)


def fill_size(spec: Sized, aspect: str, width: int | None, height: int | None) -> tuple[int, int]:
    """The job's size when ``aspect`` is given: a width and height given both win (the aspect is
    then only recorded); one side given keeps it and the other follows the ratio, on the step;
    neither given: :func:`size_for_aspect`."""
    if width is not None and height is not None:
        return width, height
    shape_w, shape_h = parse_aspect(aspect)
    step = spec.size_multiple
    if width is not None:
        return width, max(step, round(width * shape_h / shape_w / step) * step)
    if height is not None:
        return max(step, round(height * shape_w / shape_h / step) * step), height
    return size_for_aspect(spec, aspect)
