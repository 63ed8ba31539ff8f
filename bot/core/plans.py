"""Memory plans: the fastest way a model fits the card it is on, as pure functions of data.

Each model lists the plans that can run it, fastest first (bf16 on the GPU, fp8 weight storage,
torchao int8/fp8, GGUF transformers, model offload, group offload, sequential offload). A plan's GPU and host memory are computed from
the model's real parameter counts per component (``ModelSpec.parameters``) and the job's shape, so
the chooser, ``/models list`` and ``videobot models --json`` can say which plan a card gets and
why without importing torch or loading anything.

The figures are estimates, stated as such: weights are exact (parameters x bytes per parameter of
the plan), the working memory (activations and the VAE decode) is the model's figure at its native
size (``ModelSpec.working_gb``) scaled by the job's pixels x frames. A plan that runs out of memory
anyway steps the job down to the next plan (the out-of-memory retry), so an estimate that is too
low costs one retry, never a failed job.

Units: GB here means GiB (2**30 bytes), as ``nvidia-smi`` and torch report a card's memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.core.errors import InvalidParameterError

if TYPE_CHECKING:
    from bot.core.registry import ModelSpec

GB = 2**30
CUDA_CONTEXT_GB = 0.6
"""What the CUDA context, cuBLAS workspaces and the allocator's slack take before any weight."""
HEADROOM = 0.92
"""The share of a card's memory a plan may plan for: fragmentation and other processes need room."""
HOST_BASE_GB = 3.0
"""The bot process itself (Python, torch, the tokenizers, ffmpeg) in host memory."""
TILED_DECODE_SHARE = 0.5
"""Working memory with the VAE decoding in tiles, as a share of the untiled figure (an estimate:
the decode is the larger part of a video job's working memory and tiling bounds it)."""
DENOISERS = ("transformer", "transformer_2", "image_transformer", "unet", "motion_adapter")
EXPERTS = ("transformer", "transformer_2", "image_transformer")
"""Denoisers that take turns, never running together: Wan 2.2 A14B's high- and low-noise experts
(switched at ``boundary_ratio``), CogVideoX-5b's image-to-video transformer. An offload plan holds
one of them on the GPU at a time; the UNet and its motion adapter run together."""


@dataclass(frozen=True)
class Card:
    """The device a model runs on: its memory, its compute capability and the host's memory."""

    vram_gb: float
    host_ram_gb: float
    compute_capability: tuple[int, int] = (8, 0)
    packages: frozenset[str] = frozenset({"torchao", "gguf"})
    """The optional packages installed where the model runs (``torchao``, ``gguf``): a plan
    needing one that is missing is listed but never chosen."""

    def describe(self) -> str:
        major, minor = self.compute_capability
        return f"{self.vram_gb:g} GB card (compute {major}.{minor}), {self.host_ram_gb:g} GB RAM"


@dataclass(frozen=True)
class PlanKind:
    """One way to place a model, as the manager's memory switches apply it."""

    key: str
    description: str
    switches: tuple[str, ...]
    """The ``MemorySwitches`` this plan turns on."""
    denoiser_bytes: float = 2.0
    """Bytes per denoiser parameter resident on the GPU (2: bf16; 1: fp8 storage)."""
    text_encoder_bytes: float = 2.0
    min_compute: tuple[int, int] = (0, 0)
    quantization: str | None = None
    """torchao weight-only quantisation of the denoiser and the text encoder (``"int8"``,
    ``"fp8"``), applied at load (``bot.core.pipelines.quantize``)."""
    needs: str | None = None
    """The optional package the plan runs on."""
    transformers_only: bool = False
    """Offered for the transformer families only (their adapter takes a quantisation config)."""
    gguf: str | None = None
    """The GGUF quant type of the community files the denoiser is loaded from (``"Q8_0"``,
    ``"Q5_K_M"``, ``"Q4_K_M"``; ``bot.core.pipelines.gguf``); offered only for a model whose
    registry entry names those files (``ModelSpec.gguf_files``)."""
    sequential: bool = False
    """Sequential CPU offload (``enable_sequential_cpu_offload``): every layer is copied to the GPU
    as it runs and dropped after, so the GPU holds one layer and the working memory."""


