"""The model registry: what each model is, where it comes from, what it accepts and what it uses
when a member names nothing, as plain data (:class:`ModelSpec`), plus the hub's renamed repos.

Real hub models and the offline tiny models are specs of the same kind and load through the same
``from_pretrained`` code in the pipeline adapters; a tiny spec only differs in that its folder is
built into the model cache on first use. It imports only the rules and the error types, so the
parameters, the manager and the cogs can all read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bot.core.errors import InvalidParameterError, UnknownModelError
from bot.core.rules import (
    CACHE_CHOICES,
    CACHE_NAMES,
    FRAMES,
    GUIDANCE,
    SCHEDULERS,
    STEPS,
    FrameRule,
    Range,
    Request,
    check_rules,
)

Family = Literal[
    "text_to_video",
    "animatediff",
    "video_to_video",
    "ltx",
    "ltx2",
    "wan",
    "cogvideox",
    "hunyuan_video15",
    "stable_audio",
]
Role = Literal["generator", "upscaler", "soundtrack"]

_ROLE_NAMES = {"upscaler": "an upscaler", "soundtrack": "a soundtrack model"}

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

GUIDANCE_2_RATIO = "guidance_2_ratio"
"""The call option that carries a two-expert model's low-noise guidance as a share of the job's
(``ModelSpec.guidance_2``); the pipeline adapter turns it into ``guidance_scale_2``."""
LORA_PAIR = "+"
"""Joins a two-expert model's high- and low-noise LoRA files in ``ModelSpec.lora_source``."""


