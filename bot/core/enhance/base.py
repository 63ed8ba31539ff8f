"""The small interface of the enhancers: frames in, frames out, batched on one device.

Frames arrive as a list of PIL images (what the engine, ``media`` and ``edits`` pass around) or as
one ``(frames, height, width, 3)`` uint8 array, and leave as a list of RGB PIL images. A job's
:class:`~bot.core.progress.JobControl` receives a step after every batch and stops the work there
on a cancel or a time limit, like a denoising step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

from bot.core.errors import InvalidParameterError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from bot.core.progress import JobControl

Frames = Sequence["Image.Image"] | np.ndarray
"""What an enhancer takes: PIL images of one size, or a ``(n, h, w, 3)`` uint8 array."""

T = TypeVar("T")


class Interpolator(Protocol):
    """Puts ``factor - 1`` new frames between each pair of neighbours."""

    name: str
    """What the result's ``how`` says: ``"rife 4.26"``, ``"minterpolate"``."""

    def interpolate(
        self, frames: Frames, factor: int, control: JobControl | None = None
    ) -> list[Image.Image]:
        """``len(frames) * factor`` frames: output ``k * factor`` is input ``k`` (unchanged), the
        ``factor - 1`` after it lie between inputs ``k`` and ``k + 1`` at times ``i / factor``, and
        the last input is held for its ``factor - 1`` followers, so the clip at ``fps * factor``
        lasts exactly as long as before (the convention of ``media.interpolate``)."""
        ...


class Upscaler(Protocol):
    """Enlarges every frame by its model's ``scale``."""

    name: str
    scale: int

    def upscale(self, frames: Frames, control: JobControl | None = None) -> list[Image.Image]: ...


def as_array(frames: Frames) -> np.ndarray:
    """The frames as one contiguous ``(n, h, w, 3)`` uint8 array (one copy at most), refusing
    mixed sizes and empty input with a message that says what was wrong."""
    if isinstance(frames, np.ndarray):
        array = frames
    else:
        if not frames:
            raise InvalidParameterError("video", "has no frames to enhance")
        sizes = {frame.size for frame in frames}
        if len(sizes) > 1:
            raise InvalidParameterError(
                "video", f"its frames differ in size ({', '.join(_size(s) for s in sizes)})"
            )
        array = np.stack([np.asarray(frame.convert("RGB")) for frame in frames])
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8 or len(array) == 0:
        raise InvalidParameterError(
            "video",
            f"frames must be a (frames, height, width, 3) uint8 array (got {array.dtype} "
            f"{tuple(array.shape)})",
        )
    return np.ascontiguousarray(array)


def to_images(array: np.ndarray) -> list[Image.Image]:
    from PIL import Image

    return [Image.fromarray(frame) for frame in array]


def to_tensor(array: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 ``(n, h, w, 3)`` to ``(n, 3, h, w)`` in [0, 1]: copied to the device as bytes (a
    quarter of the float traffic) and converted there."""
    import torch

    tensor = torch.from_numpy(array).to(device, non_blocking=True)
    return tensor.permute(0, 3, 1, 2).to(dtype).div_(255.0)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """``(n, 3, h, w)`` in [0, 1] back to a uint8 ``(n, h, w, 3)`` array on the CPU (rounded,
    clamped: a network may overshoot)."""
    import torch

    out = tensor.float().clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
    return out.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def resolve_device(device: str) -> str:
    """``auto`` is the CUDA device when there is one, else Apple's MPS, else the CPU."""
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def report(control: JobControl | None, stage: str, done: int, total: int) -> None:
    """One step of progress; raises ``GenerationCancelled`` when the job was cancelled."""
    if control is not None:
        control.step(stage, done, total)


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"
