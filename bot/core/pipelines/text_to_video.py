"""ModelScope and Zeroscope: ``TextToVideoSDPipeline`` over a ``UNet3DConditionModel``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bot.core.pipelines.base import (
    DenoiseRequest,
    LegacyStepCallback,
    LoadRequest,
    NoImagePipeline,
    previewer_for,
    to_uint8_frames,
)

if TYPE_CHECKING:
    from bot.core.progress import JobControl


class TextToVideoAdapter(NoImagePipeline):
    stage = "denoise"

    def load(self, request: LoadRequest) -> Any:
        from diffusers import TextToVideoSDPipeline

        return TextToVideoSDPipeline.from_pretrained(
            request.source, dtype=request.dtypes(), variant=request.variant
        )

    def run(self, pipe: Any, request: DenoiseRequest, control: JobControl) -> np.ndarray:
        control.check()
        callback = LegacyStepCallback(
            control,
            self.stage,
            request.num_inference_steps,
            previewer_for(control, "text_to_video", request),
        )
        output = pipe(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            width=request.width,
            height=request.height,
            num_frames=request.num_frames,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            generator=request.generator,
            output_type="np",
            callback=callback,
            callback_steps=1,
        )
        return to_uint8_frames(output.frames)
