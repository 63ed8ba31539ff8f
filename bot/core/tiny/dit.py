"""Offline tiny versions of the newer video families: LTX-Video, Wan 2.2 TI2V, CogVideoX and
AnimateDiff-Lightning.

Same idea and conventions as ``bot.core.tiny.unet``: real diffusers pipelines of the production classes,
built from small configs with weights seeded from ``TINY_SEED`` (the seed is set right before each
component, so a component's weights never depend on what was built before it), written with
``save_pretrained`` and loaded back by the pipeline class's own ``from_pretrained``.

What is kept from the real checkpoints is everything that decides which jobs are valid and how the
pipelines wire the parts together: the VAEs' spatial and temporal compression, patch sizes, latent
channels, the text lengths, the scheduler configs and the pipeline flags (Wan 2.2's
``expand_timesteps``). What is shrunk is width and depth: a few channels, one or two layers, two
heads. The text encoders are T5 / UMT5 encoders over a small hand-made Unigram vocabulary.

"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from bot.core.tiny.common import _VOCAB_WORDS, _seed
from bot.core.tiny.unet import _build_sd15_base, _tiny_motion_adapter

# Text lengths of the real pipelines (the tokenizers pad to them): LTX-Video 128, Wan 512,
# CogVideoX 226. CogVideoX's transformer is built for exactly 226 text tokens.
_LTX_TEXT_LEN = 128
_WAN_TEXT_LEN = 512
_COGVIDEOX_TEXT_LEN = 226

_T5_DIM = 32
# AnimateDiff-Lightning ships only this file: a bare MotionAdapter state dict, no config.
LIGHTNING_ADAPTER_FILE = "animatediff_lightning_4step_diffusers.safetensors"
LIGHTX2V_LORA_FILE = "wan_tiny_lora_rank4_lightx2v_4step.safetensors"


# --- T5-style text side ----------------------------------------------------------------------------


def _t5_vocab() -> list[tuple[str, float]]:
    """A Unigram vocabulary laid out like T5's: ``<pad>``=0, ``</s>``=1, ``<unk>``=2, then the word
    pieces of the small English word list (so prompts become word-sized tokens) and every printable
    ASCII character with and without the word-start marker, so any ASCII prompt tokenizes without
    ``<unk>``. Word pieces score higher than characters, so Unigram prefers whole words."""
    vocab: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    seen = {piece for piece, _ in vocab}

    def add(piece: str, score: float) -> None:
        if piece not in seen:
            seen.add(piece)
            vocab.append((piece, score))

    for word in _VOCAB_WORDS:
        add("▁" + word, -1.0)
    for char in string.ascii_letters + string.digits + string.punctuation:
        add("▁" + char, -4.0)
        add(char, -5.0)
    return vocab


def _t5_tokenizer(max_length: int):  # type: ignore[no-untyped-def]
    """A ``T5Tokenizer`` built in code (no spiece.model to download). ``extra_ids=0``: the sentinel
    tokens are only used for T5's span-corruption pre-training, never by the video pipelines."""
    from transformers import T5Tokenizer

    return T5Tokenizer(vocab=_t5_vocab(), extra_ids=0, model_max_length=max_length)


def _t5_config_kwargs(vocab_size: int) -> dict[str, Any]:
    """Shared T5 / UMT5 encoder shape: relative position buckets, so any text length works."""
    return {
        "vocab_size": vocab_size,
        "d_model": _T5_DIM,
        "d_kv": 8,
        "d_ff": 64,
        "num_layers": 2,
        "num_heads": 4,
        "relative_attention_num_buckets": 8,
        "relative_attention_max_distance": 32,
        "feed_forward_proj": "gated-gelu",
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
    }


