"""Offline tiny versions of LTX-2 (``Lightricks/LTX-2``: text- and image-to-video with sound) and
of the distilled LTX-2.3 (``diffusers/LTX-2.3-Distilled-Diffusers``) with its x2 latent upsampler.

Same conventions as ``bot.core.tiny.dit``: real diffusers pipelines of the production classes,
small configs, weights seeded from ``TINY_SEED`` right before each component, written with
``save_pretrained`` and loaded back by ``from_pretrained``. What is kept from the real checkpoints
is what decides which jobs are valid and how sound comes out: the video VAE's 32x spatial and 8x
temporal compression (4x4 pixel patches and four downsamples), the audio VAE's 16 kHz mel frames
(hop 160) compressed 4x in time, the vocoder turning 100 mel frames a second into a waveform at
its own rate, the Gemma 3 text encoder whose every hidden state the connectors read (layers + 1),
a Gemma tokenizer, the flow-matching scheduler. Width and depth shrink.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.core.tiny.common import _seed, _word_merges
from bot.core.tiny.dit import _ltx_scheduler

_GEMMA_DIM = 16
_GEMMA_LAYERS = 2
_LATENT = 8
"""Video latent channels (the real VAE's 128, shrunk)."""
_AUDIO_LATENT = 2
_MEL_BINS = 16
_AUDIO_FEATURES = _AUDIO_LATENT * _MEL_BINS // 4
"""Audio tokens' width: latent channels times mel bins after the audio VAE's 4x compression."""
VOCODER_RATE = 16000
"""The tiny vocoder's output rate. Its upsampling (5 x 4 x 4 x 2 = 160 samples a mel frame) times
the 100 mel frames a second of a 16 kHz, hop-160 spectrogram gives exactly this rate, as the real
one's 240 x 100 gives its 24 kHz."""
LATENT_UPSAMPLER = "latent_upsampler"
"""The subfolder holding the x2 latent upsampler (``LTX2LatentUpsamplerModel``)."""


def gemma_tokenizer():  # type: ignore[no-untyped-def]
    """A ``GemmaTokenizer`` built in code: SentencePiece-style ``▁word`` pieces made by merges over
    the tiny word list, single letters as a fallback, and Gemma's special tokens (``<pad>`` 0,
    ``<eos>`` 1, ``<bos>`` 2, ``<unk>`` 3) and image tokens."""
    from transformers import GemmaTokenizer

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for char in "▁abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(char, len(vocab))
    merges = _word_merges(vocab, "▁")
    for special in ("<start_of_image>", "<end_of_image>", "<image_soft_token>"):
        vocab[special] = len(vocab)
    return GemmaTokenizer(vocab=vocab, merges=merges, model_max_length=128)  # type: ignore[arg-type]


def _gemma_text_encoder(tokenizer: Any):  # type: ignore[no-untyped-def]
    """``Gemma3ForConditionalGeneration`` (the class the real index names) at tiny width: a two-
    layer text model and a one-layer SigLIP tower the pipelines never run (text only)."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    vocab = tokenizer.get_vocab()
    _seed()
    config = Gemma3Config(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": _GEMMA_DIM,
            "intermediate_size": 32,
            "num_hidden_layers": _GEMMA_LAYERS,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 8,
            "sliding_window": 64,
            "max_position_embeddings": 2048,
        },
        vision_config={
            "hidden_size": 8,
            "intermediate_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 16,
            "patch_size": 4,
        },
        mm_tokens_per_image=4,
        boi_token_index=vocab["<start_of_image>"],
        eoi_token_index=vocab["<end_of_image>"],
        image_token_index=vocab["<image_soft_token>"],
    )
    return Gemma3ForConditionalGeneration(config).eval()


def _connectors():  # type: ignore[no-untyped-def]
    """The text connectors: every Gemma hidden state (layers + 1) projected and refined for the
    video and the audio stream."""
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    _seed(1)
    return LTX2TextConnectors(
        caption_channels=_GEMMA_DIM,
        text_proj_in_factor=_GEMMA_LAYERS + 1,
        video_connector_num_attention_heads=2,
        video_connector_attention_head_dim=8,
        video_connector_num_layers=1,
        video_connector_num_learnable_registers=None,
        audio_connector_num_attention_heads=2,
        audio_connector_attention_head_dim=8,
        audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None,
        connector_rope_base_seq_len=32,
        rope_double_precision=False,
        rope_type="split",
    )


def _transformer(seed_offset: int = 0):  # type: ignore[no-untyped-def]
    """The audio-video DiT at tiny width: a video and an audio stream with cross-attention both
    ways, 1x1x1 patches."""
    from diffusers import LTX2VideoTransformer3DModel

    _seed(2 + seed_offset)
    return LTX2VideoTransformer3DModel(
        in_channels=_LATENT,
        out_channels=_LATENT,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        audio_in_channels=_AUDIO_FEATURES,
        audio_out_channels=_AUDIO_FEATURES,
        audio_num_attention_heads=2,
        audio_attention_head_dim=4,
        audio_cross_attention_dim=8,
        num_layers=2,
        caption_channels=_GEMMA_DIM,
        rope_double_precision=False,
        rope_type="split",
    )


def _video_vae():  # type: ignore[no-untyped-def]
    """LTX-2's video VAE shape: 4x4 pixel patches, then spatial, temporal and two spatiotemporal
    downsamples (32x in space, 8x in time), the decoder three spatiotemporal upsamples, channels
    doubling at each level as in the real one. Zero padding in the decoder: a 64-pixel video is a
    2x2 latent, too small for reflection."""
    from diffusers import AutoencoderKLLTX2Video

    _seed(3)
    return AutoencoderKLLTX2Video(
        latent_channels=_LATENT,
        block_out_channels=(4, 8, 16, 32),
        decoder_block_out_channels=(8, 16, 32),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1),
        decoder_spatial_padding_mode="zeros",
        spatial_compression_ratio=32,
        temporal_compression_ratio=8,
    )


def _audio_vae():  # type: ignore[no-untyped-def]
    """The audio VAE: stereo mel spectrograms at 16 kHz with hop 160 (100 frames a second),
    compressed 4x in time and in mel bins, as the real one."""
    from diffusers import AutoencoderKLLTX2Audio

    _seed(4)
    return AutoencoderKLLTX2Audio(
        base_channels=_AUDIO_FEATURES,
        ch_mult=(1, 2, 4),
        num_res_blocks=1,
        latent_channels=_AUDIO_LATENT,
        mel_bins=_MEL_BINS,
        resolution=32,
        sample_rate=16000,
        mel_hop_length=160,
    )


def _vocoder():  # type: ignore[no-untyped-def]
    """A HiFi-GAN-style vocoder from the decoded mel spectrogram to a stereo waveform at
    :data:`VOCODER_RATE`."""
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    _seed(5)
    return LTX2Vocoder(
        in_channels=2 * _MEL_BINS,
        hidden_channels=32,
        out_channels=2,
        upsample_kernel_sizes=[10, 8, 8, 4],
        upsample_factors=[5, 4, 4, 2],
        resnet_kernel_sizes=[3],
        resnet_dilations=[[1, 3]],
        output_sampling_rate=VOCODER_RATE,
    )


def _pipeline(seed_offset: int = 0):  # type: ignore[no-untyped-def]
    from diffusers import LTX2Pipeline

    tokenizer = gemma_tokenizer()
    return LTX2Pipeline(
        # diffusers' LTX-2 conversion writes LTX-Video's scheduler config unchanged
        scheduler=_ltx_scheduler(),
        vae=_video_vae(),
        audio_vae=_audio_vae(),
        text_encoder=_gemma_text_encoder(tokenizer),
        tokenizer=tokenizer,
        connectors=_connectors(),
        transformer=_transformer(seed_offset),
        vocoder=_vocoder(),
    )


def _latent_upsampler():  # type: ignore[no-untyped-def]
    """The x2 spatial latent upsampler (residual 3-D convolutions and a pixel shuffle)."""
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

    _seed(6)
    return LTX2LatentUpsamplerModel(
        in_channels=_LATENT, mid_channels=32, num_blocks_per_stage=1, use_rational_resampler=False
    )


def build_tiny_ltx2(target: Path) -> None:
    """An ``LTX2Pipeline`` folder laid out like ``Lightricks/LTX-2``'s diffusers folders.
    ``LTX2ImageToVideoPipeline`` takes the very same components."""
    _pipeline().save_pretrained(target)  # type: ignore[attr-defined]


def build_tiny_ltx2_distilled(target: Path) -> None:
    """``base/`` an ``LTX2Pipeline`` of other weights (the distilled checkpoint's), and
    ``upsampler/`` an ``LTX2LatentUpsamplePipeline`` folder (VAE and x2 latent upsampler) as the
    separate 2.3 spatial-upsampler repo ships it."""
    from diffusers import LTX2LatentUpsamplePipeline

    pipe = _pipeline(seed_offset=10)
    pipe.save_pretrained(target / "base")  # type: ignore[attr-defined]
    upsample = LTX2LatentUpsamplePipeline(vae=pipe.vae, latent_upsampler=_latent_upsampler())
    upsample.save_pretrained(target / "upsampler")  # type: ignore[attr-defined]
