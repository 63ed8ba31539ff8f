"""GPU speed: every registry model at its native job, built at full size from the real component
configs (``bench/model_configs``) with random weights on the device, timed through
``GenerationEngine`` on a ``ModelManager`` exactly as the bot runs it (``ModelManager.adopt`` hands
the in-memory pipeline to the manager, which places it and applies the speed options), and compared
in the same run with the model card's recipe (the card's dtype, ``pipe.to("cuda")``, defaults).

Per model it prints seconds per video (median of ``--runs`` after ``--warmup`` runs, CUDA
synchronised), the split between text encoding, denoising and VAE decode, peak VRAM, the FLOPs the
job must do and the TFLOP/s achieved against them, that as a share of the bf16 matmul peak measured
here, the card recipe's time and the ratio card / ours, and how far the two outputs are apart on the
same seed.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on the meta device: the real
pipeline class runs the job on the CPU with every network replaced by a stand-in that runs the
meta-device module (built from the same configs, no memory) on meta copies of its inputs and hands
back zeros of the right shape. So the count covers exactly the calls the pipeline makes (the
denoiser once per step, twice the batch with classifier-free guidance, the text encoder, the VAE
decode and, for the upscaler, the VAE encode), and each distinct call shape is counted once.

Not a test: timings depend on the machine. Usage::

    python bench/gpu_speed.py                         # every model that has configs (GPU)
    python bench/gpu_speed.py --models zeroscope_v2_576w,animatediff --runs 5
    python bench/gpu_speed.py --flops-only            # FLOP floors only (no GPU needed)
    python bench/gpu_speed.py --speed compile=off     # measure one switch (bot.core.speed)
    python bench/gpu_speed.py --caches --models wan2_1_1_3b   # each cache, regional vs full
                                                      # compile and the draft, against ours
    python bench/gpu_speed.py --tiny --models zeroscope_v2_576w   # the whole harness, CPU, seconds
"""

from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import inspect
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from bot.core.engine import DEFAULT_UPSCALE_STRENGTH, GenerationEngine  # noqa: E402
from bot.core.manager import ManagerOptions, ModelManager  # noqa: E402
from bot.core.params import GenerationParams  # noqa: E402
from bot.core.pipelines import adapter_for  # noqa: E402
from bot.core.pipelines.base import DenoiseRequest, to_uint8_frames  # noqa: E402
from bot.core.pipelines.transformer_video import set_guidance  # noqa: E402
from bot.core.progress import JobControl  # noqa: E402
from bot.core.registry import GUIDANCE_2_RATIO, REGISTRY, ModelSpec, guidance_2_of  # noqa: E402
from bot.core.result import GenerationResult  # noqa: E402
from bot.core.speed import SpeedOptions, speed_report  # noqa: E402
from bot.logs import quiet_libraries  # noqa: E402

CONFIG_ROOT = Path(__file__).resolve().parent / "model_configs"
BESIDE_INDEX = ("motion_adapter", "latent_upsampler")
"""Config folders of networks a model uses that its ``model_index.json`` does not name: the
AnimateDiff motion adapter (a component of the pipeline class, not of SD 1.5's index) and the
distilled LTX-2.3's x2 latent upsampler (its own repo; the adapter sets it on the pipeline)."""
PIPELINE_PACKAGES = ("diffusers.pipelines.ltx2",)
"""Where diffusers keeps networks it does not export at the top level."""
PROMPT = "an astronaut riding a horse on mars, cinematic, golden hour"
SEED = 7
FLOOR_TFLOPS = 790.0
"""Dense bf16 matmul throughput an H100 SXM sustains in practice: the issue's floor."""
H100_SPEC_TFLOPS = 989.4
"""H100 SXM dense bf16 tensor-core peak on the data sheet."""
ABLATIONS = (
    "compile",
    "cuda_graphs",
    "fuse_qkv",
    "channels_last",
    "attention",
    "cudnn_benchmark",
    "decode_chunk",
    "vae_dtype",
)
"""``--ablate``: each switch turned off on its own, the rest as given."""
AGREE_MEAN_LEVELS = 2.0
"""Outputs "agree" when their mean absolute difference is at most this many 8-bit levels."""

SEED_JOBS: dict[str, dict[str, int]] = {
    "zeroscope_v2_576w": {"width": 576, "height": 320, "num_frames": 24, "num_inference_steps": 25},
    "animatediff": {"width": 512, "height": 512, "num_frames": 16, "num_inference_steps": 25},
    "modelscope_t2v": {"width": 256, "height": 256, "num_frames": 16, "num_inference_steps": 25},
}
"""The seed's default jobs (issue 6). Every other model runs its registry defaults."""
UPSCALE_SOURCE = {"model": "zeroscope_v2_576w", "width": 576, "height": 320, "num_frames": 24}
"""The upscaler's job: a Zeroscope 576w video (24 frames of 576x320) upscaled to 1024x576 with the
upscaler's own steps at the engine's default strength (50 steps at 0.6: 30 run)."""

CARD_DTYPES: dict[str, str] = {
    "ltx_video": "bfloat16",
    "wan2_1_1_3b": "bfloat16",
    "wan2_2_ti2v_5b": "bfloat16",
    "cogvideox_5b": "bfloat16",
}
"""The dtype each model card loads in; the seed models' cards (and CogVideoX-2B's, Lightning's) use
float16. Wan's cards also keep the VAE in float32, which the spec's ``vae_dtype`` says too."""

FAMILY_PIPELINES = {
    "text_to_video": "TextToVideoSDPipeline",
    "video_to_video": "VideoToVideoSDPipeline",
    "animatediff": "AnimateDiffPipeline",
}
"""The classes the seed families' adapters load; newer families use model_index.json's."""

