"""Speed options: how a loaded pipeline is made fast on its device (precision, attention kernels,
memory layout, fused projections, compilation, decode chunking, CUDA graphs, the mp4 encoder).

Every option is a switch so it can be measured on and off (``bench/gpu_speed.py``) and tested on the
CPU; ``"auto"`` means on where it is known to pay and be safe (CUDA), off elsewhere. Nothing here may
make a job fail: each step that raises is logged and left off, and a compiled denoiser that raises
falls back to the eager one for good.

What each switch does (predictions and measurements: docs/PERFORMANCE.md, "GPU speed"):

- ``vae_dtype``: the VAE's precision. ``auto`` keeps the pipeline's dtype (bf16 has fp32's range, so
  the decode cannot overflow), except a model whose spec asks for another (Wan's VAE in float32) and a
  float16 pipeline whose VAE is flagged ``force_upcast`` by diffusers (it overflows in fp16), which
  are decoded in float32. Inputs are cast to the VAE's dtype on the way in.
- ``tf32``: TF32 tensor cores for the float32 matmuls that remain (a float32 VAE).
- ``attention``: ``sdpa`` puts PyTorch's fused scaled-dot-product attention on every attention layer
  still on the classic processor; ``flash`` also restricts it to the flash kernel.
- ``fuse_qkv``: one matmul for the query/key/value projections (``fuse_qkv_projections``).
- ``channels_last``: NHWC weights for every 2D convolution of the denoiser and the VAE, so cuDNN
  runs its NHWC kernels and the activations follow.
- ``cudnn_benchmark``: cuDNN times its convolution algorithms once per shape and keeps the fastest.
- ``decode_chunk``: the 2D VAE decodes this many frames per call (peak memory falls, speed stays).
- ``compile``: ``torch.compile`` of the denoiser for a small fixed set of job shapes (buckets: the
  model's native size at ``compile_frames`` frames), compiled once per bucket on first use and kept
  for later jobs; other shapes run eager rather than stall a member for a recompile.
- ``compile_scope``: ``auto`` compiles regionally where the transformer declares repeated blocks
  (``compile_repeated_blocks``: each block class is compiled once and reused by all its instances,
  so far less compile time for the same speed; LTX-Video and Wan), and the whole denoiser per shape
  bucket elsewhere; ``regional`` and ``full`` force one (``regional`` falls back to ``full`` where
  nothing repeats).
- ``cache``: a feature cache per job (``bot.core.caches``): ``auto`` is the model's registry
  default (off for every model so far), ``off``, or ``first_block``, ``mag``, ``faster``, ``pab``,
  ``taylorseer`` where the model's family takes it (the transformer models; a UNet model runs
  without one and the job's metadata and the log say why).
- ``cuda_graphs``: the compiled denoiser is replayed as a CUDA graph (``reduce-overhead``), which
  removes the per-kernel launch cost; only with ``compile``.
- ``encoder``: the mp4 encoder (:func:`bot.core.media.video_encoder`), used by whoever encodes
  (the bot's service, the CLI): ``auto`` is NVENC when the GPU
  and the bundled ffmpeg can both do it, else libx264.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

from bot.core.pipelines.base import denoisers
from bot.core.rules import CACHE_CHOICES

if TYPE_CHECKING:
    from bot.core.registry import ModelSpec

log = logging.getLogger(__name__)


class Placed(Protocol):
    """What the speed-ups read of a placed model (the manager's ``LoadedModel`` has it): a
    protocol, so this module never imports the manager that imports it."""

    pipeline: Any
    device: str
    dtype: str
    spec: Any
    switches: Any


SWITCHES = ("auto", "on", "off")
ATTENTION_CHOICES = ("auto", "sdpa", "flash", "sage", "flash3", "off")
KERNEL_BACKENDS = {"sage": "sage", "flash3": "_flash_3"}
"""Attention kernels from other packages, by our name -> diffusers' attention backend
(``set_attention_backend``): SageAttention (``sageattention``) and FlashAttention 3 (the
``flash_attn_interface`` module built from flash-attention's ``hopper/`` folder)."""
VAE_DTYPES = ("auto", "pipeline", "float32", "bfloat16", "float16")
COMPILE_MODES = ("default", "max-autotune")
COMPILE_SCOPES = ("auto", "regional", "full")
ENCODERS = ("auto", "libx264", "h264_nvenc")
DEFAULT_COMPILE_FRAMES = (16, 24)
"""Frame counts compiled besides the model's own default: the seed models' common choices."""
AUTO_DECODE_CHUNK = 8
"""Frames per VAE decode call on CUDA. A 2D VAE decodes frames independently, so chunking changes
no pixel; 8 frames keep the GPU busy (one 512x512 frame is already ~1.2 TFLOP) at a third of the
peak memory of decoding 24 frames at once."""
COMPILE_BACKEND = "inductor"
"""torch.compile backend; tests swap in ``"eager"`` (Dynamo only) to stay quick on the CPU."""

_FUSABLE = {
    "UNet2DConditionModel",
    "UNet3DConditionModel",
    "UNetMotionModel",
    "CogVideoXTransformer3DModel",
    "WanTransformer3DModel",
    "AutoencoderKL",
}
"""Models whose attention processors really use fused projections once fused. (LTX's processor
ignores them, so fusing it would only duplicate weights.)"""


@dataclass(frozen=True)
class SpeedOptions:
    """Which speed-ups the manager applies when it places a pipeline on its device."""

    vae_dtype: str = "auto"
    tf32: str = "auto"
    attention: str = "auto"
    fuse_qkv: str = "auto"
    channels_last: str = "auto"
    cudnn_benchmark: str = "auto"
    decode_chunk: int | str = "auto"
    """``auto`` (8 frames on CUDA, all at once elsewhere), ``off`` (all at once) or a frame count."""
    compile: str = "auto"
    compile_mode: str = "default"
    """``default`` or ``max-autotune`` (minutes more per bucket, a few % faster kernels)."""
    compile_frames: tuple[int, ...] = ()
    """Frame counts compiled at the native size; empty: 16, 24 and the model's default."""
    cuda_graphs: str = "auto"
    encoder: str = "auto"
    compile_scope: str = "auto"
    """``auto`` (regional where the transformer declares repeated blocks, else full), ``regional``
    or ``full``."""
    cache: str = "auto"
    """``auto`` (the model's registry default), ``off``, or a named cache: ``first_block``,
    ``mag``, ``faster``, ``pab``, ``taylorseer`` (``bot.core.caches``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "compile_frames", tuple(int(f) for f in self.compile_frames))
        for name in (
            "tf32",
            "fuse_qkv",
            "channels_last",
            "cudnn_benchmark",
            "compile",
            "cuda_graphs",
        ):
            _check(name, getattr(self, name), SWITCHES)
        _check("attention", self.attention, ATTENTION_CHOICES)
        if self.attention in KERNEL_BACKENDS:
            check_kernel_installed(self.attention)
        _check("vae_dtype", self.vae_dtype, VAE_DTYPES)
        _check("compile_mode", self.compile_mode, COMPILE_MODES)
        _check("encoder", self.encoder, ENCODERS)
        _check("compile_scope", self.compile_scope, COMPILE_SCOPES)
        _check("cache", self.cache, CACHE_CHOICES)
        chunk = self.decode_chunk
        if isinstance(chunk, bool) or not (
            chunk in ("auto", "off") or (isinstance(chunk, int) and chunk >= 1)
        ):
            raise ValueError(
                f"decode_chunk must be auto, off or a frame count >= 1 (got {chunk!r})"
            )
        if any(f < 1 for f in self.compile_frames):
            raise ValueError(
                f"compile_frames must be frame counts >= 1 (got {self.compile_frames})"
            )

    @classmethod
    def all_off(cls) -> SpeedOptions:
        """Every speed-up off: the pipeline runs as diffusers loaded it and libx264 encodes. Only
        the VAE precision guard stays (``vae_dtype="auto"``): it is about overflow, not speed."""
        return cls(
            vae_dtype="auto",
            tf32="off",
            attention="off",
            fuse_qkv="off",
            channels_last="off",
            cudnn_benchmark="off",
            decode_chunk="off",
            compile="off",
            cuda_graphs="off",
            encoder="libx264",
            cache="off",
        )

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> SpeedOptions:
        """From ``key=value`` strings (the bench's ``--speed``) or a settings dump."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown speed option(s) {unknown}; known: {sorted(known)}")
        parsed: dict[str, Any] = {}
        for key, value in values.items():
            if key == "compile_frames" and isinstance(value, str):
                value = tuple(int(v) for v in value.replace("/", ",").split(",") if v.strip())
            elif key == "decode_chunk" and isinstance(value, str) and value.isdigit():
                value = int(value)
            parsed[key] = value
        return cls(**parsed)


def check_kernel_installed(kind: str) -> None:
    """Refuse, in one line at start, an attention kernel whose package is not installed: diffusers
    would only fail at the first job. Asks diffusers' own requirement check of the backend."""
    from diffusers.models.attention_dispatch import (
        AttentionBackendName,
        _check_attention_backend_requirements,
    )

    try:
        _check_attention_backend_requirements(AttentionBackendName(KERNEL_BACKENDS[kind]))
    except (RuntimeError, ImportError) as exc:
        how = {
            "sage": "pip install sageattention (CUDA only)",
            "flash3": "build FlashAttention 3 from flash-attention's hopper/ folder (Hopper GPUs)",
        }[kind]
        log.debug("attention %s unusable: %s", kind, exc)
        raise ValueError(
            f"attention: {kind} is not installed here ({how}); use sdpa or flash instead"
        ) from None


def _check(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")


# --- resolution: what "auto" means on a device ---------------------------------------------------


def is_cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def resolve_switch(value: str, device: str) -> bool:
    """``auto`` is on for CUDA devices and off elsewhere; ``on``/``off`` are taken as given."""
    if value == "auto":
        return is_cuda(device)
    return value == "on"


@dataclass(frozen=True)
class ResolvedSpeed:
    """The concrete plan for one model on one device (``None``/``0``: leave as loaded)."""

    vae_dtype: str | None
    tf32: bool
    attention: str | None
    fuse_qkv: bool
    channels_last: bool
    cudnn_benchmark: bool
    decode_chunk: int
    compile: bool
    compile_mode: str
    cuda_graphs: bool
    compile_frames: tuple[int, ...]
    compile_scope: str = "auto"


def resolve_vae_dtype(
    option: str, pipeline_dtype: str, *, force_upcast: bool = False, spec_dtype: str | None = None
) -> str | None:
    """The VAE's dtype, or ``None`` to leave it as loaded. ``pipeline``: the pipeline's dtype even
    where the loader chose another (Wan's float32 VAE in bf16)."""
    if option == "pipeline":
        return pipeline_dtype
    if option != "auto":
        return option
    if spec_dtype and spec_dtype != pipeline_dtype:
        return spec_dtype
    if pipeline_dtype == "float16" and force_upcast:
        return "float32"
    return None


def resolve_speed(
    options: SpeedOptions,
    device: str,
    dtype: str,
    *,
    force_upcast: bool = False,
    spec_vae_dtype: str | None = None,
    cpu_offload: bool = False,
    group_offload: bool = False,
    layerwise_casting: bool = False,
) -> ResolvedSpeed:
    """What ``options`` mean for a model on ``device`` in ``dtype``: a pure function, so the meaning
    of ``auto`` is testable with a simulated ``"cuda"`` device on a machine without one.

    The memory savers win over speed-ups that cannot live with them: offloading (model-level or
    group) moves weights between devices on every call, so compiled graphs and CUDA graphs would
    capture stale addresses; group offload and fp8 layerwise casting keep weights where new fused
    projection layers would not follow (no hooks, fp8 storage), and fp8 convolution weights are
    left in their layout."""
    cuda = is_cuda(device)
    attention = options.attention
    if attention == "auto":
        attention = "sdpa" if cuda else "off"
    elif attention in ("flash", *KERNEL_BACKENDS) and cuda and dtype == "float32":
        attention = "sdpa"  # the flash, Sage and FA3 kernels take half precision only
    elif attention in KERNEL_BACKENDS and not cuda:
        attention = "sdpa"  # CUDA kernels: the CPU runs PyTorch's own
    chunk = options.decode_chunk
    if chunk == "auto":
        chunk = AUTO_DECODE_CHUNK if cuda else 0
    elif chunk == "off":
        chunk = 0
    streamed = group_offload or layerwise_casting
    compile_on = resolve_switch(options.compile, device) and not (cpu_offload or streamed)
    graphs = compile_on and cuda and resolve_switch(options.cuda_graphs, device)
    if options.compile_mode == "max-autotune":
        mode = "max-autotune" if graphs else "max-autotune-no-cudagraphs"
    else:
        mode = "reduce-overhead" if graphs else "default"
    return ResolvedSpeed(
        vae_dtype=resolve_vae_dtype(
            options.vae_dtype, dtype, force_upcast=force_upcast, spec_dtype=spec_vae_dtype
        ),
        tf32=resolve_switch(options.tf32, device) and cuda,
        attention=None if attention == "off" else attention,
        fuse_qkv=resolve_switch(options.fuse_qkv, device) and not streamed,
        channels_last=resolve_switch(options.channels_last, device) and not streamed,
        cudnn_benchmark=resolve_switch(options.cudnn_benchmark, device) and cuda,
        decode_chunk=int(chunk),
        compile=compile_on,
        compile_mode=mode,
        cuda_graphs=graphs,
        compile_frames=options.compile_frames,
        compile_scope=options.compile_scope,
    )


# --- compile buckets -----------------------------------------------------------------------------

Bucket = tuple[int, int, int]
"""(frames, height, width) of a job."""


def compile_buckets(spec: ModelSpec, frames: Iterable[int] = ()) -> frozenset[Bucket]:
    """The job shapes that get a compiled denoiser: the model's native size at a few frame counts
    (``frames``, else 16, 24 and the model's default), keeping only counts the model accepts."""
    wanted = set(frames) or {*DEFAULT_COMPILE_FRAMES, int(getattr(spec, "default_frames", 16))}
    rule = getattr(spec, "frames", None)
    accepts: Callable[[int], bool]
    if rule is not None and hasattr(rule, "accepts"):
        accepts = rule.accepts
    else:
        accepts = lambda f: 1 <= f <= spec.max_frames  # noqa: E731
    return frozenset(
        (f, spec.native_height, spec.native_width) for f in sorted(wanted) if accepts(f)
    )


def compile_bucket(
    frames: int, height: int, width: int, buckets: frozenset[Bucket]
) -> Bucket | None:
    """The bucket a member's choice runs in, or ``None`` (eager). Exact shapes only: padding a job
    into a larger bucket would change its pixels, so a seed would no longer reproduce."""
    key = (int(frames), int(height), int(width))
    return key if key in buckets else None


def latent_geometry(pipe: Any, frames: int, height: int, width: int) -> tuple[int, int, int]:
    """The (frames, height, width) of the latents the denoiser sees for a job of that size."""
    temporal = getattr(pipe, "vae_scale_factor_temporal", None) or getattr(
        pipe, "vae_temporal_compression_ratio", None
    )
    spatial = getattr(pipe, "vae_scale_factor_spatial", None) or getattr(
        pipe, "vae_spatial_compression_ratio", None
    )
    if temporal and spatial:
        return (frames - 1) // int(temporal) + 1, height // int(spatial), width // int(spatial)
    scale = int(getattr(pipe, "vae_scale_factor", 8))
    return frames, height // scale, width // scale


def call_geometry(module: Any) -> Callable[[tuple[Any, ...], dict[str, Any]], Bucket | None] | None:
    """How to read the latent (frames, height, width) off a call of this denoiser, or ``None`` for a
    denoiser this does not know (it is then not compiled)."""
    name = type(module).__name__

    def first_tensor(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        for key in ("sample", "hidden_states"):
            if key in kwargs:
                return kwargs[key]
        return args[0] if args else None

    if name in ("UNet3DConditionModel", "UNetMotionModel", "WanTransformer3DModel"):

        def bcfhw(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Bucket | None:
            x = first_tensor(args, kwargs)
            return tuple(int(s) for s in x.shape[2:5]) if getattr(x, "ndim", 0) == 5 else None  # type: ignore[return-value]

        return bcfhw
    if name == "CogVideoXTransformer3DModel":

        def bfchw(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Bucket | None:
            x = first_tensor(args, kwargs)
            if getattr(x, "ndim", 0) != 5:
                return None
            return int(x.shape[1]), int(x.shape[3]), int(x.shape[4])

        return bfchw
    if name == "LTXVideoTransformer3DModel":

        def packed(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Bucket | None:
            try:
                return int(kwargs["num_frames"]), int(kwargs["height"]), int(kwargs["width"])
            except (KeyError, TypeError):
                return None

        return packed
    return None


# --- the compiled denoiser -----------------------------------------------------------------------


class CompiledDenoiser:
    """Stands in for a denoiser's ``forward``: calls whose latent shape is a bucket go through one
    ``torch.compile``'d forward (static shapes, so one graph per bucket, kept for later jobs); other
    calls, and every call after the compiled one ever raised, run the original eager forward."""

    def __init__(
        self,
        module: Any,
        *,
        buckets: frozenset[Bucket],
        geometry: Callable[[tuple[Any, ...], dict[str, Any]], Bucket | None],
        mode: str,
        cuda_graphs: bool,
        sdpa_backends: list[Any] | None = None,
        backend: str | None = None,
    ) -> None:
        self.eager = module.forward
        self.buckets = buckets
        self.geometry = geometry
        self.mode = mode
        self.cuda_graphs = cuda_graphs
        self.sdpa_backends = sdpa_backends
        self.backend = backend or COMPILE_BACKEND
        self.compiled: Callable[..., Any] | None = None
        self.broken: str | None = None
        self.compiled_shapes: set[tuple[Any, ...]] = set()
        self.calls = {"compiled": 0, "eager": 0}
        self.__name__ = "forward"  # what torch and diffusers print for a module's forward

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.sdpa_backends is not None:
            from torch.nn.attention import sdpa_kernel

            try:
                with sdpa_kernel(self.sdpa_backends):
                    return self._call(args, kwargs)
            except RuntimeError as exc:
                if "kernel" not in str(exc).lower():
                    raise
                # A shape or dtype the flash kernel refuses: let SDPA choose from now on.
                log.warning("flash attention unavailable here (%s); using SDPA's choice", exc)
                self.sdpa_backends = None
        return self._call(args, kwargs)

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        key = None if self.broken else self.geometry(args, kwargs)
        if key is None or key not in self.buckets:
            self.calls["eager"] += 1
            return self.eager(*args, **kwargs)
        import torch

        try:
            if self.compiled is None:
                # Modes are inductor's; other backends (tests use "eager") take none.
                mode = self.mode if self.backend == "inductor" else None
                self.compiled = torch.compile(
                    self.eager, mode=mode, dynamic=False, backend=self.backend
                )
            if self.cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
            out = self.compiled(*args, **kwargs)
        except Exception as exc:  # compile must never fail a job: eager from now on
            self.broken = f"{type(exc).__name__}: {exc}"
            log.warning("compiled denoiser failed (%s); running eager from now on", self.broken)
            self.calls["eager"] += 1
            return self.eager(*args, **kwargs)
        self.calls["compiled"] += 1
        self.compiled_shapes.add(_shape_signature(args, kwargs))
        # A CUDA graph writes every replay's outputs into the same buffers; the pipeline may still
        # hold this step's output when the next replay runs, so hand it a copy.
        return _clone_tensors(out) if self.cuda_graphs else out


def _shape_signature(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    items = list(enumerate(args)) + sorted(kwargs.items())
    return tuple((k, tuple(v.shape)) for k, v in items if hasattr(v, "shape"))


def _clone_tensors(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, tuple):
        return tuple(_clone_tensors(v) for v in value)
    if isinstance(value, list):
        return [_clone_tensors(v) for v in value]
    if isinstance(value, dict):  # diffusers' BaseOutput is an OrderedDict dataclass
        for key in list(value.keys()):
            value[key] = _clone_tensors(value[key])
        return value
    return value


# --- the VAE call wrapper ------------------------------------------------------------------------


class VaeCall:
    """Wraps ``vae.decode`` / ``vae.encode``: casts inputs to the VAE's dtype (it may differ from
    the pipeline's) and, for 2D VAEs, decodes ``chunk`` frames per call."""

    def __init__(self, vae: Any, original: Callable[..., Any], chunk: int, cast_back: bool) -> None:
        self.vae = vae
        self.original = original
        self.chunk = chunk
        self.cast_back = cast_back
        functools.update_wrapper(self, original)

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        import torch

        in_dtype = getattr(x, "dtype", None)
        dtype = self.vae.dtype
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != dtype:
            x = x.to(dtype)
        args = tuple(
            a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a
            for a in args
        )
        if self.chunk and isinstance(x, torch.Tensor) and x.ndim == 4 and x.shape[0] > self.chunk:
            out = self._chunked(x, args, kwargs)
        else:
            out = self.original(x, *args, **kwargs)
        if self.cast_back and in_dtype is not None and in_dtype != dtype:
            _cast_floats(out, in_dtype)
        return out

    def _chunked(self, x: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        import torch
        from diffusers.models.autoencoders.vae import DecoderOutput

        return_dict = kwargs.pop("return_dict", args[0] if args else True)
        rest = args[1:]
        parts = [
            self.original(x[i : i + self.chunk], False, *rest, **kwargs)[0]
            for i in range(0, x.shape[0], self.chunk)
        ]
        sample = torch.cat(parts)
        return DecoderOutput(sample=sample) if return_dict else (sample,)


def _cast_floats(value: Any, dtype: Any) -> None:
    """Cast, in place, the floating tensors an encoder output carries (``latent_dist``)."""
    import torch

    targets = [value]
    if hasattr(value, "latent_dist"):
        targets.append(value.latent_dist)
    for target in targets:
        attrs = getattr(target, "__dict__", {})
        for name, item in list(attrs.items()):
            if isinstance(item, torch.Tensor) and item.is_floating_point():
                setattr(target, name, item.to(dtype))


# --- applying ------------------------------------------------------------------------------------


def apply_speed_options(loaded: Placed, options: SpeedOptions) -> None:
    """Apply ``options`` to a freshly placed pipeline. What was done is kept on the pipeline
    (:func:`speed_report`); a step that fails is logged and left off."""
    pipe = loaded.pipeline
    vae = getattr(pipe, "vae", None)
    vae_config = getattr(vae, "config", {}) or {}
    resolved = resolve_speed(
        options,
        loaded.device,
        loaded.dtype,
        force_upcast=bool(vae_config.get("force_upcast", False)),
        spec_vae_dtype=getattr(loaded.spec, "vae_dtype", None),
        cpu_offload=loaded.switches.cpu_offload,
        group_offload=getattr(loaded.switches, "group_offload", False),
        layerwise_casting=getattr(loaded.switches, "layerwise_casting", False),
    )
    report: dict[str, Any] = {"resolved": resolved}
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("tf32", lambda: _set_tf32(resolved.tf32)),
        ("cudnn_benchmark", lambda: _set_cudnn_benchmark(resolved.cudnn_benchmark)),
        ("vae_dtype", lambda: set_vae_dtype(pipe, resolved.vae_dtype)),
        ("attention", lambda: set_attention(pipe, resolved.attention)),
        ("fuse_qkv", lambda: fuse_qkv(pipe) if resolved.fuse_qkv else None),
        ("channels_last", lambda: to_channels_last(pipe) if resolved.channels_last else None),
        ("decode_chunk", lambda: wrap_vae(pipe, resolved.decode_chunk)),
        (
            "compile",
            lambda: compile_denoisers(pipe, loaded.spec, resolved) if resolved.compile else None,
        ),
        ("flash_scope", lambda: _flash_scope(pipe)),
    ]
    for name, step in steps:
        try:
            report[name] = step()
        except Exception as exc:  # a speed-up must never stop a model from loading
            log.warning("speed option %s failed on %s, left off: %s", name, loaded.spec.key, exc)
            report[name] = f"failed: {type(exc).__name__}: {exc}"
    with contextlib.suppress(Exception):  # a pipeline that refuses attributes keeps no report
        pipe._videobot_speed = report


def speed_report(pipe: Any) -> dict[str, Any]:
    """What :func:`apply_speed_options` did to ``pipe`` (empty if it never ran)."""
    report = getattr(pipe, "_videobot_speed", None)
    return dict(report) if isinstance(report, dict) else {}


def _set_tf32(on: bool) -> bool:
    if on:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return on


def _set_cudnn_benchmark(on: bool) -> bool:
    if on:
        import torch

        torch.backends.cudnn.benchmark = True
    return on


def set_vae_dtype(pipe: Any, dtype: str | None) -> str | None:
    """Put the VAE in ``dtype`` (``None``: leave it); :func:`wrap_vae` casts its inputs."""
    vae = getattr(pipe, "vae", None)
    if dtype is None or vae is None:
        return None
    import torch

    if vae.dtype != getattr(torch, dtype):
        vae.to(getattr(torch, dtype))
    return dtype


def set_attention(pipe: Any, kind: str | None) -> dict[str, int] | None:
    """``sdpa``: the fused SDPA processor wherever the classic one is left; ``flash``: that plus the
    flash kernel only (the dispatcher backend on DiT models, an ``sdpa_kernel`` scope on UNets)."""
    if kind is None:
        return None
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    changed: dict[str, int] = {}
    modules = [*denoisers(pipe), ("vae", getattr(pipe, "vae", None))]
    for name, module in modules:
        processors = getattr(module, "attn_processors", None)
        if not processors:
            continue
        count = sum(1 for p in processors.values() if type(p) is AttnProcessor)
        if count:
            module.set_attn_processor(
                {
                    k: AttnProcessor2_0() if type(p) is AttnProcessor else p
                    for k, p in processors.items()
                }
            )
        changed[name] = count
        if kind == "flash" and name != "vae":
            if _uses_dispatcher(module):
                module.set_attention_backend("_native_flash")
            else:
                module._videobot_sdpa_flash = True
        elif kind in KERNEL_BACKENDS and name != "vae":
            if _uses_dispatcher(module):
                module.set_attention_backend(KERNEL_BACKENDS[kind])
            else:
                log.info("%s has no attention dispatcher; it keeps PyTorch's SDPA", name)
    return changed


def _uses_dispatcher(module: Any) -> bool:
    return any(hasattr(p, "_attention_backend") for p in module.attn_processors.values())


def _flash_backends() -> list[Any]:
    from torch.nn.attention import SDPBackend

    return [SDPBackend.FLASH_ATTENTION]


def fuse_qkv(pipe: Any) -> list[str]:
    """Fuse the attention projections of the denoisers (and a 2D VAE) that use them fused."""
    fused = []
    for name, module in [*denoisers(pipe), ("vae", getattr(pipe, "vae", None))]:
        if module is None or type(module).__name__ not in _FUSABLE:
            continue
        if getattr(module, "_videobot_fused", False):
            fused.append(name)
            continue
        if type(module).__name__ == "UNetMotionModel":
            _fuse_spatial_only(module)
        else:
            module.fuse_qkv_projections()
        module._videobot_fused = True
        fused.append(name)
    return fused


def _fuse_spatial_only(unet: Any) -> None:
    """AnimateDiff: fuse the spatial attention only. Past 32 frames the adapter switches to
    FreeNoise, which rebuilds the motion modules' transformer blocks from their state dicts and
    refuses the fused weights; the motion modules attend over 16-32 frames, a small share of the
    attention work anyway."""
    from diffusers.models.attention_processor import Attention, FusedAttnProcessor2_0

    for path, module in unet.named_modules():
        if isinstance(module, Attention) and "motion_modules" not in path:
            module.fuse_projections(fuse=True)
            module.set_processor(FusedAttnProcessor2_0())  # type: ignore[arg-type]


def to_channels_last(pipe: Any) -> int:
    """NHWC weights for the 2D convolutions of the denoisers and the VAE; returns how many."""
    import torch

    count = 0
    for _, module in [*denoisers(pipe), ("vae", getattr(pipe, "vae", None))]:
        if module is None:
            continue
        for layer in module.modules():
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.data = layer.weight.data.contiguous(memory_format=torch.channels_last)
                count += 1
    return count


def wrap_vae(pipe: Any, chunk: int) -> int | None:
    """Install :class:`VaeCall` on the VAE's ``decode`` (chunked for 2D VAEs) and ``encode``, once.
    Always installed: the dtype cast is what keeps a VAE in another precision working."""
    vae = getattr(pipe, "vae", None)
    if vae is None:
        return None
    from diffusers import AutoencoderKL

    chunk = chunk if isinstance(vae, AutoencoderKL) else 0
    for method in ("decode", "encode"):
        current = getattr(vae, method, None)
        if current is None:
            continue
        if isinstance(current, VaeCall):
            current.chunk = chunk if method == "decode" else 0
            continue
        setattr(
            vae,
            method,
            VaeCall(vae, current, chunk if method == "decode" else 0, method == "encode"),
        )
    return chunk or None


def compile_denoisers(pipe: Any, spec: ModelSpec, resolved: ResolvedSpeed) -> dict[str, Any]:
    """Swap each denoiser's ``forward`` for a :class:`CompiledDenoiser` over the model's buckets."""
    _raise_dynamo_limits()
    if any(is_cuda(str(p.device)) for _, m in denoisers(pipe) for p in list(m.parameters())[:1]):
        import torch._inductor.config as inductor

        # diffusers' recommended inductor settings for UNets and DiTs.
        inductor.conv_1x1_as_mm = True
        inductor.coordinate_descent_tuning = True
    jobs = compile_buckets(spec, resolved.compile_frames)
    latent = frozenset(latent_geometry(pipe, *job) for job in jobs)
    done: dict[str, Any] = {}
    for name, module in denoisers(pipe):
        if isinstance(module.forward, CompiledDenoiser):
            done[name] = sorted(module.forward.buckets)
            continue
        if getattr(module, "_videobot_regional", None):
            done[name] = module._videobot_regional
            continue
        if resolved.compile_scope != "full" and getattr(module, "_repeated_blocks", None):
            done[name] = compile_regions(module, resolved)
            continue
        geometry = call_geometry(module)
        if geometry is None:
            done[name] = "not compiled: unknown latent layout"
            continue
        flash = getattr(module, "_videobot_sdpa_flash", False)
        module.forward = CompiledDenoiser(
            module,
            buckets=latent,
            geometry=geometry,
            mode=resolved.compile_mode,
            cuda_graphs=resolved.cuda_graphs,
            sdpa_backends=_flash_backends() if flash else None,
        )
        done[name] = sorted(latent)
    return done


def compile_regions(module: Any, resolved: ResolvedSpeed) -> str:
    """Regional compilation: diffusers' ``compile_repeated_blocks`` compiles each transformer
    block (``_repeated_blocks``) instead of the whole denoiser. One compiled block serves all its
    instances and every job shape (dynamic shapes after the first recompile), so compile time falls
    from minutes to seconds with about the same speed; the cache hooks (``bot.core.caches``) sit
    inside the blocks' forward and are traced with them. CUDA graphs stay off here: a graph per
    block would hold a copy of every block's activations."""
    mode = resolved.compile_mode.replace("reduce-overhead", "default")
    if mode == "max-autotune":
        mode = "max-autotune-no-cudagraphs"
    kwargs: dict[str, Any] = {"backend": COMPILE_BACKEND}
    if COMPILE_BACKEND == "inductor":
        kwargs["mode"] = mode
    module.compile_repeated_blocks(**kwargs)
    note = f"regional: {', '.join(module._repeated_blocks)} ({mode})"
    module._videobot_regional = note
    return note


def _flash_scope(pipe: Any) -> list[str] | None:
    """``attention = "flash"`` on a UNet that is not compiled: run its forward in a flash-only
    ``sdpa_kernel`` scope (a compiled one already has the scope)."""
    scoped = []
    for name, module in denoisers(pipe):
        if getattr(module, "_videobot_sdpa_flash", False) and not isinstance(
            module.forward, CompiledDenoiser
        ):
            module.forward = CompiledDenoiser(
                module,
                buckets=frozenset(),
                geometry=lambda args, kwargs: None,
                mode="default",
                cuda_graphs=False,
                sdpa_backends=_flash_backends(),
            )
            scoped.append(name)
    return scoped or None


def _raise_dynamo_limits() -> None:
    """Static shapes mean one graph per (bucket, batch): allow enough of them before Dynamo gives
    up and runs eager by itself."""
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), 64))
    if hasattr(torch._dynamo.config, "accumulated_recompile_limit"):
        torch._dynamo.config.accumulated_recompile_limit = max(
            torch._dynamo.config.accumulated_recompile_limit, 1024
        )