GGUF_BLOCKS: dict[str, tuple[int, int]] = {
    "Q8_0": (32, 34),
    "Q5_K": (256, 176),
    "Q4_K": (256, 144),
    "Q5_0": (32, 22),
    "Q4_0": (32, 18),
}
"""Weights per block and bytes per block of the GGUF quant types (``gguf.GGML_QUANT_SIZES``,
copied so the plans need no import; ``tests/test_gguf.py`` holds them to gguf's own table): Q8_0
is 8.5 bits a weight, Q5_K 5.5, Q4_K 4.5. GGUF tensors stay quantised in GPU memory and are
dequantised layer by layer as they run, so a plan's weights are these bytes."""


def gguf_bytes(quant: str) -> float:
    """Bytes per parameter of a GGUF file of ``quant`` (``"Q4_K_M"``: its main type, Q4_K). A
    ``_K_M`` file keeps a few tensors at Q6_K and its norms and biases in F32, so the real files
    are larger than this (Wan 2.2 A14B's Q4_K_M experts: 9.7-9.8 GB published against 8.0
    computed; Q8_0: 15.4 against 15.2): an estimate that is low costs one out-of-memory retry."""
    block, size = GGUF_BLOCKS[quant.removesuffix("_M").removesuffix("_S")]
    return size / block


def _gguf_kind(quant: str, offload: bool) -> PlanKind:
    where = (
        "one component on the GPU at a time (model offload), the rest in host memory"
        if offload
        else "on the GPU"
    )
    return PlanKind(
        f"gguf_{quant.lower()}" + ("_offload" if offload else ""),
        f"the denoiser from the community's {quant} GGUF files, dequantised as each layer runs, "
        + where,
        ("cpu_offload", "vae_tiling") if offload else (),
        denoiser_bytes=gguf_bytes(quant),
        gguf=quant,
        needs="gguf",
        transformers_only=True,
    )


PLAN_KINDS: tuple[PlanKind, ...] = (
    PlanKind("bf16", "every weight on the GPU in half precision", ()),
    PlanKind(
        "fp8_storage",
        "the denoiser's weights stored in fp8, computed in half precision (layerwise casting)",
        ("layerwise_casting",),
        denoiser_bytes=1.0,
    ),
    PlanKind(
        "torchao_fp8",
        "torchao fp8 weight-only quantisation of the denoiser and the text encoder",
        (),
        denoiser_bytes=1.0,
        text_encoder_bytes=1.0,
        min_compute=(8, 9),
        quantization="fp8",
        needs="torchao",
        transformers_only=True,
    ),
    PlanKind(
        "torchao_int8",
        "torchao int8 weight-only quantisation of the denoiser and the text encoder",
        (),
        denoiser_bytes=1.0,
        text_encoder_bytes=1.0,
        quantization="int8",
        needs="torchao",
        transformers_only=True,
    ),
    _gguf_kind("Q8_0", offload=False),
    _gguf_kind("Q5_K_M", offload=False),
    _gguf_kind("Q4_K_M", offload=False),
    PlanKind(
        "model_offload",
        "one component on the GPU at a time, the rest in host memory; the VAE decodes in tiles",
        ("cpu_offload", "vae_tiling"),
    ),
    PlanKind(
        "fp8_model_offload",
        "model offload with the denoiser's weights stored in fp8: half the largest component",
        ("cpu_offload", "layerwise_casting", "vae_tiling"),
        denoiser_bytes=1.0,
    ),
    # GGUF Q8_0 under model offload would need more GPU memory than fp8_model_offload and run
    # slower (dequantising costs more than an fp8 cast), so only the smaller quants are offloaded.
    _gguf_kind("Q5_K_M", offload=True),
    _gguf_kind("Q4_K_M", offload=True),
    PlanKind(
        "group_offload",
        "the layers streamed in from host memory on a CUDA stream as they run, weights in fp8",
        ("group_offload", "layerwise_casting", "vae_tiling"),
        denoiser_bytes=1.0,
    ),
    PlanKind(
        "sequential_offload",
        "every layer copied in from host memory as it runs (enable_sequential_cpu_offload): the "
        "least GPU memory and the slowest, the last resort",
        ("cpu_offload", "vae_tiling"),
        sequential=True,
    ),
)
"""The plans, fastest first."""
PLAN_KEYS = tuple(kind.key for kind in PLAN_KINDS)
PLAN_CHOICES = ("auto", *PLAN_KEYS)


