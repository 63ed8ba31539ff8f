"""Offline tiny versions of Wan 2.2 A14B (two experts; text- and image-to-video), lightx2v's
Wan 2.2 high/low-noise LoRA pair, and HunyuanVideo 1.5 (text-to-video, image-to-video and the
step-distilled image-to-video).

Same conventions as ``bot.core.tiny.dit``: real diffusers pipelines of the production classes,
small configs, weights seeded from ``TINY_SEED`` right before each component, written with
``save_pretrained`` and loaded back by ``from_pretrained``. What is kept from the real
checkpoints is what decides which jobs are valid and how the pipelines wire their parts: the VAEs'
compression and latent channels, the experts' input channels and ``boundary_ratio``, the text
lengths the pipelines pad to, the text encoders' and tokenizers' classes (Qwen2.5-VL's language
model with a byte-level BPE tokenizer and a chat template, a ByT5 encoder), the SigLIP image
encoder's 729 tokens, the guider, the flags (``task_type``, ``use_meanflow``, ``target_size``
scaled to the tiny size). Width and depth shrink.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.core.tiny.common import _seed, _word_merges
from bot.core.tiny.dit import _T5_DIM, _WAN_TEXT_LEN, _umt5_text_components, lightx2v_lora_state

_WAN21_Z = 16
_WAN21_HEADS, _WAN21_HEAD_DIM = 2, 12
"""The tiny Wan 2.1-layout transformers' attention: two heads of 12 (FLF2V's image branch
projects into their 24 widths)."""
LIGHTX2V_22_FILES = {
    "t2v_high": "wan2.2_t2v_A14b_high_noise_lora_rank64_lightx2v_4step_1217.safetensors",
    "t2v_low": "wan2.2_t2v_A14b_low_noise_lora_rank64_lightx2v_4step_1217.safetensors",
    "i2v_high": "wan2.2_i2v_A14b_high_noise_lora_rank64_lightx2v_4step_1022.safetensors",
    "i2v_low": "wan2.2_i2v_A14b_low_noise_lora_rank64_lightx2v_4step_1022.safetensors",
}
"""The tiny LoRA files carry the real ones' names (lightx2v/Wan2.2-Distill-Loras), so the local
hub serves each under its own name and the registry's pair syntax is the real one."""


# --- Wan 2.2 A14B -------------------------------------------------------------------------------


def _wan21_vae():  # type: ignore[no-untyped-def]
    """The Wan 2.1 VAE that both A14B repos ship (and FLF2V, VACE and 2.1 T2V): 16 latent
    channels, 8x spatial and 4x temporal compression, no patches or residual blocks; only the
    nine arguments its hub config has, so every later one (Wan 2.2's patches, residual blocks,
    decoder width) stays at its default, as it does when diffusers loads the real file."""
    from diffusers import AutoencoderKLWan

    _seed()
    return AutoencoderKLWan(
        base_dim=8,
        z_dim=_WAN21_Z,
        dim_mult=[1, 2, 2, 2],
        num_res_blocks=1,
        attn_scales=[],
        temperal_downsample=[False, True, True],
        dropout=0.0,
        latents_mean=[0.0] * _WAN21_Z,
        latents_std=[1.0] * _WAN21_Z,
    )


def wan21_transformer(  # type: ignore[no-untyped-def]
    in_channels: int = _WAN21_Z,
    seed_offset: int = 0,
    *,
    vace_layers: list[int] | None = None,
    **branch: Any,
):
    """Every tiny transformer of the Wan 2.1 layout (the A14B experts, FLF2V's, VACE's, the local
    hub's 2.1 T2V), so they all share one tiny width and depth: 1x2x2 patches, two heads of 12,
    two blocks (a head and a tail: what the cache hooks split, ``bot.core.caches``), 16 latent
    channels out, seeded at ``seed_offset`` right before it is made. What the checkpoints differ
    in is given: ``in_channels``, ``branch`` (FLF2V's CLIP image branch: ``image_dim``,
    ``added_kv_proj_dim``, ``pos_embed_seq_len``; VACE's ``vace_in_channels``), and
    ``vace_layers``, which makes it a ``WanVACETransformer3DModel``."""
    from diffusers import WanTransformer3DModel, WanVACETransformer3DModel

    _seed(seed_offset)
    shape: dict[str, Any] = {
        "patch_size": (1, 2, 2),
        "num_attention_heads": _WAN21_HEADS,
        "attention_head_dim": _WAN21_HEAD_DIM,
        "in_channels": in_channels,
        "out_channels": _WAN21_Z,
        "text_dim": _T5_DIM,
        "freq_dim": 32,
        "ffn_dim": 32,
        "num_layers": 2,
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "eps": 1e-6,
        "image_dim": None,
        "added_kv_proj_dim": None,
        "rope_max_seq_len": 1024,
        "pos_embed_seq_len": None,
    }
    if vace_layers is not None:
        return WanVACETransformer3DModel(**shape, vace_layers=vace_layers, **branch)
    return WanTransformer3DModel(**{**shape, **branch})