def _t5_text_components(max_length: int) -> dict[str, Any]:
    """T5 v1.1-style encoder (LTX-Video and CogVideoX use T5-XXL's encoder) and its tokenizer."""
    from transformers import T5Config, T5EncoderModel

    tokenizer = _t5_tokenizer(max_length)
    _seed()
    text_encoder = T5EncoderModel(T5Config(**_t5_config_kwargs(len(tokenizer)))).eval()
    return {"tokenizer": tokenizer, "text_encoder": text_encoder}


def _umt5_text_components(max_length: int) -> dict[str, Any]:
    """UMT5 encoder (Wan uses umt5-xxl's encoder) with the same T5-style tokenizer."""
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = _t5_tokenizer(max_length)
    _seed()
    text_encoder = UMT5EncoderModel(UMT5Config(**_t5_config_kwargs(len(tokenizer)))).eval()
    return {"tokenizer": tokenizer, "text_encoder": text_encoder}


# --- LTX-Video -------------------------------------------------------------------------------------


def _ltx_vae(timestep_conditioning: bool = False):  # type: ignore[no-untyped-def]
    """LTX-Video's VAE shape: 4x4 pixel patches then three space-time downsamples, so 32x spatial and
    8x temporal compression into 128 latent channels, causal encoder, no decoder timestep
    conditioning (the 0.9.0 layout of the ``Lightricks/LTX-Video`` diffusers folder)."""
    from diffusers import AutoencoderKLLTXVideo

    _seed()
    return AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=128,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
        timestep_conditioning=timestep_conditioning,
    )


def _ltx_transformer():  # type: ignore[no-untyped-def]
    """LTX-Video's transformer shape: 1x1x1 patches straight over the 128 latent channels (the VAE
    does all the compression), 3D rotary positions, RMS norm on queries and keys."""
    from diffusers import LTXVideoTransformer3DModel

    _seed()
    return LTXVideoTransformer3DModel(
        in_channels=128,
        out_channels=128,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        num_layers=2,  # a head and a tail block: what the cache hooks split (bot.core.caches)
        caption_channels=_T5_DIM,
        qk_norm="rms_norm_across_heads",
    )


def _ltx_scheduler():  # type: ignore[no-untyped-def]
    """``Lightricks/LTX-Video``'s scheduler config: flow matching, shift chosen per job from the
    latent sequence length (dynamic shifting), sigmas stretched to end at 0.1. LTX-2's repos carry
    the same config, so ``bot.core.tiny.ltx2`` uses this one too."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=1.0,
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        shift_terminal=0.1,
    )


def build_tiny_ltx(target: Path) -> None:
    """An ``LTXPipeline`` folder. ``LTXImageToVideoPipeline`` and ``LTXConditionPipeline`` take the
    very same five components, so the folder loads with their ``from_pretrained`` as well."""
    from diffusers import LTXPipeline

    pipe = LTXPipeline(
        vae=_ltx_vae(),
        transformer=_ltx_transformer(),
        scheduler=_ltx_scheduler(),
        **_t5_text_components(_LTX_TEXT_LEN),
    )
    pipe.save_pretrained(target)  # type: ignore[attr-defined]


def build_tiny_ltx_distilled(target: Path) -> None:
    """Like ``Lightricks/LTX-Video-0.9.7-distilled``: the same five components, with a VAE that
    decodes with timestep conditioning (the 0.9.1+ VAEs: decode timestep and noise), which is
    what the distilled recipe's ``decode_timestep=0.05`` drives."""
    from diffusers import LTXPipeline

    pipe = LTXPipeline(
        vae=_ltx_vae(timestep_conditioning=True),
        transformer=_ltx_transformer(),
        scheduler=_ltx_scheduler(),
        **_t5_text_components(_LTX_TEXT_LEN),
    )
    pipe.save_pretrained(target)  # type: ignore[attr-defined]


# --- Wan 2.2 TI2V-5B -------------------------------------------------------------------------------

_WAN_Z_DIM = 48