@dataclass(frozen=True)
class Plan:
    """One plan for one model and job shape: what it needs and whether the card has it."""

    kind: PlanKind
    vram_gb: float
    host_ram_gb: float
    fits: bool
    why_not: str = ""

    @property
    def key(self) -> str:
        return self.kind.key

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.key,
            "vram_gb": round(self.vram_gb, 1),
            "host_ram_gb": round(self.host_ram_gb, 1),
            "switches": list(self.kind.switches),
            "fits": self.fits,
            **({"why_not": self.why_not} if self.why_not else {}),
        }


@dataclass(frozen=True)
class Choice:
    """The plan a model gets on a card, the others it could step down to, and why."""

    model: str
    card: Card
    plans: tuple[Plan, ...]
    chosen: Plan | None
    reason: str
    steps_down: tuple[Plan, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.chosen.key if self.chosen else None,
            "reason": self.reason,
            "plans": [plan.as_dict() for plan in self.plans],
        }


@dataclass(frozen=True)
class Shape:
    """What a job asks for: its size, its frames and whether it animates a picture."""

    width: int
    height: int
    frames: int
    image: bool = False


def native_shape(spec: ModelSpec) -> Shape:
    return Shape(spec.native_width, spec.native_height, spec.default_frames)


def working_gb(spec: ModelSpec, shape: Shape) -> float:
    """Activations and the decode for ``shape``: the model's native figure scaled by the job's
    pixels x frames (attention runs memory-efficiently, so working memory grows linearly)."""
    native = spec.native_width * spec.native_height * max(1, spec.default_frames)
    scale = shape.width * shape.height * max(1, shape.frames) / native
    return native_working_gb(spec) * scale


def native_working_gb(spec: ModelSpec) -> float:
    if spec.working_gb is not None:
        return spec.working_gb
    if not spec.parameters:
        return 0.0
    weights = _gb(_resident(spec, image=False), 2.0)
    return max(2.0, spec.vram_gb - weights)


def plans_for(spec: ModelSpec, shape: Shape, card: Card) -> tuple[Plan, ...]:
    """Every plan for ``spec`` at ``shape`` on ``card``, fastest first, with its figures."""
    return tuple(_plan(kind, spec, shape, card) for kind in kinds_for(spec))


def kinds_for(spec: ModelSpec) -> tuple[PlanKind, ...]:
    """The plans a model can be placed by: quantisation needs a transformer denoiser, and the GGUF
    plans a registry entry that names its GGUF files."""
    transformer = "transformer" in spec.parameters
    return tuple(
        kind
        for kind in PLAN_KINDS
        if (transformer or not kind.transformers_only)
        and (kind.gguf is None or bool(spec.gguf_files))
    )


def plan_kind(key: str) -> PlanKind:
    return next(kind for kind in PLAN_KINDS if kind.key == key)


def choose(
    spec: ModelSpec, card: Card, shape: Shape | None = None, *, forced: str = "auto"
) -> Choice:
    """The fastest plan that fits ``card`` (``forced``: the owner's pick, used even where the
    estimate says it will not fit, with the reason saying so)."""
    shape = shape or native_shape(spec)
    plans = plans_for(spec, shape, card)
    if forced != "auto":
        chosen = next((p for p in plans if p.key == forced), None)
        if chosen is None:
            raise InvalidParameterError(
                "plan",
                f"{forced!r} is not a plan for {spec.key}; its plans: "
                + ", ".join(p.key for p in plans),
            )
        note = "" if chosen.fits else f" (estimated not to fit: {chosen.why_not})"
        return Choice(
            spec.key, card, plans, chosen, f"set by the owner{note}", _after(plans, chosen)
        )
    for plan in plans:
        if plan.fits:
            skipped = [p for p in plans[: plans.index(plan)]]
            reason = (
                f"fastest plan that fits a {card.vram_gb:g} GB card"
                if not skipped
                else f"{skipped[-1].key} {skipped[-1].why_not}; "
                f"{plan.key} needs {plan.vram_gb:.1f} GB of {card.vram_gb:g} GB"
            )
            return Choice(spec.key, card, plans, plan, reason, _after(plans, plan))
    least = min(plans, key=lambda p: p.vram_gb)
    return Choice(
        spec.key,
        card,
        plans,
        None,
        f"no plan fits a {card.describe()}: the smallest, {least.key}, needs about "
        f"{least.vram_gb:.1f} GB of GPU memory and {least.host_ram_gb:.1f} GB of RAM",
    )