TINY_OVERRIDES: dict[str, dict[str, Any]] = {
    "UNet3DConditionModel": {
        "block_out_channels": [16, 16, 32, 32],
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "attention_head_dim": 4,
        "cross_attention_dim": 32,
    },
    "UNet2DConditionModel": {
        "block_out_channels": [16, 16, 32, 32],
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "attention_head_dim": 4,
        "cross_attention_dim": 32,
    },
    "MotionAdapter": {
        "block_out_channels": [16, 16, 32, 32],
        "motion_layers_per_block": 1,
        "motion_norm_num_groups": 8,
        "motion_num_attention_heads": 2,
    },
    "AutoencoderKL": {
        "block_out_channels": [8, 8, 16, 16],
        "layers_per_block": 1,
        "norm_num_groups": 4,
    },
    "CLIPTextModel": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "projection_dim": 32,
    },
    "T5EncoderModel": {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4},
    "UMT5EncoderModel": {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4},
    "LTXVideoTransformer3DModel": {
        "num_attention_heads": 2,
        "attention_head_dim": 8,
        "num_layers": 1,
        "cross_attention_dim": 16,
        "caption_channels": 32,
    },
    "AutoencoderKLLTXVideo": {
        "block_out_channels": [8, 8, 8, 8],
        "decoder_block_out_channels": [8, 16, 32],
        "layers_per_block": [1, 1, 1, 1, 1],
        "decoder_layers_per_block": [1, 1, 1, 1],
    },
    "WanTransformer3DModel": {
        "num_attention_heads": 2,
        "attention_head_dim": 12,
        "ffn_dim": 32,
        "num_layers": 1,
        "text_dim": 32,
        "freq_dim": 32,
    },
    "AutoencoderKLWan": {
        "base_dim": 8,
        "decoder_base_dim": 8,
        "dim_mult": [1, 2, 2, 2],
        "num_res_blocks": 1,
    },
    "CogVideoXTransformer3DModel": {
        "num_attention_heads": 2,
        "attention_head_dim": 16,
        "num_layers": 1,
        "time_embed_dim": 16,
        "text_embed_dim": 32,
    },
    "AutoencoderKLCogVideoX": {
        "block_out_channels": [8, 8, 8, 8],
        "layers_per_block": 1,
        "norm_num_groups": 4,
    },
    "HunyuanVideo15Transformer3DModel": {
        "num_attention_heads": 2,
        "attention_head_dim": 8,
        "num_layers": 1,
        "num_refiner_layers": 1,
        "text_embed_dim": 16,
        "text_embed_2_dim": 32,
        "image_embed_dim": 12,
        "rope_axes_dim": [2, 2, 4],
        "target_size": 64,
    },
    "AutoencoderKLHunyuanVideo15": {
        "block_out_channels": [8, 8, 16, 64, 64],
        "layers_per_block": 1,
    },
    "Qwen2_5_VLTextModel": {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 3,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
    },
    "SiglipVisionModel": {
        "hidden_size": 12,
        "intermediate_size": 24,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 54,
        "patch_size": 2,
    },
}
"""``--tiny``: each component's width and depth shrunk, everything that decides the pipeline's
wiring kept (block types, patch sizes, latent channels, compression ratios, text lengths)."""


# --- jobs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One video to time: a generation, or (``upscale``) an upscale of a source video."""

    key: str
    width: int
    height: int
    num_frames: int
    steps: int
    guidance: float
    scheduler: str
    fps: int
    upscale: bool = False
    source_size: tuple[int, int] = (0, 0)
    quality: str = "full"
    image: bool = False
    """A picture-only model's job (Wan 2.2 I2V A14B, HunyuanVideo 1.5's step-distilled I2V):
    it animates a seeded picture of the job's size."""

    @property
    def label(self) -> str:
        what = f"{self.width}x{self.height}x{self.num_frames}f {self.steps} steps"
        if self.upscale:
            ran = int(self.steps * DEFAULT_UPSCALE_STRENGTH)
            return f"{what} (strength {DEFAULT_UPSCALE_STRENGTH:g}: {ran} run)"
        return what

    def params(self) -> GenerationParams:
        return GenerationParams(
            prompt=PROMPT,
            model=self.key,
            width=self.width,
            height=self.height,
            num_frames=self.num_frames,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance,
            scheduler=self.scheduler,
            fps=self.fps,
            seed=SEED,
            quality=self.quality,
            image=str(picture_file(self.width, self.height)) if self.image else None,
            end_image=(
                str(picture_file(self.width, self.height))
                if REGISTRY[self.key].first_last_only
                else None
            ),
        )


def picture(width: int, height: int) -> Any:
    """The seeded picture an image job animates."""
    from PIL import Image

    rng = np.random.default_rng(SEED)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def picture_file(width: int, height: int) -> Path:
    """:func:`picture` as a PNG, for the engine's path (``GenerationParams.image``)."""
    path = Path(tempfile.gettempdir()) / f"videobot-bench-picture-{width}x{height}.png"
    if not path.is_file():
        picture(width, height).save(path)
    return path


def native_job(spec: ModelSpec, tiny: bool = False, scale: float = 1.0) -> Job:
    """The model's native job (the seed's for the seed models), or the smallest valid one."""
    if spec.role == "upscaler":
        return _upscale_job(spec, tiny)
    values: dict[str, Any] = {
        "width": spec.native_width,
        "height": spec.native_height,
        "num_frames": spec.default_frames,
        "num_inference_steps": spec.default_steps,
    }
    values.update(SEED_JOBS.get(spec.key, {}))
    if tiny:
        values.update(
            width=_fit_size(spec, 64),
            height=_fit_size(spec, 64),
            num_frames=spec.frames.low,
            num_inference_steps=2,
        )
    elif scale != 1.0:
        values.update(
            width=_fit_size(spec, values["width"] * scale),
            height=_fit_size(spec, values["height"] * scale),
        )
    return Job(
        key=spec.key,
        width=int(values["width"]),
        height=int(values["height"]),
        num_frames=int(values["num_frames"]),
        steps=int(values["num_inference_steps"]),
        guidance=spec.default_guidance,
        scheduler=spec.default_scheduler,
        fps=spec.default_fps,
        image=spec.image_only,
    )


def _fit_size(spec: ModelSpec, value: float) -> int:
    multiple = spec.size_multiple
    value = max(value, spec.min_size)
    return int(min(spec.max_size, math.ceil(value / multiple) * multiple))


def _upscale_job(spec: ModelSpec, tiny: bool) -> Job:
    from bot.core.engine import upscale_size

    source = REGISTRY[UPSCALE_SOURCE["model"]]
    width, height = UPSCALE_SOURCE["width"], UPSCALE_SOURCE["height"]
    frames = UPSCALE_SOURCE["num_frames"]
    steps = spec.default_steps  # the upscaler's own recipe, as the engine runs it
    if tiny:
        width, height, frames, steps = 128, 72, source.frames.low, 4
    target_w, target_h = upscale_size(spec, width, height)
    return Job(
        key=spec.key,
        width=target_w,
        height=target_h,
        num_frames=frames,
        steps=steps,
        guidance=spec.default_guidance,
        scheduler=source.default_scheduler,
        fps=source.default_fps,
        upscale=True,
        source_size=(width, height),
    )


@contextmanager
def tiny_registry(keys: list[str]) -> Iterator[None]:
    """``--tiny`` runs toy jobs through the real engine, whose checks would refuse them: for the
    run, the models (and the upscaler's source) accept sizes from 32 pixels and 1 step, and an
    upscaler without a fixed factor upscales to 256x144 instead of its native size."""
    from bot.core.rules import Range

    saved = {}
    for key in {*keys, UPSCALE_SOURCE["model"]}:
        spec = saved[key] = REGISTRY[key]
        changes: dict[str, Any] = {"min_size": 32, "steps": Range(1, spec.steps.high)}
        if spec.role == "upscaler" and not spec.upscale_factor:
            changes.update(native_width=256, native_height=144)
        REGISTRY[key] = replace(spec, **changes)
    try:
        yield
    finally:
        REGISTRY.update(saved)


def source_video(job: Job) -> GenerationResult:
    """What the upscaler is given: a seeded noise video from the source model, as a result."""
    from PIL import Image

    rng = np.random.default_rng(SEED)
    width, height = job.source_size
    frames = rng.integers(0, 256, (job.num_frames, height, width, 3), dtype=np.uint8)
    source = REGISTRY[UPSCALE_SOURCE["model"]]
    params = GenerationParams(
        prompt=PROMPT,
        model=source.key,
        width=width,
        height=height,
        num_frames=job.num_frames,
        num_inference_steps=job.steps,
        seed=SEED,
    )
    return GenerationResult(
        images=[Image.fromarray(f) for f in frames],
        metadata={"model": source.key},
        generation_time=0.0,
        seed_used=SEED,
        params=params,
        fps=float(job.fps),
    )


