"""LoRAs fused into a model at load: how a step-distillation LoRA (lightx2v's for Wan 2.1 14B)
turns base weights into a few-step model.

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

ADAPTER_NAME = "videobot_fused"
_SIZE_MISMATCH = re.compile(
    r"size mismatch for (?P<name>\S+?)(?:\.lora_[AB]\.\w+)?\.(?:weight|bias): copying a param "
    r"with shape torch\.Size\(\[(?P<theirs>[^\]]*)\]\) from checkpoint, the shape in current "
    r"model is torch\.Size\(\[(?P<ours>[^\]]*)\]\)"
)


class LoraError(ValueError):
    """A LoRA that cannot be fused into its model: made for another model (or another size of
    it), broken (NaN once merged), or given to a pipeline that takes no LoRA."""


def fuse_lora(pipe: Any, source: str, scale: float) -> None:
    """Fuse the LoRA at ``source`` (a local file or ``owner/repo/file.safetensors``) into ``pipe``
    at strength ``scale``, leaving no LoRA layers behind. ``safe_fusing`` refuses a LoRA whose
    merged weights hold NaN rather than loading a model that renders black."""
    if not hasattr(pipe, "load_lora_weights"):
        raise LoraError(f"{type(pipe).__name__} takes no LoRA")
    path = single_file(source)
    problem = None
    try:
        pipe.load_lora_weights(str(path), adapter_name=ADAPTER_NAME)
        pipe.fuse_lora(lora_scale=scale, safe_fusing=True, adapter_names=[ADAPTER_NAME])
    except (KeyError, ValueError, RuntimeError) as exc:
        problem = _what_went_wrong(str(exc))
    finally:
        pipe.unload_lora_weights()
    if problem is not None:  # raised here, so the long torch message is not chained to it
        raise LoraError(
            f"the LoRA {path.name} cannot be fused into {type(pipe).__name__}: {problem}"
        )


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
    if "NaN" in message:
        return "its merged weights hold NaN; the file is broken"
    return " ".join(message.split())[:300]