def step_down(spec: ModelSpec, card: Card, current: str, shape: Shape | None = None) -> Plan | None:
    """The plan after ``current`` that uses less GPU memory, for a job that ran out of it."""
    plans = plans_for(spec, shape or native_shape(spec), card)
    keys = [p.key for p in plans]
    if current not in keys:
        return None
    now = plans[keys.index(current)]
    later = [
        p
        for p in plans[keys.index(current) + 1 :]
        if p.vram_gb < now.vram_gb and _can_run(p.kind, card)
    ]
    fitting = [p for p in later if p.fits]
    return next(iter(fitting or later), None)


def _can_run(kind: PlanKind, card: Card) -> bool:
    """Whether the card and the installed packages can run the plan at all, memory aside."""
    installed = kind.needs is None or kind.needs in card.packages
    return installed and card.compute_capability >= kind.min_compute


def offload_call(plan_key: str, device: str) -> str | None:
    """The pipeline method that places a model under ``plan_key`` on ``device`` where the plan
    needs one of its own: ``enable_sequential_cpu_offload`` for sequential offload on a CUDA
    device (off CUDA there is nothing to offload to, so None). The manager calls what this says."""
    if plan_kind(plan_key).sequential and device.startswith("cuda"):
        return "enable_sequential_cpu_offload"
    return None


def switches_of(plan_key: str) -> dict[str, bool]:
    """The memory switches a plan turns on, by the switches' names."""
    return dict.fromkeys(plan_kind(plan_key).switches, True)


