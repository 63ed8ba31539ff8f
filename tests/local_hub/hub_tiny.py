"""Tiny models that only the local hub needs: real repos whose architecture no tiny model of
``bot.core.tiny`` has. ``tiny_wan`` is a Wan 2.2 TI2V (48 latent channels, a patchified residual
VAE, ``expand_timesteps``); the Wan 2.1 repos hold a different network, so their replicas are built
from ``hub_tiny_wan21``:

- ``t2v/``: a ``WanPipeline`` shaped like Wan 2.1 T2V: 16 latent channels in and out, the 2.1 VAE
  (no patches, no residual blocks, 8x spatial), UniPC with flow shift 3.0, and no Wan 2.2 flag;
- ``lora/``: a LoRA for that transformer in lightx2v's key format (the published 4-step LoRA is
  made for Wan 2.1 14B, so it must fit the 2.1 network, not the 2.2 one).

Built with ``bot.core.tiny``'s own helpers and seed, and rebuilt whenever this file or the tiny
package changes (a marker holds both fingerprints), into a staging folder renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

HUB_TINY_PREFIX = "hub_tiny_"
LORA_FILE = "wan21_tiny_lora_rank4_lightx2v_4step.safetensors"


def _fingerprint() -> str:
    from bot.core.tiny import TINY_FORMAT_VERSION

    own = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    return f"{TINY_FORMAT_VERSION}-{own}"


def build_hub_tiny_model(key: str, target: Path) -> None:
    """Build ``key`` (one of :data:`BUILDERS`) into ``target`` unless an up-to-date copy is there."""
    marker = target / "videobot_hub_tiny.json"
    version = _fingerprint()
    if marker.is_file() and json.loads(marker.read_text()).get("version") == version:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    try:
        BUILDERS[key](staging)
        (staging / marker.name).write_text(json.dumps({"key": key, "version": version}))
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(staging, target)
        except OSError:
            if not marker.is_file():  # another process won the race with a complete copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_wan21(target: Path) -> None:
    """Wan 2.1 T2V from ``bot.core.tiny``'s Wan 2.1-layout parts (the transformer at the tiny
    width and depth of every tiny Wan, so the cache hooks see two blocks; the 2.1 VAE with only
    the arguments its hub config has; UniPC at shift 3.0), and its lightx2v LoRA."""
    import torch
    from diffusers import WanPipeline
    from safetensors.torch import save_file

    from bot.core.tiny.common import _seed
    from bot.core.tiny.dit import _WAN_TEXT_LEN, _umt5_text_components, lightx2v_lora_state
    from bot.core.tiny.newer import _wan21_vae, wan21_transformer, wan_flow_scheduler

    transformer = wan21_transformer()
    pipe = WanPipeline(
        vae=_wan21_vae(),
        transformer=transformer,
        scheduler=wan_flow_scheduler(3.0),
        **_umt5_text_components(_WAN_TEXT_LEN),
    )
    pipe.save_pretrained(target / "t2v")  # type: ignore[attr-defined]
    shapes = {name: tuple(t.shape) for name, t in transformer.state_dict().items()}
    _seed(5)
    state = lightx2v_lora_state(shapes, rank=4)
    (target / "lora").mkdir(parents=True, exist_ok=True)
    save_file(
        {name: tensor.to(torch.bfloat16).contiguous() for name, tensor in state.items()},
        str(target / "lora" / LORA_FILE),
    )


BUILDERS: dict[str, Callable[[Path], None]] = {f"{HUB_TINY_PREFIX}wan21": build_wan21}
