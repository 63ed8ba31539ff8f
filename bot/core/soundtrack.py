"""The soundtrack stage: a silent model's clip scored from its prompt by a text-to-audio model.

Asked for with ``GenerationParams.soundtrack`` (the registry key of a ``role="soundtrack"``
model, which the bot and the CLI set only where the owner enabled one and the member asked for
sound), it runs inside the same GPU job right after the video's frames, so it takes its turn on
the one GPU queue and a Ray worker runs it too. Its steps are reported under the stage
``"soundtrack"``; a cancel between or during its steps stops the job like any other.

The track is ambience made from the words of the prompt, not from the pictures: nothing in it
follows what moves on screen (no lip-sync, no footsteps on cue). It is as long as the clip; a clip
longer than the model's longest track (47.55 s for Stable Audio Open) gets the track repeated
(ffmpeg's ``aloop``, applied when the mp4 is written) and cut at the picture's end.

A soundtrack that fails for any reason but a cancel or a time limit (out of memory, a model that
cannot be loaded) leaves the finished video silent with a note saying why: the member's picture is
never thrown away for its sound.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.core import media
from bot.core.edits import loop_filter
from bot.core.errors import GenerationCancelled, is_out_of_memory
from bot.core.pipelines.ltx2 import waveform_of
from bot.core.pipelines.stable_audio import StableAudioAdapter, TrackRequest, longest_track_s
from bot.core.registry import ModelSpec, get_spec

if TYPE_CHECKING:
    from bot.core.manager import LoadedModel
    from bot.core.params import GenerationParams
    from bot.core.progress import JobControl

log = logging.getLogger(__name__)

STAGE = "soundtrack"


def wanted(spec: ModelSpec, soundtrack: str | None) -> bool:
    """Whether a job on ``spec`` gets a soundtrack: one was asked for and the model makes no
    sound of its own (a model that does, LTX-2, keeps its own)."""
    return soundtrack is not None and not spec.sound


def make_track(
    loaded: LoadedModel,
    prompt: str,
    clip_seconds: float,
    seed: int,
    control: JobControl,
) -> media.Sound:
    """A track from ``prompt`` lasting ``clip_seconds`` (repeated past the model's longest)."""
    import torch

    adapter = loaded.adapter
    if not isinstance(adapter, StableAudioAdapter):
        raise ValueError(f"{loaded.spec.key} is not a soundtrack model")
    pipe = loaded.pipeline
    seconds = min(clip_seconds, longest_track_s(pipe))
    request = TrackRequest(
        prompt=prompt,
        negative_prompt="",
        seconds=seconds,
        num_inference_steps=loaded.spec.default_steps,
        guidance_scale=loaded.spec.default_guidance,
        generator=torch.Generator(device="cpu").manual_seed(seed),
    )
    with loaded.lock, torch.inference_mode():
        audio, rate = adapter.track(pipe, request, control)
    sound = waveform_of(audio, rate)
    if clip_seconds > sound.duration_s:
        loops = math.ceil(clip_seconds / sound.duration_s)
        sound = sound.then(loop_filter(sound.duration_s, loops), sound.duration_s * loops)
    return sound


def score(
    load: Callable[[ModelSpec], LoadedModel],
    key: str,
    prompt: str,
    clip_seconds: float,
    seed: int,
    control: JobControl,
) -> tuple[media.Sound | None, str | None]:
    """The clip's soundtrack from the model ``key``, or None and the one line the member reads
    when it could not be made. A cancel or a time limit raises (the job stops)."""
    spec = get_spec(key)
    try:
        control.check()
        return make_track(load(spec), prompt, clip_seconds, seed, control), None
    except GenerationCancelled:
        raise
    except Exception as exc:
        from bot.core.manager import free_memory

        log.warning("soundtrack on %s failed: %s: %s", spec.key, type(exc).__name__, exc)
        free_memory()
        return None, f"The soundtrack could not be made ({_reason(exc)}), so the video is silent."


def _reason(exc: Any) -> str:
    if is_out_of_memory(exc):
        return "out of GPU memory"
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return first[:160]


def requested(params: GenerationParams, asked: bool | None, model: str) -> GenerationParams:
    """``params`` with the soundtrack ``model`` (the owner's ``[sound] soundtrack_model``; empty:
    off) where the member asked for sound (``asked`` True, not just left on) and the model makes
    none; otherwise unchanged."""
    if not asked or not model or get_spec(params.model or "").sound:
        return params
    return type(params)(**{**params.model_dump(), "soundtrack": model})


__all__ = ["STAGE", "make_track", "requested", "score", "wanted"]
