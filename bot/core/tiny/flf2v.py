"""An offline tiny Wan 2.1 FLF2V 14B: the first-and-last-frame model in its real layout.

Same conventions as ``bot.core.tiny.dit``: the production class (``WanImageToVideoPipeline``),
small configs, weights seeded from ``TINY_SEED``, written with ``save_pretrained``. Kept from the
real checkpoint (diffusers' ``convert_wan_to_diffusers.py``, "Wan-FLF2V-14B-720P"): the Wan 2.1
VAE (16 channels), 36 input channels (noise, both pictures' latents, the mask), a CLIP vision
encoder whose second-to-last hidden states feed the transformer's image branch
(``image_dim``, ``added_kv_proj_dim``), image position embeddings for exactly two pictures
(``pos_embed_seq_len`` = 2 x the encoder's tokens, as the real 2 x 257), and UniPC at shift 16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.core.tiny.common import _seed
from bot.core.tiny.dit import _WAN_TEXT_LEN, _umt5_text_components
from bot.core.tiny.newer import (
    _WAN21_HEAD_DIM,
    _WAN21_HEADS,
    _WAN21_Z,
    _wan21_vae,
    wan21_transformer,
    wan_flow_scheduler,
)

_CLIP_SIDE = 32
_CLIP_PATCH = 16
_CLIP_DIM = 16
CLIP_TOKENS = (_CLIP_SIDE // _CLIP_PATCH) ** 2 + 1
"""The tiny encoder's tokens per picture: its patches and the class token (the real ViT-H/14
at 224 pixels: 16 x 16 + 1 = 257)."""


def _clip_components() -> dict[str, Any]:
    """The image encoder and processor the conversion puts beside the transformer: a CLIP vision
    tower and a CLIP image processor resizing and cropping every picture to its square."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    _seed(3)
    config = CLIPVisionConfig(
        hidden_size=_CLIP_DIM,
        intermediate_size=32,
        num_hidden_layers=2,  # the pipeline reads the second-to-last hidden states
        num_attention_heads=2,
        image_size=_CLIP_SIDE,
        patch_size=_CLIP_PATCH,
        projection_dim=_CLIP_DIM,
    )
    processor = CLIPImageProcessor(
        size={"shortest_edge": _CLIP_SIDE},
        crop_size={"height": _CLIP_SIDE, "width": _CLIP_SIDE},
    )
    return {"image_encoder": CLIPVisionModel(config).eval(), "image_processor": processor}


def _flf2v_transformer():  # type: ignore[no-untyped-def]
    """Wan 2.1 I2V's transformer at tiny width, with the FLF2V image branch: CLIP tokens of
    ``_CLIP_DIM`` projected into cross-attention keys and values, position embeddings for two
    pictures' tokens."""
    return wan21_transformer(
        2 * _WAN21_Z + 4,
        4,
        image_dim=_CLIP_DIM,
        added_kv_proj_dim=_WAN21_HEADS * _WAN21_HEAD_DIM,
        pos_embed_seq_len=2 * CLIP_TOKENS,
    )


def build_tiny_wan_flf2v(target: Path) -> None:
    """A ``WanImageToVideoPipeline`` shaped like Wan2.1-FLF2V-14B-720P-diffusers: one
    transformer, the CLIP encoder and processor, UniPC over flow sigmas at shift 16."""
    from diffusers import WanImageToVideoPipeline

    pipe = WanImageToVideoPipeline(
        vae=_wan21_vae(),
        transformer=_flf2v_transformer(),
        scheduler=wan_flow_scheduler(16.0),
        **_clip_components(),
        **_umt5_text_components(_WAN_TEXT_LEN),
    )
    pipe.save_pretrained(target)  # type: ignore[attr-defined]