def _wan22_vae():  # type: ignore[no-untyped-def]
    """Wan 2.2's VAE shape: 2x2 pixel patches (12 input channels), residual blocks and three
    downsamples, two of them in time: 16x spatial, 4x temporal, 48 latent channels. The latents'
    normalisation is neutral (mean 0, std 1): random weights have no trained statistics."""
    from diffusers import AutoencoderKLWan

    _seed()
    return AutoencoderKLWan(
        base_dim=8,
        decoder_base_dim=8,
        z_dim=_WAN_Z_DIM,
        dim_mult=[1, 2, 2, 2],
        num_res_blocks=1,
        attn_scales=[],
        temperal_downsample=[False, True, True],
        is_residual=True,
        in_channels=12,
        out_channels=12,
        patch_size=2,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
        latents_mean=[0.0] * _WAN_Z_DIM,
        latents_std=[1.0] * _WAN_Z_DIM,
    )


def _wan_transformer():  # type: ignore[no-untyped-def]
    """TI2V-5B's transformer shape: 48 latent channels in and out (no image channels: the image is
    put into the first latent frame), 1x2x2 patches, no CLIP image input (``image_dim=None``)."""
    from diffusers import WanTransformer3DModel

    _seed()
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=_WAN_Z_DIM,
        out_channels=_WAN_Z_DIM,
        text_dim=_T5_DIM,
        freq_dim=32,
        ffn_dim=32,
        num_layers=2,  # a head and a tail block: what the cache hooks split (bot.core.caches)
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
        image_dim=None,
        rope_max_seq_len=1024,
    )


def _wan_scheduler():  # type: ignore[no-untyped-def]
    """``Wan-AI/Wan2.2-TI2V-5B-Diffusers``' scheduler: UniPC over flow-matching sigmas, shift 5."""
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(
        num_train_timesteps=1000,
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=5.0,
    )


def build_tiny_wan(target: Path) -> None:
    """A ``WanPipeline`` folder shaped like Wan2.2-TI2V-5B: one transformer (``transformer_2`` and
    ``boundary_ratio`` unset) and ``expand_timesteps=True``, the flag that makes
    ``WanImageToVideoPipeline`` condition on the image through the first latent frame, which is how
    the same weights do image-to-video without an image encoder."""
    from diffusers import WanPipeline

    pipe = WanPipeline(
        vae=_wan22_vae(),
        transformer=_wan_transformer(),
        transformer_2=None,
        scheduler=_wan_scheduler(),
        boundary_ratio=None,
        expand_timesteps=True,
        **_umt5_text_components(_WAN_TEXT_LEN),
    )
    pipe.save_pretrained(target)  # type: ignore[attr-defined]


# --- CogVideoX 5B ----------------------------------------------------------------------------------

_COGVIDEOX_LATENT = 16


def _cogvideox_vae():  # type: ignore[no-untyped-def]
    """CogVideoX's VAE shape: four blocks (8x spatial), time compressed 4x, 16 latent channels,
    scaling factor 0.7 as in the 5B models."""
    from diffusers import AutoencoderKLCogVideoX

    _seed()
    return AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=_COGVIDEOX_LATENT,
        layers_per_block=1,
        norm_num_groups=4,
        temporal_compression_ratio=4,
        scaling_factor=0.7,
    )


def _cogvideox_transformer(in_channels: int):  # type: ignore[no-untyped-def]
    """CogVideoX-5B's transformer shape: 2x2 patches, 3D rotary position embeddings, 226 text
    tokens. The image-to-video one takes twice the latent channels (noise + image latents).

    The hub's 5b-I2V also adds learned positional embeddings, which tie it to its one training size
    (720x480, anything else raises in diffusers); the tiny one leaves them out so any valid size runs.
    """
    from diffusers import CogVideoXTransformer3DModel

    _seed()
    return CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=in_channels,
        out_channels=_COGVIDEOX_LATENT,
        time_embed_dim=16,
        text_embed_dim=_T5_DIM,
        num_layers=2,  # a head and a tail block: what the cache hooks split (bot.core.caches)
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=_COGVIDEOX_TEXT_LEN,
        use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=False,
    )


