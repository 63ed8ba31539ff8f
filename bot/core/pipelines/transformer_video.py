"""The newer transformer (DiT) video families: LTX-Video, Wan, CogVideoX and HunyuanVideo 1.5.

They share one calling convention (``output_type="np"``, the job's prompt, size, frames, steps and
seed) and differ in their classes, their image-to-video pipeline and a few arguments, which each
family declares here: LTX-Video takes the frame rate; Wan 2.2 A14B guides its low-noise expert
with ``guidance_scale_2``; HunyuanVideo 1.5 is guided through its ``guider`` component and has no
step callback, so its steps are reported from the scheduler.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.core.errors import VideoBotError
from bot.core.pipelines.base import (
    STEP_TENSORS,
    DenoiseRequest,
    LoadRequest,
    StepEndCallback,
    previewer_for,
    scheduler_steps_reported,
    to_uint8_frames,
)
from bot.core.registry import GUIDANCE_2_RATIO, guidance_2_of

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
    guided_by_guider: bool = False
    """HunyuanVideo 1.5 takes no ``guidance_scale``: its ``guider`` component holds the scale,
    set per job (diffusers' doc: ``pipe.guider = pipe.guider.new(guidance_scale=...)``)."""
    step_callback: bool = True
    """Whether the pipeline takes ``callback_on_step_end``; HunyuanVideo 1.5's do not (diffusers
    0.42.1), so their steps are reported from the scheduler's ``step``."""
    stage: str = "denoise"
    own_classes: tuple[str, ...] = ()
    """Other pipeline classes of the family whose repos are loaded with their own class: Wan
    2.1 VACE's ``WanVACEPipeline`` (a text-to-video pipeline too, which also takes a context
    video and mask: ``bot.core.pipelines.continuation``)."""

    def load(self, request: LoadRequest) -> Any:
        import diffusers

        pipeline_cls = getattr(diffusers, self.text_class)
        named = pipeline_cls.load_config(request.source).get("_class_name")
        if named in (self.image_class, *self.own_classes):
            # A picture-only repo (Wan 2.2 I2V A14B, HunyuanVideo 1.5's step-distilled I2V), or
            # Wan VACE: its own class, so parts only it has (an image encoder) are loaded too.
            pipeline_cls = getattr(diffusers, named)
        return pipeline_cls.from_pretrained(
            request.source,
            dtype=request.dtypes(),
            variant=request.variant,
            **request.load_options(),
        )

    def image_pipeline(self, pipe: Any, request: LoadRequest) -> Any:
        """Same weights (LTX, Wan 2.2 TI2V, Wan 2.2 I2V A14B): a second pipeline object over the
        very same modules, so nothing is loaded or placed twice. Separate weights (CogVideoX-5b-I2V,
        HunyuanVideo 1.5's I2V repo): its transformer is loaded, and so is any part the image
        pipeline needs that the text one lacks (HunyuanVideo 1.5's SigLIP encoder and its
        processor); the text encoders, tokenizers, VAE, scheduler and guider are shared."""
        import diffusers

        image_cls = getattr(diffusers, self.image_class)
        components = dict(pipe.components)
        wanted = [n for n in inspect.signature(image_cls.__init__).parameters if n != "self"]
        if request.image_source is not None:
            index = image_cls.load_config(request.image_source)
            missing = [n for n in wanted if components.get(n) is None and _listed(index, n)]
            for name in ["transformer", *(n for n in missing if n != "transformer")]:
                components[name] = _load_part(index, name, request)
            extras = [n for n in missing if n != "transformer"]
            for name in extras:  # small encoders: kept where the pipeline runs its encoders
                if hasattr(components[name], "to"):
                    components[name].to(pipe._execution_device)
        kwargs: dict[str, Any] = {}
        for name in wanted:
            if name in components:
                kwargs[name] = components[name]
            elif name in pipe.config:
                kwargs[name] = pipe.config[name]  # Wan's expand_timesteps and boundary_ratio
        image_pipe = image_cls(**kwargs)
        image_pipe.set_progress_bar_config(disable=True)
        return image_pipe

    def run(self, pipe: Any, request: DenoiseRequest, control: JobControl) -> np.ndarray:
        control.check()
        options = dict(request.call_options)
        ratio = options.pop(GUIDANCE_2_RATIO, None)
        callback = StepEndCallback(
            control,
            self.stage,
            request.num_inference_steps,
            self._previewer(pipe, request, control),
        )
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
            **options,
        }
        if self.step_callback:
            arguments["callback_on_step_end"] = callback
            arguments["callback_on_step_end_tensor_inputs"] = STEP_TENSORS
        if ratio is not None and getattr(pipe.config, "boundary_ratio", None) is not None:
            # Wan 2.2 A14B: ``guidance_scale`` guides the high-noise expert, this the low-noise one.
            arguments["guidance_scale_2"] = guidance_2_of(request.guidance_scale, float(ratio))
        if self.guided_by_guider:
            set_guidance(pipe, float(arguments.pop("guidance_scale")))
        if self.takes_frame_rate:
            arguments["frame_rate"] = request.fps
        if request.image is not None:
            arguments["image"] = request.image
            if "height" not in inspect.signature(type(pipe).__call__).parameters:
                # HunyuanVideo 1.5's I2V sizes the video from the picture (its shape at the
                # model's target area); the engine has already fitted it to the job's size.
                del arguments["width"], arguments["height"]
        if request.end_image is not None:
            # Wan's image-to-video pipeline: both pictures' latents condition the first and last
            # latent frames, and a CLIP-conditioned model (FLF2V) encodes both pictures.
            if "last_image" not in inspect.signature(type(pipe).__call__).parameters:
                raise VideoBotError(f"{type(pipe).__name__} cannot take a last frame")
            arguments["last_image"] = request.end_image
        if self.step_callback:
            output = pipe(**arguments)
        else:
            with scheduler_steps_reported(pipe, callback):
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
WAN_ADAPTER = TransformerVideoAdapter(
    "WanPipeline", "WanImageToVideoPipeline", family="wan", own_classes=("WanVACEPipeline",)
)
HUNYUAN15_ADAPTER = TransformerVideoAdapter(
    "HunyuanVideo15Pipeline",
    "HunyuanVideo15ImageToVideoPipeline",
    family="hunyuan_video15",
    guided_by_guider=True,
    step_callback=False,
)
# CogVideoX keeps frames before channels: [batch, frames, channels, height, width].
COGVIDEOX_ADAPTER = TransformerVideoAdapter(
    "CogVideoXPipeline", "CogVideoXImageToVideoPipeline", family="cogvideox", latent_layout="BFCHW"
)


