"""The model manager: what is loaded, on which device, in which precision, with which memory savers,
and which weight files a source's variant is.
"""

from __future__ import annotations

import gc
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core.errors import InvalidParameterError, VideoBotError
from bot.core.pipelines.base import denoiser_of
from bot.core.plans import (
    PLAN_CHOICES,
    Card,
    Choice,
    choose,
    host_ram_gb,
    offload_call,
    step_down,
    switches_of,
)
from bot.core.registry import (
    DEFAULT_ANIMATEDIFF_BASE,
    REGISTRY,
    ModelSpec,
    current_repo_id,
    get_spec,
    image_to_video_models,
)
from bot.core.speed import SpeedOptions, apply_speed_options

if TYPE_CHECKING:
    from bot.core.pipelines.base import LoadRequest, PipelineAdapter


def default_cache_dir() -> Path:
    """Where tiny models are built; ``VIDEOBOT_MODEL_CACHE`` overrides it (tests, containers)."""
    env = os.environ.get("VIDEOBOT_MODEL_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "videobot" / "models"


DTYPES = ("auto", "float16", "bfloat16", "float32")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device(device: str) -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``: what torch and the manager accept."""
    if not _DEVICE.fullmatch(device):
        raise ValueError(f"must be auto, cpu, cuda, cuda:N (cuda:1, ...) or mps (got {device!r})")
    return device


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"must be {', '.join(DTYPES[:-1])} or {DTYPES[-1]} (got {dtype!r})")
    return dtype


@dataclass(frozen=True)
class MemorySwitches:
    """The memory savers, declared once: their names are ``ManagerOptions``' and ``[models]``'
    keys and the CLI's flags, and each one's ``help`` is the CLI's description.

    They trade speed for memory. ``cpu_offload``, ``vae_slicing``, ``vae_tiling`` and
    ``forward_chunking`` can be switched on loaded models; ``group_offload`` (stream the layers in
    from CPU memory as they run) and ``layerwise_casting`` (store the denoiser's weights in fp8,
    compute in the pipeline's precision) change how a model is placed, so they apply to models
    loaded afterwards.
    """

    cpu_offload: bool = field(default=False, metadata={"help": "save VRAM, cost speed"})
    vae_slicing: bool = field(default=False, metadata={"help": "decode frames one by one"})
    forward_chunking: bool = field(default=False, metadata={"help": "chunk the UNet FFNs"})
    vae_tiling: bool = field(default=False, metadata={"help": "decode in tiles: big frames"})
    group_offload: bool = field(
        default=False, metadata={"help": "stream layers from RAM: least VRAM"}
    )
    layerwise_casting: bool = field(
        default=False, metadata={"help": "store denoiser weights in fp8"}
    )


MEMORY_SAVERS: dict[str, str] = {f.name: f.metadata["help"] for f in fields(MemorySwitches)}
"""Each memory saver's name and one-line description."""
MEMORY_SWITCHES = tuple(MEMORY_SAVERS)
"""The memory savers' names: the same in ``ManagerOptions``, ``[models]`` and the CLI's flags."""


@dataclass(frozen=True)
class ManagerOptions(MemorySwitches):
    """How models are placed and which memory savers are on: declared here once, and read by the
    ``[models]`` config section (``bot.config``) and the CLI's flags.

    ``device`` and ``dtype`` are ``"auto"`` (CUDA in bf16 from compute capability 8.0, else fp16;
    otherwise CPU in fp32) or explicit (``"cuda:1"``, ``"cpu"``; ``"float16"``, ``"bfloat16"``, ``"float32"``).
    ``sources`` maps a model key to another hub id or a local folder (``key:adapter``,
    ``key:image`` and ``key:lora`` name a model's motion adapter, image-to-video weights and
    fused LoRA file).
    """

    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:1, ... or mps"})
    dtype: str = field(default="auto", metadata={"help": "auto, float16, bfloat16, float32"})
    cache_dir: Path = field(default_factory=default_cache_dir)
    sources: dict[str, str] = field(default_factory=dict)
    animatediff_base: str = DEFAULT_ANIMATEDIFF_BASE
    plan: str = field(
        default="auto",
        metadata={"help": "memory plan: auto (the fastest that fits the card) or one by name"},
    )
    vram_gb: float = field(
        default=0.0, metadata={"help": "the card's memory in GB for the plans; 0: detected"}
    )
    speed: SpeedOptions = field(default_factory=SpeedOptions)

    def __post_init__(self) -> None:
        """Raises ``ValueError("key: what is allowed")``, so the config and the CLI say which."""
        object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        if self.plan not in PLAN_CHOICES:
            raise ValueError(
                f"plan: unknown plan {self.plan!r}; allowed: {', '.join(PLAN_CHOICES)}"
            )
        if self.vram_gb < 0:
            raise ValueError(f"vram_gb: must be 0 (detect) or more (got {self.vram_gb:g})")
        for key, check in (("device", check_device), ("dtype", check_dtype)):
            try:
                check(getattr(self, key))
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None


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
    plan: Choice | None = None
    """The memory plan it was placed with (``bot.core.plans``); None on the CPU or for a tiny
    model, where no plan is needed."""
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
    plan: Choice | None = None
    """The plan in use (loaded) or the one a load would use on this card; None without a card."""


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
                self._apply_switches(loaded, self._switches_with_plan(loaded))
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
            plan=self.plan_for(spec),
        )
        with self._lock:
            self._place(loaded, self._switches_with_plan(loaded))
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
                        self._apply_switches(loaded, self._switches_with_plan(loaded))

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
                        plan=loaded.plan if loaded else self.plan_for(spec),
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

    def hub_sources(self, spec: ModelSpec, *, image: bool = False) -> list[str]:
        """Everything a load of ``spec`` reads, after the owner's overrides: its pipeline, then
        its motion adapter and LoRA where it has them, and with ``image`` its separate
        image-to-video weights (read at the first picture job); hub ids, folders or files. What
        :mod:`bot.core.hub` checks before a download."""
        parts = [
            self.source_of(spec),
            self._adapter_source(spec),
            self._part_source(spec, "lora", spec.lora_source),
            self.image_source_of(spec) if image else None,
        ]
        return [part for part in parts if part]

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
            return dtype
        if device.startswith("cuda"):
            if spec is not None and spec.half_dtype is not None:
                return spec.half_dtype
            return half_dtype_for(torch.cuda.get_device_capability(device))
        return "float32"

    def card(self) -> Card | None:
        """The card models are placed on: ``vram_gb`` from the options, else the CUDA device's
        own; None on the CPU without ``vram_gb`` (no plan is needed there)."""
        device = self.resolved_device()
        capability = (8, 0)  # without a GPU to ask: a bf16 card of the Ampere generation
        vram = self._options.vram_gb
        if device.startswith("cuda"):
            import torch

            properties = torch.cuda.get_device_properties(device)
            capability = (properties.major, properties.minor)
            vram = vram or properties.total_memory / 2**30
        if not vram:
            return None
        import importlib.util

        packages = frozenset(
            p for p in ("torchao", "gguf") if importlib.util.find_spec(p) is not None
        )
        return Card(
            packages=packages,
            vram_gb=round(vram, 1),
            host_ram_gb=round(host_ram_gb(), 1),
            compute_capability=capability,
        )

    def plan_for(self, spec: ModelSpec, forced: str | None = None) -> Choice | None:
        """The plan a load of ``spec`` uses on this card (``bot.core.plans.choose``), or None
        where none applies (a tiny model, the CPU without ``vram_gb``)."""
        card = self.card()
        if card is None or not spec.parameters:
            return None
        return choose(spec, card, forced=forced or self._options.plan)

    def step_down(self, key: str) -> str | None:
        """After an out-of-memory failure: load ``key`` again with the next plan that needs less
        GPU memory. Returns that plan's key, or None when the model has no plan or no smaller one
        is left."""
        spec = get_spec(key)
        with self._lock:
            loaded = self._loaded.get(spec.key)
            if loaded is None or loaded.plan is None or loaded.plan.chosen is None:
                return None
            lower = step_down(spec, loaded.plan.card, loaded.plan.chosen.key)
            if lower is None:
                return None
            self.unload_model(spec.key)
            self._loaded[spec.key] = self._load(spec, forced_plan=lower.key)
            return lower.key

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

    def _switches_with_plan(self, loaded: LoadedModel) -> MemorySwitches:
        """The owner's switches plus the plan's: a plan only ever turns savers on. Off CUDA the
        plan's offloads have nothing to offload to, so only its fp8 storage applies there."""
        switches = self._switches()
        if loaded.plan is None or loaded.plan.chosen is None:
            return switches
        wanted = switches_of(loaded.plan.chosen.key)
        if not loaded.device.startswith("cuda"):
            wanted = {k: v for k, v in wanted.items() if k not in ("cpu_offload", "group_offload")}
        if loaded.plan.chosen.kind.gguf is not None:
            # GGUF weights are dequantised by their own layers: they cannot be stored in fp8 too.
            wanted["layerwise_casting"] = False
        return replace(switches, **wanted)

    def _load(self, spec: ModelSpec, forced_plan: str | None = None) -> LoadedModel:

        from bot.core.pipelines import adapter_for

        if spec.tiny and spec.key not in self._options.sources:
            from bot.core.tiny import build_tiny_model

            build_tiny_model(spec.key, self._options.cache_dir / spec.key)
        device = self.resolved_device()
        dtype = self.resolved_dtype(device, spec)
        adapter = adapter_for(spec.family)
        started = time.perf_counter()
        plan = self.plan_for(spec, forced_plan)
        chosen = plan.chosen if plan is not None else None
        request = self._load_request(spec, dtype, files=True)
        if chosen is not None and chosen.kind.quantization is not None:
            request = replace(request, quantization=chosen.kind.quantization)
        if chosen is not None and chosen.kind.gguf is not None:
            request = replace(request, gguf_files=self._gguf_files(spec, chosen.kind.gguf))
        pipeline = adapter.load(request)
        if request.lora_source is not None:
            from bot.core.pipelines.loras import fuse_lora

            fuse_lora(pipeline, request.lora_source, request.lora_scale)
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
            plan=plan,
        )
        self._place(loaded, self._switches_with_plan(loaded))
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
            lora_source=self._part_source(spec, "lora", spec.lora_source),
            lora_scale=spec.lora_scale,
        )

    def _gguf_files(self, spec: ModelSpec, quant: str) -> dict[str, str]:
        """The GGUF file of each denoiser for ``quant``: the registry's hub files, or for a tiny
        model its GGUF twins in the model cache (built on first use)."""
        from bot.core.pipelines.gguf import gguf_file_names

        files = gguf_file_names(spec.gguf_files, quant)
        if not spec.tiny:
            return files
        from bot.core.tiny import build_tiny_model

        twins = {name.split("/")[0] for name in files.values()}
        for twin in twins:
            build_tiny_model(twin, self._options.cache_dir / twin)
        return {k: str(self._options.cache_dir / v) for k, v in files.items()}

    def _adapter_source(self, spec: ModelSpec) -> str | None:
        return self._part_source(spec, "adapter", spec.adapter_source)

    def _part_source(self, spec: ModelSpec, part: str, source: str | None) -> str | None:
        """Where one part of a model (its motion ``adapter``, its ``lora``) comes from: the
        owner's ``sources["key:part"]``, else the registry's, inside the model cache for a tiny
        model. A part the registry does not name has none."""
        if source is None:
            return None
        override = self._options.sources.get(f"{spec.key}:{part}")
        if override:
            return current_repo_id(override)
        if spec.tiny:
            return str(self._options.cache_dir / source)
        return source

    def _place(self, loaded: LoadedModel, switches: MemorySwitches) -> None:
        """Move a freshly loaded pipeline to its device (or behind offload hooks)."""
        import torch

        pipe = loaded.pipeline
        if switches.layerwise_casting:
            # Applied before any offloading hooks, as diffusers requires; to every denoiser, so
            # Wan 2.2 A14B's low-noise expert (transformer_2) is stored in fp8 too.
            from bot.core.pipelines.base import denoisers

            for _, module in denoisers(pipe):
                module.enable_layerwise_casting(
                    storage_dtype=torch.float8_e4m3fn, compute_dtype=getattr(torch, loaded.dtype)
                )
        sequential = self._offload_call(loaded)
        if sequential is not None:
            # The last-resort plan: every layer copied to the GPU as it runs (accelerate hooks).
            getattr(pipe, sequential)(device=loaded.device)
        elif switches.group_offload:
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
    def _offload_call(loaded: LoadedModel) -> str | None:
        """The pipeline method the loaded model's plan places it with, where the plan has its own
        (``bot.core.plans.offload_call``: sequential offload on CUDA)."""
        if loaded.plan is None or loaded.plan.chosen is None:
            return None
        return offload_call(loaded.plan.chosen.key, loaded.device)

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
        if self._offload_call(loaded) is not None:
            from accelerate import cpu_offload

            cpu_offload(module, execution_device=torch.device(loaded.device))
        elif switches.group_offload:
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