def _cogvideox_scheduler():  # type: ignore[no-untyped-def]
    """``THUDM/CogVideoX-5b``'s scheduler config: DPM over v-prediction, zero-terminal-SNR betas,
    trailing timesteps."""
    from diffusers import CogVideoXDPMScheduler

    return CogVideoXDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=True,
        steps_offset=0,
        prediction_type="v_prediction",
        timestep_spacing="trailing",
        rescale_betas_zero_snr=True,
        snr_shift_scale=1.0,
    )


def build_tiny_cogvideox(target: Path) -> None:
    """``t2v/`` a ``CogVideoXPipeline`` and ``i2v/`` a ``CogVideoXImageToVideoPipeline``, like the
    hub's ``CogVideoX-5b`` and ``CogVideoX-5b-I2V``: the two share the text encoder, tokenizer and VAE
    (the very same objects, so the very same weights); only the transformers differ."""
    from diffusers import CogVideoXImageToVideoPipeline, CogVideoXPipeline

    shared = {"vae": _cogvideox_vae(), **_t5_text_components(_COGVIDEOX_TEXT_LEN)}
    t2v = CogVideoXPipeline(
        transformer=_cogvideox_transformer(_COGVIDEOX_LATENT),
        scheduler=_cogvideox_scheduler(),
        **shared,
    )
    t2v.save_pretrained(target / "t2v")  # type: ignore[attr-defined]
    i2v = CogVideoXImageToVideoPipeline(
        transformer=_cogvideox_transformer(2 * _COGVIDEOX_LATENT),
        scheduler=_cogvideox_scheduler(),
        **shared,
    )
    i2v.save_pretrained(target / "i2v")  # type: ignore[attr-defined]


# --- AnimateDiff-Lightning -------------------------------------------------------------------------


def build_tiny_lightning(target: Path) -> None:
    """``base/`` the same SD1.5-shaped base as ``tiny_animatediff``, and ``motion_adapter/`` laid out
    like ``ByteDance/AnimateDiff-Lightning``: a bare MotionAdapter state dict in one safetensors file.
    The real repo has no config: the loader reads the shape from the state dict and takes the
    rest from ``MotionAdapter()``'s defaults (8 heads; norm groups 32, or fewer where the channels
    are fewer), so this adapter uses those too and loads the same way from the hub. A
    ``config.json`` sits next to the local file all the same. The adapter is seeded differently from
    ``tiny_animatediff``'s so the two differ."""
    from safetensors.torch import save_file

    _build_sd15_base(target / "base")
    adapter = _tiny_motion_adapter(seed_offset=2, heads=8, groups=8)
    folder = target / "motion_adapter"
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.contiguous() for name, tensor in adapter.state_dict().items()}
    save_file(state, str(folder / LIGHTNING_ADAPTER_FILE), metadata={"format": "pt"})
    adapter.save_config(folder)


# --- lightx2v's Wan distillation LoRA --------------------------------------------------------------

