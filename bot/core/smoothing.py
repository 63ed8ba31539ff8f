"""Smoothing a generated clip (``GenerationParams.smooth``): learned interpolation to a target
frame rate after the frames are made and before they are encoded, in the same job.

The edit ``interpolate`` does the same to a finished video; this runs it inside the generation so
a member asks once (``/video smooth:48``). It uses the edit's interpolators
(:func:`bot.core.enhance.interpolator_for`: RIFE 4.26 when the device and its weights are there,
``minterpolate`` otherwise) and its rate rule (:func:`bot.core.enhance.rates.target_fps`: a whole
factor, at most 60 fps), so a clip keeps its every frame and its length, and its sound as it is.
Drafts and live previews are not smoothed (the engine skips it for a draft; previews are of the
latents, long before this step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.progress import JobControl, PreviewBuilder

if TYPE_CHECKING:
    from PIL import Image

STAGE = "smooth"
"""The progress stage members see while a clip is smoothed (and the timing's name)."""


def device_for(enhance_device: str, job_device: str) -> str:
    """Where the interpolation runs: ``[enhance] device`` when the owner named one; with
    ``auto``, the GPU the clip was made on (RIFE beside the model that made the frames, in the
    same job), and ``auto`` again for a job on the CPU, which keeps ``minterpolate`` there
    (RIFE on a few cores is slower than it: docs/ENHANCE.md)."""
    if enhance_device != "auto":
        return enhance_device
    return "auto" if job_device.startswith("cpu") else job_device


def smooth(
    images: list[Image.Image],
    fps: float,
    target: int,
    *,
    device: str,
    control: JobControl,
) -> tuple[list[Image.Image], float, str]:
    """``images`` (played at ``fps``) interpolated to ``target`` fps or the largest whole
    multiple of ``fps`` under it. Returns the frames, their rate and what made them
    (``"RIFE 4.26"``, ``"minterpolate (no GPU)"``, ...). Progress goes to ``control`` under
    :data:`STAGE`, and a cancel stops it at the next batch."""
    from bot.core import enhance

    factor, out_fps = enhance.target_fps(fps, fps=target)
    interpolator, how = enhance.interpolator_for(fps, device)
    frames = interpolator.interpolate(images, factor, _Staged(control, STAGE))
    return frames, out_fps, how


def note(how: str, fps: float) -> str:
    """The line above the posted video, as an interpolate edit's."""
    return f"Smoothed with {how} to {fps:g} fps."


class _Staged(JobControl):
    """``inner`` under another stage name: the interpolators report as ``interpolate`` (the
    edit's stage), but a member whose generation is being smoothed sees ``smooth``. Cancels
    and the time limit are ``inner``'s own."""

    def __init__(self, inner: JobControl, stage: str) -> None:
        super().__init__()
        self._inner = inner
        self._stage = stage

    def step(
        self, stage: str, step: int, total: int, preview: PreviewBuilder | None = None
    ) -> None:
        self._inner.step(self._stage, step, total)

    def check(self) -> None:
        self._inner.check()

    def cancel(self) -> None:
        self._inner.cancel()

    @property
    def cancelled(self) -> bool:
        return self._inner.cancelled