def guidance_2_of(guidance: float, ratio: float) -> float:
    """The low-noise expert's guidance: ``guidance`` times the card's ratio, at least 1."""
    return max(1.0, round(guidance * ratio, 4))


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
    """A second weights folder the model loads beside its own: AnimateDiff's motion adapter, or
    the x2 latent upsampler of a two-stage LTX-2 recipe (a diffusers folder whose
    ``latent_upsampler/`` holds it; its presence makes the recipe two-stage)."""
    lora_source: str | None = None
    """A LoRA fused into the denoiser at load (``owner/repo/file.safetensors`` on the hub, or a
    file in the model cache for a tiny model): a step-distillation LoRA turns the base weights into
    a few-step model (Wan 2.1 14B + lightx2v's 4-step LoRA). A two-expert model takes a pair,
    ``high.safetensors+low.safetensors`` (:data:`LORA_PAIR`): the first file is fused into the
    high-noise ``transformer``, the second (a name beside the first, or a whole source) into the
    low-noise ``transformer_2`` (Wan 2.2 A14B + lightx2v's high- and low-noise LoRAs)."""
    lora_scale: float = 1.0
    """The LoRA's strength when fused (its card's; both files of a pair)."""
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
    guidance_2: float | None = None
    """The low-noise expert's (``transformer_2``) guidance at ``default_guidance``, for a
    two-expert model whose card guides its experts differently (Wan 2.2 T2V A14B: 4.0 for the
    high-noise expert, 3.0 for the low-noise one). A job's guidance is the high-noise expert's;
    the low-noise one keeps the card's ratio to it (:meth:`guidance_2_for`). ``None``: one
    guidance for both (diffusers' default)."""
    scheduler_config: dict[str, Any] = field(default_factory=dict)
    image_to_video: bool = False
    """Whether the model can animate a picture (``GenerationParams.image``)."""
    image_only: bool = False
    """Whether it animates pictures only: Wan 2.2 I2V A14B's transformers take the picture's
    latents as input channels and have no text-to-video path, so a job without a picture is
    refused."""
    first_last_frame: bool = False
    """Whether it can pin the video's last frame too (``GenerationParams.end_image`` beside
    ``image``): Wan 2.2 I2V A14B's and Wan 2.1 FLF2V's ``WanImageToVideoPipeline(last_image=)``,
    LTX-2's ``LTX2ConditionPipeline`` with a condition at each end."""
    first_last_only: bool = False
    """Whether it needs both pictures: Wan 2.1 FLF2V's transformer learned its image position
    embeddings for two CLIP images (``pos_embed_seq_len`` 2 x 257) and cannot take one."""
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
    cache_default: str = "off"
    """The feature cache ``[speed] cache = "auto"`` runs on this model (``bot.core.caches``): off
    unless its card or diffusers' docs show no visible loss."""
    cache_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-cache tuned settings (``{"first_block": {"threshold": 0.08}}``), over the defaults of
    ``bot.core.caches.DEFAULT_SETTINGS``; MagCache's checkpoint-specific ``mag_ratios`` live here."""
    draft_model: str | None = None
    """The step-distilled partner a draft (``quality="draft"``) runs on (AnimateDiff ->
    AnimateDiff-Lightning); ``None``: the draft runs this model with fewer steps and a cache."""
    draft_steps: int | None = None
    """A draft's steps without a partner; ``None``: a quarter of the job's steps, at least the
    model's minimum."""
    draft_cache: str = "first_block"
    """The cache a draft without a partner runs with, where the model takes it."""
    speed: str = ""
    """Time per video on a GPU, for the README's model table."""
    memory_advice: str = ""
    """How to run it on a small card, for /models and the README."""
    parameters: dict[str, float] = field(default_factory=dict)
    """Parameter counts in millions per component (``{"transformer": 1419.0, ...}``), from the
    real configs built on the meta device (``bench/model_configs/README.md``): what the memory
    plans (``bot.core.plans``) compute each plan's GPU and host memory from. The denoiser is
    ``transformer`` or ``unet`` (with ``motion_adapter``); ``image_transformer`` is loaded only
    for image-to-video. Empty for the tiny models, which fit anywhere."""
    gguf_files: dict[str, str] = field(default_factory=dict)
    """The community GGUF files of the denoiser, per component (``{"transformer": ...,
    "transformer_2": ...}``: each A14B expert has its own file), as ``owner/repo/path`` with
    ``{quant}`` for the quant type (``Q8_0``, ``Q5_K_M``, ``Q4_K_M``), or a file in the model cache
    for a tiny model. Non-empty: the GGUF memory plans are offered (``bot.core.plans``), loaded
    through ``from_single_file`` (``bot.core.pipelines.gguf``). Not for a model with a fused LoRA
    (its LoRA would have to be fused into quantised weights)."""
    working_gb: float | None = None
    """GPU memory a job of the native size needs beside the weights (activations, the VAE decode),
    where the card or a measurement says; ``None``: what ``vram_gb`` leaves after the weights in
    half precision, at least 2 GB."""
    extends: str | None = None
    """How the model continues a clip (``bot.core.extend``), or ``None`` when it cannot:
    ``"vace"`` (the tail as masked video context), ``"tail"`` (the tail as a video condition at
    frame 0: LTX-Video 0.9.7's ``LTXConditionPipeline``, LTX-2's ``LTX2ConditionPipeline``),
    ``"last_frame"`` (image-to-video from the last frame: the single-frame fallback)."""
    restyles: bool = False
    """Whether the model can restyle a video (video-to-video, ``bot.core.restyle``): Wan 2.1's
    T2V weights run diffusers' ``WanVideoToVideoPipeline`` over the very same modules."""
    sound: bool = False
    """Whether the model makes sound with its picture (LTX-2: an audio stream denoised beside the
    video and turned into a waveform by its vocoder), muxed into the same mp4."""
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
        """The card's extra pipeline arguments for a job on ``scheduler``; a two-expert model's
        low-noise guidance travels as its ratio to the job's guidance (:data:`GUIDANCE_2_RATIO`),
        which the pipeline adapter turns into ``guidance_scale_2``."""
        options = {**self.call_options, **self.scheduler_call_options.get(scheduler, {})}
        if self.guidance_2 is not None:
            options[GUIDANCE_2_RATIO] = self.guidance_2 / self.default_guidance
        return options

    def guidance_2_for(self, guidance: float) -> float | None:
        """The low-noise expert's guidance for a job guided at ``guidance``: the card's ratio,
        never below 1 (below 1 would push away from the prompt)."""
        if self.guidance_2 is None:
            return None
        return guidance_2_of(guidance, self.guidance_2 / self.default_guidance)

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

    def check_params(self, params: Request) -> None:
        """Checks that depend on the model: its role, sizes, frame rule, steps, guidance,
        schedulers, and whether it can animate a picture."""
        if self.role != "generator":
            raise InvalidParameterError(
                "model",
                f"{self.key} is {_ROLE_NAMES.get(self.role, self.role)}; generate with one of "
                f"{', '.join(k for k, s in REGISTRY.items() if s.role == 'generator')}"
                + (" and upscale the result" if self.role == "upscaler" else ""),
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
        if params.image is None and self.image_only:
            raise InvalidParameterError(
                "image",
                f"{self.key} animates pictures only: attach a picture, or pick a text-to-video "
                f"model ({', '.join(text_to_video_models()[:6])}, ...)",
            )
        if params.image is not None and not self.image_to_video:
            raise InvalidParameterError(
                "image",
                f"{self.key} cannot animate a picture; models that can: "
                f"{', '.join(image_to_video_models()) or 'none'}",
            )
        self._check_end_image(params)
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

    def _check_end_image(self, params: Request) -> None:
        """A last frame only where the model takes one; a model that needs it refuses without."""
        if getattr(params, "end_image", None) is not None and not self.first_last_frame:
            raise InvalidParameterError(
                "end_image",
                f"{self.key} cannot pin a last frame; models that can: "
                f"{', '.join(first_last_frame_models()) or 'none'}",
            )
        if (
            params.image is not None
            and self.first_last_only
            and not getattr(params, "end_image", None)
        ):
            single_picture = [m for m in image_to_video_models() if not REGISTRY[m].first_last_only]
            raise InvalidParameterError(
                "end_image",
                f"{self.key} needs a first and a last picture: attach end_image too, or animate "
                f"one picture with {', '.join(single_picture[:6])}",
            )

    def __post_init__(self) -> None:
        if self.extends not in (None, "vace", "tail", "last_frame"):
            raise ValueError(f"{self.key}: unknown extend method {self.extends!r}")
        if self.extends == "last_frame" and not self.image_to_video:
            raise ValueError(f"{self.key}: extending from the last frame needs image_to_video")
        if self.first_last_frame and not self.image_to_video:
            raise ValueError(f"{self.key}: first_last_frame needs image_to_video")
        if self.first_last_only and not self.first_last_frame:
            raise ValueError(f"{self.key}: first_last_only needs first_last_frame")
        if self.image_only and not self.image_to_video:
            raise ValueError(f"{self.key}: image_only needs image_to_video")
        unknown = [name for name in self.schedulers if name not in SCHEDULERS]
        if unknown or self.default_scheduler not in self.schedulers:
            raise ValueError(f"{self.key}: bad schedulers {self.schedulers}")

        caches = [self.cache_default, self.draft_cache, *self.cache_settings]
        if any(c not in CACHE_CHOICES or c == "auto" for c in caches) or any(
            name not in CACHE_NAMES for name in self.cache_settings
        ):
            raise ValueError(f"{self.key}: bad cache names {caches}")


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
# Wan 2.1 T2V (1.3B and 14B): sizes in steps of 16 up to 1280, 4k+1 frames up to 81 at 16 fps, and
# the card's 50 steps with the flow shift diffusers' Wan doc gives: 3.0 up to 480p, 5.0 from 720p.
_WAN21_RULES: dict[str, Any] = {
    **_WAN_RULES,
    "min_size": 256,
    "max_size": 1280,
    "size_multiple": 16,
    "frames": FrameRule(5, 81, step=4, offset=1),
    "steps": Range(4, 100),
    "default_frames": 81,
    "default_fps": 16,
    "default_steps": 50,
    "scheduler_config": {"flow_shift": 3.0},
    "flow_shifts": ((0, 3.0), (720, 5.0)),
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

# MagCache's magnitude ratios of the tiny models, measured with diffusers' calibration mode
# (``MagCacheConfig(calibrate=True)``, 8 steps at the native size): MagCache reads them per step.
# Random weights change the features far more per step than trained ones, so the tiny models'
# First Block Cache thresholds are looser than the real models' 0.05, or it would never skip.
_TINY_LTX_MAG = (1.0, 1.00005, 1.02141, 0.98097, 0.96798, 1.01142, 0.99296, 1.01119)
_TINY_WAN_MAG = (1.0, 0.99013, 1.00732, 0.99261, 0.98936, 0.99469, 0.99817, 0.9985)
_TINY_COGVIDEOX_MAG = (1.0, 1.00014, 1.01123, 1.03572, 0.89693, 1.00445, 1.17636, 0.85164)

# MagCache's ratios for Wan 2.1 T2V 1.3B, from MagCache's own Wan 2.1 script (``magcache_generate.py``
# in Zehong-Ma/MagCache: 50 steps, 480p, calibrated with SDPA): that list interleaves the
# conditional and unconditional passes, which diffusers' MagCache keeps apart (one state per
# ``cache_context``); the conditional ones are kept here (the two differ in the fourth decimal).
# The same script's settings: threshold 0.12, at most 2 skipped steps in a row, 20 % kept.
_WAN21_1_3B_MAG = (
    1.0,
    1.0124,
    1.00166,
    0.99791,
    0.99682,
    0.99634,
    0.99567,
    0.99416,
    0.99578,
    0.9957,
    0.99511,
    0.99535,
    0.99552,
    0.99541,
    0.9954,
    0.99489,
    0.99518,
    0.99484,
    0.99481,
    0.99415,
    0.99419,
    0.99396,
    0.99388,
    0.99349,
    0.99309,
    0.9927,
    0.99228,
    0.99171,
    0.99137,
    0.99068,
    0.99005,
    0.98944,
    0.98849,
    0.98758,
    0.98644,
    0.98504,
    0.9836,
    0.98202,
    0.97977,
    0.97717,
    0.9741,
    0.97003,
    0.96538,
    0.9593,
    0.95086,
    0.94013,
    0.92402,
    0.90241,
    0.86821,
    0.81838,
)

# LTX-Video 0.9.7 distilled's recipe (its card and diffusers' LTX docs): 8 steps without guidance;
# its VAE decodes with timestep conditioning (decode timestep 0.05, noise 0.025).
_LTX_DISTILLED_CALL: dict[str, Any] = {"decode_timestep": 0.05, "decode_noise_scale": 0.025}
_LTX_DISTILLED: dict[str, Any] = {
    **_LTX_RULES,
    "call_options": _LTX_DISTILLED_CALL,
    "default_steps": 8,
    "default_guidance": 1.0,
    "draft_steps": 4,
    "draft_cache": "off",
}

# lightx2v's step- and CFG-distilled LoRA for Wan 2.1 T2V 14B: 4 steps without guidance at shift 5
# (LightX2V's configs: infer_steps 4, sample_shift 5, enable_cfg false). UniPC over flow sigmas at
# flow_shift 5 and 4 steps lands on exactly their timesteps (1000, 750, 500, 250, shifted by 5).
_LIGHTX2V_REPO = "lightx2v/Wan2.1-Distill-Loras"
_LIGHTX2V_T2V_FILE = "wan2.1_t2v_14b_lora_rank64_lightx2v_4step.safetensors"
_LIGHTX2V_RECIPE: dict[str, Any] = {
    "steps": Range(1, 8),
    "guidance": Range(1.0, 2.0),
    "default_steps": 4,
    "default_guidance": 1.0,
    "scheduler_config": {"flow_shift": 5.0},
    "flow_shifts": (),  # lightx2v samples at shift 5 whatever the size
    "draft_steps": 2,
    "draft_cache": "off",
}
TINY_LIGHTX2V_FILE = "wan_tiny_lora_rank4_lightx2v_4step.safetensors"
TINY_LIGHTX2V_22_PAIR = (
    "wan2.2_t2v_A14b_high_noise_lora_rank64_lightx2v_4step_1217.safetensors"
    "+wan2.2_t2v_A14b_low_noise_lora_rank64_lightx2v_4step_1217.safetensors"
)
"""The tiny pair carries the real files' names, so the local hub serves each under its own."""
_TINY_SIZES: dict[str, Any] = {
    "native_width": 64,
    "native_height": 64,
    "min_size": 32,
    "max_size": 256,
    "frames": FrameRule(5, 41, step=4, offset=1),
    "default_frames": 9,
    "default_steps": 4,
    "upscaler": "tiny_v2v",
    "vram_gb": 0,
    "parameters": {},  # a tiny model fits anywhere: no memory plan
    "working_gb": None,
}

# Parameter counts (millions) per component, as built on the meta device from the real configs
# (bench/model_configs/README.md's table): the memory plans are computed from these.
_SD15_PARAMS = {"unet": 859.5, "motion_adapter": 453.2, "text_encoder": 123.1, "vae": 83.7}
_MODELSCOPE_PARAMS = {"unet": 1411.2, "text_encoder": 340.4, "vae": 83.7}
_T5_XXL = 4762.3
_UMT5_XXL = 5680.9
_WAN21_VAE = 126.9

_WAN22_A14B = 14288.5
_WAN22_A14B_I2V_TRANSFORMER = 14288.9  # 36 input channels (noise, picture latents, mask)
# What a 1280x720x81 job needs beside the weights: Wan 2.1 14B's figure (its 44 GB less its
# weights in bf16), since each A14B expert is that very network at the same job and VAE.
_WAN22_A14B_WORKING_GB = 6.6
# Wan 2.2 A14B (T2V and I2V): two 14B experts, ``transformer`` for the high-noise steps and
# ``transformer_2`` for the low-noise ones, switched at ``boundary_ratio``; the Wan 2.1 VAE
# (16 channels, 8x spatial: sizes in steps of 16). The recipe is the Wan2.2 repo's
# ``wan/configs/wan_t2v_A14B.py`` and ``wan_i2v_A14B.py`` (shared_config: 81 frames at 16 fps):
# 40 steps; T2V: flow shift 12.0 at every size (``generate.py`` takes the config's shift
# whatever the size), boundary 0.875, guidance 4.0 high / 3.0 low (``sample_guide_scale =
# (3.0, 4.0)  # low noise, high noise``); I2V: shift 5.0, boundary 0.900, guidance 3.5 / 3.5.
# Sizes: the repo's SUPPORTED_SIZES, 1280x720 and 832x480 either way round (1280x720 its
# default). diffusers runs ``transformer`` with ``guidance_scale`` while t >= boundary x 1000 and
# ``transformer_2`` with ``guidance_scale_2`` below (pipeline_wan.py). The diffusers repos ship
# UniPC at flow shift 3.0 (scripts/convert_wan_to_diffusers.py), so the shift is set here.
# Wan 2.1's sizes, frames and fps; its own steps, and one shift per variant whatever the size.
_WAN22_A14B_RULES: dict[str, Any] = {
    **_WAN21_RULES,
    "default_steps": 40,
    "flow_shifts": (),
    "native_width": 1280,
    "native_height": 720,
    # Both experts in bf16 (57.2 GB), umt5-xxl (10.6 GB), the VAE, and the job.
    "vram_gb": 71,
    "working_gb": _WAN22_A14B_WORKING_GB,
}
_WAN22_A14B_T2V: dict[str, Any] = {
    **_WAN22_A14B_RULES,
    "parameters": {
        "transformer": _WAN22_A14B,
        "transformer_2": _WAN22_A14B,
        "text_encoder": _UMT5_XXL,
        "vae": _WAN21_VAE,
    },
    "default_guidance": 4.0,
    "guidance_2": 3.0,
    "scheduler_config": {"flow_shift": 12.0},
}
_WAN22_A14B_I2V: dict[str, Any] = {
    **_WAN22_A14B_RULES,
    "parameters": {
        "transformer": _WAN22_A14B_I2V_TRANSFORMER,
        "transformer_2": _WAN22_A14B_I2V_TRANSFORMER,
        "text_encoder": _UMT5_XXL,
        "vae": _WAN21_VAE,
    },
    "default_guidance": 3.5,
    "guidance_2": 3.5,
    "scheduler_config": {"flow_shift": 5.0},
    "image_to_video": True,
    "image_only": True,
    # WanImageToVideoPipeline(last_image=): the picture's and the last frame's latents fill the
    # first and last latent frames of the 36-channel condition, masked as known.
    "first_last_frame": True,
}
# Wan 2.1 FLF2V 14B 720P (Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers): Wan 2.1 I2V 14B's network
# (36 input channels, a CLIP ViT-H/14 image branch: image_dim 1280, added_kv_proj_dim 5120) whose
# image position embeddings cover two pictures (pos_embed_seq_len 2 x 257), so it takes a first
# and a last picture and nothing less (diffusers' WanImageEmbedding folds the CLIP tokens into
# pairs). diffusers' scripts/convert_wan_to_diffusers.py ("Wan-FLF2V-14B-720P"): that config,
# CLIP ViT-H-14 (laion2B) as image encoder, UniPC at flow shift 16.0; the Wan2.1 repo's
# generate.py samples flf2v at shift 16 whatever the size, 50 steps, guidance 5.0, 81 frames at
# 16 fps, 1280x720 (its SUPPORTED_SIZES for flf2v-14B: 720*1280, 1280*720, 480*832, 832*480).
_WAN21_FLF2V_TRANSFORMER = 16395.5  # the I2V 14B network with two pictures' position embeddings
_CLIP_VIT_H = 630.8  # CLIPVisionModel, ViT-H/14: 32 layers of 1280
_WAN21_FLF2V: dict[str, Any] = {
    **_WAN21_RULES,
    "native_width": 1280,
    "native_height": 720,
    "flow_shifts": (),
    "scheduler_config": {"flow_shift": 16.0},
    "image_to_video": True,
    "image_only": True,
    "first_last_frame": True,
    "first_last_only": True,
    "working_gb": _WAN22_A14B_WORKING_GB,
}
# lightx2v's Wan 2.2 A14B 4-step LoRAs (lightx2v/Wan2.2-Distill-Loras): the high-noise file into
# ``transformer``, the low-noise one into ``transformer_2``, both at strength 1.0; 4 steps, CFG
# off, shift 5 (LightX2V's configs/wan22/wan_moe_t2v_distill_lora.json: infer_steps 4,
# enable_cfg false, sample_shift 5.0, denoising_step_list 1000/750/500/250, boundary_step_index
# 2, lora strengths 1.0; its Wan 2.2 doc gives the same for I2V with the 1022 files). UniPC at
# shift 5 and 4 steps runs t = 1000, 937.5, 833, 625: the boundary (875 for T2V, 900 for I2V)
# falls after the second step, as LightX2V's boundary_step_index 2.
_LIGHTX2V_22_REPO = "lightx2v/Wan2.2-Distill-Loras"
_LIGHTX2V_22_T2V = (
    f"{_LIGHTX2V_22_REPO}/wan2.2_t2v_A14b_high_noise_lora_rank64_lightx2v_4step_1217.safetensors"
    "+wan2.2_t2v_A14b_low_noise_lora_rank64_lightx2v_4step_1217.safetensors"
)
_LIGHTX2V_22_I2V = (
    f"{_LIGHTX2V_22_REPO}/wan2.2_i2v_A14b_high_noise_lora_rank64_lightx2v_4step_1022.safetensors"
    "+wan2.2_i2v_A14b_low_noise_lora_rank64_lightx2v_4step_1022.safetensors"
)
_LIGHTX2V_22_RECIPE: dict[str, Any] = {**_LIGHTX2V_RECIPE, "guidance_2": None}

# The community GGUF files of Wan 2.2 (QuantStack's conversions with city96's ComfyUI-GGUF tools:
# the original Wan key names, arch "wan"; diffusers converts them in from_single_file). Each A14B
# expert has its own file: HighNoise/ is ``transformer``, LowNoise/ ``transformer_2``. Sources:
# InvokeAI's Wan starter models (QuantStack/Wan2.2-{T2V,I2V}-A14B-GGUF resolve URLs for
# HighNoise/...-HighNoise-Q8_0.gguf, ...-Q4_K_M.gguf and the LowNoise partners, ~15.4 and ~9.7 GB;
# QuantStack/Wan2.2-TI2V-5B-GGUF/Wan2.2-TI2V-5B-Q8_0.gguf and -Q4_K_M.gguf at the root) and
# public download lists naming ...-Q5_K_M.gguf in both A14B repos and the 5B one (3.81 GB).
_QUANTSTACK = "QuantStack"
_GGUF_A14B_T2V = {
    "transformer": f"{_QUANTSTACK}/Wan2.2-T2V-A14B-GGUF/HighNoise/Wan2.2-T2V-A14B-HighNoise-{{quant}}.gguf",
    "transformer_2": f"{_QUANTSTACK}/Wan2.2-T2V-A14B-GGUF/LowNoise/Wan2.2-T2V-A14B-LowNoise-{{quant}}.gguf",
}
_GGUF_A14B_I2V = {
    "transformer": f"{_QUANTSTACK}/Wan2.2-I2V-A14B-GGUF/HighNoise/Wan2.2-I2V-A14B-HighNoise-{{quant}}.gguf",
    "transformer_2": f"{_QUANTSTACK}/Wan2.2-I2V-A14B-GGUF/LowNoise/Wan2.2-I2V-A14B-LowNoise-{{quant}}.gguf",
}
_GGUF_TI2V_5B = {"transformer": f"{_QUANTSTACK}/Wan2.2-TI2V-5B-GGUF/Wan2.2-TI2V-5B-{{quant}}.gguf"}
TINY_GGUF = "tiny_wan_a14b_gguf"
"""The tiny GGUF twins' folder in the model cache (``bot.core.tiny.gguf``): ``t2v/`` and ``i2v/``
laid out as QuantStack's repos."""

# HunyuanVideo 1.5 480p (hunyuanvideo-community's diffusers conversions; the id diffusers'
# docstring names, ``HunyuanVideo-1.5-480p_t2v`` without ``-Diffusers-``, does not exist): an
# 8.3B MMDiT, Qwen2.5-VL-7B's text model and a ByT5 glyph encoder, a 32-channel VAE compressing
# 16x in space and 4x in time (sizes in steps of 16). The recipe is diffusers'
# scripts/convert_hunyuan_video1_5_to_diffusers.py, which writes each repo's scheduler and guider:
# 480p: FlowMatchEuler at shift 5.0, ClassifierFreeGuidance at 6.0; the pipeline's defaults: 121
# frames, 50 steps; the 16:9 size at its 480p target (640x640 pixels' worth of patches): 848x480.
# HunyuanVideo-1.5's own generate.py: 121 frames (5 s at 24 fps). Guidance is the pipeline's
# ``guider``, not a call argument (diffusers' HunyuanVideo-1.5 doc: ``pipe.guider.new(...)``).
_HUNYUAN15_RULES: dict[str, Any] = {
    "family": "hunyuan_video15",
    "min_size": 256,
    "max_size": 1280,
    "size_multiple": 16,
    "frames": FrameRule(5, 121, step=4, offset=1),
    "steps": Range(4, 100),
    "default_frames": 121,
    "default_fps": 24,
    "default_steps": 50,
    "default_guidance": 6.0,
    "default_scheduler": "flow_euler",
    "schedulers": ("flow_euler",),
    "scheduler_config": {"shift": 5.0},
    # A draft without its partner (the step-distilled model animates pictures only) runs a
    # quarter of the steps with TaylorSeer: First Block Cache does not take this transformer.
    "draft_cache": "taylorseer",
}
_HUNYUAN15_PARAMS: dict[str, float] = {
    "transformer": 8326.6,
    "text_encoder": 7070.6,  # Qwen2.5-VL-7B-Instruct's language model
    "text_encoder_2": 217.7,  # ByT5-small encoder (Glyph-SDXL-v2 weights)
    "vae": 1260.6,
}
_SIGLIP = 428.2  # FLUX.1-Redux-dev's SigLIP so400m vision tower (the I2V repos' image encoder)
# The 480p I2V step-distilled checkpoint (HunyuanVideo-1.5's run script: "step distilled model
# for 480p I2V, recommended 8 or 12 steps"; its diffusers repo ...-480p_i2v_step_distilled:
# meanflow timesteps, guider 1.0, shift 7.0 per the conversion script).
_HUNYUAN15_STEP_DISTILLED: dict[str, Any] = {
    **_HUNYUAN15_RULES,
    "steps": Range(2, 16),
    "default_steps": 12,
    "default_guidance": 1.0,
    "guidance": Range(1.0, 2.0),
    "scheduler_config": {"shift": 7.0},
    "image_to_video": True,
    "image_only": True,
    "draft_steps": 8,
    "draft_cache": "off",
}

# LTX-2 (Lightricks/LTX-2, the 19B audio-video DiT in diffusers form): one pass makes the picture
# and its sound (an audio stream denoised beside the video, decoded by the audio VAE and vocoder).
# The recipe is Lightricks' own (ltx-pipelines utils/constants.py, LTX_2_PARAMS): 121 frames at 24
# fps, 40 steps, a multimodal guider per stream: video CFG 3.0, audio CFG 7.0, STG 1.0 at block 29,
# modality guidance 3.0, rescale 0.7; the 2.0 checkpoints take the legacy cross-modality timestep
# (diffusers: ``use_cross_timestep=False`` for LTX-2.0). It runs one stage at the size asked
# (ltx-pipelines' ti2vid_one_stage); sizes in steps of 32 (the VAE's 32x), 8k+1 frames.
_LTX2_RULES: dict[str, Any] = {
    "family": "ltx2",
    "sound": True,
    "min_size": 256,
    "max_size": 1536,
    "size_multiple": 32,
    "frames": FrameRule(9, 257, step=8, offset=1),
    "default_frames": 121,
    "default_fps": 24,
    "default_scheduler": "flow_euler",
    "schedulers": ("flow_euler",),
    "image_to_video": True,
    # LTX2ConditionPipeline over the same modules (bot.core.pipelines.ltx2): the first picture at
    # latent index 0, the last at the last latent index; a clip's tail at index 0 to extend it,
    # its sound continued with the frames.
    "first_last_frame": True,
    "extends": "tail",
}
_LTX2_GUIDERS: dict[str, Any] = {
    "stg_scale": 1.0,
    "modality_scale": 3.0,
    "guidance_rescale": 0.7,
    "audio_guidance_scale": 7.0,
    "audio_stg_scale": 1.0,
    "audio_modality_scale": 3.0,
    "audio_guidance_rescale": 0.7,
    "spatio_temporal_guidance_blocks": [29],
    "use_cross_timestep": False,
}
_LTX2: dict[str, Any] = {
    **_LTX2_RULES,
    "steps": Range(4, 100),
    "default_steps": 40,
    "default_guidance": 3.0,
    "call_options": _LTX2_GUIDERS,
}
# The distilled LTX-2.3 (diffusers/LTX-2.3-Distilled-Diffusers): Lightricks' DistilledPipeline
# (ltx-pipelines distilled.py) and diffusers' LTX-2 doc ("Distilled checkpoint generation"): stage 1
# at half the size on the 8 distilled sigmas, the x2 latent upsampler, stage 2 at the full size on
# the last 3 sigmas re-noised to the first of them, no guidance of any kind (CFG 1, no STG, no
# modality guidance); 2.3 conditions cross-attention on the other stream's timestep. The sigmas are
# used as they are (no dynamic shift): the scheduler's shift is turned off. Two stages need sizes
# in steps of 64. The upsampler is the 2.3 x2 one in diffusers form (its own repo, whose
# ``latent_upsampler/`` is fetched alone: its VAE is this model's own).
_LTX2_DISTILLED_CALL: dict[str, Any] = {
    "stg_scale": 0.0,
    "modality_scale": 1.0,
    "guidance_rescale": 0.0,
    "audio_guidance_scale": 1.0,
    "audio_stg_scale": 0.0,
    "audio_modality_scale": 1.0,
    "audio_guidance_rescale": 0.0,
    "spatio_temporal_guidance_blocks": None,
    "use_cross_timestep": True,
}
_LTX2_DISTILLED: dict[str, Any] = {
    **_LTX2_RULES,
    "size_multiple": 64,
    "steps": Range(8, 8),
    "default_steps": 8,
    "default_guidance": 1.0,
    "guidance": Range(1.0, 1.0),
    "scheduler_config": {"use_dynamic_shifting": False, "shift_terminal": None, "shift": 1.0},
    "call_options": _LTX2_DISTILLED_CALL,
    "draft_cache": "off",
}
_LTX23_UPSAMPLER = "dg845/LTX-2.3-Spatial-Upsampler-Diffusers"
_GEMMA3_12B = 12202.5  # Gemma 3 12B with its SigLIP tower, the LM head tied to the embeddings
_LTX2_PARAMS: dict[str, float] = {
    "transformer": 18876.2,
    "text_encoder": _GEMMA3_12B,
    "connectors": 1431.5,
    "vae": 1222.5,
    "audio_vae": 53.2,
    "vocoder": 55.6,
}
_LTX23_DISTILLED_PARAMS: dict[str, float] = {
    "transformer": 18988.8,  # 2.0's shape with 2.3's gated attention and modulated cross-attention
    "text_encoder": _GEMMA3_12B,
    "connectors": 3172.2,  # 8 layers a stream, per-modality projections
    "vae": 726.1,  # 2.3's video VAE (the conversion script's 2.3 config), smaller than 2.0's
    "audio_vae": 53.2,
    "vocoder": 128.5,  # the vocoder with its bandwidth extension to 48 kHz
    "latent_upsampler": 497.9,
}

# A soundtrack model (``role="soundtrack"``) scores a silent model's clip from its prompt, after
# the video, in the same GPU job (``bot.core.soundtrack``); it has no picture, so its picture
# fields are placeholders. Stable Audio Open 1.0: up to 47.55 s of 44.1 kHz stereo, its card's
# 100 steps at guidance 7 (diffusers' StableAudioPipeline docs and the model card).
_SOUNDTRACK: dict[str, Any] = {
    "family": "stable_audio",
    "role": "soundtrack",
    "native_width": 1,
    "native_height": 1,
    "min_size": 1,
    "default_frames": 1,
    "steps": Range(1, 200),
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
            parameters=_SD15_PARAMS,
            upscaler="zeroscope_v2_xl",
            scheduler_config=_ANIMATEDIFF_SCHEDULER,
            draft_model="animatediff_lightning",
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
            parameters=_MODELSCOPE_PARAMS,
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
            parameters=_MODELSCOPE_PARAMS,
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
            parameters=_MODELSCOPE_PARAMS,
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
            parameters={"transformer": 1923.4, "text_encoder": _T5_XXL, "vae": 419.2},
            speed="5 s of 768x512 video in about 2 s on an H100 (paper); real time or better",
            memory_advice="8-12 GB: cpu_offload (or group_offload) plus vae_tiling; "
            "layerwise_casting keeps the transformer in fp8",
            description="Fast DiT video model: 768x512 at 24 fps, text or image to video.",
        ),
        ModelSpec(
            **_LTX_DISTILLED,
            key="ltx_video_distilled",
            extends="tail",
            name="LTX-Video 0.9.7 distilled (13B, 8 steps)",
            source="Lightricks/LTX-Video-0.9.7-distilled",
            native_width=768,
            native_height=512,
            min_size=256,
            max_size=1280,
            frames=FrameRule(9, 257, step=8, offset=1),
            steps=Range(2, 16),
            default_frames=121,
            vram_gb=32,
            parameters={"transformer": 13042.6, "text_encoder": _T5_XXL, "vae": 935.0},
            speed="step-distilled: 8 steps without guidance instead of 40 with it",
            memory_advice="24 GB: cpu_offload plus vae_tiling; 12 GB: group_offload and "
            "layerwise_casting",
            description="Step-distilled LTX-Video 13B: 8 steps, no guidance, text or image to video.",
        ),
        ModelSpec(
            **_WAN21_RULES,
            key="wan2_1_1_3b",
            name="Wan 2.1 T2V 1.3B",
            source="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
            native_width=832,
            native_height=480,
            restyles=True,
            cache_settings={
                "mag": {"mag_ratios": _WAN21_1_3B_MAG, "threshold": 0.12, "max_skip_steps": 2}
            },
            vram_gb=16,
            parameters={"transformer": 1419.0, "text_encoder": _UMT5_XXL, "vae": _WAN21_VAE},
            speed="about 4 min per 5 s 480p clip on an RTX 4090 unoptimised (card)",
            memory_advice="8 GB: cpu_offload (about 8.2 GB peak, card) or group_offload, "
            "plus vae_tiling",
            description="Small Wan 2.1: 832x480, 81 frames at 16 fps; runs on 8 GB cards.",
        ),
        ModelSpec(
            **_WAN21_RULES,
            key="wan2_1_vace_1_3b",
            extends="vace",
            name="Wan 2.1 VACE 1.3B (extends clips)",
            source="Wan-AI/Wan2.1-VACE-1.3B-diffusers",
            # Wan2.1-VACE-1.3B is a 480p model (its card); 81 frames at 16 fps, UniPC at shift
            # 3.0 and guidance 5.0 as Wan 2.1 T2V 1.3B, whose network it extends.
            native_width=832,
            native_height=480,
            vram_gb=16,
            # 1419.0M of Wan 2.1 1.3B plus 15 VACE blocks: 2154.0M, WanVACETransformer3DModel
            # built on the meta device from the conversion's config (vace_layers 0, 2, ..., 28).
            parameters={"transformer": 2154.0, "text_encoder": _UMT5_XXL, "vae": _WAN21_VAE},
            speed="as Wan 2.1 T2V 1.3B, with a VACE block beside every other layer",
            memory_advice="8 GB: cpu_offload or group_offload, plus vae_tiling",
            description="Wan 2.1 VACE: continues a clip from its last frames (the tail as masked "
            "context), 832x480 at 16 fps.",
        ),
        ModelSpec(
            **_WAN21_RULES,
            key="wan2_1_14b",
            name="Wan 2.1 T2V 14B",
            source="Wan-AI/Wan2.1-T2V-14B-Diffusers",
            native_width=1280,
            native_height=720,
            draft_model="wan2_1_14b_lightx2v",
            restyles=True,
            # 14B parameters in bf16 (about 28.6 GB) plus the umt5-xxl encoder (about 11.4 GB).
            vram_gb=44,
            parameters={"transformer": 14288.5, "text_encoder": _UMT5_XXL, "vae": _WAN21_VAE},
            speed="50 steps with guidance; a draft runs the lightx2v LoRA's 4 without",
            memory_advice="24 GB: cpu_offload plus vae_tiling; 16 GB: group_offload and "
            "layerwise_casting",
            description="Large Wan 2.1: 1280x720 or 832x480, 81 frames at 16 fps.",
        ),
        ModelSpec(
            **{**_WAN21_RULES, **_LIGHTX2V_RECIPE},
            key="wan2_1_14b_lightx2v",
            name="Wan 2.1 T2V 14B + lightx2v 4-step LoRA",
            source="Wan-AI/Wan2.1-T2V-14B-Diffusers",
            lora_source=f"{_LIGHTX2V_REPO}/{_LIGHTX2V_T2V_FILE}",
            native_width=1280,
            native_height=720,
            vram_gb=44,
            parameters={"transformer": 14288.5, "text_encoder": _UMT5_XXL, "vae": _WAN21_VAE},
            speed="step- and guidance-distilled: 4 transformer passes instead of 100",
            memory_advice="as Wan 2.1 T2V 14B; the LoRA is fused at load and adds nothing after",
            description="Wan 2.1 14B with lightx2v's distillation LoRA: 4 steps, no guidance.",
        ),
        ModelSpec(
            **_WAN22_RULES,
            key="wan2_2_ti2v_5b",
            extends="last_frame",
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
            parameters={"transformer": 4999.8, "text_encoder": _UMT5_XXL, "vae": 704.7},
            gguf_files=_GGUF_TI2V_5B,
            speed="a 720p 5 s clip in under 9 min on an RTX 4090 (card)",
            memory_advice="24 GB: cpu_offload plus vae_tiling; 12 GB: group_offload and "
            "layerwise_casting",
            description="Wan 2.2 text- and image-to-video at 1280x704, 121 frames at 24 fps.",
        ),
        ModelSpec(
            **_WAN22_A14B_T2V,
            key="wan2_2_t2v_a14b",
            name="Wan 2.2 T2V A14B (two 14B experts)",
            source="Wan-AI/Wan2.2-T2V-A14B-Diffusers",
            draft_model="wan2_2_t2v_a14b_lightx2v",
            gguf_files=_GGUF_A14B_T2V,
            speed="40 guided steps, 2 experts taking turns; a draft runs lightx2v's 4 unguided",
            memory_advice="40 GB: cpu_offload plus vae_tiling (one expert on the GPU at a time); "
            "24 GB: group_offload and layerwise_casting",
            description="Wan 2.2 A14B text-to-video: 1280x720 or 832x480, 81 frames at 16 fps.",
        ),
        ModelSpec(
            **{**_WAN22_A14B_T2V, **_LIGHTX2V_22_RECIPE},
            key="wan2_2_t2v_a14b_lightx2v",
            name="Wan 2.2 T2V A14B + lightx2v 4-step LoRAs",
            source="Wan-AI/Wan2.2-T2V-A14B-Diffusers",
            lora_source=_LIGHTX2V_22_T2V,
            speed="step- and guidance-distilled: 4 expert passes instead of 80",
            memory_advice="as Wan 2.2 T2V A14B; the LoRAs are fused at load and add nothing after",
            description="Wan 2.2 T2V A14B with lightx2v's high/low-noise LoRAs: 4 steps, no CFG.",
        ),
        ModelSpec(
            **_WAN22_A14B_I2V,
            key="wan2_2_i2v_a14b",
            extends="last_frame",
            name="Wan 2.2 I2V A14B (two 14B experts, pictures only)",
            source="Wan-AI/Wan2.2-I2V-A14B-Diffusers",
            draft_model="wan2_2_i2v_a14b_lightx2v",
            gguf_files=_GGUF_A14B_I2V,
            speed="40 guided steps, 2 experts taking turns; a draft runs lightx2v's 4 unguided",
            memory_advice="40 GB: cpu_offload plus vae_tiling (one expert on the GPU at a time); "
            "24 GB: group_offload and layerwise_casting",
            description="Wan 2.2 A14B image-to-video: animates a picture, 81 frames at 16 fps.",
        ),
        ModelSpec(
            **{**_WAN22_A14B_I2V, **_LIGHTX2V_22_RECIPE},
            key="wan2_2_i2v_a14b_lightx2v",
            extends="last_frame",
            name="Wan 2.2 I2V A14B + lightx2v 4-step LoRAs (pictures only)",
            source="Wan-AI/Wan2.2-I2V-A14B-Diffusers",
            lora_source=_LIGHTX2V_22_I2V,
            speed="step- and guidance-distilled: 4 expert passes instead of 80",
            memory_advice="as Wan 2.2 I2V A14B; the LoRAs are fused at load and add nothing after",
            description="Wan 2.2 I2V A14B with lightx2v's 4-step LoRAs: 4 steps, no CFG.",
        ),
        ModelSpec(
            **_WAN21_FLF2V,
            key="wan2_1_flf2v_14b",
            name="Wan 2.1 FLF2V 14B (first and last frame, 720p)",
            source="Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers",
            # The transformer in bf16 (32.8 GB), umt5-xxl (11.4 GB), CLIP ViT-H (1.3 GB), the job.
            vram_gb=52,
            parameters={
                "transformer": _WAN21_FLF2V_TRANSFORMER,
                "text_encoder": _UMT5_XXL,
                "image_encoder": _CLIP_VIT_H,
                "vae": _WAN21_VAE,
            },
            speed="50 guided steps of one 14B transformer at 1280x720",
            memory_advice="as Wan 2.1 T2V 14B: 24 GB: cpu_offload plus vae_tiling; 16 GB: "
            "group_offload and layerwise_casting",
            description="Wan 2.1 first-last-frame: a video from a start picture to an end one.",
        ),
        ModelSpec(
            **_HUNYUAN15_RULES,
            key="hunyuan_video15_480p",
            name="HunyuanVideo 1.5 480p (8.3B)",
            source="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_t2v",
            image_source="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v",
            image_to_video=True,
            native_width=848,
            native_height=480,
            draft_model="hunyuan_video15_480p_i2v_distilled",
            # Weights in bf16 (31.4 GB) and the 121-frame job; a picture loads the I2V
            # transformer and its SigLIP encoder (16.3 GB more).
            vram_gb=40,
            image_vram_gb=16,
            parameters={
                **_HUNYUAN15_PARAMS,
                "image_transformer": 8326.6,
                "image_encoder": _SIGLIP,
            },
            speed="50 guided steps; a picture's draft runs the step-distilled I2V model's 12",
            memory_advice="24 GB: cpu_offload plus vae_tiling (card: 14 GB with offloading); "
            "16 GB: group_offload and layerwise_casting",
            description="HunyuanVideo 1.5 at 480p: 848x480, 121 frames at 24 fps; text or picture.",
        ),
        ModelSpec(
            **_HUNYUAN15_STEP_DISTILLED,
            key="hunyuan_video15_480p_i2v_distilled",
            name="HunyuanVideo 1.5 480p I2V step-distilled (pictures only)",
            source="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v_step_distilled",
            native_width=848,
            native_height=480,
            vram_gb=40,
            parameters={**_HUNYUAN15_PARAMS, "image_encoder": _SIGLIP},
            speed="step-distilled: 12 steps without guidance instead of 50 with it (card: 75% less "
            "time end to end on an RTX 4090)",
            memory_advice="as HunyuanVideo 1.5 480p",
            description="HunyuanVideo 1.5 480p image-to-video, step-distilled: 12 steps, no CFG.",
        ),
        ModelSpec(
            **_LTX2,
            key="ltx2",
            name="LTX-2 (19B, picture and sound)",
            source="Lightricks/LTX-2",
            native_width=768,
            native_height=512,
            draft_model="ltx2_distilled",
            # Weights in bf16: the 19B transformer (37.8 GB), Gemma 3 12B (24.4 GB), connectors
            # and VAEs (5.5 GB), and the 121-frame job.
            vram_gb=74,
            parameters=_LTX2_PARAMS,
            speed="40 steps, each a guided pass plus STG and modality passes; a draft runs the "
            "distilled 2.3's 8 + 3",
            memory_advice="80 GB: fp8_storage (57 GB); 48 GB: torchao fp8/int8 of transformer and "
            "Gemma (46 GB) or fp8_model_offload (29 GB); 24 GB and less: group_offload (8 GB, "
            "49 GB of RAM)",
            description="LTX-2: 768x512 video with its own sound at 24 fps, text or picture.",
        ),
        ModelSpec(
            **_LTX2_DISTILLED,
            key="ltx2_distilled",
            name="LTX-2.3 distilled (22B, two stages, picture and sound)",
            source="diffusers/LTX-2.3-Distilled-Diffusers",
            adapter_source=_LTX23_UPSAMPLER,
            native_width=768,
            native_height=512,
            vram_gb=74,
            parameters=_LTX23_DISTILLED_PARAMS,
            speed="8 unguided steps at half size, x2 latent upsampling, 3 at full size",
            memory_advice="as LTX-2 (80 GB: fp8_storage, 57 GB; 48 GB: fp8_model_offload, 27 GB; "
            "24 GB and less: group_offload, 6 GB and 53 GB of RAM); the upsampler adds 1 GB",
            description="Distilled LTX-2.3: half size, x2 latent upsample, short refine; sound.",
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
            parameters={"transformer": 1693.8, "text_encoder": _T5_XXL, "vae": 215.6},
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
            parameters={
                "transformer": 5570.3,
                "image_transformer": 5570.3,
                "text_encoder": _T5_XXL,
                "vae": 215.6,
            },
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
            parameters=_SD15_PARAMS,
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
            draft_model="tiny_lightning",
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
            cache_settings={
                "mag": {"mag_ratios": _TINY_LTX_MAG},
                "first_block": {"threshold": 0.2},
            },
            description="LTXPipeline with tiny random weights (text and image to video).",
        ),
        ModelSpec(
            **_LTX_DISTILLED,
            key="tiny_ltx_distilled",
            extends="tail",
            name="Tiny LTX-Video distilled (offline, random weights)",
            source="tiny_ltx_distilled",
            native_width=64,
            native_height=64,
            min_size=32,
            max_size=256,
            frames=FrameRule(9, 65, step=8, offset=1),
            steps=Range(1, 16),
            default_frames=9,
            upscaler="tiny_v2v",
            vram_gb=0,
            tiny=True,
            description="LTX-Video 0.9.7-style pipeline (timestep-conditioned VAE), tiny weights.",
        ),
        ModelSpec(
            **_WAN22_RULES,
            key="tiny_wan",
            extends="last_frame",
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
            draft_model="tiny_wan_lightx2v",
            vram_gb=0,
            tiny=True,
            cache_settings={
                "mag": {"mag_ratios": _TINY_WAN_MAG},
                "first_block": {"threshold": 0.2},
            },
            description="WanPipeline with tiny random weights (text and image to video).",
        ),
        ModelSpec(
            **{**_WAN22_RULES, **_LIGHTX2V_RECIPE},
            key="tiny_wan_lightx2v",
            name="Tiny Wan + a lightx2v-format 4-step LoRA (offline, random weights)",
            source="tiny_wan_lightx2v/base",
            lora_source=f"tiny_wan_lightx2v/lora/{TINY_LIGHTX2V_FILE}",
            native_width=64,
            native_height=64,
            min_size=32,
            max_size=256,
            frames=FrameRule(5, 41, step=4, offset=1),
            default_frames=9,
            default_fps=16,
            upscaler="tiny_v2v",
            vram_gb=0,
            tiny=True,
            description="Tiny Wan with a random LoRA in lightx2v's key format, fused at load.",
        ),
        ModelSpec(
            **{**_WAN22_A14B_T2V, **_TINY_SIZES, "steps": Range(1, 50)},
            key="tiny_wan_a14b",
            name="Tiny Wan 2.2 A14B-style T2V (two experts; offline, random weights)",
            source="tiny_wan_a14b",
            draft_model="tiny_wan_a14b_lightx2v",
            gguf_files={
                name: f"{TINY_GGUF}/t2v/{path.split('/', 2)[2]}"
                for name, path in _GGUF_A14B_T2V.items()
            },
            tiny=True,
            description="WanPipeline with two tiny experts switched at boundary_ratio 0.875.",
        ),
        ModelSpec(
            **{**_WAN22_A14B_T2V, **_LIGHTX2V_22_RECIPE, **_TINY_SIZES},
            key="tiny_wan_a14b_lightx2v",
            name="Tiny Wan 2.2 A14B + lightx2v-format high/low LoRAs (offline, random weights)",
            source="tiny_wan_a14b_lightx2v/base",
            lora_source=f"tiny_wan_a14b_lightx2v/lora/{TINY_LIGHTX2V_22_PAIR}",
            tiny=True,
            description="Tiny two-expert Wan with a random LoRA pair fused into both experts.",
        ),
        ModelSpec(
            **{**_WAN22_A14B_I2V, **_TINY_SIZES, "steps": Range(1, 50)},
            key="tiny_wan_a14b_i2v",
            extends="last_frame",
            name="Tiny Wan 2.2 A14B-style I2V (two experts, pictures only; random weights)",
            source="tiny_wan_a14b_i2v",
            gguf_files={
                name: f"{TINY_GGUF}/i2v/{path.split('/', 2)[2]}"
                for name, path in _GGUF_A14B_I2V.items()
            },
            tiny=True,
            description="WanImageToVideoPipeline with two tiny 36-channel experts.",
        ),
        ModelSpec(
            **{**_WAN21_FLF2V, **_TINY_SIZES, "steps": Range(1, 50)},
            key="tiny_wan_flf2v",
            name="Tiny Wan 2.1 FLF2V (first and last frame; offline, random weights)",
            source="tiny_wan_flf2v",
            tiny=True,
            description="WanImageToVideoPipeline with a CLIP image encoder over two pictures.",
        ),
        ModelSpec(
            **{**_WAN21_RULES, **_TINY_SIZES, "steps": Range(1, 50)},
            key="tiny_wan_vace",
            extends="vace",
            name="Tiny Wan 2.1 VACE (extends clips; offline, random weights)",
            source="tiny_wan_vace",
            tiny=True,
            description="WanVACEPipeline with one VACE block: the tail as masked video context.",
        ),
        ModelSpec(
            **{**_HUNYUAN15_RULES, **_TINY_SIZES, "steps": Range(1, 50)},
            key="tiny_hunyuan15",
            name="Tiny HunyuanVideo 1.5 (offline, random weights)",
            source="tiny_hunyuan15/t2v",
            image_source="tiny_hunyuan15/i2v",
            image_to_video=True,
            draft_model="tiny_hunyuan15_i2v_distilled",
            tiny=True,
            description="HunyuanVideo15Pipeline (+ image-to-video) with tiny random weights.",
        ),
        ModelSpec(
            **{**_HUNYUAN15_STEP_DISTILLED, **_TINY_SIZES},
            key="tiny_hunyuan15_i2v_distilled",
            name="Tiny HunyuanVideo 1.5 I2V step-distilled (pictures only; random weights)",
            source="tiny_hunyuan15_i2v_distilled",
            tiny=True,
            description="HunyuanVideo 1.5 I2V with a meanflow transformer, tiny random weights.",
        ),
        ModelSpec(
            **{**_LTX2, **_TINY_SIZES, "frames": FrameRule(9, 41, step=8, offset=1)},
            key="tiny_ltx2",
            name="Tiny LTX-2 (picture and sound; offline, random weights)",
            source="tiny_ltx2",
            draft_model="tiny_ltx2_distilled",
            tiny=True,
            description="LTX2Pipeline (+ image-to-video) with tiny random weights and sound.",
        ),
        ModelSpec(
            **{
                **_LTX2_DISTILLED,
                **_TINY_SIZES,
                "frames": FrameRule(9, 41, step=8, offset=1),
                "steps": Range(8, 8),
                "default_steps": 8,
                "min_size": 64,
            },
            key="tiny_ltx2_distilled",
            name="Tiny LTX-2.3 distilled, two stages (offline, random weights)",
            source="tiny_ltx2_distilled/base",
            adapter_source="tiny_ltx2_distilled/upsampler",
            tiny=True,
            description="Two-stage LTX-2 with a tiny x2 latent upsampler and sound.",
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
            cache_settings={
                "mag": {"mag_ratios": _TINY_COGVIDEOX_MAG},
                "first_block": {"threshold": 0.5},
            },
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
        ModelSpec(
            **_SOUNDTRACK,
            key="stable_audio_open",
            name="Stable Audio Open 1.0 (soundtracks for silent models)",
            source="stabilityai/stable-audio-open-1.0",
            # fp16 weights 2.7 GB (1347.7M parameters) plus decoding 47 s of 44.1 kHz stereo
            # through the Oobleck decoder (estimated, not measured).
            vram_gb=5.0,
            working_gb=2.3,
            default_steps=100,  # the card's steps and guidance
            default_guidance=7.0,
            # Built on the meta device from bench/model_configs/stable_audio_open (the DiT and the
            # autoencoder match the paper's 1057M and 156M; T5-base's encoder is 109.6M plus its
            # 24.7M embedding).
            parameters={
                "transformer": 1056.9,
                "vae": 156.1,
                "text_encoder": 134.3,
                "projection_model": 0.4,
            },
            speed="one track a job, after the video",
            memory_advice="on the video's GPU after the video; offloaded with it",
            description="Text-to-audio: an ambient track from the prompt, as long as the clip.",
        ),
        ModelSpec(
            **_SOUNDTRACK,
            key="tiny_stable_audio",
            name="Tiny Stable Audio (offline, random weights)",
            source="tiny_stable_audio",
            vram_gb=0,
            default_steps=4,
            tiny=True,
            description="StableAudioPipeline with tiny random weights: the tiny soundtrack model.",
        ),
    )
}


def image_to_video_models() -> list[str]:
    """The generators that can animate a picture."""
    return [k for k, s in REGISTRY.items() if s.image_to_video and s.role == "generator"]


def restyle_models() -> list[str]:
    """The models that can restyle a video (``ModelSpec.restyles``)."""
    return [k for k, s in REGISTRY.items() if s.restyles]


def spec_able_to(
    key: str, ability: Literal["extends", "restyles"], doing: str, able: list[str]
) -> ModelSpec:
    """The spec under ``key`` when it has ``ability`` (the ``ModelSpec`` field saying it can);
    any other is refused in one line that it cannot ``doing``, naming ``able``, those that can:
    one wording for every ability a job on a video asks of its model."""
    spec = get_spec(key)
    if not getattr(spec, ability):
        raise InvalidParameterError(
            "model", f"{spec.key} cannot {doing}; models that can: {', '.join(able)}"
        )
    return spec


def first_last_frame_models() -> list[str]:
    """The generators that can pin a video's first and last frames (real ones first: a member
    is told of these)."""
    able = [k for k, s in REGISTRY.items() if s.first_last_frame and s.role == "generator"]
    return sorted(able, key=lambda k: REGISTRY[k].tiny)


def text_to_video_models() -> list[str]:
    """The generators that run from a prompt alone (all but the picture-only ones)."""
    return [k for k, s in REGISTRY.items() if not s.image_only and s.role == "generator"]


def get_spec(key: str) -> ModelSpec:
    """The spec registered under ``key``; an unknown key lists the known ones."""
    spec = REGISTRY.get(key.strip().lower()) if isinstance(key, str) else None
    if spec is None:
        raise UnknownModelError(f"unknown model {key!r}; known: {', '.join(REGISTRY)}")
    return spec


@dataclass(frozen=True)
class Bounds:
    """The widest values any generator accepts: what a form can offer before a model is chosen
    (Discord's option ranges, the CLI's help). Each model's own rules are then checked by
    ``GenerationParams``, which names the nearest valid values."""

    frames: tuple[int, int]
    steps: tuple[int, int]
    size: tuple[int, int]
    guidance: tuple[float, float]


def generator_bounds() -> Bounds:
    generators = [spec for spec in REGISTRY.values() if spec.role == "generator"]
    return Bounds(
        frames=(min(s.frames.low for s in generators), max(s.frames.high for s in generators)),
        steps=(
            int(min(s.steps.low for s in generators)),
            int(max(s.steps.high for s in generators)),
        ),
        size=(min(s.min_size for s in generators), max(s.max_size for s in generators)),
        guidance=(
            min(s.guidance.low for s in generators),
            max(s.guidance.high for s in generators),
        ),
    )
