"""Feature caches: diffusers' cache hooks (First Block Cache, MagCache, FasterCache, Pyramid
Attention Broadcast, TaylorSeer) as one per-job switch, planned from the model's registry data.

A cache reuses what the transformer computed at an earlier step instead of computing it again:
First Block Cache and MagCache skip every block after the first when the step barely changes the
features, FasterCache and Pyramid Attention Broadcast reuse attention outputs for a few steps,
TaylorSeer predicts them from the last computed ones. Each trades a little fidelity for speed, so
``"auto"`` is each model's registry default, which is off unless the model's card or diffusers'
docs show no visible loss (none do yet for the models here).

The hooks are put on for one job and taken off after it (:func:`cache_applied`), whatever happens:
MagCache's ratios depend on the job's step count, a cancelled job would leave stale residuals in a
stateful hook, and a draft uses a cache that a full render of the same seed must not.

Caches only apply to the transformer families (LTX-Video, Wan, CogVideoX, HunyuanVideo 1.5): their
blocks are the ones diffusers' hooks know. The UNet families (ModelScope, Zeroscope, AnimateDiff) run without one,
and the plan says so (``CachePlan.note``, also logged).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.core.registry import ModelSpec

from bot.core.rules import CACHE_CHOICES

log = logging.getLogger(__name__)


CACHE_TITLES: dict[str, str] = {
    "first_block": "First Block Cache",
    "mag": "MagCache",
    "faster": "FasterCache",
    "pab": "Pyramid Attention Broadcast",
    "taylorseer": "TaylorSeer",
}

_ATTENTION = r"^(transformer_blocks|blocks)\.\d+\.attn1?"
"""The self-attention of each block in the transformer families (LTX-Video and CogVideoX:
``transformer_blocks.N.attn1``; Wan: ``blocks.N.attn1``; HunyuanVideo 1.5's joint attention:
``transformer_blocks.N.attn``), matched whole (TaylorSeer uses ``re.fullmatch``)."""

FAMILY_CACHES: dict[str, tuple[str, ...]] = {
    "ltx": ("first_block", "mag", "pab", "taylorseer"),
    "wan": ("first_block", "mag", "pab", "taylorseer"),
    "cogvideox": ("first_block", "mag", "faster", "pab", "taylorseer"),
    "hunyuan_video15": ("pab", "taylorseer"),
}
"""Which caches run on which family. FasterCache approximates the unconditional branch from a
batch that holds both branches as 5D latents: CogVideoX only (LTX-Video packs its latents into
tokens, Wan runs the two branches as separate calls). HunyuanVideo 1.5 takes Pyramid Attention
Broadcast and TaylorSeer: diffusers 0.42.1 has not registered its transformer block, which First
Block Cache and MagCache need ("Model class HunyuanVideo15TransformerBlock not registered"), and
its guider runs the two branches as separate calls, which FasterCache cannot split. Wan 2.2
A14B's two experts each get the cache (:func:`cache_applied`). Families not listed are UNets:
no cache."""

DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    # diffusers' default threshold: the relative change of the first block's residual below which
    # the remaining blocks are skipped.
    "first_block": {"threshold": 0.05},
    # diffusers' defaults; the ratios are per checkpoint and come from the registry.
    "mag": {"threshold": 0.06, "max_skip_steps": 3, "retention_ratio": 0.2},
    # diffusers' cache guide for CogVideoX-5b.
    "faster": {
        "spatial_attention_block_skip_range": 2,
        "spatial_attention_timestep_skip_range": (-1, 681),
        "low_frequency_weight_update_timestep_range": (99, 641),
        "high_frequency_weight_update_timestep_range": (-1, 301),
        "attention_weight": 0.3,
        "tensor_format": "BFCHW",
    },
    # diffusers' cache guide for CogVideoX-5b: spatial attention every second step from t=800
    # down to t=100.
    "pab": {
        "spatial_attention_block_skip_range": 2,
        "spatial_attention_timestep_skip_range": (100, 800),
    },
    # TaylorSeer's defaults: three full steps, then one in five computed, first-order prediction.
    "taylorseer": {"cache_interval": 5, "disable_cache_before_step": 3, "max_order": 1},
}
"""Each cache's settings where the registry gives none (``ModelSpec.cache_settings`` overrides
them key by key)."""


@dataclass(frozen=True)
class CachePlan:
    """The cache one job runs with: ``name`` (``None``: no cache), its settings, and a note that
    says what was chosen and why (for the log and the result's metadata)."""

    name: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    note: str = "off"

    def as_metadata(self) -> dict[str, Any]:
        """Plain data for ``GenerationResult.metadata``."""
        settings = {k: _plain(v) for k, v in self.settings.items()}
        return {"name": self.name or "off", "settings": settings, "note": self.note}


NO_CACHE = CachePlan(None)


def check_cache_choice(value: object) -> str:
    """``[speed] cache``'s validation: one of :data:`CACHE_CHOICES`."""
    if value not in CACHE_CHOICES:
        raise ValueError(f"cache must be one of {', '.join(CACHE_CHOICES)} (got {value!r})")
    return str(value)


def supported_caches(spec: ModelSpec) -> tuple[str, ...]:
    """The caches that can run on ``spec``: its family's, less MagCache where the registry has no
    calibrated ratios for it."""
    names = FAMILY_CACHES.get(spec.family, ())
    return tuple(
        n for n in names if n != "mag" or "mag_ratios" in spec.cache_settings.get("mag", {})
    )


def plan_cache(choice: str, spec: ModelSpec) -> CachePlan:
    """What ``choice`` (``[speed] cache`` or a draft recipe's cache) means for ``spec``. A cache
    that does not apply to the model is not an error (the setting is global, the models are
    many): the job runs without one and the note says why."""
    check_cache_choice(choice)
    name = spec.cache_default if choice == "auto" else choice
    if name == "off":
        return CachePlan(None, note="off" if choice == "off" else f"off ({spec.key}'s default)")
    if spec.family not in FAMILY_CACHES:
        note = (
            f"off: {CACHE_TITLES[name]} ({name}) does not apply to {spec.key}, a UNet "
            "model; caches run on the transformer models (LTX-Video, Wan, CogVideoX, "
            "HunyuanVideo 1.5) only"
        )
        log.info("%s", note)
        return CachePlan(None, note=note)
    if name not in FAMILY_CACHES[spec.family]:
        note = (
            f"off: {CACHE_TITLES[name]} ({name}) does not apply to the {spec.family} "
            f"family of {spec.key}; it takes {', '.join(FAMILY_CACHES[spec.family])}"
        )
        log.info("%s", note)
        return CachePlan(None, note=note)
    settings = {**DEFAULT_SETTINGS[name], **spec.cache_settings.get(name, {})}
    if name == "mag" and "mag_ratios" not in settings:
        note = (
            f"off: MagCache needs {spec.key}'s calibrated magnitude ratios and the registry has "
            "none for it (calibrate with diffusers' MagCacheConfig(calibrate=True))"
        )
        log.info("%s", note)
        return CachePlan(None, note=note)
    shown = ", ".join(f"{k}={_plain(v)}" for k, v in settings.items() if k != "mag_ratios")
    return CachePlan(name, settings, note=f"{name} ({shown})")


def build_config(plan: CachePlan, pipe: Any, steps: int) -> Any:
    """The diffusers config object for ``plan`` on ``pipe`` for a job of ``steps`` steps."""
    import torch
    from diffusers.hooks import (
        FasterCacheConfig,
        FirstBlockCacheConfig,
        MagCacheConfig,
        PyramidAttentionBroadcastConfig,
        TaylorSeerCacheConfig,
    )

    settings = dict(plan.settings)

    def timestep() -> Any:
        return pipe.current_timestep

    if plan.name == "first_block":
        return FirstBlockCacheConfig(**settings)
    if plan.name == "mag":
        return MagCacheConfig(num_inference_steps=steps, **settings)
    if plan.name == "pab":
        return PyramidAttentionBroadcastConfig(
            current_timestep_callback=timestep, **_tuples(settings)
        )
    if plan.name == "faster":
        weight = float(settings.pop("attention_weight", 0.5))
        return FasterCacheConfig(
            current_timestep_callback=timestep,
            attention_weight_callback=lambda _module: weight,
            **_tuples(settings),
        )
    if plan.name == "taylorseer":
        settings.setdefault("cache_identifiers", [_ATTENTION])
        # float32 factors: the prediction subtracts close values, which bf16 would round away.
        return TaylorSeerCacheConfig(taylor_factors_dtype=torch.float32, **settings)
    raise ValueError(f"no cache config for {plan.name!r}")


@contextmanager
def cache_applied(pipe: Any, plan: CachePlan, steps: int) -> Iterator[list[str]]:
    """Put ``plan``'s cache on ``pipe``'s transformers (``transformer`` and, where there is one,
    ``transformer_2``) for the block, and take it off afterwards, a cancel or a failure included.
    Yields the names of the modules it was put on."""
    from bot.core.pipelines.base import denoisers

    if plan.name is None:
        yield []
        return
    enabled: list[tuple[str, Any]] = []
    try:
        for name, module in denoisers(pipe):
            if not hasattr(module, "enable_cache"):
                continue
            if module.is_cache_enabled:  # left by a job that died mid-run: start clean
                module.disable_cache()
            try:
                module.enable_cache(build_config(plan, pipe, steps))
            except Exception as exc:  # a speed-up must never fail a job: run without it
                log.warning("%s cache not applied to %s: %s", plan.name, name, exc)
                _remove_partial(module)
                continue
            enabled.append((name, module))
        yield [name for name, _ in enabled]
    finally:
        for _, module in enabled:
            module.disable_cache()


def _remove_partial(module: Any) -> None:
    """Take off whatever hooks a failed ``enable_cache`` left on ``module`` before it raised (it
    registers block by block and records the config only at the end)."""
    from diffusers.hooks import HookRegistry

    for sub in module.modules():
        registry = getattr(sub, "_diffusers_hook", None)
        if isinstance(registry, HookRegistry):
            for name in list(registry.hooks):
                if name.startswith("fbc_") or "cache" in name or "broadcast" in name:
                    registry.remove_hook(name, recurse=False)


def _tuples(settings: dict[str, Any]) -> dict[str, Any]:
    """Ranges kept as lists in plain data (TOML, JSON) become the tuples diffusers expects."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value
