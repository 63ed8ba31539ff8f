"""The tiny twin of Stable Audio Open 1.0: a ``StableAudioPipeline`` of the real component classes
(``StableAudioDiTModel``, ``AutoencoderOobleck``, a T5 encoder and tokenizer,
``StableAudioProjectionModel``, ``CosineDPMSolverMultistepScheduler``) at a tiny width.

The autoencoder keeps the real strides (2, 4, 4, 8, 8: 2048 samples per latent frame) and the real
44.1 kHz stereo, so a track's length in samples is computed exactly as for the real model; the
transformer's ``sample_size`` is 64 latent frames instead of 1024, so the tiny model's longest
track is 64 * 2048 / 44100 = 2.97 s (the real one's 47.55 s), which lets the tests reach the
looping of a clip longer than the model's longest track cheaply. The scheduler carries the real
repo's settings (sigma 0.3 to 500, v-prediction, exponential schedule).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.core.tiny.common import _seed
from bot.core.tiny.dit import _t5_text_components

TINY_SAMPLE_SIZE = 64
"""Latent frames the tiny transformer denoises (the real model's 1024)."""
_LATENT_CHANNELS = 4
_CONDITIONING_DIM = 16
_TEXT_TOKENS = 128
"""The real tokenizer's ``model_max_length`` (stable-audio-tools' T5 conditioner: 128)."""

SCHEDULER_CONFIG: dict[str, Any] = {
    "sigma_min": 0.3,
    "sigma_max": 500.0,
    "sigma_data": 1.0,
    "sigma_schedule": "exponential",
    "solver_order": 2,
    "prediction_type": "v_prediction",
    "rho": 7.0,
    "solver_type": "midpoint",
    "lower_order_final": True,
    "euler_at_final": False,
    "final_sigmas_type": "zero",
}
"""Stable Audio Open's sampler as the model card runs it (sigma_min 0.3, sigma_max 500) in
diffusers' cosine DPM-Solver form."""


def build_tiny_stable_audio(target: Path) -> None:
    from diffusers import (
        AutoencoderOobleck,
        CosineDPMSolverMultistepScheduler,
        StableAudioDiTModel,
        StableAudioPipeline,
    )
    from diffusers.pipelines.stable_audio import StableAudioProjectionModel

    text = _t5_text_components(_TEXT_TOKENS)
    _seed(1)
    transformer = StableAudioDiTModel(
        sample_size=TINY_SAMPLE_SIZE,
        in_channels=_LATENT_CHANNELS,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        num_key_value_attention_heads=1,
        out_channels=_LATENT_CHANNELS,
        cross_attention_dim=_CONDITIONING_DIM,
        time_proj_dim=16,
        global_states_input_dim=2 * _CONDITIONING_DIM,
        cross_attention_input_dim=_CONDITIONING_DIM,
    )
    _seed(2)
    vae = AutoencoderOobleck(
        encoder_hidden_size=4,
        downsampling_ratios=[2, 4, 4, 8, 8],
        channel_multiples=[1, 1, 1, 1, 1],
        decoder_channels=4,
        decoder_input_channels=_LATENT_CHANNELS,
        audio_channels=2,
        sampling_rate=44100,
    )
    _seed(3)
    projection = StableAudioProjectionModel(
        text_encoder_dim=text["text_encoder"].config.d_model,
        conditioning_dim=_CONDITIONING_DIM,
        min_value=0,
        max_value=512,
    )
    modules: list[Any] = [transformer, vae, projection]
    for module in modules:
        module.eval()
    pipe: Any = StableAudioPipeline(
        vae=vae,
        text_encoder=text["text_encoder"],
        projection_model=projection,
        tokenizer=text["tokenizer"],
        transformer=transformer,
        scheduler=CosineDPMSolverMultistepScheduler(**SCHEDULER_CONFIG),
    )
    pipe.save_pretrained(target)
