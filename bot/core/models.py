"""The model registry (what each model is and what it accepts) and the model manager (what is
loaded, on which device, in which precision, with which memory savers).

Real hub models and the offline tiny models are specs of the same kind and load through the same
``from_pretrained`` code in the pipeline adapters; a tiny spec only differs in that its folder is
built into the model cache on first use.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bot.core.errors import InvalidParameterError, UnknownModelError, VideoBotError
from bot.core.params import (
    FRAMES,
    GUIDANCE,
    SCHEDULERS,
    STEPS,
    FrameRule,
    Range,
    check_rules,
)
from bot.core.pipelines.base import denoiser_of
from bot.core.speed import SpeedOptions, apply_speed_options

if TYPE_CHECKING:
    from bot.core.params import GenerationParams
    from bot.core.pipelines.base import LoadRequest, PipelineAdapter

Family = Literal["text_to_video", "animatediff", "video_to_video", "ltx", "wan", "cogvideox"]
Role = Literal["generator", "upscaler"]

DEFAULT_ANIMATEDIFF_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"

RENAMED_REPOS: dict[str, str] = {
    "THUDM/CogVideoX-2b": "zai-org/CogVideoX-2b",
    "THUDM/CogVideoX-5b": "zai-org/CogVideoX-5b",
    "THUDM/CogVideoX-5b-I2V": "zai-org/CogVideoX-5b-I2V",
    "damo-vilab/text-to-video-ms-1.7b": "ali-vilab/text-to-video-ms-1.7b",
}
"""Hub repos that were transferred: the old id (still in older configs and guides) -> the current
one. The hub redirects the old ids too, but only while nobody takes the old name again."""


def current_repo_id(source: str) -> str:
    """A hub id under its current name (``THUDM/CogVideoX-2b`` -> ``zai-org/CogVideoX-2b``); any
    other source, a local folder included, unchanged."""
    return RENAMED_REPOS.get(source.strip(), source)


SEED_SCHEDULERS = (
    "ddim",
    "dpm++",
    "dpm++_karras",
    "euler",
    "euler_a",
    "unipc",
    "pndm",
    "lms",
    "heun",
)
SEED_FRAMES = FrameRule(int(FRAMES.low), int(FRAMES.high))


@dataclass(frozen=True)
class ModelSpec:
    """Everything the engine needs to know about one model before loading it: where it comes
    from, what it accepts (its rules) and what it uses when a member names nothing (its defaults).
    The seed's models keep the seed's ranges; newer ones carry their own."""

    key: str
    name: str
    family: Family
    source: str
    native_width: int
    native_height: int
    vram_gb: float
    description: str
    role: Role = "generator"
    adapter_source: str | None = None
    min_size: int = 256
    max_size: int = 1024
    size_multiple: int = 8
    """Width and height step: the VAE's spatial compression times the transformer's patch size."""
    frames: FrameRule = SEED_FRAMES
    steps: Range = STEPS
    guidance: Range = GUIDANCE
    schedulers: tuple[str, ...] = SEED_SCHEDULERS
    upscaler: str | None = None
    upscale_factor: float | None = None
    default_frames: int = 16
    default_fps: int = 8
    default_steps: int = 20
    default_guidance: float = 7.5
    default_scheduler: str = "ddim"
    scheduler_config: dict[str, Any] = field(default_factory=dict)
    image_to_video: bool = False
    """Whether the model can animate a picture (``GenerationParams.image``)."""
    image_source: str | None = None
    """Where the image-to-video weights live when they are not the text-to-video ones
    (CogVideoX-5b-I2V); ``None``: the same weights serve both."""
    image_size: tuple[int, int] | None = None
    """The only size image-to-video runs at, where its weights fix it (CogVideoX-5b-I2V learned
    its position embeddings at 720x480 and diffusers refuses any other size)."""
    vae_dtype: str | None = None
    """The VAE's precision when it must differ from the pipeline's (Wan's VAE stays float32)."""
    call_options: dict[str, Any] = field(default_factory=dict)
    """Extra pipeline arguments the model's card recommends (LTX-Video's decode timestep)."""
    scheduler_call_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra pipeline arguments that belong to one scheduler: CogVideoX's dynamic guidance is made
    for its DPM scheduler only (the CogVideo repo's ``cli_demo.py``: ``use_dynamic_cfg=True`` with
    ``CogVideoXDPMScheduler``, off with DDIM)."""
    flow_shifts: tuple[tuple[int, float], ...] = ()
    """``(shorter side, flow_shift)`` steps, lowest first: the scheduler's ``flow_shift`` for a job
    whose shorter side reaches that size (Wan 2.1: 3.0 at 480p, 5.0 at 720p). Empty: the
    ``scheduler_config``'s one shift for every size."""
    image_frames: int | None = None
    """The only frame count image-to-video runs at, where its weights fix it: CogVideoX-5b-I2V
    learned its position embeddings for 49 frames, and diffusers silently swaps in computed
    sin-cos ones at any other count."""
    half_dtype: str | None = None
    """The half precision the model's card asks for on a GPU that has both (CogVideoX-2b: fp16);
    ``None``: bf16 from compute capability 8.0, else fp16."""
    image_vram_gb: float = 0.0
    """GPU memory the separate image-to-video weights add once a picture is animated."""
    speed: str = ""
    """Time per video on a GPU, for the README's model table."""
    memory_advice: str = ""
    """How to run it on a small card, for /models and the README."""
    tiny: bool = False

    @property
    def max_frames(self) -> int:
        return self.frames.high

    @property
    def total_vram_gb(self) -> float:
        """GPU memory with everything it may load: its own weights and activations plus separate
        image-to-video weights (CogVideoX-5b-I2V's transformer)."""
        return self.vram_gb + self.image_vram_gb

    def scheduler_config_for(self, width: int, height: int) -> dict[str, Any]:
        """The scheduler settings a job of this size runs with: ``scheduler_config`` plus the
        flow shift for its resolution."""
        config = dict(self.scheduler_config)
        for side, shift in self.flow_shifts:
            if min(width, height) >= side:
                config["flow_shift"] = shift
        return config

    def call_options_for(self, scheduler: str) -> dict[str, Any]:
        """The card's extra pipeline arguments for a job on ``scheduler``."""
        return {**self.call_options, **self.scheduler_call_options.get(scheduler, {})}

    def defaults(self) -> dict[str, Any]:
        """What a job on this model uses for the options a member leaves out."""
        return {
            "width": self.native_width,
            "height": self.native_height,
            "num_frames": self.default_frames,
            "fps": self.default_fps,
            "num_inference_steps": self.default_steps,
            "guidance_scale": self.default_guidance,
            "scheduler": self.default_scheduler,
        }

    def check_params(self, params: GenerationParams) -> None:
        """Checks that depend on the model: its role, sizes, frame rule, steps, guidance,
        schedulers, and whether it can animate a picture."""
        if self.role != "generator":
            raise InvalidParameterError(
                "model",
                f"{self.key} is an upscaler; generate with one of "
                f"{', '.join(k for k, s in REGISTRY.items() if s.role == 'generator')} "
                "and upscale the result",
            )
        check_rules(
            params,
            frames=self.frames,
            steps=self.steps,
            guidance=self.guidance,
            size=(self.min_size, self.max_size, self.size_multiple),
            schedulers=self.schedulers,
            model_name=self.key,
        )
        if params.image is not None and not self.image_to_video:
            raise InvalidParameterError(
                "image",
                f"{self.key} cannot animate a picture; models that can: "
                f"{', '.join(image_to_video_models()) or 'none'}",
            )
        fixed = self.image_size if params.image is not None else None
        if fixed is not None and (params.width, params.height) != fixed:
            raise InvalidParameterError(
                "width",
                f"{self.key} animates pictures at {fixed[0]}x{fixed[1]} only "
                f"(got {params.width}x{params.height}); leave the size out",
            )
        frames = self.image_frames if params.image is not None else None
        if frames is not None and params.num_frames != frames:
            raise InvalidParameterError(
                "num_frames",
                f"{self.key} animates pictures at {frames} frames only, the count its "
                f"image-to-video weights were trained at (got {params.num_frames}); "
                "leave the frame count out",
            )

    def __post_init__(self) -> None:
        unknown = [name for name in self.schedulers if name not in SCHEDULERS]
        if unknown or self.default_scheduler not in self.schedulers:
            raise ValueError(f"{self.key}: bad schedulers {self.schedulers}")


_SD_SCHEDULER = {"clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1}
# The settings AnimateDiff's authors and the diffusers docs use with the v1-5-2 adapter.
_ANIMATEDIFF_SCHEDULER = {
    "clip_sample": False,
    "beta_schedule": "linear",
    "timestep_spacing": "linspace",
    "steps_offset": 1,
}

# ``Lightricks/LTX-Video``'s diffusers folders hold the 0.9.0 conversion, whose VAE has no timestep
# conditioning: it decodes at timestep 0 without noise, the pipeline's defaults. (The 0.9.1+
# settings, decode timestep 0.05 and noise 0.025, only apply to the newer VAEs.)
_LTX_CALL: dict[str, Any] = {"decode_timestep": 0.0, "decode_noise_scale": None}
# AnimateDiff-Lightning ships bare state dicts; its card's scheduler settings.
_LIGHTNING_FILE = "animatediff_lightning_4step_diffusers.safetensors"
_LIGHTNING_ADAPTER = f"ByteDance/AnimateDiff-Lightning/{_LIGHTNING_FILE}"
_LIGHTNING_SCHEDULER = {
    "timestep_spacing": "trailing",
    "beta_schedule": "linear",
    "clip_sample": False,
}

# What a family's real models and its tiny offline model share: the tiny model is there to run the
# very rules (size step, schedulers, precision, call options) the real one is checked and run with.
_LTX_RULES: dict[str, Any] = {
    "family": "ltx",
    "size_multiple": 32,
    "default_fps": 24,
    "default_guidance": 3.0,
    "default_scheduler": "flow_euler",
    "schedulers": ("flow_euler",),
    "image_to_video": True,
    "call_options": _LTX_CALL,
}
_WAN_RULES: dict[str, Any] = {
    "family": "wan",
    "default_guidance": 5.0,
    "default_scheduler": "unipc",
    "schedulers": ("unipc", "dpm++"),
    "vae_dtype": "float32",
}
# Wan 2.2's VAE compresses 16x (32 with the patch); its TI2V model animates pictures too.
_WAN22_RULES: dict[str, Any] = {
    **_WAN_RULES,
    "size_multiple": 32,
    "scheduler_config": {"flow_shift": 5.0},
    "image_to_video": True,
}
_COGVIDEOX_RULES: dict[str, Any] = {
    "family": "cogvideox",
    "size_multiple": 16,
    "default_fps": 8,
    "default_guidance": 6.0,
    "schedulers": ("cogvideox_dpm", "cogvideox_ddim"),
    "scheduler_call_options": {"cogvideox_dpm": {"use_dynamic_cfg": True}},
}
_LIGHTNING_RULES: dict[str, Any] = {
    "family": "animatediff",
    "steps": Range(1, 8),
    "guidance": Range(1.0, 2.0),
    "default_steps": 4,
    "default_guidance": 1.0,
    "default_scheduler": "euler",
    "schedulers": ("euler",),
    "scheduler_config": _LIGHTNING_SCHEDULER,
}

REGISTRY: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec(
            key="animatediff",
            name="AnimateDiff (motion adapter v1-5-2)",
            family="animatediff",
            source=DEFAULT_ANIMATEDIFF_BASE,
            adapter_source="guoyww/animatediff-motion-adapter-v1-5-2",
            native_width=512,
            native_height=512,
            vram_gb=6,
            upscaler="zeroscope_v2_xl",
            scheduler_config=_ANIMATEDIFF_SCHEDULER,
            description="Basic video generation, good for simple animations and character moves.",
        ),
        ModelSpec(
            key="modelscope_t2v",
            name="ModelScope text-to-video 1.7B",
            family="text_to_video",
            source="ali-vilab/text-to-video-ms-1.7b",
            native_width=256,
            native_height=256,
            vram_gb=7,
            upscaler="zeroscope_v2_xl",
            default_guidance=9.0,
            description="Better temporal consistency; cinematic scenes and storytelling.",
        ),
        ModelSpec(
            key="zeroscope_v2_576w",
            name="Zeroscope v2 576w",
            family="text_to_video",
            source="cerspense/zeroscope_v2_576w",
            native_width=576,
            native_height=320,
            vram_gb=8,
            upscaler="zeroscope_v2_xl",
            default_frames=24,  # the card's recipe: 24 frames at 576x320
            description="High-quality, watermark-free short videos at 576x320.",
        ),
        ModelSpec(
            key="zeroscope_v2_xl",
            name="Zeroscope v2 XL (upscaler)",
            family="video_to_video",
            role="upscaler",
            source="cerspense/zeroscope_v2_XL",
            native_width=1024,
            native_height=576,
            # The card: 15.3 GB of VRAM for 30 frames at 1024x576.
            vram_gb=15.5,
            # diffusers' text-to-video doc upscales with the pipeline's default 50 steps at
            # strength 0.6: 30 steps really run (20 x 0.6 ran only 12).
            default_steps=50,
            default_guidance=15.0,
            memory_advice="about 15 GB for 24-30 frames at 1024x576 (card: 15.3 GB for 30); "
            "12 GB: vae_slicing and forward_chunking; 8 GB: cpu_offload",
            description="Upscales videos to 1024x576 with video-to-video denoising.",
        ),
        ModelSpec(
            **_LTX_RULES,
            key="ltx_video",
            name="LTX-Video (0.9.0)",
            source="Lightricks/LTX-Video",
            native_width=768,
            native_height=512,
            min_size=256,
            max_size=1280,
            frames=FrameRule(9, 257, step=8, offset=1),
            steps=Range(4, 100),
            default_frames=121,
            default_steps=40,
            vram_gb=17,
            speed="5 s of 768x512 video in about 2 s on an H100 (paper); real time or better",
            memory_advice="8-12 GB: cpu_offload (or group_offload) plus vae_tiling; "
            "layerwise_casting keeps the transformer in fp8",
            description="Fast DiT video model: 768x512 at 24 fps, text or image to video.",
        ),
        ModelSpec(
            **_WAN_RULES,
            key="wan2_1_1_3b",
            name="Wan 2.1 T2V 1.3B",
            source="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
            native_width=832,
            native_height=480,
            min_size=256,
            max_size=1280,
            size_multiple=16,
            frames=FrameRule(5, 81, step=4, offset=1),
            steps=Range(4, 100),
            default_frames=81,
            default_fps=16,
            default_steps=50,
            # diffusers' Wan doc: flow_shift 5.0 for 720p, 3.0 for 480p.
            scheduler_config={"flow_shift": 3.0},
            flow_shifts=((0, 3.0), (720, 5.0)),
            vram_gb=16,
            speed="about 4 min per 5 s 480p clip on an RTX 4090 unoptimised (card)",
            memory_advice="8 GB: cpu_offload (about 8.2 GB peak, card) or group_offload, "
            "plus vae_tiling",
            description="Small Wan 2.1: 832x480, 81 frames at 16 fps; runs on 8 GB cards.",
        ),
        ModelSpec(
            **_WAN22_RULES,
            key="wan2_2_ti2v_5b",
            name="Wan 2.2 TI2V 5B",
            source="Wan-AI/Wan2.2-TI2V-5B-Diffusers",
            native_width=1280,
            native_height=704,
            min_size=256,
            max_size=1280,
            frames=FrameRule(5, 121, step=4, offset=1),
            steps=Range(4, 100),
            default_frames=121,
            default_fps=24,
            default_steps=50,
            vram_gb=32,
            speed="a 720p 5 s clip in under 9 min on an RTX 4090 (card)",
            memory_advice="24 GB: cpu_offload plus vae_tiling; 12 GB: group_offload and "
            "layerwise_casting",
            description="Wan 2.2 text- and image-to-video at 1280x704, 121 frames at 24 fps.",
        ),
        ModelSpec(
            **_COGVIDEOX_RULES,
            key="cogvideox_2b",
            name="CogVideoX 2B",
            source="zai-org/CogVideoX-2b",
            native_width=720,
            native_height=480,
            min_size=256,
            max_size=1024,
            frames=FrameRule(9, 49, step=8, offset=1),
            steps=Range(4, 100),
            default_frames=49,
            default_steps=50,
            default_scheduler="cogvideox_ddim",
            half_dtype="float16",  # the card: FP16 recommended (the 5B models: BF16)
            vram_gb=18,
            speed="50 steps in about 45 s on an H100",
            memory_advice="4-8 GB: cpu_offload, vae_slicing and vae_tiling (card: 4 GB)",
            description="CogVideoX 2B: 720x480, 49 frames at 8 fps.",
        ),
        ModelSpec(
            **_COGVIDEOX_RULES,
            key="cogvideox_5b",
            name="CogVideoX 5B",
            source="zai-org/CogVideoX-5b",
            image_source="zai-org/CogVideoX-5b-I2V",
            image_size=(720, 480),
            image_frames=49,
            native_width=720,
            native_height=480,
            min_size=256,
            max_size=1024,
            frames=FrameRule(9, 49, step=8, offset=1),
            steps=Range(4, 100),
            default_frames=49,
            default_steps=50,
            default_scheduler="cogvideox_dpm",
            image_to_video=True,
            vram_gb=26,
            # The I2V repo's own 5B transformer, about 11 GB in bf16, loads beside it.
            image_vram_gb=11,
            speed="50 steps in about 90 s on an H100 (card: 180 s on an A100)",
            memory_advice="5-12 GB: cpu_offload, vae_slicing and vae_tiling (card: 5 GB)",
            description="CogVideoX 5B: 720x480, 49 frames; image-to-video via CogVideoX-5b-I2V.",
        ),
        ModelSpec(
            **_LIGHTNING_RULES,
            key="animatediff_lightning",
            name="AnimateDiff-Lightning (4 steps)",
            source=DEFAULT_ANIMATEDIFF_BASE,
            adapter_source=_LIGHTNING_ADAPTER,
            native_width=512,
            native_height=512,
            upscaler="zeroscope_v2_xl",
            vram_gb=6,
            speed="16 frames at 512x512 in 4 steps: about 10x fewer UNet calls than AnimateDiff",
            memory_advice="6 GB: vae_slicing; 4 GB: cpu_offload",
            description="Distilled AnimateDiff: 512x512x16 in 4 steps without guidance.",
        ),
        ModelSpec(
            key="tiny_t2v",
            name="Tiny text-to-video (offline, random weights)",
            family="text_to_video",
            source="tiny_t2v",
            native_width=64,
            native_height=64,
            min_size=32,
            vram_gb=0,
            upscaler="tiny_v2v",
            scheduler_config=_SD_SCHEDULER,
            tiny=True,
            description="TextToVideoSDPipeline with tiny random weights, for tests and the demo.",
        ),
        ModelSpec(
            key="tiny_animatediff",
            name="Tiny AnimateDiff (offline, random weights)",
            family="animatediff",
            source="tiny_animatediff/base",
            adapter_source="tiny_animatediff/motion_adapter",
            native_width=64,
            native_height=64,
            min_size=32,
            vram_gb=0,
            upscaler="tiny_v2v",
            scheduler_config=_ANIMATEDIFF_SCHEDULER,
            tiny=True,
            description="AnimateDiffPipeline + MotionAdapter with tiny random weights.",
        ),
        ModelSpec(
            key="tiny_v2v",
            name="Tiny video-to-video upscaler (offline, random weights)",
            family="video_to_video",
            role="upscaler",
            source="tiny_v2v",
            native_width=128,
            native_height=128,
            min_size=32,
            vram_gb=0,
            upscale_factor=2.0,
            steps=Range(1, 50),
            default_steps=10,
            default_guidance=15.0,
            tiny=True,
            description="VideoToVideoSDPipeline with tiny random weights: the tiny models' 2x upscaler.",
        ),
        ModelSpec(
            **_LTX_RULES,
            key="tiny_ltx",
            name="Tiny LTX-Video (offline, random weights)",
            source="tiny_ltx",
            native_width=64,
            native_height=64,
            min_size=32,
            max_size=256,
            frames=FrameRule(9, 65, step=8, offset=1),
            steps=Range(1, 50),
            default_frames=9,
            default_steps=4,
            upscaler="tiny_v2v",
            vram_gb=0,
            tiny=True,
            description="LTXPipeline with tiny random weights (text and image to video).",
        ),
        ModelSpec(
            **_WAN22_RULES,
            key="tiny_wan",
            name="Tiny Wan 2.2 TI2V (offline, random weights)",
            source="tiny_wan",
            native_width=64,
            native_height=64,
            min_size=32,
            max_size=256,
            frames=FrameRule(5, 41, step=4, offset=1),
            steps=Range(1, 50),
            default_frames=9,
            default_fps=16,
            default_steps=4,
            upscaler="tiny_v2v",
            vram_gb=0,
            tiny=True,
            description="WanPipeline with tiny random weights (text and image to video).",
        ),
        ModelSpec(
            **_COGVIDEOX_RULES,
            key="tiny_cogvideox",
            name="Tiny CogVideoX (offline, random weights)",
            source="tiny_cogvideox/t2v",
            image_source="tiny_cogvideox/i2v",
            native_width=64,
            native_height=64,
            min_size=32,
            max_size=256,
            frames=FrameRule(9, 49, step=8, offset=1),
            steps=Range(1, 50),
            default_frames=9,
            default_steps=4,
            default_scheduler="cogvideox_dpm",
            image_to_video=True,
            upscaler="tiny_v2v",
            vram_gb=0,
            tiny=True,
            description="CogVideoXPipeline (+ image-to-video) with tiny random weights.",
        ),
        ModelSpec(
            **_LIGHTNING_RULES,
            key="tiny_lightning",
            name="Tiny AnimateDiff-Lightning (offline, random weights)",
            source="tiny_lightning/base",
            adapter_source="tiny_lightning/motion_adapter/" + _LIGHTNING_FILE,
            native_width=64,
            native_height=64,
            min_size=32,
            upscaler="tiny_v2v",
            vram_gb=0,
            tiny=True,
            description="AnimateDiff + a bare Lightning-style adapter file, tiny random weights.",
        ),
    )
}


