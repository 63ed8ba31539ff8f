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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bot.core.errors import InvalidParameterError, UnknownModelError, VideoBotError
from bot.core.params import FRAMES, check_size
from bot.core.speed import SpeedOptions, apply_speed_options

if TYPE_CHECKING:
    from bot.core.params import GenerationParams
    from bot.core.pipelines.base import PipelineAdapter

Family = Literal["text_to_video", "animatediff", "video_to_video"]
Role = Literal["generator", "upscaler"]

DEFAULT_ANIMATEDIFF_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"


@dataclass(frozen=True)
class ModelSpec:
    """Everything the engine needs to know about one model before loading it."""

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
    max_frames: int = int(FRAMES.high)
    upscaler: str | None = None
    upscale_factor: float | None = None
    half_variant: str | None = None
    default_guidance: float = 7.5
    scheduler_config: dict[str, Any] = field(default_factory=dict)
    tiny: bool = False

    def check_params(self, params: GenerationParams) -> None:
        """Checks that depend on the model: its role, its size range and its frame limit."""
        if self.role != "generator":
            raise InvalidParameterError(
                "model",
                f"{self.key} is an upscaler; generate with one of "
                f"{', '.join(k for k, s in REGISTRY.items() if s.role == 'generator')} "
                "and upscale the result",
            )
        check_size("width", params.width, self.min_size, self.max_size, self.key)
        check_size("height", params.height, self.min_size, self.max_size, self.key)
        if params.num_frames > self.max_frames:
            raise InvalidParameterError(
                "num_frames",
                f"must be between {int(FRAMES.low)} and {self.max_frames} for {self.key} "
                f"(got {params.num_frames})",
            )


_SD_SCHEDULER = {"clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1}
# The settings AnimateDiff's authors and the diffusers docs use with the v1-5-2 adapter.
_ANIMATEDIFF_SCHEDULER = {
    "clip_sample": False,
    "beta_schedule": "linear",
    "timestep_spacing": "linspace",
    "steps_offset": 1,
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
            source="damo-vilab/text-to-video-ms-1.7b",
            native_width=256,
            native_height=256,
            vram_gb=7,
            upscaler="zeroscope_v2_xl",
            half_variant="fp16",
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
            vram_gb=12,
            default_guidance=15.0,
            description="Upscales videos to 1024x576 with video-to-video denoising.",
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
            default_guidance=15.0,
            tiny=True,
            description="VideoToVideoSDPipeline with tiny random weights: the tiny models' 2x upscaler.",
        ),
    )
}


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

    ``device`` and ``dtype`` are ``"auto"`` (CUDA in bf16 where supported, else fp16; otherwise CPU in
    fp32) or explicit (``"cuda:1"``, ``"cpu"``; ``"float16"``, ``"bfloat16"``, ``"float32"``).
    ``sources`` maps a model key to another hub id or a local folder.
    """

    device: str = "auto"
    dtype: str = "auto"
    cpu_offload: bool = False
    vae_slicing: bool = False
    forward_chunking: bool = False
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
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Diffusers pipelines keep per-call state on the pipeline object, so two threads must never
    run the same one at once. The bot has one executor thread; this guards any other caller."""

    @property
    def parameter_bytes(self) -> int:
        total = 0
        for component in self.pipeline.components.values():
            if hasattr(component, "parameters"):
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
        pipeline.set_progress_bar_config(disable=True)
        loaded = LoadedModel(
            spec=spec,
            pipeline=pipeline,
            adapter=adapter_for(spec.family),
            device=device,
            dtype=self.resolved_dtype(device),
            switches=MemorySwitches(False, False, False),
            load_time_s=0.0,
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
                        vram_gb=spec.vram_gb,
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
            return self._options.sources[spec.key]
        if spec.tiny:
            return str(self._options.cache_dir / spec.source)
        if spec.family == "animatediff":
            return self._options.animatediff_base
        return spec.source

    def resolved_device(self) -> str:
        import torch

        device = self._options.device
        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return device

    def resolved_dtype(self, device: str) -> str:
        import torch

        dtype = self._options.dtype
        if dtype != "auto":
            if dtype not in ("float16", "bfloat16", "float32"):
                raise InvalidParameterError(
                    "dtype", f"must be auto, float16, bfloat16 or float32 (got {dtype!r})"
                )
            return dtype
        if device.startswith("cuda"):
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "float32"

    # --- helpers -------------------------------------------------------------------------------

    def _switches(self) -> MemorySwitches:
        o = self._options
        return MemorySwitches(o.cpu_offload, o.vae_slicing, o.forward_chunking)

    def _load(self, spec: ModelSpec) -> LoadedModel:
        import torch

        from bot.core.pipelines import adapter_for

        if spec.tiny and spec.key not in self._options.sources:
            from bot.core.tiny import build_tiny_model

            build_tiny_model(spec.key, self._options.cache_dir / spec.key)
        device = self.resolved_device()
        dtype = self.resolved_dtype(device)
        adapter = adapter_for(spec.family)
        started = time.perf_counter()
        pipeline = adapter.load(
            source=self.source_of(spec),
            adapter_source=self._adapter_source(spec),
            torch_dtype=getattr(torch, dtype),
            variant=spec.half_variant if dtype != "float32" else None,
        )
        pipeline.set_progress_bar_config(disable=True)
        loaded = LoadedModel(
            spec=spec,
            pipeline=pipeline,
            adapter=adapter,
            device=device,
            dtype=dtype,
            switches=MemorySwitches(False, False, False),
            load_time_s=0.0,
        )
        self._place(loaded, self._switches())
        loaded.load_time_s = time.perf_counter() - started
        return loaded

    def _adapter_source(self, spec: ModelSpec) -> str | None:
        if spec.adapter_source is None:
            return None
        override = self._options.sources.get(f"{spec.key}:adapter")
        if override:
            return override
        if spec.tiny:
            return str(self._options.cache_dir / spec.adapter_source)
        return spec.adapter_source

    def _place(self, loaded: LoadedModel, switches: MemorySwitches) -> None:
        """Move a freshly loaded pipeline to its device (or behind CPU offload hooks)."""
        if switches.cpu_offload:
            loaded.pipeline.enable_model_cpu_offload(device=loaded.device)
        else:
            loaded.pipeline.to(loaded.device)
        loaded.switches = MemorySwitches(switches.cpu_offload, False, False)
        self._apply_switches(loaded, switches)
        apply_speed_options(loaded, self._options.speed)

    def _apply_switches(self, loaded: LoadedModel, wanted: MemorySwitches) -> None:
        pipe = loaded.pipeline
        if wanted.cpu_offload != loaded.switches.cpu_offload:
            if wanted.cpu_offload:
                pipe.enable_model_cpu_offload(device=loaded.device)
            else:
                pipe.remove_all_hooks()
                pipe.to(loaded.device)
        if wanted.vae_slicing != loaded.switches.vae_slicing:
            if wanted.vae_slicing:
                pipe.vae.enable_slicing()
            else:
                pipe.vae.disable_slicing()
        if wanted.forward_chunking != loaded.switches.forward_chunking:
            if wanted.forward_chunking:
                # Chunk the feed-forward layers over frames: the UNet's largest activations.
                pipe.unet.enable_forward_chunking(chunk_size=1, dim=1)
            else:
                pipe.unet.disable_forward_chunking()
        loaded.switches = wanted


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