def _wan_expert(in_channels: int, seed_offset: int):  # type: ignore[no-untyped-def]
    """One A14B expert: no CLIP image input (``image_dim=None``: Wan 2.2 I2V conditions through
    36 input channels instead). The two experts are seeded differently, so they are two
    networks, as the high- and low-noise checkpoints are."""
    return wan21_transformer(in_channels, seed_offset)


def wan_flow_scheduler(shift: float = 3.0):  # type: ignore[no-untyped-def]
    """The Wan 2.1-layout diffusers repos' scheduler: UniPC over flow sigmas at ``shift``, which
    is what ``scripts/convert_wan_to_diffusers.py`` writes for them (3.0 for the A14B repos,
    VACE and 2.1 T2V, 16.0 for FLF2V; the registry sets the card's shift)."""
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(
        num_train_timesteps=1000,
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=shift,
    )


def build_tiny_wan_a14b(target: Path) -> None:
    """A ``WanPipeline`` shaped like Wan2.2-T2V-A14B-Diffusers: ``transformer`` (high noise) and
    ``transformer_2`` (low noise) of 16 input channels, switched at ``boundary_ratio`` 0.875."""
    from diffusers import WanPipeline

    pipe = WanPipeline(
        vae=_wan21_vae(),
        transformer=_wan_expert(_WAN21_Z, 0),
        transformer_2=_wan_expert(_WAN21_Z, 1),
        scheduler=wan_flow_scheduler(),
        boundary_ratio=0.875,
        expand_timesteps=False,
        **_umt5_text_components(_WAN_TEXT_LEN),
    )
    pipe.save_pretrained(target)  # type: ignore[attr-defined]


def build_tiny_wan_a14b_i2v(target: Path) -> None:
    """A ``WanImageToVideoPipeline`` shaped like Wan2.2-I2V-A14B-Diffusers: two experts of 36
    input channels (16 noise, 16 picture latents, 4 mask), ``boundary_ratio`` 0.9, and no CLIP
    image encoder or processor (the repo's index has them null)."""
    from diffusers import WanImageToVideoPipeline

    pipe = WanImageToVideoPipeline(
        vae=_wan21_vae(),
        transformer=_wan_expert(2 * _WAN21_Z + 4, 0),
        transformer_2=_wan_expert(2 * _WAN21_Z + 4, 1),
        scheduler=wan_flow_scheduler(),
        image_encoder=None,
        image_processor=None,
        boundary_ratio=0.9,
        expand_timesteps=False,
        **_umt5_text_components(_WAN_TEXT_LEN),
    )
    pipe.save_pretrained(target)  # type: ignore[attr-defined]


def build_tiny_wan_a14b_lightx2v(target: Path) -> None:
    """``base/`` the very ``tiny_wan_a14b`` pipeline, and ``lora/`` four random LoRAs in
    lightx2v's key format (bf16, as published), one per expert for T2V and for I2V, each seeded
    on its own: the high-noise file fits ``transformer``, the low-noise one ``transformer_2``."""
    import torch
    from safetensors.torch import save_file

    build_tiny_wan_a14b(target / "base")
    shapes = {n: tuple(t.shape) for n, t in _wan_expert(_WAN21_Z, 0).state_dict().items()}
    folder = target / "lora"
    folder.mkdir(parents=True, exist_ok=True)
    for offset, name in enumerate(LIGHTX2V_22_FILES.values()):
        _seed(20 + offset)
        state = lightx2v_lora_state(shapes, rank=4)
        save_file(
            {key: tensor.to(torch.bfloat16).contiguous() for key, tensor in state.items()},
            str(folder / name),
        )