# --- configs and building ------------------------------------------------------------------------


def config_keys() -> list[str]:
    return sorted(p.name for p in CONFIG_ROOT.iterdir() if (p / "model_index.json").is_file())


def default_models() -> list[str]:
    """Every generator and upscaler in the registry that has configs here."""
    return [k for k, s in REGISTRY.items() if not s.tiny and config_folder(k) is not None]


def config_folder(key: str) -> Path | None:
    """The configs ``key`` is built from: its own folder, or for a model whose LoRA is fused at
    load (``wan2_1_14b_lightx2v``) its base model's, since the fused weights keep every shape;
    the row then times the base architecture at the partner's recipe (steps, guidance)."""
    folder = CONFIG_ROOT / key
    if (folder / "model_index.json").is_file():
        return folder
    spec = REGISTRY.get(key)
    if spec is not None and spec.lora_source is not None:
        base = [k for k, s in REGISTRY.items() if s.source == spec.source and not s.lora_source]
        return config_folder(base[0]) if base else None
    return None


def load_configs(key: str) -> dict[str, Any]:
    folder = config_folder(key)
    if folder is None:
        raise SystemExit(f"no configs for {key!r} under {CONFIG_ROOT} (have: {config_keys()})")
    index = json.loads((folder / "model_index.json").read_text())
    components: dict[str, dict[str, Any]] = {}
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list) or entry[0] is None:
            continue
        sub = folder / name
        for file in (
            "config.json",
            "scheduler_config.json",
            "tokenizer_config.json",
            "guider_config.json",
            "preprocessor_config.json",
        ):
            if (sub / file).is_file():
                components[name] = json.loads((sub / file).read_text())
                break
    extra = {k: v for k, v in index.items() if not k.startswith("_") and not isinstance(v, list)}
    for beside in BESIDE_INDEX:  # networks the model uses that its index does not name
        path = folder / beside / "config.json"
        if path.is_file():
            components[beside] = json.loads(path.read_text())
    return {"index": index, "components": components, "extra": extra}


def _component_class(config: dict[str, Any]) -> tuple[Any, bool]:
    """(class, is_transformers_model). A diffusers class is looked up at the top level, then in the
    pipeline packages that keep their own networks (LTX-2's connectors, vocoders, upsampler)."""
    import importlib

    import diffusers
    import transformers

    if "_class_name" in config:
        name = config["_class_name"]
        for package in ("diffusers", *PIPELINE_PACKAGES):
            found = getattr(importlib.import_module(package), name, None)
            if found is not None:
                return found, False
        return getattr(diffusers, name), False  # the AttributeError names the class
    return getattr(transformers, config["architectures"][0]), True


def component_config(config: dict[str, Any], tiny: bool) -> dict[str, Any]:
    config = {k: v for k, v in config.items() if not k.startswith("_note")}
    if tiny:
        name = config.get("_class_name") or config["architectures"][0]
        config.update(TINY_OVERRIDES.get(name, {}))
    return config


def build_module(config: dict[str, Any], device: Any, dtype: torch.dtype, seed: int) -> Any:
    """One network from its config with seeded random weights, made on ``device`` (the meta device
    allocates nothing) in float32, then cast, so the card and ours share the very same weights."""
    import transformers

    cls, is_transformers = _component_class(config)
    torch.manual_seed(seed)
    with torch.device(device):
        if is_transformers:
            fields = {k: v for k, v in config.items() if k not in ("architectures",)}
            module = cls(transformers.AutoConfig.for_model(**fields))
        else:
            module = cls.from_config(config)
    return module.to(dtype).eval()


def build_tokenizer(config: dict[str, Any]) -> Any:
    """Timing needs the real tokenizer call and its max length, not the real vocabulary: CLIP's
    BPE tokenizer as the tiny models build it, or the T5-style one of ``bot.core.tiny.dit``; token
    ids stay far below every encoder's vocabulary size."""
    max_length = int(config["model_max_length"])
    if config["tokenizer_class"].startswith("Gemma"):
        from bot.core.tiny.ltx2 import gemma_tokenizer

        tokenizer = gemma_tokenizer()  # LTX-2: the pipelines pad to max_sequence_length (1024)
        tokenizer.model_max_length = max_length
        return tokenizer
    if config["tokenizer_class"].startswith("Qwen2"):
        from bot.core.tiny.newer import qwen_tokenizer

        return qwen_tokenizer()  # the pipeline pads to its own 1000 + 108 tokens
    if config["tokenizer_class"] == "ByT5Tokenizer":
        from transformers import ByT5Tokenizer

        return ByT5Tokenizer()  # bytes: no vocabulary file
    if config["tokenizer_class"].startswith("CLIP"):
        from bot.core.tiny.unet import _tiny_tokenizer

        with tempfile.TemporaryDirectory(prefix="videobot-bench-tok-") as folder:
            return _tiny_tokenizer(Path(folder))  # vocab and merges are read at construction
    from bot.core.tiny.dit import _t5_tokenizer

    return _t5_tokenizer(max_length)


def build_processor(config: dict[str, Any], tiny: bool = False) -> Any:
    """An image processor from its ``preprocessor_config.json`` (HunyuanVideo 1.5's SigLIP); at
    ``--tiny`` it sizes pictures for the tiny SigLIP (``TINY_OVERRIDES``: 27 x 27 patches)."""
    import transformers

    fields = {k: v for k, v in config.items() if k != "image_processor_type"}
    if tiny:
        side = TINY_OVERRIDES["SiglipVisionModel"]["image_size"]
        fields["size"] = {"height": side, "width": side}
    return getattr(transformers, config["image_processor_type"])(**fields)


def _seed_of(key: str, name: str) -> int:
    return SEED + int(hashlib.sha256(f"{key}/{name}".encode()).hexdigest()[:6], 16)


def build_pipeline(
    key: str,
    *,
    device: Any,
    dtype: torch.dtype,
    vae_dtype: torch.dtype | None = None,
    tiny: bool = False,
) -> Any:
    """The model's pipeline class over components built from the configs."""
    import diffusers

    spec = REGISTRY[key]
    configs = load_configs(key)
    class_name = FAMILY_PIPELINES.get(spec.family, configs["index"]["_class_name"])
    pipeline_cls = getattr(diffusers, class_name)
    wanted = inspect.signature(pipeline_cls.__init__).parameters
    kwargs: dict[str, Any] = {}
    beside: dict[str, Any] = {}
    for name, config in configs["components"].items():
        if name in BESIDE_INDEX and name not in wanted:
            beside[name] = build_module(
                component_config(config, tiny), device, dtype, _seed_of(key, name)
            )
            continue
        if name not in wanted:
            continue
        if name == "scheduler" or name == "guider":
            settings_cls = getattr(diffusers, config["_class_name"])
            kwargs[name] = settings_cls.from_config(config)
        elif name.startswith("tokenizer"):
            kwargs[name] = build_tokenizer(config)
        elif name in ("feature_extractor", "image_processor"):  # SigLIP's, Wan's CLIP's
            kwargs[name] = build_processor(config, tiny)
        else:
            module_dtype = vae_dtype if (name == "vae" and vae_dtype is not None) else dtype
            kwargs[name] = build_module(
                component_config(config, tiny), device, module_dtype, _seed_of(key, name)
            )
    for name, value in configs["extra"].items():
        if name in wanted:
            kwargs[name] = value
    for name, parameter in wanted.items():
        if name not in kwargs and name != "self" and parameter.default is inspect.Parameter.empty:
            kwargs[name] = None  # optional parts the configs leave out (image encoders)
    with torch.device(device):  # AnimateDiff builds its motion UNet inside __init__
        pipe = pipeline_cls(**kwargs)
    for name, module in beside.items():  # as the adapter's load sets them (LTX-2's upsampler)
        setattr(pipe, name, module)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --- FLOP counting on the meta device ------------------------------------------------------------


