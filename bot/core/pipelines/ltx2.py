"""LTX-2: the picture and its sound from one pipeline call.

``LTX2Pipeline`` and ``LTX2ImageToVideoPipeline`` denoise a video and an audio stream together
and return the frames with the vocoder's waveform; :meth:`LTX2Adapter.run_with_sound` hands both
to the engine, which attaches the waveform to the result (``GenerationResult.sound``) so the one
encoder muxes it as AAC. Two recipes:

- one stage (``Lightricks/LTX-2``): the job's size and steps with the model's guiders (the call
  options from the registry);
- two stages (the distilled LTX-2.3, a model with a latent upsampler): half the size on the 8
  distilled sigmas, the x2 latent upsampler, then the last 3 sigmas at the full size, re-noised to
  the first of them, the audio latents carried over (Lightricks' ``DistilledPipeline``, diffusers'
  LTX-2 doc).

Pictures pinned at frame indexes (a first and a last frame, or a clip's tail to extend it) run
``LTX2ConditionPipeline`` built over the same modules (:func:`condition_pipeline`): the same call
with ``conditions`` (``LTX2VideoCondition``) in place of ``image``, the sound made as ever. In
the two-stage recipe the conditions apply to both stages, each at its own size (Lightricks'
keyframe-interpolation pipeline conditions its half-size stage and its refine alike): the half
size places them, the refine keeps them pinned while it sharpens.

The load fetches only the files the repo's indexes name (:mod:`bot.core.pipelines.hub_files`).
A picture is first re-compressed as one H.264 frame at CRF 33 by the bundled ffmpeg, the
compression LTX-2 was trained on (ltx-pipelines' image preprocessing), so the pipeline's own
PyAV path is not needed.
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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
from bot.core.pipelines.hub_files import indexed_snapshot

if TYPE_CHECKING:
    from PIL import Image

    from bot.core.media import Sound
    from bot.core.previews import LatentPreviewer
    from bot.core.progress import JobControl

LATENT_UPSAMPLER = "latent_upsampler"
"""The component (and the upsampler repo's subfolder) holding the x2 latent upsampler."""
IMAGE_CRF = 33
"""The H.264 CRF a picture is re-compressed at before conditioning (LTX-2.0 to 2.3's)."""
TEXT_TOKENS = 1024
"""The prompt length the pipelines pad to (their ``max_sequence_length`` default)."""
CONDITION_CLASS = "LTX2ConditionPipeline"
"""diffusers' LTX-2 pipeline that takes ``LTX2VideoCondition`` pictures or clips at latent frame
indexes: index 0 overwrites the first latent frames, a later index is appended as keyframe
tokens placed at that frame's time."""


@dataclass(frozen=True)
class LTX2Adapter:
    """``LTX2Pipeline`` and ``LTX2ImageToVideoPipeline`` over the same components."""

    stage: str = "denoise"
    family: str = "ltx2"

    def load(self, request: LoadRequest) -> Any:
        import diffusers

        source = indexed_snapshot(request.source, request.variant)
        pipe = diffusers.LTX2Pipeline.from_pretrained(
            source,
            dtype=request.dtypes(),
            variant=request.variant,
            **request.load_options(),
        )
        if request.adapter_source is not None:
            from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

            upsampler = LTX2LatentUpsamplerModel.from_pretrained(
                request.adapter_source, subfolder=LATENT_UPSAMPLER, dtype=request.torch_dtype
            )
            upsampler.eval()
            # Not a component of LTX2Pipeline (its signature has none): an attribute beside
            # them, moved to the pipeline's device when the second stage needs it.
            pipe.latent_upsampler = upsampler
        return pipe

    def image_pipeline(self, pipe: Any, request: LoadRequest) -> Any:
        """The image-to-video pipeline over the very same modules (and the upsampler)."""
        import diffusers

        return _over_modules(diffusers.LTX2ImageToVideoPipeline, pipe)

    def run(self, pipe: Any, request: DenoiseRequest, control: JobControl) -> np.ndarray:
        return self.run_with_sound(pipe, request, control)[0]

    def run_with_sound(
        self, pipe: Any, request: DenoiseRequest, control: JobControl
    ) -> tuple[np.ndarray, Sound]:
        """The frames as ``(frames, height, width, 3)`` uint8 and the waveform as a
        :class:`~bot.core.media.Sound` at the vocoder's rate."""
        control.check()
        arguments: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt or None,
            "num_frames": request.num_frames,
            "frame_rate": float(request.fps),
            "guidance_scale": request.guidance_scale,
            "generator": request.generator,
            "max_sequence_length": text_tokens(pipe),
            "callback_on_step_end_tensor_inputs": STEP_TENSORS,
            **request.call_options,
        }
        if request.image is not None and request.end_image is not None:
            pipe = condition_pipeline(pipe)
            arguments["conditions"] = first_last_conditions(
                request.image, request.end_image, request.num_frames, pipe
            )
        elif request.image is not None:
            arguments["image"] = crf_compressed(request.image, IMAGE_CRF)
            arguments["image_crf"] = 0  # compressed above, by the bundled ffmpeg
        if getattr(pipe, LATENT_UPSAMPLER, None) is not None:
            video, audio = self._two_stages(pipe, request, control, arguments)
        else:
            callback = StepEndCallback(
                control,
                self.stage,
                request.num_inference_steps,
                self._previewer(pipe, request, control, request.width, request.height),
            )
            video, audio = pipe(
                **arguments,
                width=request.width,
                height=request.height,
                num_inference_steps=request.num_inference_steps,
                callback_on_step_end=callback,
                output_type="np",
                return_dict=False,
            )
        return to_uint8_frames(video), waveform_of(audio, vocoder_rate(pipe))

    def _two_stages(
        self, pipe: Any, request: DenoiseRequest, control: JobControl, arguments: dict[str, Any]
    ) -> tuple[Any, Any]:
        """Half size on the distilled sigmas, x2 latent upsampling, a short refine at full size."""
        from diffusers import LTX2LatentUpsamplePipeline
        from diffusers.pipelines.ltx2.utils import (
            DISTILLED_SIGMA_VALUES,
            STAGE_2_DISTILLED_SIGMA_VALUES,
        )

        first, second = list(DISTILLED_SIGMA_VALUES), list(STAGE_2_DISTILLED_SIGMA_VALUES)
        total = len(first) + len(second)
        half_width, half_height = request.width // 2, request.height // 2
        video_latents, audio_latents = pipe(
            **arguments,
            width=half_width,
            height=half_height,
            num_inference_steps=len(first),
            sigmas=first,
            callback_on_step_end=StepEndCallback(
                control,
                self.stage,
                total,
                self._previewer(pipe, request, control, half_width, half_height),
            ),
            output_type="latent",
            return_dict=False,
        )
        control.check()
        upsampler = getattr(pipe, LATENT_UPSAMPLER)
        upsampler.to(pipe._execution_device)
        upsample: Any = LTX2LatentUpsamplePipeline(vae=pipe.vae, latent_upsampler=upsampler)
        upsample.set_progress_bar_config(disable=True)
        upscaled = upsample(latents=video_latents, output_type="latent", return_dict=False)[0]
        control.check()
        return pipe(  # type: ignore[no-any-return]
            **arguments,
            width=request.width,
            height=request.height,
            latents=upscaled,
            audio_latents=audio_latents,
            num_inference_steps=len(second),
            sigmas=second,
            noise_scale=second[0],
            callback_on_step_end=_AfterStage(
                control,
                self.stage,
                total,
                self._previewer(pipe, request, control, request.width, request.height),
                done_before=len(first),
            ),
            output_type="np",
            return_dict=False,
        )

    def _previewer(
        self, pipe: Any, request: DenoiseRequest, control: JobControl, width: int, height: int
    ) -> LatentPreviewer | None:
        """The live preview (a silent GIF): the packed latents unpacked with the pipeline's own
        ``_unpack_latents`` at this stage's geometry."""
        if not control.previews:
            return None
        from dataclasses import replace

        from bot.core.previews import packed_unpacker

        unpack = packed_unpacker(pipe, request.num_frames, height, width)
        # The condition pipeline appends keyframe tokens after the video's: the preview shows
        # the video's only.
        tokens = _video_tokens(pipe, request.num_frames, width, height)
        staged = replace(request, width=width, height=height)
        return previewer_for(
            control,
            self.family,
            staged,
            layout="packed",
            unpack=lambda latents: unpack(latents[:, :tokens]),
        )


