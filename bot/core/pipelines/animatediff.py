"""AnimateDiff: an SD1.5 base with a ``MotionAdapter``, run by ``AnimateDiffPipeline``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bot.core.pipelines.base import DenoiseRequest, to_uint8_frames

if TYPE_CHECKING:
    from bot.core.progress import JobControl


class AnimateDiffAdapter:
    stage = "denoise"

    def load(
        self, *, source: str, adapter_source: str | None, torch_dtype: Any, variant: str | None
    ) -> Any:
        from diffusers import AnimateDiffPipeline, MotionAdapter

        if adapter_source is None:
            raise ValueError("AnimateDiff needs a motion adapter source")
        adapter = MotionAdapter.from_pretrained(adapter_source, dtype=torch_dtype)
        return AnimateDiffPipeline.from_pretrained(
            source, motion_adapter=adapter, dtype=torch_dtype, variant=variant
        )

    def run(self, pipe: Any, request: DenoiseRequest, control: JobControl) -> np.ndarray:
        control.check()
        self._fit_context(pipe, request.num_frames)
        total = request.num_inference_steps

        def on_step_end(
            _pipe: Any, step: int, _timestep: Any, tensors: dict[str, Any]
        ) -> dict[str, Any]:
            # `pipe.interrupt` would only skip the remaining steps and still decode; raising from
            # here stops at once and produces nothing, as a cancel must.
            control.step(self.stage, min(step + 1, total), total)
            return tensors

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
            callback_on_step_end=on_step_end,
        )
        return to_uint8_frames(output.frames)

    @staticmethod
    def _fit_context(pipe: Any, num_frames: int) -> None:
        """The motion modules were trained on at most ``motion_max_seq_length`` frames (32 for
        v1-5-2); longer videos use diffusers' FreeNoise sliding context windows."""
        max_len = pipe.unet.config.get("motion_max_seq_length", 32)
        if num_frames > max_len:
            context = min(16, max_len)
            pipe.enable_free_noise(context_length=context, context_stride=max(context // 4, 1))
        elif getattr(pipe, "free_noise_enabled", False):
            pipe.disable_free_noise()
