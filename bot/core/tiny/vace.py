"""An offline tiny Wan 2.1 VACE 1.3B: the all-in-one video model that continues a clip from its
tail, in its real layout.

Same conventions as ``bot.core.tiny.dit``: the production class (``WanVACEPipeline``), small
configs, weights seeded from ``TINY_SEED``, written with ``save_pretrained``. Kept from the real
checkpoint (diffusers' ``convert_wan_to_diffusers.py``, "Wan-VACE-1.3B"): the Wan 2.1 VAE (16
latent channels, 8x spatial and 4x temporal), a Wan 2.1 transformer with VACE blocks on every
other layer (``vace_layers``) whose input is the context video's latents, its inactive latents
and the mask folded into the VAE's 8x8 patches (``vace_in_channels`` = 16 + 16 + 64 = 96, as the
real one), and UniPC over flow sigmas at shift 3.0.
"""

from __future__ import annotations

from pathlib import Path

from bot.core.tiny.dit import _WAN_TEXT_LEN, _umt5_text_components
from bot.core.tiny.newer import _WAN21_Z, _wan21_vae, wan21_transformer, wan_flow_scheduler

_VACE_IN = 2 * _WAN21_Z + 8 * 8
"""The context's latents, its inactive latents, and the mask folded into the VAE's patches."""


def _vace_transformer():  # type: ignore[no-untyped-def]
    """Wan 2.1 T2V's transformer at tiny width with one VACE block (on layer 0, as the real 1.3B
    has one on every even layer of 30)."""
    return wan21_transformer(_WAN21_Z, 6, vace_layers=[0], vace_in_channels=_VACE_IN)


def build_tiny_wan_vace(target: Path) -> None:
    """A ``WanVACEPipeline`` shaped like Wan2.1-VACE-1.3B-diffusers: one transformer with VACE
    blocks, the Wan 2.1 VAE, umt5 text parts, UniPC over flow sigmas at shift 3.0."""
    from diffusers import WanVACEPipeline

    pipe = WanVACEPipeline(
        vae=_wan21_vae(),
        transformer=_vace_transformer(),
        scheduler=wan_flow_scheduler(3.0),
        **_umt5_text_components(_WAN_TEXT_LEN),
    )
    pipe.save_pretrained(target)  # type: ignore[attr-defined]
