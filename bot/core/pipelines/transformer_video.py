"""The newer transformer (DiT) video families: LTX-Video, Wan and CogVideoX.

They share one calling convention (``callback_on_step_end``, ``output_type="np"``) and differ in
their classes, their image-to-video pipeline and a few arguments, which each family declares here.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.core.pipelines.base import (
    STEP_TENSORS,
    DenoiseRequest,
    LoadRequest,
    StepEndCallback,
    previewer_for,
    to_uint8_frames,
)

if TYPE_CHECKING:
    from bot.core.previews import LatentPreviewer, Layout
    from bot.core.progress import JobControl


@dataclass(frozen=True)
class TransformerVideoAdapter:
    """One DiT family: its text-to-video and image-to-video pipeline classes."""

    text_class: str
    image_class: str
    takes_frame_rate: bool = False
    """LTX-Video conditions on the frame rate; Wan and CogVideoX do not take one."""
    family: str = ""
    """The registry family, which names its latent space for previews."""
    latent_layout: Layout = "BCFHW"
    """How the pipeline holds its latents in the loop (see :data:`bot.core.previews.Layout`)."""
    stage: str = "denoise"

    def load(self, request: LoadRequest) -> Any:
        import diffusers

        pipeline_cls = getattr(diffusers, self.text_class)
        return pipeline_cls.from_pretrained(
            request.source,
            dtype=request.dtypes(),
            variant=request.variant,
            **request.load_options(),
        )

    def image_pipeline(self, pipe: Any, request: LoadRequest) -> Any:
        """Same weights (LTX, Wan 2.2 TI2V): a second pipeline object over the very same modules,
        so nothing is loaded or placed twice. Separate weights (CogVideoX-5b-I2V): only its
        transformer is loaded; the text encoder, tokenizer and VAE are shared."""
        import diffusers

        image_cls = getattr(diffusers, self.image_class)
        components = dict(pipe.components)
        if request.image_source is not None:
            transformer_cls = type(components["transformer"])
            components["transformer"] = transformer_cls.from_pretrained(
                request.image_source,
                subfolder="transformer",
                dtype=request.torch_dtype,
                variant=request.image_variant,
            )
        kwargs: dict[str, Any] = {}
        for name in inspect.signature(image_cls.__init__).parameters:
            if name in components:
                kwargs[name] = components[name]
            elif name != "self" and name in pipe.config:
                kwargs[name] = pipe.config[name]  # Wan's expand_timesteps and boundary_ratio
        image_pipe = image_cls(**kwargs)
        image_pipe.set_progress_bar_config(disable=True)
        return image_pipe

    def run(self, pipe: Any, request: DenoiseRequest, control: JobControl) -> np.ndarray:
        control.check()
        arguments: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt or None,
            "width": request.width,
            "height": request.height,
            "num_frames": request.num_frames,
            "num_inference_steps": request.num_inference_steps,
            "guidance_scale": request.guidance_scale,
            "generator": request.generator,
            "output_type": "np",
            "callback_on_step_end": StepEndCallback(
                control,
                self.stage,
                request.num_inference_steps,
                self._previewer(pipe, request, control),
            ),
            "callback_on_step_end_tensor_inputs": STEP_TENSORS,
            **request.call_options,
        }
        if self.takes_frame_rate:
            arguments["frame_rate"] = request.fps
        if request.image is not None:
            arguments["image"] = request.image
        output = pipe(**arguments)
        return to_uint8_frames(output.frames)

    def _previewer(
        self, pipe: Any, request: DenoiseRequest, control: JobControl
    ) -> LatentPreviewer | None:
        """LTX-Video's latents are packed into tokens during the loop: they are unpacked with the
        pipeline's own ``_unpack_latents`` at this job's latent geometry."""
        if not control.previews:
            return None
        unpack = None
        if self.latent_layout == "packed":
            from bot.core.previews import packed_unpacker

            unpack = packed_unpacker(pipe, request.num_frames, request.height, request.width)
        return previewer_for(
            control, self.family, request, layout=self.latent_layout, unpack=unpack
        )


LTX_ADAPTER = TransformerVideoAdapter(
    "LTXPipeline",
    "LTXImageToVideoPipeline",
    takes_frame_rate=True,
    family="ltx",
    latent_layout="packed",
)
WAN_ADAPTER = TransformerVideoAdapter("WanPipeline", "WanImageToVideoPipeline", family="wan")
# CogVideoX keeps frames before channels: [batch, frames, channels, height, width].
COGVIDEOX_ADAPTER = TransformerVideoAdapter(
    "CogVideoXPipeline", "CogVideoXImageToVideoPipeline", family="cogvideox", latent_layout="BFCHW"
)