# --- HunyuanVideo 1.5 ---------------------------------------------------------------------------

_QWEN_DIM = 16
_BYT5_DIM = 16
_IMAGE_DIM = 12
_HY_LATENT = 32
_HY_TARGET = 64
"""The tiny ``target_size`` (the real 480p models' is 640): the image-to-video pipeline picks the
size bucket of about target x target pixels nearest the picture's shape, so 64x64 here."""
_SIGLIP_SIDE = 54
"""27 x 27 patches of 2 pixels: the 729 image tokens the pipelines hard-code (SigLIP so400m's
384-pixel picture in 14-pixel patches)."""
_QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen2's chat layout for plain-text messages (``<|im_start|>role ... <|im_end|>``), which the
pipelines apply to wrap a prompt in their system message."""


def qwen_tokenizer():  # type: ignore[no-untyped-def]
    """A ``Qwen2Tokenizer`` built in code: GPT-2's byte-level alphabet, merges that make each word
    of the tiny word list one ``Ġword`` piece, Qwen's special tokens and a chat template."""
    from transformers import Qwen2Tokenizer

    from bot.core.tiny.unet import _bytes_to_unicode

    vocab = {char: index for index, char in enumerate(_bytes_to_unicode().values())}
    merges = _word_merges(vocab, "Ġ")
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    return Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,  # type: ignore[arg-type]  # the tokenizers backend takes pairs
        chat_template=_QWEN_CHAT_TEMPLATE,
    )


def _qwen_text_encoder(vocab_size: int):  # type: ignore[no-untyped-def]
    """Qwen2.5-VL-7B's language model (``Qwen2_5_VLTextModel``) at tiny width: multimodal rotary
    sections, three layers (the pipelines take the hidden states two layers from the end)."""
    from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel

    _seed()
    config = Qwen2_5_VLTextConfig(
        vocab_size=vocab_size,
        hidden_size=_QWEN_DIM,
        intermediate_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=2,
        rope_parameters={"mrope_section": [1, 1, 2], "rope_type": "default", "rope_theta": 1e6},
        bos_token_id=None,
        eos_token_id=vocab_size - 1,
        pad_token_id=None,
    )
    return Qwen2_5_VLTextModel(config).eval()


def _byt5_components() -> dict[str, Any]:
    """The glyph encoder: a T5 encoder over ByT5's 384 byte ids and its vocabulary-free
    ``ByT5Tokenizer`` (the real one is ByT5-small with Glyph-SDXL-v2's weights)."""
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    tokenizer = ByT5Tokenizer()
    _seed(1)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=_BYT5_DIM,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
    )
    return {"text_encoder_2": T5EncoderModel(config).eval(), "tokenizer_2": tokenizer}


def _hunyuan_vae():  # type: ignore[no-untyped-def]
    """HunyuanVideo 1.5's VAE shape: 32 latent channels, 16x spatial and 4x temporal compression
    (four downsamples, the last two also in time). The deepest blocks must be a multiple of twice
    the latent channels: the encoder's shortcut averages groups of them into the mean and log
    variance, and the decoder repeats the latents into them."""
    from diffusers import AutoencoderKLHunyuanVideo15

    _seed()
    return AutoencoderKLHunyuanVideo15(
        in_channels=3,
        out_channels=3,
        latent_channels=_HY_LATENT,
        block_out_channels=(8, 8, 16, 64, 64),
        layers_per_block=1,
        spatial_compression_ratio=16,
        temporal_compression_ratio=4,
    )


