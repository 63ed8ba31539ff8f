"""The interpolator used where RIFE is not: ffmpeg's motion-compensated ``minterpolate``
(:func:`bot.core.media.interpolate`), on the CPU, with the same frame convention."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core import media
from bot.core.enhance.base import Frames, as_array, report, to_images

if TYPE_CHECKING:
    from PIL import Image

    from bot.core.progress import JobControl


class MinterpolateInterpolator:
    """ffmpeg runs the whole clip in one process, so progress is reported at its start and end
    (a cancel is seen before the run starts and after it ends)."""

    name = "minterpolate"

    def __init__(self, fps: float) -> None:
        self.fps = fps
        """``minterpolate`` works in time, not frame indices: the source rate it is given."""

    def interpolate(
        self, frames: Frames, factor: int, control: JobControl | None = None
    ) -> list[Image.Image]:
        images = to_images(as_array(frames)) if not isinstance(frames, list) else frames
        report(control, "interpolate", 0, 1)
        out, _ = media.interpolate(images, self.fps, factor)
        report(control, "interpolate", 1, 1)
        return out
