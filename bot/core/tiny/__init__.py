"""Offline tiny models: real diffusers pipelines of the production classes, small and seeded.

Model weights cannot be downloaded on a build machine, so the tests and the demo run on pipelines
built here from small configs with seeded random weights. They are saved with ``save_pretrained``
into the model cache the first time they are needed and then loaded back by the model manager through
the very same ``from_pretrained`` code that loads the hub models, so everything after loading (the
adapters, schedulers, memory switches, cancel, progress) is exercised for real. Their pictures are
noise-like: the weights are random.

``common`` holds the seed and vocabulary, ``unet`` the seed families (ModelScope, Zeroscope-style
upscaler, AnimateDiff), ``dit`` the newer ones (LTX-Video, Wan, CogVideoX, AnimateDiff-Lightning).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from bot.core.tiny.common import TINY_SEED
from bot.core.tiny.dit import (
    LIGHTNING_ADAPTER_FILE,
    LIGHTX2V_LORA_FILE,
    build_tiny_cogvideox,
    build_tiny_lightning,
    build_tiny_ltx,
    build_tiny_ltx_distilled,
    build_tiny_wan,
    build_tiny_wan_lightx2v,
)
from bot.core.tiny.enhance import build_tiny_realesrgan, build_tiny_rife
from bot.core.tiny.flf2v import build_tiny_wan_flf2v
from bot.core.tiny.gguf import build_tiny_wan_a14b_gguf
from bot.core.tiny.ltx2 import build_tiny_ltx2, build_tiny_ltx2_distilled
from bot.core.tiny.newer import (
    build_tiny_hunyuan15,
    build_tiny_hunyuan15_i2v_distilled,
    build_tiny_wan_a14b,
    build_tiny_wan_a14b_i2v,
    build_tiny_wan_a14b_lightx2v,
)
from bot.core.tiny.stable_audio import build_tiny_stable_audio
from bot.core.tiny.unet import _build_tiny_animatediff, _build_tiny_t2v, _build_tiny_v2v
from bot.core.tiny.vace import build_tiny_wan_vace

__all__ = [
    "LIGHTNING_ADAPTER_FILE",
    "LIGHTX2V_LORA_FILE",
    "TINY_FORMAT_VERSION",
    "TINY_SEED",
    "build_tiny_model",
    "tiny_model_keys",
]


def _fingerprint() -> str:
    """Tiny models are rebuilt whenever a source of this package changes, so a cache built by an
    older layout or older weights is never loaded by mistake: a hash of every module's name and
    bytes, in name order (the same on every machine, whatever the file system lists first)."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


TINY_FORMAT_VERSION = _fingerprint()


def build_tiny_model(key: str, target: Path) -> None:
    """Build the tiny model ``key`` into ``target`` unless a complete copy is already there.

    Builds into a temporary sibling folder and renames it into place, so two processes that race
    (parallel test workers, a bot and a CLI) never see a half-written model.
    """
    marker = target / "videobot_tiny.json"
    if marker.is_file() and json.loads(marker.read_text()).get("version") == TINY_FORMAT_VERSION:
        return
    builder = _BUILDERS[key]
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    try:
        builder(staging)
        (staging / "videobot_tiny.json").write_text(
            json.dumps({"key": key, "version": TINY_FORMAT_VERSION, "seed": TINY_SEED})
        )
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(staging, target)
        except OSError:
            # Another process won the race and its copy is complete; keep that one.
            if not marker.is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def tiny_model_keys() -> tuple[str, ...]:
    return tuple(_BUILDERS)


# --- tokenizer -----------------------------------------------------------------------------------


_BUILDERS: dict[str, Callable[[Path], None]] = {
    "tiny_t2v": _build_tiny_t2v,
    "tiny_animatediff": _build_tiny_animatediff,
    "tiny_v2v": _build_tiny_v2v,
    "tiny_ltx": build_tiny_ltx,
    "tiny_ltx_distilled": build_tiny_ltx_distilled,
    "tiny_wan": build_tiny_wan,
    "tiny_wan_lightx2v": build_tiny_wan_lightx2v,
    "tiny_cogvideox": build_tiny_cogvideox,
    "tiny_lightning": build_tiny_lightning,
    "tiny_wan_a14b": build_tiny_wan_a14b,
    "tiny_wan_a14b_lightx2v": build_tiny_wan_a14b_lightx2v,
    "tiny_wan_a14b_i2v": build_tiny_wan_a14b_i2v,
    "tiny_wan_a14b_gguf": build_tiny_wan_a14b_gguf,
    "tiny_wan_flf2v": build_tiny_wan_flf2v,
    "tiny_wan_vace": build_tiny_wan_vace,
    "tiny_hunyuan15": build_tiny_hunyuan15,
    "tiny_hunyuan15_i2v_distilled": build_tiny_hunyuan15_i2v_distilled,
    "tiny_ltx2": build_tiny_ltx2,
    "tiny_ltx2_distilled": build_tiny_ltx2_distilled,
    "tiny_rife": build_tiny_rife,
    "tiny_realesrgan": build_tiny_realesrgan,
    "tiny_stable_audio": build_tiny_stable_audio,
}
