"""Restyle (video-to-video) adapters: the conditioning a family builds from a member's video.

Wan 2.1 T2V's weights restyle through diffusers' ``WanVideoToVideoPipeline``: the same tokenizer,
text encoder, transformer, VAE and scheduler as its ``WanPipeline``, so the restyle pipeline is a
second pipeline object over the very modules the model manager loaded and placed (nothing is
loaded twice, and the memory plan's hooks stay on the modules). The video is encoded by the VAE,
noised to the ``strength`` share of the schedule and denoised towards the prompt.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.core.pipelines.base import (
    STEP_TENSORS,
    DenoiseRequest,
    StepEndCallback,
    previewer_for,
    to_uint8_frames,
)

if TYPE_CHECKING:
    from bot.core.progress import JobControl


@dataclass(frozen=True)
class RestyleAdapter:
    """One family's video-to-video pipeline class, built from a loaded text-to-video pipeline."""

    pipeline_class: str
    family: str
    stage: str = "restyle"

    def pipeline(self, pipe: Any) -> Any:
        """The restyle pipeline over ``pipe``'s own modules (cheap: no weights are read)."""
        import diffusers

        cls = getattr(diffusers, self.pipeline_class)
        wanted = [n for n in inspect.signature(cls.__init__).parameters if n != "self"]
        components = pipe.components
        restyler = cls(**{name: components[name] for name in wanted})
        restyler.set_progress_bar_config(disable=True)
        return restyler

    def run(self, pipe: Any, request: DenoiseRequest, control: JobControl) -> np.ndarray:
        """Restyle ``request.video`` (already at the job's size and frame count)."""
        if request.video is None:
            raise ValueError("a restyle needs a video")
        control.check()
        # The pipeline runs only the last ``strength`` share of the schedule (its get_timesteps).
        total = request.num_inference_steps
        steps = max(1, min(int(total * request.strength), total))
        callback = StepEndCallback(
            control, self.stage, steps, previewer_for(control, self.family, request)
        )
        output = pipe(
            video=list(request.video),
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            width=request.width,
            height=request.height,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            strength=request.strength,
            generator=request.generator,
            output_type="np",
            callback_on_step_end=callback,
            callback_on_step_end_tensor_inputs=STEP_TENSORS,
        )
        return to_uint8_frames(output.frames)


WAN_RESTYLE = RestyleAdapter("WanVideoToVideoPipeline", family="wan")

_RESTYLERS: dict[str, RestyleAdapter] = {"wan": WAN_RESTYLE}


def restyle_adapter_for(family: str) -> RestyleAdapter:
    """The restyle adapter of a family; a family without one raises ``KeyError``."""
    return _RESTYLERS[family]


__all__ = ["WAN_RESTYLE", "RestyleAdapter", "restyle_adapter_for"]
