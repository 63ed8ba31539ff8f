"""Stable Audio Open: ``StableAudioPipeline`` turning a prompt into a stereo waveform.

It makes no picture: the engine runs it as the soundtrack stage of a silent model's job
(:mod:`bot.core.soundtrack`), after the video's frames, in the same GPU job. Progress is reported
under the stage ``"soundtrack"`` through the pipeline's legacy ``callback`` (it has no
``callback_on_step_end``); raising from it is how a cancel stops the loop.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.core.pipelines.base import LegacyStepCallback, LoadRequest, NoImagePipeline
from bot.core.pipelines.hub_files import indexed_snapshot

if TYPE_CHECKING:
    import torch

    from bot.core.pipelines.base import DenoiseRequest
    from bot.core.progress import JobControl


@dataclass(frozen=True)
class TrackRequest:
    """One track: what it sounds like, how long, and the sampler's settings."""

    prompt: str
    negative_prompt: str
    seconds: float
    num_inference_steps: int
    guidance_scale: float
    generator: torch.Generator


class StableAudioAdapter(NoImagePipeline):
    """Loads ``StableAudioPipeline``; :meth:`track` runs it. ``run`` (frames) is refused: the
    registry gives this family the role ``"soundtrack"``, which never renders a video."""

    stage = "soundtrack"

    def load(self, request: LoadRequest) -> Any:
        from diffusers import StableAudioPipeline

        # Only what model_index.json names: the repo's root also holds stable-audio-tools'
        # single-file checkpoint (model.safetensors, about 4.9 GB), which a plain from_pretrained
        # of the repo downloads too and never reads.
        source = indexed_snapshot(request.source, request.variant)
        return StableAudioPipeline.from_pretrained(
            source, dtype=request.dtypes(), variant=request.variant
        )

    def run(self, pipe: Any, request: DenoiseRequest, control: JobControl) -> np.ndarray:
        raise ValueError("a soundtrack model makes no picture; it scores another model's clip")

    def track(self, pipe: Any, request: TrackRequest, control: JobControl) -> tuple[Any, int]:
        """The waveform as ``(channels, samples)`` float32 and its sample rate."""
        control.check()
        callback = LegacyStepCallback(control, self.stage, request.num_inference_steps)
        with warnings.catch_warnings():
            # torchsde's Brownian interval warns when a float32 sigma lands a hair outside
            # [sigma_min, sigma_max]; the sampler clamps it.
            warnings.filterwarnings("ignore", category=UserWarning, module="torchsde")
            audio = pipe(
                prompt=request.prompt,
                negative_prompt=request.negative_prompt or None,
                audio_end_in_s=request.seconds,
                num_inference_steps=request.num_inference_steps,
                guidance_scale=request.guidance_scale,
                generator=request.generator,
                callback=callback,
                callback_steps=1,
                output_type="np",
                return_dict=False,
            )[0]
        return np.asarray(audio[0], dtype=np.float32), int(pipe.vae.config.sampling_rate)


def longest_track_s(pipe: Any) -> float:
    """The longest track the model makes in one call: its transformer's latent length times the
    autoencoder's hop, in seconds (47.55 s for Stable Audio Open 1.0; the pipeline's own bound)."""
    return float(
        pipe.transformer.config.sample_size * pipe.vae.hop_length / pipe.vae.config.sampling_rate
    )


STABLE_AUDIO_ADAPTER = StableAudioAdapter()

__all__ = ["STABLE_AUDIO_ADAPTER", "StableAudioAdapter", "TrackRequest", "longest_track_s"]