@dataclass
class FlopCount:
    """FLOPs per component call kind ("unet.forward", "vae.decode", ...) and how often each ran."""

    flops: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    streams: dict[str, float] = field(default_factory=dict)
    """Of the FLOPs above, those of an audio-video denoiser's audio stream and of its cross-modal
    attention ("transformer.audio", "transformer.cross-modal"): LTX-2's two halves."""

    def add(self, what: str, flops: float, streams: dict[str, float] | None = None) -> None:
        self.flops[what] = self.flops.get(what, 0.0) + flops
        self.calls[what] = self.calls.get(what, 0) + 1
        component = what.split(".", 1)[0]
        for stream, value in (streams or {}).items():
            name = f"{component}.{stream}"
            self.streams[name] = self.streams.get(name, 0.0) + value

    @property
    def total(self) -> float:
        return sum(self.flops.values())

    def part(self, *prefixes: str) -> float:
        return sum(v for k, v in self.flops.items() if k.startswith(prefixes))


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return (
            value if value.is_meta else torch.empty(value.shape, dtype=value.dtype, device="meta")
        )
    if isinstance(value, (list, tuple)):
        return type(value)(_to_meta(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_meta(v) for k, v in value.items()}
    return value


def _materialize(value: Any) -> Any:
    """Meta outputs as CPU zeros of the same shapes, inside whatever output objects hold them."""
    if isinstance(value, torch.Tensor):
        return torch.zeros(value.shape, dtype=value.dtype) if value.is_meta else value
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_materialize(v) for v in value)
    if isinstance(value, dict):
        items = {k: _materialize(v) for k, v in value.items()}
        try:
            return type(value)(**items)
        except TypeError:
            return items
    if hasattr(value, "__dict__") and not isinstance(value, type):
        clone = copy.copy(value)
        for name, item in vars(value).items():
            setattr(clone, name, _materialize(item))
        return clone
    return value


def _signature(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return ("T", tuple(value.shape), str(value.dtype))
    if isinstance(value, (list, tuple)):
        return tuple(_signature(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _signature(v)) for k, v in value.items()))
    return repr(value)