class _AfterStage(StepEndCallback):
    """Progress of a later stage, counted after the ``done_before`` steps of the first."""

    def __init__(
        self,
        control: JobControl,
        stage: str,
        total: int,
        previewer: LatentPreviewer | None,
        done_before: int,
    ) -> None:
        super().__init__(control, stage, total, previewer)
        self._before = done_before

    def __call__(self, _pipe: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> Any:
        self._report(self._before + step + 1, tensors.get("latents"))
        return tensors


UPSCALE_UPSAMPLER = "videobot_upscale_upsampler"
"""Where a one-stage model keeps the upsampler an upscale loaded from its repo: an attribute of
its own, since ``latent_upsampler`` on the pipeline would make its generations two-stage."""


def upscale_frames(
    pipe: Any,
    frames: Sequence[Image.Image],
    source: str,
    torch_dtype: Any,
    generator: Any,
    control: JobControl,
) -> np.ndarray:
    """A finished LTX-2 video twice as wide and tall, as ``(frames, H, W, 3)`` uint8: encoded by
    the model's own VAE, its latents doubled by the x2 latent upsampler, decoded by the same VAE
    (``LTX2LatentUpsamplePipeline`` over ``pipe.vae``: no second VAE). The upsampler is the
    two-stage recipe's own, else the one in the model repo's ``latent_upsampler/`` (``source``),
    loaded once and kept beside the pipeline. No refine pass: it would need the prompt, the text
    encoder and a denoise at full size, which is a generation, not an upscale."""
    from diffusers import LTX2LatentUpsamplePipeline

    control.check()
    upsampler = getattr(pipe, LATENT_UPSAMPLER, None) or getattr(pipe, UPSCALE_UPSAMPLER, None)
    if upsampler is None:
        from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

        upsampler = LTX2LatentUpsamplerModel.from_pretrained(
            source, subfolder=LATENT_UPSAMPLER, dtype=torch_dtype
        )
        upsampler.eval()
        setattr(pipe, UPSCALE_UPSAMPLER, upsampler)
    upsampler.to(pipe._execution_device)
    upsample: Any = LTX2LatentUpsamplePipeline(vae=pipe.vae, latent_upsampler=upsampler)
    upsample.set_progress_bar_config(disable=True)
    width, height = frames[0].size
    video = upsample(
        video=list(frames),
        width=width,
        height=height,
        num_frames=len(frames),
        generator=generator,
        output_type="np",
        return_dict=False,
    )[0]
    control.check()
    return to_uint8_frames(video)


def _video_tokens(pipe: Any, num_frames: int, width: int, height: int) -> int:
    """How many packed tokens the video itself takes (the keyframe tokens come after them)."""
    frames = (num_frames - 1) // pipe.vae_temporal_compression_ratio + 1
    side = pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size
    return frames // pipe.transformer_temporal_patch_size * (height // side) * (width // side)


def condition_pipeline(pipe: Any) -> Any:
    """``LTX2ConditionPipeline`` over ``pipe``'s very modules (and its latent upsampler): nothing
    is loaded or placed twice; its optional parts (an LTX-2.5 prompt enhancer, a duration head)
    are left out, as the 2.0 and 2.3 checkpoints have none."""
    import diffusers

    cls: Any = getattr(diffusers, CONDITION_CLASS)
    if isinstance(pipe, cls):
        return pipe
    return _over_modules(cls, pipe)


def _over_modules(cls: Any, pipe: Any) -> Any:
    """A ``cls`` pipeline over ``pipe``'s very modules (those its constructor takes) and its
    latent upsampler, quiet: the one way a sibling pipeline (image-to-video, condition) is made,
    so nothing is loaded or placed twice."""
    wanted = [n for n in inspect.signature(cls.__init__).parameters if n != "self"]
    components = pipe.components
    sibling = cls(**{name: components[name] for name in wanted if name in components})
    upsampler = getattr(pipe, LATENT_UPSAMPLER, None)
    if upsampler is not None:
        sibling.latent_upsampler = upsampler
    sibling.set_progress_bar_config(disable=True)
    return sibling


def last_latent_index(pipe: Any, num_frames: int) -> int:
    """The latent frame holding a ``num_frames`` video's last frame: ``LTX2VideoCondition``'s
    ``index`` counts latent frames (the first one frame, then 8 frames each)."""
    return int((num_frames - 1) // pipe.vae_temporal_compression_ratio)


def first_last_conditions(
    first: Image.Image, last: Image.Image, num_frames: int, pipe: Any
) -> list[Any]:
    """The start picture at latent index 0 and the end picture at the last latent index, both at
    strength 1.0, each re-compressed as LTX-2 was trained (:func:`crf_compressed`; the
    pipeline's own PyAV path is then skipped with ``crf=0``)."""
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    return [
        LTX2VideoCondition(frames=crf_compressed(first, IMAGE_CRF), index=0, strength=1.0, crf=0),
        LTX2VideoCondition(
            frames=crf_compressed(last, IMAGE_CRF),
            index=last_latent_index(pipe, num_frames),
            strength=1.0,
            crf=0,
        ),
    ]


def tail_condition(tail: Sequence[Image.Image], strength: float = 1.0) -> list[Any]:
    """A clip's last frames as one condition at latent index 0: the render starts with them
    (overwritten latents, kept clean) and goes on from their motion. A multi-frame condition is
    not re-compressed (diffusers and ltx-pipelines alike)."""
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    return [LTX2VideoCondition(frames=list(tail), index=0, strength=strength)]


def text_tokens(pipe: Any) -> int:
    """The prompt length to pad to: the pipelines' 1024, or less where the tokenizer says so."""
    limit = getattr(pipe.tokenizer, "model_max_length", TEXT_TOKENS) or TEXT_TOKENS
    return int(min(TEXT_TOKENS, limit))


def vocoder_rate(pipe: Any) -> int:
    """The waveform's sample rate: the vocoder's output rate (24 kHz for LTX-2, 48 kHz for the
    2.3 vocoder with bandwidth extension)."""
    return int(pipe.vocoder.config.output_sampling_rate)


def waveform_of(audio: Any, rate: int) -> Sound:
    """The pipeline's audio (batch, channels, samples) as a :class:`~bot.core.media.Sound`."""
    from bot.core.media import Sound

    data = audio[0] if getattr(audio, "ndim", 0) == 3 else audio
    if hasattr(data, "detach"):
        data = data.detach().float().cpu().numpy()
    samples = np.clip(np.asarray(data, dtype=np.float32), -1.0, 1.0)
    if samples.ndim == 2 and samples.shape[0] <= 2 < samples.shape[1]:
        samples = samples.T  # (channels, samples) -> a row per sample
    return Sound.waveform(samples, rate)


def crf_compressed(picture: Image.Image, crf: int) -> Image.Image:
    """``picture`` after one H.264 frame at ``crf`` (yuv420p, even sides), by the bundled ffmpeg:
    the compression artefacts the model saw in training."""
    from bot.core import media

    with tempfile.TemporaryDirectory(prefix="videobot-crf-") as folder:
        path = Path(folder) / "picture.mp4"
        media.encode([picture.convert("RGB")], path, 1.0, crf=crf, encoder="libx264")
        frames, _ = media.decode_video(path)
    frame = frames[0]
    return frame if frame.size == picture.size else frame.resize(picture.size)


LTX2_ADAPTER = LTX2Adapter()

__all__ = [
    "CONDITION_CLASS",
    "LTX2_ADAPTER",
    "LTX2Adapter",
    "condition_pipeline",
    "crf_compressed",
    "first_last_conditions",
    "last_latent_index",
    "tail_condition",
    "upscale_frames",
    "waveform_of",
]