def host_ram_gb() -> float:
    """This machine's memory, from the operating system (no psutil needed)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
    except (ValueError, OSError, AttributeError):
        return 16.0


# --- the figures ----------------------------------------------------------------------------------


def _plan(kind: PlanKind, spec: ModelSpec, shape: Shape, card: Card) -> Plan:
    parts = _resident(spec, image=shape.image)
    denoiser = {k: v for k, v in parts.items() if k in DENOISERS}
    text = {k: v for k, v in parts.items() if k == "text_encoder"}
    rest = {k: v for k, v in parts.items() if k not in denoiser and k not in text}
    others = {**text, **rest}
    work = working_gb(spec, shape)
    if kind.sequential:
        # One layer at a time: the largest (a text encoder's token embedding in every registry
        # model), in half precision, and the working memory; the host holds every weight.
        vram = _gb({"layer": largest_layer(spec)}, 2.0) + work * TILED_DECODE_SHARE
        host = HOST_BASE_GB + _gb(parts, 2.0)
    elif "cpu_offload" in kind.switches:
        # One component at a time: the largest of them, and the working memory beside it.
        together = {k: v for k, v in denoiser.items() if k not in EXPERTS}
        turns = [{k: v} for k, v in denoiser.items() if k in EXPERTS] or [{}]
        sizes = [_gb({**together, **expert}, kind.denoiser_bytes) for expert in turns]
        sizes += [_gb({k: v}, 2.0) for k, v in others.items()]
        vram = max(sizes) + work * TILED_DECODE_SHARE
        host = HOST_BASE_GB + _host_weights(kind, denoiser, text, rest)
    elif "group_offload" in kind.switches:
        # Block-level groups with one prefetched: a few blocks' weights, plus the working memory.
        vram = 0.1 * _gb(denoiser, kind.denoiser_bytes) + work * TILED_DECODE_SHARE
        host = HOST_BASE_GB + _host_weights(kind, denoiser, text, rest)
    else:
        weights = _gb(denoiser, kind.denoiser_bytes) + _gb(text, kind.text_encoder_bytes)
        vram = weights + _gb(rest, 2.0) + work
        host = HOST_BASE_GB + max((_gb({k: v}, 2.0) for k, v in parts.items()), default=0.0)
    vram += CUDA_CONTEXT_GB if spec.parameters else 0.0
    problems = []
    if kind.needs is not None and kind.needs not in card.packages:
        problems.append(f"needs {kind.needs} (pip install 'videobot[quant]')")
    if card.compute_capability < kind.min_compute:
        major, minor = kind.min_compute
        problems.append(f"needs compute capability {major}.{minor}")
    if vram > card.vram_gb * HEADROOM:
        problems.append(f"needs {vram:.1f} GB of GPU memory, the card has {card.vram_gb:g}")
    if host > card.host_ram_gb * HEADROOM:
        problems.append(f"needs {host:.1f} GB of RAM, the host has {card.host_ram_gb:g}")
    return Plan(kind, vram, host, not problems, "; ".join(problems))


TOKEN_EMBEDDINGS: dict[float, float] = {
    5680.9: 1050.1,  # UMT5-XXL (every Wan): 256384 x 4096
    4762.3: 131.6,  # T5 v1.1 XXL (LTX-Video, CogVideoX): 32128 x 4096
    7070.6: 545.0,  # Qwen2.5-VL-7B's language model (HunyuanVideo 1.5): 152064 x 3584
    123.1: 37.9,  # CLIP ViT-L/14's text tower (SD 1.5, AnimateDiff): 49408 x 768
    340.4: 50.6,  # OpenCLIP ViT-H/14's text tower (ModelScope, Zeroscope): 49408 x 1024
}
"""The largest single layer of each text encoder (millions of parameters), keyed by the encoder's
size as the registry counts it: its token embedding, measured on the meta device from
``bench/model_configs`` (the largest leaf module of every registry model is its text encoder's
embedding; the denoisers' largest is Wan 14B's 157.3M time projection)."""
EMBEDDING_SHARE = 0.2
"""For a text encoder not in :data:`TOKEN_EMBEDDINGS` (Gemma 3 12B: 262208 x 3840 = 1006.9M of
about 11.8B, 9%), the largest layer is taken as this share of it: above every measured share
(UMT5-XXL's is the largest, 18.5%)."""


def largest_layer(spec: ModelSpec) -> float:
    """The largest single layer a sequential offload copies to the GPU at once, in millions."""
    text = spec.parameters.get("text_encoder", 0.0)
    measured = TOKEN_EMBEDDINGS.get(text)
    return measured if measured is not None else text * EMBEDDING_SHARE


def _host_weights(
    kind: PlanKind, denoiser: dict[str, float], text: dict[str, float], rest: dict[str, float]
) -> float:
    """What an offload plan keeps in host memory: every weight, the denoiser in the precision
    the plan stores it in (fp8 storage halves it there too)."""
    return _gb(denoiser, kind.denoiser_bytes) + _gb(text, kind.text_encoder_bytes) + _gb(rest, 2.0)


def _resident(spec: ModelSpec, *, image: bool) -> dict[str, float]:
    """The components a job loads: the image-to-video transformer only for pictures."""
    return {k: v for k, v in spec.parameters.items() if image or k != "image_transformer"}


def _gb(parts: dict[str, float], bytes_per_parameter: float) -> float:
    return sum(parts.values()) * 1e6 * bytes_per_parameter / GB


def _after(plans: Iterable[Plan], chosen: Plan) -> tuple[Plan, ...]:
    listed = list(plans)
    return tuple(listed[listed.index(chosen) + 1 :])


__all__ = [
    "PLAN_CHOICES",
    "PLAN_KEYS",
    "PLAN_KINDS",
    "Card",
    "Choice",
    "Plan",
    "Shape",
    "choose",
    "gguf_bytes",
    "host_ram_gb",
    "kinds_for",
    "largest_layer",
    "native_shape",
    "offload_call",
    "plan_kind",
    "plans_for",
    "step_down",
    "switches_of",
    "working_gb",
]
