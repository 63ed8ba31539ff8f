"""What every pipeline adapter offers the engine, and the helpers they share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from bot.core.progress import JobControl


@dataclass(frozen=True)
class DenoiseRequest:
    """One pipeline call, already validated and resolved against the model."""

    prompt: str
    negative_prompt: str
    width: int
    height: int
    num_frames: int
    num_inference_steps: int
    guidance_scale: float
    generator: torch.Generator
    video: Sequence[Image.Image] | None = None
    strength: float = 0.6


class PipelineAdapter(Protocol):
    """Loads one diffusers family and runs it with progress and cancel."""

    stage: str

    def load(
        self, *, source: str, adapter_source: str | None, torch_dtype: Any, variant: str | None
    ) -> Any: ...

    def run(self, pipe: Any, request: DenoiseRequest, control: JobControl) -> np.ndarray:
        """Returns frames as a ``(frames, height, width, 3)`` uint8 array."""
        ...


def to_uint8_frames(frames: Any) -> np.ndarray:
    """The pipelines' ``output_type="np"`` video (batch, frames, H, W, C) in [0, 1] -> uint8."""
    array = np.asarray(frames)
    if array.ndim == 5:
        array = array[0]
    return (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)


class LegacyStepCallback:
    """Progress and cancel for pipelines that only know ``callback``/``callback_steps``.

    They have no ``interrupt``: the only way to stop them mid-loop is to raise from the callback,
    which :meth:`JobControl.step` does with ``GenerationCancelled``.
    """

    def __init__(self, control: JobControl, stage: str, total: int) -> None:
        self._control = control
        self._stage = stage
        self._total = total
        self._done = 0

    def __call__(self, step: int, timestep: Any, latents: Any) -> None:
        self._done += 1
        self._control.step(self._stage, min(self._done, self._total), self._total)