def image_to_video_models() -> list[str]:
    """The generators that can animate a picture."""
    return [k for k, s in REGISTRY.items() if s.image_to_video and s.role == "generator"]


def get_spec(key: str) -> ModelSpec:
    """The spec registered under ``key``; an unknown key lists the known ones."""
    spec = REGISTRY.get(key.strip().lower()) if isinstance(key, str) else None
    if spec is None:
        raise UnknownModelError(f"unknown model {key!r}; known: {', '.join(REGISTRY)}")
    return spec


def default_cache_dir() -> Path:
    """Where tiny models are built; ``VIDEOBOT_MODEL_CACHE`` overrides it (tests, containers)."""
    env = os.environ.get("VIDEOBOT_MODEL_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "videobot" / "models"


@dataclass(frozen=True)
class ManagerOptions:
    """How models are placed and which memory savers are on.

    ``device`` and ``dtype`` are ``"auto"`` (CUDA in bf16 from compute capability 8.0, else fp16;
    otherwise CPU in fp32) or explicit (``"cuda:1"``, ``"cpu"``; ``"float16"``, ``"bfloat16"``, ``"float32"``).
    ``sources`` maps a model key to another hub id or a local folder (``key:adapter`` and
    ``key:image`` name a model's motion adapter and image-to-video weights).

    The memory savers trade speed for memory. ``cpu_offload``, ``vae_slicing``, ``vae_tiling`` and
    ``forward_chunking`` can be switched on loaded models; ``group_offload`` (stream the layers in
    from CPU memory as they run) and ``layerwise_casting`` (store the denoiser's weights in fp8,
    compute in the pipeline's precision) change how a model is placed, so they apply to models
    loaded afterwards.
    """

    device: str = "auto"
    dtype: str = "auto"
    cpu_offload: bool = False
    vae_slicing: bool = False
    forward_chunking: bool = False
    vae_tiling: bool = False
    group_offload: bool = False
    layerwise_casting: bool = False
    cache_dir: Path = field(default_factory=default_cache_dir)
    sources: dict[str, str] = field(default_factory=dict)
    animatediff_base: str = DEFAULT_ANIMATEDIFF_BASE
    speed: SpeedOptions = field(default_factory=SpeedOptions)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache_dir", Path(self.cache_dir))


@dataclass(frozen=True)
class MemorySwitches:
    cpu_offload: bool
    vae_slicing: bool
    forward_chunking: bool
    vae_tiling: bool = False
    group_offload: bool = False
    layerwise_casting: bool = False


MEMORY_SWITCHES = tuple(f.name for f in fields(MemorySwitches))
"""The memory savers' names: the same in ``ManagerOptions``, ``[models]`` and the CLI's flags."""


@dataclass
class LoadedModel:
    """A pipeline in memory, with the adapter that knows how to call it."""

    spec: ModelSpec
    pipeline: Any
    adapter: PipelineAdapter
    device: str
    dtype: str
    switches: MemorySwitches
    load_time_s: float
    schedulers: dict[str, Any] = field(default_factory=dict)
    load_request: LoadRequest | None = None
    image_pipeline: Any = None
    """The image-to-video pipeline, made on the first image job (see ``ModelManager.image_pipeline``)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Diffusers pipelines keep per-call state on the pipeline object, so two threads must never
    run the same one at once. The bot has one executor thread; this guards any other caller."""

    @property
    def parameter_bytes(self) -> int:
        """The weights in memory: the pipeline's and, once made, the image-to-video pipeline's
        own (a second transformer where its weights differ; shared modules count once)."""
        modules = list(self.pipeline.components.values())
        if self.image_pipeline is not None:
            modules += list(self.image_pipeline.components.values())
        total = 0
        seen: set[int] = set()
        for component in modules:
            if hasattr(component, "parameters") and id(component) not in seen:
                seen.add(id(component))
                total += sum(p.numel() * p.element_size() for p in component.parameters())
        return total


@dataclass(frozen=True)
class ModelStatus:
    """One row of ``list_models``: what a model is, whether it is loaded and what it needs."""

    key: str
    name: str
    family: str
    role: str
    source: str
    loaded: bool
    active: bool
    vram_gb: float
    native_size: tuple[int, int]
    upscaler: str | None
    memory_mb: float | None
    description: str


class ModelManager:
    """Loads and unloads pipelines. Thread safe: the bot lists models from its event loop while the
    executor thread loads them."""

    def __init__(self, options: ManagerOptions | None = None) -> None:
        self._options = options or ManagerOptions()
        self._loaded: dict[str, LoadedModel] = {}
        self._active: str | None = None
        self._lock = threading.RLock()

    # --- public API ----------------------------------------------------------------------------

    @property
    def options(self) -> ManagerOptions:
        return self._options

    @property
    def active_key(self) -> str | None:
        """The model loaded (or used) last: ``generate_video`` runs on it when params name none."""
        return self._active

    def configure(self, **changes: Any) -> ManagerOptions:
        """Change options. Memory switches apply to loaded models at once; device and dtype changes
        apply to models loaded afterwards."""
        with self._lock:
            self._options = replace(self._options, **changes)
            for loaded in self._loaded.values():
                self._apply_switches(loaded, self._switches())
            return self._options

    def load_model(self, key: str) -> LoadedModel:
        """Load ``key`` (a no-op if loaded) and make it the active model."""
        spec = get_spec(key)
        with self._lock:
            loaded = self._loaded.get(spec.key)
            if loaded is None:
                loaded = self._load(spec)
                self._loaded[spec.key] = loaded
            if spec.role == "generator":
                self._active = spec.key
            return loaded

    def adopt(self, key: str, pipeline: Any) -> LoadedModel:
        """Take an already-built pipeline as model ``key``, placed and switched as a loaded one.

        The GPU benchmark builds full-size pipelines with random weights in memory (no download,
        nothing written to disk) and times them through the engine exactly as a loaded model runs.
        """
        from bot.core.pipelines import adapter_for

        spec = get_spec(key)
        device = self.resolved_device()
        dtype = self.resolved_dtype(device, spec)
        pipeline.set_progress_bar_config(disable=True)
        loaded = LoadedModel(
            spec=spec,
            pipeline=pipeline,
            adapter=adapter_for(spec.family),
            device=device,
            dtype=dtype,
            switches=MemorySwitches(False, False, False),
            load_time_s=0.0,
            load_request=self._load_request(spec, dtype),
        )
        with self._lock:
            self._place(loaded, self._switches())
            self._loaded[spec.key] = loaded
            if spec.role == "generator":
                self._active = spec.key
        return loaded

    def unload_model(self, key: str) -> bool:
        """Free a model's memory; returns whether it was loaded."""
        spec = get_spec(key)
        with self._lock:
            loaded = self._loaded.pop(spec.key, None)
            if self._active == spec.key:
                self._active = next(
                    (k for k, m in reversed(self._loaded.items()) if m.spec.role == "generator"),
                    None,
                )
        if loaded is None:
            return False
        del loaded
        free_memory()
        return True

    @contextmanager
    def memory_savers_for(self, key: str, names: Iterable[str]) -> Iterator[bool]:
        """Turn the memory savers ``names`` on for the loaded model ``key`` while the block runs,
        then put back what the options say. The options themselves never change, so other work
        reading them (a load on the same thread later, ``/models list``) sees the owner's settings.
        Yields False when the model is not loaded or the savers were on already.
        """
        spec = get_spec(key)
        with self._lock:
            loaded = self._loaded.get(spec.key)
            if loaded is None:
                wanted = None
            else:
                wanted = replace(loaded.switches, **dict.fromkeys(names, True))
                if wanted == loaded.switches:
                    wanted = None
                else:
                    self._apply_switches(loaded, wanted)
        try:
            yield wanted is not None
        finally:
            if loaded is not None and wanted is not None:
                with self._lock:
                    if self._loaded.get(spec.key) is loaded:
                        self._apply_switches(loaded, self._switches())

    def unload_all(self) -> None:
        for key in list(self._loaded):
            self.unload_model(key)

    def get_loaded(self, key: str) -> LoadedModel | None:
        return self._loaded.get(get_spec(key).key)

    def is_loaded(self, key: str) -> bool:
        return get_spec(key).key in self._loaded

    def resolve(self, key: str | None) -> LoadedModel:
        """The model a job runs on: ``key`` if given (loaded on demand), else the active model."""
        if key is None:
            key = self._active
            if key is None:
                raise VideoBotError(
                    "no model is loaded and none was named: load one first "
                    f"(get_model_manager().load_model(key); known: {', '.join(REGISTRY)})"
                )
        return self.load_model(key)

    def list_models(self) -> list[ModelStatus]:
        with self._lock:
            rows = []
            for spec in REGISTRY.values():
                loaded = self._loaded.get(spec.key)
                rows.append(
                    ModelStatus(
                        key=spec.key,
                        name=spec.name,
                        family=spec.family,
                        role=spec.role,
                        source=self.source_of(spec),
                        loaded=loaded is not None,
                        active=spec.key == self._active,
                        vram_gb=spec.total_vram_gb,
                        native_size=(spec.native_width, spec.native_height),
                        upscaler=spec.upscaler,
                        memory_mb=loaded.parameter_bytes / 2**20 if loaded else None,
                        description=spec.description,
                    )
                )
            return rows

    def source_of(self, spec: ModelSpec) -> str:
        """The hub id or folder a spec loads from, after the owner's overrides."""
        if spec.key in self._options.sources:
            return current_repo_id(self._options.sources[spec.key])
        if spec.tiny:
            return str(self._options.cache_dir / spec.source)
        if spec.source == DEFAULT_ANIMATEDIFF_BASE:
            return current_repo_id(self._options.animatediff_base)
        return spec.source

    def resolved_device(self) -> str:
        import torch

        device = self._options.device
        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return device

    def resolved_dtype(self, device: str, spec: ModelSpec | None = None) -> str:
        """The precision models load in: the owner's choice, else on CUDA the half precision of
        the model's card (``spec.half_dtype``) or the GPU's native one, else float32."""
        import torch

        dtype = self._options.dtype
        if dtype != "auto":
            if dtype not in ("float16", "bfloat16", "float32"):
                raise InvalidParameterError(
                    "dtype", f"must be auto, float16, bfloat16 or float32 (got {dtype!r})"
                )
            return dtype
        if device.startswith("cuda"):
            if spec is not None and spec.half_dtype is not None:
                return spec.half_dtype
            return half_dtype_for(torch.cuda.get_device_capability(device))
        return "float32"

    # --- helpers -------------------------------------------------------------------------------

    def image_pipeline(self, loaded: LoadedModel) -> Any:
        """The image-to-video pipeline of a loaded model, made once and kept. Call with
        ``loaded.lock`` held: it is built on the executor thread, between jobs."""
        if not loaded.spec.image_to_video:
            raise InvalidParameterError(
                "image",
                f"{loaded.spec.key} cannot animate a picture; models that can: "
                f"{', '.join(image_to_video_models())}",
            )
        if loaded.image_pipeline is None:
            assert loaded.load_request is not None
            pipe = loaded.adapter.image_pipeline(loaded.pipeline, loaded.load_request)
            if loaded.load_request.image_source is not None:
                self._place_module(loaded, pipe.transformer)
            loaded.image_pipeline = pipe
        return loaded.image_pipeline

    def image_source_of(self, spec: ModelSpec) -> str | None:
        """Where separate image-to-video weights come from, after the owner's overrides."""
        override = self._options.sources.get(f"{spec.key}:image")
        if override:
            return current_repo_id(override)
        if spec.image_source is None:
            return None
        if spec.tiny:
            return str(self._options.cache_dir / spec.image_source)
        return spec.image_source

    def _switches(self) -> MemorySwitches:
        return MemorySwitches(**{name: getattr(self._options, name) for name in MEMORY_SWITCHES})

    def _load(self, spec: ModelSpec) -> LoadedModel:

        from bot.core.pipelines import adapter_for

        if spec.tiny and spec.key not in self._options.sources:
            from bot.core.tiny import build_tiny_model

            build_tiny_model(spec.key, self._options.cache_dir / spec.key)
        device = self.resolved_device()
        dtype = self.resolved_dtype(device, spec)
        adapter = adapter_for(spec.family)
        started = time.perf_counter()
        request = self._load_request(spec, dtype, files=True)
        pipeline = adapter.load(request)
        pipeline.set_progress_bar_config(disable=True)
        loaded = LoadedModel(
            spec=spec,
            pipeline=pipeline,
            adapter=adapter,
            device=device,
            dtype=dtype,
            switches=MemorySwitches(False, False, False),
            load_time_s=0.0,
            load_request=request,
        )
        self._place(loaded, self._switches())
        loaded.load_time_s = time.perf_counter() - started
        return loaded

    def _load_request(self, spec: ModelSpec, dtype: str, files: bool = False) -> LoadRequest:
        """Where and how to load ``spec``. With ``files``, the weight variant of each source is
        chosen from the files it really holds (a hub listing or the folder), else none is asked."""
        import torch

        from bot.core.pipelines.base import LoadRequest

        source = self.source_of(spec)
        image_source = self.image_source_of(spec)
        return LoadRequest(
            source=source,
            torch_dtype=getattr(torch, dtype),
            adapter_source=self._adapter_source(spec),
            image_source=image_source,
            variant=choose_variant(list_weight_files(source), dtype) if files else None,
            image_variant=(
                choose_variant(list_weight_files(image_source), dtype)
                if files and image_source
                else None
            ),
            vae_dtype=getattr(torch, spec.vae_dtype) if spec.vae_dtype else None,
        )

    def _adapter_source(self, spec: ModelSpec) -> str | None:
        if spec.adapter_source is None:
            return None
        override = self._options.sources.get(f"{spec.key}:adapter")
        if override:
            return current_repo_id(override)
        if spec.tiny:
            return str(self._options.cache_dir / spec.adapter_source)
        return spec.adapter_source

    def _place(self, loaded: LoadedModel, switches: MemorySwitches) -> None:
        """Move a freshly loaded pipeline to its device (or behind offload hooks)."""
        import torch

        pipe = loaded.pipeline
        if switches.layerwise_casting:
            # Applied before any offloading hooks, as diffusers requires.
            denoiser_of(pipe).enable_layerwise_casting(
                storage_dtype=torch.float8_e4m3fn, compute_dtype=getattr(torch, loaded.dtype)
            )
        if switches.group_offload:
            pipe.enable_group_offload(**self._group_offload_arguments(loaded.device))
        elif switches.cpu_offload:
            pipe.enable_model_cpu_offload(device=loaded.device)
        else:
            pipe.to(loaded.device)
        loaded.switches = MemorySwitches(
            switches.cpu_offload and not switches.group_offload,
            False,
            False,
            False,
            switches.group_offload,
            switches.layerwise_casting,
        )
        self._apply_switches(loaded, switches)
        apply_speed_options(loaded, self._options.speed)

    @staticmethod
    def _group_offload_arguments(device: str) -> dict[str, Any]:
        """Leaf-level offload with a CUDA stream: layers are copied in while the previous ones
        run, the fastest of diffusers' group offload modes at about the memory of one layer."""
        import torch

        on_cuda = device.startswith("cuda")
        return {
            "onload_device": torch.device(device),
            "offload_device": torch.device("cpu"),
            "offload_type": "leaf_level",
            "use_stream": on_cuda,
        }

    def _place_module(self, loaded: LoadedModel, module: Any) -> None:
        """Place a module loaded after its pipeline (CogVideoX-5b-I2V's transformer) the way the
        pipeline's own modules were placed."""
        import torch

        switches = loaded.switches
        if switches.layerwise_casting:
            module.enable_layerwise_casting(
                storage_dtype=torch.float8_e4m3fn, compute_dtype=getattr(torch, loaded.dtype)
            )
        if switches.group_offload:
            module.enable_group_offload(**self._group_offload_arguments(loaded.device))
        elif switches.cpu_offload:
            from accelerate import cpu_offload_with_hook

            cpu_offload_with_hook(module, loaded.device)
        else:
            module.to(loaded.device)

    def _apply_switches(self, loaded: LoadedModel, wanted: MemorySwitches) -> None:
        """Switch the savers that can change on a loaded model; group offload and layerwise
        casting stay as the model was placed (they apply at the next load)."""
        pipe = loaded.pipeline
        current = loaded.switches
        cpu_offload = wanted.cpu_offload and not current.group_offload
        if cpu_offload != current.cpu_offload:
            request = loaded.load_request
            if request is not None and request.image_source is not None:
                loaded.image_pipeline = None  # its own transformer is placed again on next use
            if cpu_offload:
                pipe.enable_model_cpu_offload(device=loaded.device)
            else:
                pipe.remove_all_hooks()
                pipe.to(loaded.device)
        if wanted.vae_slicing != current.vae_slicing:
            if wanted.vae_slicing:
                pipe.vae.enable_slicing()
            else:
                pipe.vae.disable_slicing()
        if wanted.vae_tiling != current.vae_tiling:
            if wanted.vae_tiling:
                pipe.vae.enable_tiling()
            else:
                pipe.vae.disable_tiling()
        denoiser = denoiser_of(pipe)
        chunking = wanted.forward_chunking and hasattr(denoiser, "enable_forward_chunking")
        if chunking != current.forward_chunking:
            if chunking:
                # Chunk the feed-forward layers over frames: the UNet's largest activations.
                denoiser.enable_forward_chunking(chunk_size=1, dim=1)
            else:
                denoiser.disable_forward_chunking()
        loaded.switches = MemorySwitches(
            cpu_offload,
            wanted.vae_slicing,
            chunking,
            wanted.vae_tiling,
            current.group_offload,
            current.layerwise_casting,
        )


def half_dtype_for(capability: tuple[int, int]) -> str:
    """The half precision a CUDA GPU of compute ``capability`` runs natively: bfloat16 from Ampere
    (8.0) on, float16 before. ``torch.cuda.is_bf16_supported()`` also says True on T4, V100 and RTX
    20xx (7.x), where bf16 is emulated: slow, and some convolutions fail."""
    return "bfloat16" if tuple(capability) >= (8, 0) else "float16"


HALF_VARIANT = "fp16"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def choose_variant(files: Iterable[str], dtype: str) -> str | None:
    """The ``variant`` to load a diffusers folder with, from the weight files it really has.

    Only the components' weights count (``unet/diffusion_pytorch_model.fp16.safetensors``), not the
    single-file checkpoints some repos keep at their root. A component with only ``*.fp16.*``
    files (ModelScope) needs ``"fp16"`` in any precision; diffusers upcasts them for float32. When
    every component has both, half precision takes the smaller fp16 files and float32 the full
    ones. A folder without fp16 files never gets a variant, whatever the dtype.
    """
    plain: set[str] = set()
    half: set[str] = set()
    for name in files:
        folder, _, base = name.replace("\\", "/").rpartition("/")
        if not folder or not base.endswith(_WEIGHT_SUFFIXES):
            continue
        (half if f".{HALF_VARIANT}." in base else plain).add(folder)
    if not half:
        return None
    if half - plain:
        return HALF_VARIANT
    if dtype != "float32" and half >= plain:
        return HALF_VARIANT
    return None


def list_weight_files(source: str | None) -> list[str]:
    """The files of a local folder or a hub repo, relative to its root; empty when unknown (a file
    source, or a hub that cannot be reached: the load itself then says why)."""
    if not source:
        return []
    path = Path(source).expanduser()
    if path.is_dir():
        return [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
    if path.suffix in _WEIGHT_SUFFIXES or source.count("/") != 1:
        return []
    try:
        from huggingface_hub import HfApi

        return list(HfApi().list_repo_files(source))
    except Exception:
        return _cached_repo_files(source)


def _cached_repo_files(repo_id: str) -> list[str]:
    """Offline: the files of the newest snapshot of ``repo_id`` in the Hugging Face cache."""
    from huggingface_hub import constants

    root = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    snapshots = sorted(root.glob("*"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    if not snapshots:
        return []
    return [str(p.relative_to(snapshots[-1])) for p in snapshots[-1].rglob("*") if p.is_file()]


def free_memory() -> None:
    """Return freed tensors to the device: after an unload and after an out-of-memory error."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.ipc_collect()


_MANAGER: ModelManager | None = None
_MANAGER_LOCK = threading.Lock()


def get_model_manager() -> ModelManager:
    """The process-wide model manager (the seed's singleton)."""
    global _MANAGER
    with _MANAGER_LOCK:
        if _MANAGER is None:
            _MANAGER = ModelManager()
        return _MANAGER