def _hunyuan_transformer(task_type: str, seed_offset: int, use_meanflow: bool = False):  # type: ignore[no-untyped-def]
    """The 8.3B MMDiT's shape at tiny width: 65 input channels (32 noise, 32 picture latents, one
    mask; zeros for text-to-video), 32 out, 1x1x1 patches, a token refiner over the Qwen hidden
    states, a ByT5 projection and a SigLIP projection. ``use_meanflow`` adds the second timestep
    embedder of the step-distilled checkpoint."""
    from diffusers import HunyuanVideo15Transformer3DModel

    _seed(seed_offset)
    return HunyuanVideo15Transformer3DModel(
        in_channels=2 * _HY_LATENT + 1,
        out_channels=_HY_LATENT,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=2,
        num_refiner_layers=1,
        mlp_ratio=2.0,
        patch_size=1,
        patch_size_t=1,
        qk_norm="rms_norm",
        text_embed_dim=_QWEN_DIM,
        text_embed_2_dim=_BYT5_DIM,
        image_embed_dim=_IMAGE_DIM,
        rope_axes_dim=(2, 2, 4),
        target_size=_HY_TARGET,
        task_type=task_type,
        use_meanflow=use_meanflow,
    )


def _siglip_components() -> dict[str, Any]:
    """The I2V repos' image encoder: a SigLIP vision tower (729 tokens of the transformer's image
    width) and its image processor, resizing every picture to the tower's square."""
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    _seed(2)
    config = SiglipVisionConfig(
        hidden_size=_IMAGE_DIM,
        intermediate_size=24,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=_SIGLIP_SIDE,
        patch_size=2,
    )
    processor = SiglipImageProcessor(size={"height": _SIGLIP_SIDE, "width": _SIGLIP_SIDE})
    return {"image_encoder": SiglipVisionModel(config).eval(), "feature_extractor": processor}


def _hunyuan_scheduler(shift: float):  # type: ignore[no-untyped-def]
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(shift=shift)


def _guider(scale: float):  # type: ignore[no-untyped-def]
    from diffusers import ClassifierFreeGuidance

    return ClassifierFreeGuidance(guidance_scale=scale)


def _hunyuan_shared() -> dict[str, Any]:
    """What the 480p repos share: the Qwen and ByT5 text sides and the VAE."""
    tokenizer = qwen_tokenizer()
    return {
        "vae": _hunyuan_vae(),
        "tokenizer": tokenizer,
        "text_encoder": _qwen_text_encoder(len(tokenizer)),
        **_byt5_components(),
    }


def build_tiny_hunyuan15(target: Path) -> None:
    """``t2v/`` a ``HunyuanVideo15Pipeline`` and ``i2v/`` a ``HunyuanVideo15ImageToVideoPipeline``
    like the 480p repos: the two share the text encoders, tokenizers and VAE (the very same
    objects, so the very same weights); the transformers differ and the I2V one adds a SigLIP
    encoder. Scheduler shifts and guider scales are the conversion script's (5.0, 6.0)."""
    from diffusers import HunyuanVideo15ImageToVideoPipeline, HunyuanVideo15Pipeline

    shared = _hunyuan_shared()
    t2v = HunyuanVideo15Pipeline(
        transformer=_hunyuan_transformer("t2v", 0),
        scheduler=_hunyuan_scheduler(5.0),
        guider=_guider(6.0),
        **shared,
    )
    t2v.save_pretrained(target / "t2v")  # type: ignore[attr-defined]
    i2v = HunyuanVideo15ImageToVideoPipeline(
        transformer=_hunyuan_transformer("i2v", 3),
        scheduler=_hunyuan_scheduler(5.0),
        guider=_guider(6.0),
        **_siglip_components(),
        **shared,
    )
    i2v.save_pretrained(target / "i2v")  # type: ignore[attr-defined]


def build_tiny_hunyuan15_i2v_distilled(target: Path) -> None:
    """The step-distilled 480p I2V (``...-480p_i2v_step_distilled``): the I2V pipeline with a
    meanflow transformer (a second timestep embedder, fed the next step's timestep), the
    conversion script's shift 7.0 and a guider at 1.0 (no unconditional pass)."""
    from diffusers import HunyuanVideo15ImageToVideoPipeline

    pipe = HunyuanVideo15ImageToVideoPipeline(
        transformer=_hunyuan_transformer("i2v", 4, use_meanflow=True),
        scheduler=_hunyuan_scheduler(7.0),
        guider=_guider(1.0),
        **_siglip_components(),
        **_hunyuan_shared(),
    )
    pipe.save_pretrained(target)  # type: ignore[attr-defined]
