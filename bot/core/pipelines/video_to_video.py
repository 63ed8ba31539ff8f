"""Zeroscope XL, the upscaler: ``VideoToVideoSDPipeline`` denoising a resized video."""

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


class VideoToVideoAdapter(NoImagePipeline):
    stage = "upscale"

    def load(self, request: LoadRequest) -> Any:
        from diffusers import VideoToVideoSDPipeline

        return VideoToVideoSDPipeline.from_pretrained(
            request.source, dtype=request.dtypes(), variant=request.variant
        )

    def run(self, pipe: Any, request: DenoiseRequest, control: JobControl) -> np.ndarray:
        if request.video is None:
            raise ValueError("video-to-video needs a video")
        control.check()
        # The pipeline only runs the last `strength` share of the schedule.
        steps = min(
            int(request.num_inference_steps * request.strength), request.num_inference_steps
        )
        callback = LegacyStepCallback(
            control, self.stage, max(steps, 1), previewer_for(control, "video_to_video", request)
        )
        output = pipe(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            video=list(request.video),
            strength=request.strength,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            generator=request.generator,
            output_type="np",
            callback=callback,
            callback_steps=1,
        )
        return to_uint8_frames(output.frames)