class MetaStandIn:
    """Takes a network's place in a pipeline running on the CPU: calls run the meta-device module
    on meta copies of the inputs under a FLOP counter (once per distinct call shape) and return CPU
    zeros shaped like its outputs. Everything else is the module's own (config, dtype, methods)."""

    _METHODS = ("forward", "decode", "encode")

    def __init__(self, name: str, module: Any, count: FlopCount) -> None:
        self._name = name
        self._module = module
        self._count = count
        self._seen: dict[Any, tuple[float, Any, dict[str, float]]] = {}
        self._text_model = type(module).__module__.startswith("transformers.")

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._module, attr)
        if attr in self._METHODS:
            return self._counted(attr, value)
        if isinstance(value, torch.Tensor) and value.is_meta:
            return torch.ones(value.shape, dtype=value.dtype)  # buffers a pipeline reads
        return value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._counted("forward", self._module)(*args, **kwargs)

    def to(self, *args: Any, **kwargs: Any) -> MetaStandIn:
        """Stays on the meta device (LTX-2's adapter moves its upsampler to the pipeline's)."""
        return self

    def _counted(self, method: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        from torch.utils.flop_counter import FlopCounterMode

        def run(*args: Any, **kwargs: Any) -> Any:
            key = (method, _signature(args), _signature(kwargs))
            if self._text_model:
                # transformers reads the padding mask's values to pick a kernel (.all()), which a
                # meta tensor has none of; the mask changes no FLOP count, so it is left out.
                args, kwargs = args[:1], {k: v for k, v in kwargs.items() if k != "attention_mask"}
            if key not in self._seen:
                with FlopCounterMode(display=False) as counter, _meta_truths():
                    out = fn(*_to_meta(args), **_to_meta(kwargs))
                streams = stream_split(counter.get_flop_counts())
                self._seen[key] = (float(counter.get_total_flops()), out, streams)
            flops, out, streams = self._seen[key]
            self._count.add(f"{self._name}.{method}", flops, streams)
            return _materialize(out)

        return run


def stream_split(counts: dict[str, dict[Any, int]]) -> dict[str, float]:
    """An audio-video denoiser's FLOPs by stream, from a counter's per-module counts: its modules
    named ``audio_*`` (at the top and in each of ``transformer_blocks``) are the audio stream,
    ``audio_to_video_*``/``video_to_audio_*``/``av_cross_*`` the cross-modal attention between the
    streams; the rest is the video stream. Empty for a video-only network."""
    split: dict[str, float] = {}
    for path, ops in counts.items():
        parts = path.split(".")
        top = len(parts) == 2
        in_block = len(parts) == 4 and parts[1] == "transformer_blocks"
        if not (top or in_block):
            continue
        name = parts[-1]
        if name.startswith(("audio_to_video", "video_to_audio", "av_cross")):
            stream = "cross-modal"
        elif name.startswith("audio"):
            stream = "audio"
        else:
            continue
        split[stream] = split.get(stream, 0.0) + float(sum(ops.values()))
    return split


@contextmanager
def _meta_truths() -> Iterator[None]:
    """Answers for the questions a meta tensor cannot answer, in HunyuanVideo 1.5's transformer:
    ``torch.all`` (are the image embeddings all zero, i.e. text-to-video?) is ``True``, and a
    boolean mask keeps every row while its inverse keeps none. The transformer uses them to move
    the valid text tokens ahead of the padding (``x[mask]`` then ``x[~mask]``), so the token count
    and every later shape, hence the FLOPs, are those of the real call."""
    original_all = torch.all
    original_getitem = torch.Tensor.__getitem__
    original_invert = torch.Tensor.__invert__

    def all_(value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.is_meta and not args and not kwargs:
            return torch.tensor(True)
        return original_all(value, *args, **kwargs)

    def invert(self: torch.Tensor) -> Any:
        out = original_invert(self)
        if self.is_meta and self.dtype == torch.bool:
            out._videobot_inverted = True  # type: ignore[attr-defined]
        return out

    def getitem(self: torch.Tensor, index: Any) -> Any:
        if isinstance(index, torch.Tensor) and index.is_meta and index.dtype == torch.bool:
            rows = 0 if getattr(index, "_videobot_inverted", False) else None
            flat = self.reshape(-1, *self.shape[index.dim() :])
            return flat[:rows] if rows is not None else flat
        return original_getitem(self, index)

    torch.all = all_  # type: ignore[assignment]
    torch.Tensor.__getitem__ = getitem  # type: ignore[method-assign,assignment]
    torch.Tensor.__invert__ = invert  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        torch.all = original_all
        torch.Tensor.__getitem__ = original_getitem  # type: ignore[method-assign]
        torch.Tensor.__invert__ = original_invert  # type: ignore[method-assign]


def _cpu_pipeline(pipe: Any) -> None:
    """Make a pipeline whose networks are on the meta device create its own tensors on the CPU."""
    base = type(pipe)
    cpu = property(lambda self: torch.device("cpu"))
    pipe.__class__ = type(f"Counting{base.__name__}", (base,), {"_execution_device": cpu})


def count_flops(job: Job, *, tiny: bool = False) -> FlopCount:
    """The FLOPs ``job`` must do, counted by running its pipeline with meta stand-ins."""
    spec = REGISTRY[job.key]
    pipe = build_pipeline(job.key, device="meta", dtype=torch.float32, tiny=tiny)
    count = FlopCount()
    beside = {name: getattr(pipe, name, None) for name in BESIDE_INDEX}
    for name, module in [*pipe.components.items(), *beside.items()]:
        if isinstance(module, torch.nn.Module):
            pipe.__dict__[name] = MetaStandIn(name, module, count)
    _cpu_pipeline(pipe)
    request, _ = _request(job, spec)
    loaded = SimpleNamespace(schedulers={}, pipeline=pipe, spec=spec)
    if not job.upscale:
        pipe.scheduler = GenerationEngine._scheduler(
            loaded,  # type: ignore[arg-type]
            job.scheduler,
            spec.scheduler_config_for(job.width, job.height),
        )
    with torch.inference_mode():
        adapter_for(spec.family).run(pipe, request, JobControl())
    return count


def _request(job: Job, spec: ModelSpec) -> tuple[DenoiseRequest, Any]:
    """The adapter request the engine builds for this job (and the upscaler's source)."""
    from PIL import Image

    generator = torch.Generator(device="cpu").manual_seed(SEED)
    if job.upscale:
        source = source_video(job)
        resized = [
            f.resize((job.width, job.height), Image.Resampling.LANCZOS) for f in source.images
        ]
        request = DenoiseRequest(
            prompt=PROMPT,
            negative_prompt="",
            width=job.width,
            height=job.height,
            num_frames=len(resized),
            num_inference_steps=job.steps,
            guidance_scale=spec.default_guidance,
            generator=generator,
            video=resized,
            strength=DEFAULT_UPSCALE_STRENGTH,
        )
        return request, source
    request = DenoiseRequest(
        prompt=PROMPT,
        negative_prompt="",
        width=job.width,
        height=job.height,
        num_frames=job.num_frames,
        num_inference_steps=job.steps,
        guidance_scale=job.guidance,
        generator=generator,
        fps=job.fps,
        call_options=spec.call_options_for(job.scheduler),
        image=picture(job.width, job.height) if job.image else None,
        end_image=picture(job.width, job.height) if spec.first_last_only else None,
    )
    return request, None


# --- device helpers ------------------------------------------------------------------------------


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(device: str, dtype: torch.dtype, size: int, repeats: int = 3) -> float:
    """TFLOP/s of a large square matmul on this device: the practical ceiling."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    iters = 20 if device.startswith("cuda") else 3
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            a @ b
        sync(device)
        best = max(best, 2 * size**3 * iters / (time.perf_counter() - start) / 1e12)
    del a, b
    return best


def peak_memory_gb(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else 0.0


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def release(device: str) -> None:
    """Free what the last pipeline held, compiled graphs and CUDA graph pools included."""
    gc.collect()
    if device.startswith("cuda"):
        import torch._dynamo

        torch._dynamo.reset()
        gc.collect()
        torch.cuda.empty_cache()


# --- the split: text / denoise / decode ----------------------------------------------------------


@dataclass
class Split:
    text: float = 0.0
    denoise: float = 0.0
    decode: float = 0.0
    encode: float = 0.0
    finite: bool = True


@contextmanager
def timed_parts(pipe: Any, device: str) -> Iterator[Split]:
    """Hooks that time (CUDA-synchronised) the text encoder, the span of denoiser calls and the VAE,
    and check the decoded video is finite. For one extra run: the syncs cost a little."""
    from bot.core.pipelines.base import denoisers

    split = Split()
    marks: dict[str, float] = {}
    handles = []

    def clock() -> float:
        sync(device)
        return time.perf_counter()

    text = getattr(pipe, "text_encoder", None)
    if isinstance(text, torch.nn.Module):
        handles.append(text.register_forward_pre_hook(lambda *_: marks.__setitem__("t", clock())))

        def text_done(*_: Any) -> None:
            split.text += clock() - marks["t"]

        handles.append(text.register_forward_hook(text_done))
    for _, module in denoisers(pipe):

        def first(*_: Any) -> None:
            marks.setdefault("d0", clock())

        def last(*_: Any) -> None:
            marks["d1"] = clock()

        handles.append(module.register_forward_pre_hook(first))
        handles.append(module.register_forward_hook(last))
    vae = pipe.vae
    originals = {m: vae.__dict__.get(m) for m in ("decode", "encode")}

    def timing(method: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            out = fn(*args, **kwargs)
            setattr(split, method, getattr(split, method) + clock() - start)
            if method == "decode":
                sample = out[0] if isinstance(out, tuple) else getattr(out, "sample", None)
                if isinstance(sample, torch.Tensor) and not torch.isfinite(sample).all():
                    split.finite = False
            return out

        return run

    for method in ("decode", "encode"):
        setattr(vae, method, timing(method, getattr(vae, method)))
    try:
        yield split
    finally:
        for handle in handles:
            handle.remove()
        for method, original in originals.items():
            if original is None:
                vae.__dict__.pop(method, None)
            else:
                setattr(vae, method, original)
        if "d0" in marks and "d1" in marks:
            split.denoise = marks["d1"] - marks["d0"]


# --- one model -----------------------------------------------------------------------------------


@dataclass
class Row:
    key: str
    job: str
    ours_s: float = math.nan
    text_s: float = math.nan
    denoise_s: float = math.nan
    decode_s: float = math.nan
    other_s: float = math.nan
    first_s: float = math.nan
    peak_gb: float = math.nan
    tflop: float = math.nan
    denoiser_tflop: float = math.nan
    tflops: float = math.nan
    pct_peak: float = math.nan
    floor_s: float = math.nan
    card_s: float = math.nan
    card_peak_gb: float = math.nan
    ratio: float = math.nan
    max_diff: float = math.nan
    mean_diff: float = math.nan
    card_dtype: str = ""
    ours_dtype: str = ""
    notes: list[str] = field(default_factory=list)
    ablations: dict[str, float] = field(default_factory=dict)
    variants: dict[str, tuple[float, float]] = field(default_factory=dict)
    """``--caches``: seconds per video and mean difference (8-bit levels) from ours, per variant."""


def time_model(
    key: str,
    *,
    device: str,
    speed: SpeedOptions,
    runs: int,
    warmup: int,
    tiny: bool,
    scale: float,
    peak_tflops: float,
    card: bool,
    budget_s: float = 300.0,
    ablate: bool = False,
    caches: bool = False,
) -> Row:
    spec = REGISTRY[key]
    job = native_job(spec, tiny=tiny, scale=scale)
    row = Row(key=key, job=job.label)
    count = count_flops(job, tiny=tiny)
    row.tflop = count.total / 1e12
    row.denoiser_tflop = count.part("unet.", "transformer") / 1e12
    row.floor_s = count.total / (peak_tflops * 1e12)
    calls = ", ".join(f"{k} x{v}" for k, v in sorted(count.calls.items()))
    row.notes.append(f"calls: {calls}")

    cuda = device.startswith("cuda")
    card_dtype = CARD_DTYPES.get(key, "float16") if cuda else "float32"
    row.card_dtype = card_dtype
    card_frames = None
    if card:
        card_frames, card_s, card_peak, card_finite = run_card(
            job,
            device=device,
            dtype=card_dtype,
            runs=runs,
            warmup=min(warmup, 1),  # nothing to compile: one warm-up run is enough
            tiny=tiny,
            budget_s=budget_s,
        )
        row.card_s, row.card_peak_gb = card_s, card_peak
        if not card_finite:
            row.notes.append("card output NaN/inf (random weights in fp16): diff meaningless")
        release(device)

    ours = run_ours(
        job, device=device, speed=speed, runs=runs, warmup=warmup, tiny=tiny, budget_s=budget_s
    )
    row.ours_dtype = ours["dtype"]
    row.ours_s, row.first_s, row.peak_gb = ours["seconds"], ours["first"], ours["peak"]
    split: Split = ours["split"]
    row.text_s, row.denoise_s, row.decode_s = split.text, split.denoise, split.decode + split.encode
    row.other_s = ours["split_total"] - (row.text_s + row.denoise_s + row.decode_s)
    if not split.finite:
        row.notes.append("our decoded video has NaN/inf (random weights): diff meaningless")
    row.tflops = count.total / row.ours_s / 1e12
    row.pct_peak = 100 * row.tflops / peak_tflops
    if card_frames is not None:
        row.ratio = row.card_s / row.ours_s
        diff = np.abs(card_frames.astype(np.int16) - ours["frames"].astype(np.int16))
        row.max_diff, row.mean_diff = float(diff.max()), float(diff.mean())
    row.notes.append(f"speed: {ours['speed']}")
    release(device)
    if ablate:
        for switch in ABLATIONS:
            off = "pipeline" if switch == "vae_dtype" else "off"
            if getattr(speed, switch) == off or (
                switch == "vae_dtype" and not getattr(spec, "vae_dtype", None)
            ):
                continue  # already off, or (VAE) the same precision either way
            without = run_ours(
                job,
                device=device,
                speed=replace(speed, **{switch: off}),
                runs=runs,
                warmup=warmup,
                tiny=tiny,
                budget_s=budget_s,
            )
            row.ablations[switch] = without["seconds"]
            release(device)
    if caches:
        for label, options, quality in variants(spec, speed):
            other = run_ours(
                replace(job, quality=quality),
                device=device,
                speed=options,
                runs=runs,
                warmup=warmup,
                tiny=tiny,
                budget_s=budget_s,
            )
            levels = np.abs(other["frames"].astype(np.int16) - ours["frames"].astype(np.int16))
            row.variants[label] = (other["seconds"], float(levels.mean()))
            row.notes.append(f"{label}: first run {other['first']:.3f} s")
            release(device)
    return row


@dataclass
class Timing:
    seconds: float
    first: float
    peak_gb: float
    last: Any


def timed_runs(
    call: Callable[[], Any], device: str, runs: int, warmup: int, budget_s: float
) -> Timing:
    """``warmup`` untimed runs (the first is also timed on its own: it compiles), then up to ``runs``
    timed ones, CUDA-synchronised; a path whose runs exceed ``budget_s`` stops early (at least one
    timed run), so the 50-step Wan and CogVideoX jobs do not take half an hour each."""
    first = math.nan
    spent = 0.0
    for index in range(warmup):
        sync(device)
        start = time.perf_counter()
        call()
        sync(device)
        elapsed = time.perf_counter() - start
        first = elapsed if index == 0 else first
        spent += elapsed
        if spent > budget_s:
            break
    seconds: list[float] = []
    last = None
    reset_peak(device)
    for _ in range(max(runs, 1)):
        sync(device)
        start = time.perf_counter()
        last = call()
        sync(device)
        seconds.append(time.perf_counter() - start)
        if sum(seconds) > budget_s:
            break
    return Timing(statistics.median(seconds), first, peak_memory_gb(device), last)


def variants(spec: ModelSpec, speed: SpeedOptions) -> list[tuple[str, SpeedOptions, str]]:
    """``--caches``: what to time besides ours, as (label, speed options, quality): each cache the
    model takes (``bot.core.caches``), the whole-denoiser compile where ours compiles regionally
    (compile time shows in the first run), and the draft where it runs on the same model (a
    distilled partner would be another pipeline, timed as its own registry row)."""
    from bot.core.caches import supported_caches
    from bot.core.engine import draft_recipe

    out = [(f"cache={name}", replace(speed, cache=name), "full") for name in supported_caches(spec)]
    if spec.family in ("ltx", "wan") and speed.compile != "off":
        out.append(("compile_scope=full", replace(speed, compile_scope="full"), "full"))
    if spec.role == "generator":
        recipe = draft_recipe(native_job(spec).params().model_copy(update={"quality": "draft"}))
        if recipe is not None and recipe.kind == "fewer_steps":
            out.append((f"draft ({recipe.note})", speed, "draft"))
    return out


def _vae_dtype(spec: ModelSpec, dtype: str) -> torch.dtype | None:
    """Where the real loader puts the VAE in another precision (``LoadRequest.vae_dtype``)."""
    wanted = getattr(spec, "vae_dtype", None)
    return getattr(torch, wanted) if wanted and wanted != dtype else None


def run_card(
    job: Job, *, device: str, dtype: str, runs: int, warmup: int, tiny: bool, budget_s: float
) -> tuple[np.ndarray, float, float, bool]:
    """The model card's recipe: the card's dtype, ``pipe.to(device)``, a direct call with the
    defaults (the engine's scheduler, so both paths take the same steps)."""
    spec = REGISTRY[job.key]
    pipe = build_pipeline(
        job.key,
        device=device,
        dtype=getattr(torch, dtype),
        vae_dtype=_vae_dtype(spec, dtype),
        tiny=tiny,
    )
    pipe.to(device)
    if not job.upscale:
        loaded = SimpleNamespace(schedulers={}, pipeline=pipe, spec=spec)
        pipe.scheduler = GenerationEngine._scheduler(
            loaded,  # type: ignore[arg-type]
            job.scheduler,
            spec.scheduler_config_for(job.width, job.height),
        )
    request, _ = _request(job, spec)

    def call() -> Any:
        kwargs: dict[str, Any] = {
            "prompt": request.prompt,
            "num_inference_steps": request.num_inference_steps,
            "guidance_scale": request.guidance_scale,
            "generator": torch.Generator(device="cpu").manual_seed(SEED),
            "output_type": "np",
        }
        accepted = inspect.signature(type(pipe).__call__).parameters
        if job.upscale:
            kwargs.update(video=list(request.video or []), strength=request.strength)
        else:
            kwargs.update(width=request.width, height=request.height, num_frames=request.num_frames)
            options = dict(request.call_options)
            ratio = options.pop(GUIDANCE_2_RATIO, None)
            kwargs.update(options)
            if ratio is not None:  # Wan 2.2 A14B's card: the low-noise expert's own guidance
                kwargs["guidance_scale_2"] = guidance_2_of(request.guidance_scale, float(ratio))
            if "frame_rate" in accepted:
                kwargs["frame_rate"] = request.fps
            if request.image is not None:
                kwargs["image"] = request.image
        if "guidance_scale" not in accepted:  # HunyuanVideo 1.5: the guider holds the scale
            set_guidance(pipe, float(kwargs.pop("guidance_scale")))
        for name in ("width", "height"):
            if name not in accepted:  # HunyuanVideo 1.5's I2V sizes the video from the picture
                kwargs.pop(name, None)
        with torch.inference_mode():
            return pipe(**kwargs).frames

    timing = timed_runs(call, device, runs, warmup, budget_s)
    array = np.asarray(timing.last)
    finite = bool(np.isfinite(array).all())
    return to_uint8_frames(array), timing.seconds, timing.peak_gb, finite


def run_ours(
    job: Job,
    *,
    device: str,
    speed: SpeedOptions,
    runs: int,
    warmup: int,
    tiny: bool,
    budget_s: float,
) -> dict[str, Any]:
    """The engine's path: a manager on ``device`` adopts the pipeline (placing it and applying the
    speed options) and ``GenerationEngine`` runs the job as the bot does."""
    spec = REGISTRY[job.key]
    with tempfile.TemporaryDirectory(prefix="videobot-bench-") as cache:
        manager = ModelManager(ManagerOptions(device=device, speed=speed, cache_dir=Path(cache)))
        dtype = manager.resolved_dtype(device)
        pipe = build_pipeline(
            job.key,
            device=device,
            dtype=getattr(torch, dtype),
            vae_dtype=_vae_dtype(spec, dtype),
            tiny=tiny,
        )
        manager.adopt(job.key, pipe)
        engine = GenerationEngine(manager)
        source = source_video(job) if job.upscale else None

        def call() -> GenerationResult:
            if source is not None:
                result = engine.upscale(
                    source, upscaler=job.key, num_inference_steps=job.steps, seed=SEED
                )
            else:
                result = engine.generate_video(job.params())
            if not result.ok:
                raise RuntimeError(f"{job.key}: {result.error}")
            return result

        timing = timed_runs(call, device, runs, max(warmup, 1), budget_s)
        result = timing.last
        frames = np.stack([np.asarray(image) for image in result.images])
        with timed_parts(pipe, device) as split:
            start = time.perf_counter()
            call()
            sync(device)
            split_total = time.perf_counter() - start
        report = speed_report(pipe)
        manager.unload_all()
    summary = _switches_on(report)
    failed = [k for k, v in report.items() if isinstance(v, str) and v.startswith("failed")]
    if failed:
        summary += f"; FAILED: {', '.join(failed)}"
    compiled = report.get("compile")
    if isinstance(compiled, dict):
        for name, module in ((n, getattr(pipe, n, None)) for n in compiled):
            forward = getattr(module, "forward", None)
            if getattr(forward, "broken", None):
                summary += f"; {name} compile fell back to eager ({forward.broken})"
    return {
        "dtype": dtype,
        "seconds": timing.seconds,
        "first": timing.first,
        "peak": timing.peak_gb,
        "frames": frames,
        "split": split,
        "split_total": split_total,
        "speed": summary,
    }


def _switches_on(report: dict[str, Any]) -> str:
    """The speed-ups that are on, from the manager's report."""
    resolved = report.get("resolved")
    if resolved is None:
        return "none"
    on = []
    for name, value in asdict(resolved).items():
        if name == "compile_mode":
            if resolved.compile:
                on.append(f"compile_mode={value}")
        elif name == "compile_frames":
            continue
        elif value is True:
            on.append(name)
        elif value not in (None, False, 0):
            on.append(f"{name}={value}")
    compiled = report.get("compile")
    if isinstance(compiled, dict):
        on.append(f"compiled latent buckets {compiled}")
    return ", ".join(on) or "all off"


# --- output --------------------------------------------------------------------------------------

COLUMNS = [
    ("model", "key", "{}"),
    ("s/video", "ours_s", "{:.3f}"),
    ("text", "text_s", "{:.3f}"),
    ("denoise", "denoise_s", "{:.3f}"),
    ("decode", "decode_s", "{:.3f}"),
    ("other", "other_s", "{:.3f}"),
    ("peak GB", "peak_gb", "{:.2f}"),
    ("TFLOP", "tflop", "{:.4g}"),
    ("TFLOP/s", "tflops", "{:.4g}"),
    ("% peak", "pct_peak", "{:.1f}"),
    ("floor s", "floor_s", "{:.3f}"),
    ("card s", "card_s", "{:.3f}"),
    ("card/ours", "ratio", "{:.2f}"),
    ("max diff", "max_diff", "{:.0f}"),
    ("mean diff", "mean_diff", "{:.2f}"),
]


def print_table(rows: list[Row]) -> None:
    header = "| " + " | ".join(c[0] for c in COLUMNS) + " |"
    print(header)
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        cells = [fmt.format(getattr(row, attr)) for _, attr, fmt in COLUMNS]
        print("| " + " | ".join(cells) + " |")
    print()
    for row in rows:
        print(
            f"{row.key}: {row.job}; ours {row.ours_dtype}, card {row.card_dtype}; "
            f"first run {row.first_s:.2f} s"
        )
        for note in row.notes:
            print(f"    {note}")


def print_ablations(rows: list[Row]) -> None:
    """Seconds per video with each switch off, and what the switch buys (positive: it helps)."""
    rows = [r for r in rows if r.ablations]
    if not rows:
        return
    switches = [s for s in ABLATIONS if any(s in r.ablations for r in rows)]
    print("| model | all on | " + " | ".join(f"{s} off" for s in switches) + " |")
    print("|" + "---|" * (len(switches) + 2))
    for row in rows:
        cells = []
        for switch in switches:
            off = row.ablations.get(switch, math.nan)
            cells.append(f"{off:.3f} ({100 * (off / row.ours_s - 1):+.0f}%)")
        print(f"| {row.key} | {row.ours_s:.3f} | " + " | ".join(cells) + " |")
    print()


def print_variants(rows: list[Row]) -> None:
    """``--caches``: seconds per video of each variant, its speed-up over ours and how far its
    frames are from ours (mean 8-bit levels; a cache trades some of this for speed)."""
    rows = [r for r in rows if r.variants]
    if not rows:
        return
    print("| model | ours s | variant | s/video | speed-up | mean diff |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        for label, (seconds, diff) in row.variants.items():
            print(
                f"| {row.key} | {row.ours_s:.3f} | {label} | {seconds:.3f} | "
                f"{row.ours_s / seconds:.2f}x | {diff:.2f} |"
            )
    print()


def print_flops(jobs: list[Job], tiny: bool) -> list[dict[str, Any]]:
    print(
        f"| model | job | denoiser TFLOP | text TFLOP | VAE TFLOP | total TFLOP | "
        f"s at {FLOOR_TFLOPS:g} | s at {H100_SPEC_TFLOPS:g} |"
    )
    print("|---|---|---|---|---|---|---|---|")
    out = []
    notes = []
    for job in jobs:
        count = count_flops(job, tiny=tiny)
        den = count.part("unet.", "transformer") / 1e12
        text = count.part("text_encoder", "image_encoder") / 1e12
        vae = count.part("vae.") / 1e12
        total = count.total / 1e12
        print(
            f"| {job.key} | {job.label} | {den:.1f} | {text:.3f} | {vae:.1f} | {total:.1f} | "
            f"{total / FLOOR_TFLOPS:.2f} | {total / H100_SPEC_TFLOPS:.2f} |"
        )
        note = flop_note(job, count)
        if note:
            notes.append(note)
        out.append(
            {
                "key": job.key,
                "job": job.label,
                "denoiser": den,
                "text": text,
                "vae": vae,
                "total": total,
                "calls": count.calls,
                "components": {k: v / 1e12 for k, v in count.flops.items()},
                "streams": {k: v / 1e12 for k, v in count.streams.items()},
            }
        )
    for note in notes:
        print(note)
    return out


def flop_note(job: Job, count: FlopCount) -> str:
    """What the table's columns leave out, for a model that has it (LTX-2): the networks counted
    only in the total (text connectors, audio VAE, vocoder, latent upsampler), the denoiser's
    audio stream and cross-modal attention, and each call's count."""
    columns = ("unet.", "transformer", "text_encoder", "image_encoder", "vae.")
    others = {k: v for k, v in count.flops.items() if not k.startswith(columns)}
    if not others and not count.streams:
        return ""
    parts = [f"{k} x{count.calls[k]} {v / 1e12:.3f}" for k, v in sorted(others.items())]
    parts += [f"{k} {v / 1e12:.1f}" for k, v in sorted(count.streams.items())]
    calls = ", ".join(f"{k} x{v}" for k, v in sorted(count.calls.items()) if k not in others)
    return f"{job.key}: in the total only / of the denoiser (TFLOP): {'; '.join(parts)}; {calls}"


def check_targets(rows: list[Row]) -> None:
    targets = {"zeroscope_v2_576w": 2.5, "animatediff": 2.2}
    for row in rows:
        if row.key in targets:
            ok = row.ours_s < targets[row.key]
            print(
                f"target {row.key} < {targets[row.key]} s: {row.ours_s:.2f} s "
                f"{'met' if ok else 'NOT met'}"
            )
        if not math.isnan(row.ratio):
            print(
                f"target {row.key} card/ours >= 1.8: {row.ratio:.2f} "
                f"{'met' if row.ratio >= 1.8 else 'NOT met'}"
            )
        if not math.isnan(row.mean_diff):
            agree = row.mean_diff <= AGREE_MEAN_LEVELS
            print(
                f"outputs {row.key}: max {row.max_diff:.0f}, mean {row.mean_diff:.2f} levels "
                f"({'agree' if agree else 'DIFFER'} at mean <= {AGREE_MEAN_LEVELS:g})"
            )


def parse_speed(text: str | None) -> SpeedOptions:
    if not text:
        return SpeedOptions()
    if text == "off":
        return SpeedOptions.all_off()
    pairs = dict(item.split("=", 1) for item in text.split(",") if item.strip())
    return SpeedOptions.from_mapping({k.strip(): v.strip() for k, v in pairs.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", default="", help="comma-separated registry keys (default: all with configs)"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2, help="runs before timing (compiles)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--speed", default="", help="SpeedOptions overrides: key=value,... or 'off'"
    )
    parser.add_argument("--no-card", action="store_true", help="skip the card-recipe comparison")
    parser.add_argument("--flops-only", action="store_true", help="count FLOPs only (any machine)")
    parser.add_argument("--tiny", action="store_true", help="tiny components and jobs, for the CPU")
    parser.add_argument("--scale", type=float, default=1.0, help="job width/height factor")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument(
        "--budget-s", type=float, default=300.0, help="stop a path's runs after this long"
    )
    parser.add_argument(
        "--ablate", action="store_true", help="also time ours with each switch off in turn"
    )
    parser.add_argument(
        "--caches",
        action="store_true",
        help="also time each cache the model takes, whole-denoiser compile and the draft",
    )
    args = parser.parse_args(argv)
    quiet_libraries()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    keys = [k.strip() for k in args.models.split(",") if k.strip()] or default_models()
    for key in keys:
        if key not in REGISTRY:
            parser.error(f"unknown model {key!r}; known: {', '.join(REGISTRY)}")
        load_configs(key)
    # A soundtrack model (Stable Audio Open) makes a track, not a video: its configs are here
    # (its parameter counts come from them) but this harness times video jobs only.
    tracks = [k for k in keys if REGISTRY[k].role == "soundtrack"]
    if tracks:
        print(f"not timed here (a track, not a video): {', '.join(tracks)}", file=sys.stderr)
        keys = [k for k in keys if k not in tracks]
    if args.tiny:
        with tiny_registry(keys):
            return run(args, keys)
    return run(args, keys)


def run(args: argparse.Namespace, keys: list[str]) -> int:
    jobs = [native_job(REGISTRY[k], tiny=args.tiny, scale=args.scale) for k in keys]
    if args.flops_only:
        data = print_flops(jobs, args.tiny)
        if args.json:
            args.json.write_text(json.dumps(data, indent=2))
        return 0

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not device.startswith("cuda") and not args.tiny:
        print(
            "no CUDA device: full-size models need a GPU. On a GPU box run\n"
            "    python bench/gpu_speed.py\n"
            "here, try --tiny (the whole harness at toy size) or --flops-only.",
            file=sys.stderr,
        )
        return 2
    if not device.startswith("cuda"):
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    speed = parse_speed(args.speed)
    if device.startswith("cuda"):
        peak = matmul_peak(device, torch.bfloat16, 8192)
        name = torch.cuda.get_device_name()
        print(
            f"device {name}: measured bf16 matmul peak {peak:.0f} TFLOP/s "
            f"(8192^3; spec {H100_SPEC_TFLOPS:g} for an H100 SXM)"
        )
    else:
        peak = matmul_peak(device, torch.float32, 256)
        print(f"device cpu: measured fp32 matmul peak {peak:.3f} TFLOP/s (256^3)")
    print(f"torch {torch.__version__}; speed options {speed}")
    rows = []
    for key in keys:
        started = time.perf_counter()
        row = time_model(
            key,
            device=device,
            speed=speed,
            runs=args.runs,
            warmup=args.warmup,
            tiny=args.tiny,
            scale=args.scale,
            peak_tflops=peak,
            card=not args.no_card,
            budget_s=args.budget_s,
            ablate=args.ablate,
            caches=args.caches,
        )
        row.notes.append(f"harness time {time.perf_counter() - started:.1f} s")
        rows.append(row)
    print()
    print_table(rows)
    print()
    print_ablations(rows)
    print_variants(rows)
    if args.tiny:
        print("--tiny: toy components on the CPU; the H100 targets do not apply")
    else:
        check_targets(rows)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