_LORA_RANK = 4
_ATTN = ("to_q", "to_k", "to_v", "to_out.0")
# lightx2v's key names (the original Wan module names, as ComfyUI and Kijai's extractions use them)
# -> the diffusers module each one lands on, per diffusers' own converter
# (``_convert_non_diffusers_wan_lora_to_diffusers``); ``{i}`` is the block number.
_LIGHTX2V_LINEARS = {
    **{
        f"blocks.{{i}}.self_attn.{o}": f"blocks.{{i}}.attn1.{d}"
        for o, d in zip("qkvo", _ATTN, strict=True)
    },
    **{
        f"blocks.{{i}}.cross_attn.{o}": f"blocks.{{i}}.attn2.{d}"
        for o, d in zip("qkvo", _ATTN, strict=True)
    },
    "blocks.{i}.ffn.0": "blocks.{i}.ffn.net.0.proj",
    "blocks.{i}.ffn.2": "blocks.{i}.ffn.net.2",
    "head.head": "proj_out",
    "time_projection.1": "condition_embedder.time_proj",
    "text_embedding.0": "condition_embedder.text_embedder.linear_1",
    "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "time_embedding.0": "condition_embedder.time_embedder.linear_1",
    "time_embedding.2": "condition_embedder.time_embedder.linear_2",
}
# Keys that carry no low-rank pair: norm weight differences (zeroed in the published files, and
# dropped by diffusers' converter) and the per-block modulation difference ``diff_m``.
_LIGHTX2V_DIFFS = {
    "blocks.{i}.self_attn.norm_q.diff": "blocks.{i}.attn1.norm_q.weight",
    "blocks.{i}.self_attn.norm_k.diff": "blocks.{i}.attn1.norm_k.weight",
    "blocks.{i}.cross_attn.norm_q.diff": "blocks.{i}.attn2.norm_q.weight",
    "blocks.{i}.cross_attn.norm_k.diff": "blocks.{i}.attn2.norm_k.weight",
    "blocks.{i}.norm3.diff": "blocks.{i}.norm2.weight",
    "blocks.{i}.norm3.diff_b": "blocks.{i}.norm2.bias",
    "blocks.{i}.diff_m": "blocks.{i}.scale_shift_table",
}


def build_tiny_wan_lightx2v(target: Path) -> None:
    """``base/`` the very ``tiny_wan`` pipeline, and ``lora/`` one LoRA file laid out like
    lightx2v's Wan distillation LoRAs (:func:`lightx2v_lora_state`), in bf16 as they are
    published. diffusers converts it with the same code as the real file, so the fuse in
    ``bot.core.pipelines.loras`` runs as it does on Wan 2.1 14B. The weights are random: it
    changes the picture, it does not distil anything."""
    import torch
    from safetensors.torch import save_file

    build_tiny_wan(target / "base")
    shapes = {name: tuple(t.shape) for name, t in _wan_transformer().state_dict().items()}
    _seed(5)
    state = lightx2v_lora_state(shapes, rank=_LORA_RANK)
    folder = target / "lora"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {name: tensor.to(torch.bfloat16).contiguous() for name, tensor in state.items()},
        str(folder / LIGHTX2V_LORA_FILE),
    )


def lightx2v_lora_state(shapes: dict[str, tuple[int, ...]], rank: int) -> dict[str, Any]:
    """A random LoRA for a ``WanTransformer3DModel`` whose parameter shapes are ``shapes``, in
    lightx2v's key format: ``diffusion_model.``-prefixed original Wan names with
    ``lora_down``/``lora_up`` pairs (no alpha: strength 1), ``diff_b`` bias differences for every
    linear layer, and the zeroed norm and modulation differences the published files carry. Drawn
    from torch's global generator (seed it first)."""
    import torch

    blocks = sorted({int(name.split(".")[1]) for name in shapes if name.startswith("blocks.")})
    state: dict[str, Any] = {}
    for block in blocks:
        for theirs, ours in _LIGHTX2V_LINEARS.items():
            if "{i}" not in theirs and block != blocks[0]:
                continue
            out_features, in_features = shapes[ours.format(i=block) + ".weight"]
            key = "diffusion_model." + theirs.format(i=block)
            state[f"{key}.lora_down.weight"] = torch.randn(rank, in_features) / in_features**0.5
            state[f"{key}.lora_up.weight"] = torch.randn(out_features, rank) * 0.2
            state[f"{key}.diff_b"] = torch.randn(out_features) * 0.02
        for theirs, ours in _LIGHTX2V_DIFFS.items():
            state["diffusion_model." + theirs.format(i=block)] = torch.zeros(
                shapes[ours.format(i=block)]
            )
    return state