def set_guidance(pipe: Any, scale: float) -> None:
    """Guide this job at ``scale`` through the pipeline's guider: a new guider of the same kind
    and settings with the job's scale (diffusers' way; the guider holds its scale in its config),
    made only when the scale changes, since each new guider logs an "experimental" warning."""
    guider = pipe.guider
    if getattr(guider, "guidance_scale", None) != scale:
        pipe.guider = guider.new(guidance_scale=scale)


def _listed(index: dict[str, Any], name: str) -> bool:
    """Whether a repo's ``model_index.json`` names a component (``[null, null]`` does not)."""
    entry = index.get(name)
    return isinstance(entry, (list, tuple)) and len(entry) == 2 and entry[1] is not None


def _load_part(index: dict[str, Any], name: str, request: LoadRequest) -> Any:
    """One component of the image-to-video repo, with the class its ``model_index.json`` names,
    in the job's precision (processors have none), from the variant its files have."""
    import importlib

    import torch

    library, class_name = index[name]
    cls = getattr(importlib.import_module(library), class_name)
    source = request.image_source
    if not issubclass(cls, torch.nn.Module):
        return cls.from_pretrained(source, subfolder=name)
    options: dict[str, Any] = {"subfolder": name, "dtype": request.torch_dtype}
    if request.image_variant is not None:
        options["variant"] = request.image_variant
    return cls.from_pretrained(source, **options)
