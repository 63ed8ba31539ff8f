"""LoRAs fused into a model at load: how a step-distillation LoRA (lightx2v's for Wan 2.1 14B, and
its high/low-noise pair for Wan 2.2 A14B's two experts) turns base weights into a few-step model.

diffusers reads the file in its published format (``load_lora_weights`` converts the original Wan
key names itself), peft adds the low-rank layers, and ``fuse_lora`` folds them into the base
weights. The LoRA layers are then unloaded: the fused model is plain weights again, so each step
costs what the base model's does, and compile, the caches and the offload hooks see the same
modules as on any other model.
"""

from __future__ import annotations

import re
from typing import Any

from bot.core.pipelines.base import single_file
from bot.core.registry import LORA_PAIR

ADAPTER_NAME = "videobot_fused"
_SIZE_MISMATCH = re.compile(
    r"size mismatch for (?P<name>\S+?)(?:\.lora_[AB]\.\w+)?\.(?:weight|bias): copying a param "
    r"with shape torch\.Size\(\[(?P<theirs>[^\]]*)\]\) from checkpoint, the shape in current "
    r"model is torch\.Size\(\[(?P<ours>[^\]]*)\]\)"
)


class LoraError(ValueError):
    """A LoRA that cannot be fused into its model: made for another model (or another size of
    it), broken (NaN or infinite values), or given to a pipeline that takes no LoRA."""


def lora_files(source: str) -> tuple[str, str | None]:
    """``source`` as (the file for ``transformer``, the file for ``transformer_2`` or None): a
    pair is ``first+second`` (:data:`bot.core.registry.LORA_PAIR`), the second a name beside the
    first (``lightx2v/Wan2.2-Distill-Loras/high.safetensors+low.safetensors``) or a whole source
    of its own (one with a ``/``)."""
    first, joined, second = source.partition(LORA_PAIR)
    if not joined:
        return source, None
    if "/" not in second and "/" in first:
        second = f"{first.rpartition('/')[0]}/{second}"
    return first, second


def fuse_lora(pipe: Any, source: str, scale: float) -> None:
    """Fuse the LoRA at ``source`` (a local file or ``owner/repo/file.safetensors``) into ``pipe``
    at strength ``scale``, leaving no LoRA layers behind. A pair (:func:`lora_files`) fuses its
    first file into the high-noise ``transformer`` and its second into the low-noise
    ``transformer_2`` (diffusers' ``load_into_transformer_2=True``), both at ``scale``.

    Each file is read once and checked for NaN and infinite values before anything is merged: a
    broken file is refused instead of loading a model that renders black. That check replaces
    diffusers' ``safe_fusing``, which clones and checks every merged weight and made the fuse of
    a 1.3B model 65% slower (``bench/lora_fuse.py``)."""
    if not hasattr(pipe, "load_lora_weights"):
        raise LoraError(f"{type(pipe).__name__} takes no LoRA")
    high, low = lora_files(source)
    experts = [("transformer", high)]
    if low is not None:
        if getattr(pipe, "transformer_2", None) is None:
            raise LoraError(
                f"the LoRA pair {source} needs a second transformer (a two-expert model such as "
                f"Wan 2.2 A14B); {type(pipe).__name__} has one, so give it a single file"
            )
        experts.append(("transformer_2", low))
    states = [(expert, *_checked(path)) for expert, path in experts]
    failed = problem = None
    try:
        for expert, name, state in states:
            failed = name
            into_second = {"load_into_transformer_2": True} if expert == "transformer_2" else {}
            pipe.load_lora_weights(
                state, adapter_name=ADAPTER_NAME, low_cpu_mem_usage=True, **into_second
            )
        failed = " and ".join(name for _, name, _ in states)
        pair = {"components": [expert for expert, _, _ in states]} if low is not None else {}
        pipe.fuse_lora(lora_scale=scale, adapter_names=[ADAPTER_NAME], **pair)
    except (KeyError, ValueError, RuntimeError) as exc:
        problem = _what_went_wrong(str(exc))
    finally:
        pipe.unload_lora_weights()
    if problem is not None:  # raised here, so the long torch message is not chained to it
        raise LoraError(f"the LoRA {failed} cannot be fused into {type(pipe).__name__}: {problem}")


def _checked(source: str) -> tuple[str, dict[str, Any]]:
    """A LoRA file's name and state dict, refused if it holds NaN or infinite values."""
    import torch
    from safetensors.torch import load_file

    path = single_file(source)
    state = load_file(str(path))
    broken = [name for name, tensor in state.items() if not torch.isfinite(tensor).all()]
    if broken:
        raise LoraError(
            f"the LoRA {path.name} holds NaN or infinite values ({len(broken)} "
            f"tensor{'s' if len(broken) != 1 else ''}, first: {broken[0]}); the file is broken"
        )
    return path.name, state


def _what_went_wrong(message: str) -> str:
    """One line for a member's or owner's eyes: torch lists every mismatched layer (hundreds on a
    14B model); the count and the first one say enough."""
    mismatches = list(_SIZE_MISMATCH.finditer(message))
    if mismatches:
        first = mismatches[0]
        return (
            f"{len(mismatches)} of its layers do not match the model's shapes (first: "
            f"{first['name']}, LoRA [{first['theirs']}] against the model's [{first['ours']}]); "
            "it was made for another model"
        )
    return " ".join(message.split())[:300]
