"""Draft quality (``GenerationParams.quality = "draft"``): the model's registry draft recipe runs
(its step-distilled partner, else fewer steps with a cache), with fewer denoiser calls than the
full render; the result records what the recipe did; and the same seed at full quality afterwards
gives exactly the full render's frames (the Refine button)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from bot.core import GenerationParams
from bot.core.drafts import (
    denoiser_calls,
    draft_recipe,
    draft_steps,
    estimate_refine_seconds,
    estimate_steps,
)
from bot.core.engine import GenerationEngine
from bot.core.errors import InvalidParameterError
from bot.core.registry import REGISTRY

DENOISERS = {
    "UNet3DConditionModel",
    "UNetMotionModel",
    "LTXVideoTransformer3DModel",
    "WanTransformer3DModel",
    "CogVideoXTransformer3DModel",
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def calls() -> Iterator[list[str]]:
    """The class names of every denoiser pass while the test runs, whichever model runs it (a
    draft may run on a partner model loaded on the way)."""
    seen: list[str] = []

    def count(module: Any, _args: Any) -> None:
        if type(module).__name__ in DENOISERS:
            seen.append(type(module).__name__)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(count)
    yield seen
    handle.remove()


def frames(result: Any) -> np.ndarray:
    assert result.ok, result.error
    return np.stack([np.asarray(image) for image in result.images]).astype(np.int16)


def job(key: str, **changes: Any) -> GenerationParams:
    return GenerationParams(
        **{"prompt": "a lighthouse at dusk", "model": key, "seed": 11, **changes}
    )


# --- the recipes ---------------------------------------------------------------------------------


def test_a_model_with_a_distilled_partner_drafts_on_it() -> None:
    params = job("tiny_animatediff", quality="draft", num_inference_steps=30, width=96)
    recipe = draft_recipe(params)
    assert recipe is not None and recipe.kind == "partner"
    assert recipe.params.model == "tiny_lightning"
    # The member's prompt, size and seed stay; steps, guidance and scheduler are Lightning's.
    assert (recipe.params.prompt, recipe.params.width, recipe.params.seed) == (
        params.prompt,
        96,
        11,
    )
    lightning = REGISTRY["tiny_lightning"]
    assert recipe.params.num_inference_steps == lightning.default_steps == 4
    assert recipe.params.guidance_scale == lightning.default_guidance
    assert recipe.params.scheduler == lightning.default_scheduler
    assert REGISTRY["animatediff"].draft_model == "animatediff_lightning"


def test_a_model_without_a_partner_drafts_with_fewer_steps_and_its_cache() -> None:
    recipe = draft_recipe(job("tiny_cogvideox", quality="draft", num_inference_steps=20))
    assert recipe is not None and recipe.kind == "fewer_steps"
    assert recipe.params.model == "tiny_cogvideox" and recipe.params.num_inference_steps == 5
    assert recipe.cache == "first_block"
    assert recipe.note == "5 steps instead of 20, with the first_block cache"
    # A UNet model takes no cache: fewer steps only, and the note does not claim one.
    unet = draft_recipe(job("tiny_t2v", quality="draft", num_inference_steps=40))
    assert unet is not None and unet.cache == "off" and unet.note == "10 steps instead of 40"


def test_draft_steps_stay_within_the_models_rules() -> None:
    assert draft_steps(REGISTRY["tiny_t2v"], 10) == 10  # its minimum is 10
    assert draft_steps(REGISTRY["wan2_1_1_3b"], 50) == 12
    assert draft_steps(REGISTRY["ltx_video_distilled"], 8) == 4  # the registry's draft_steps
    assert draft_recipe(job("tiny_wan")) is None  # full quality: no recipe


def test_quality_is_validated_by_name() -> None:
    assert job("tiny_wan").quality == "full"
    assert job("tiny_wan", quality=" DRAFT ").quality == "draft"
    with pytest.raises(
        InvalidParameterError, match=r"quality: must be one of full, draft \(got 'fast'\)"
    ):
        job("tiny_wan", quality="fast")


def test_estimates_say_how_many_steps_each_render_runs() -> None:
    draft = job("tiny_animatediff", quality="draft", num_inference_steps=30)
    full = draft.model_copy(update={"quality": "full"})
    assert estimate_steps(full) == 30 and estimate_steps(draft) == 4
    # AnimateDiff guides (two passes a step); Lightning runs without guidance (one).
    assert denoiser_calls(full) == 60 and denoiser_calls(draft) == 4


# --- running them ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["tiny_animatediff", "tiny_wan", "tiny_ltx"])
def test_draft_runs_fewer_denoiser_calls_and_refine_gives_the_full_render(
    engine: GenerationEngine, calls: list[str], key: str
) -> None:
    full_params = job(key, num_inference_steps=12)
    full = frames(engine.generate_video(full_params))
    full_calls = len(calls)
    calls.clear()

    draft = engine.generate_video(full_params.model_copy(update={"quality": "draft"}))
    draft_frames = frames(draft)
    assert 0 < len(calls) < full_calls
    assert draft.params is not None and draft.params.quality == "draft"
    assert draft.params.model == key  # the member's request, for Refine
    assert draft.metadata["quality"] == "draft"
    assert draft.metadata["draft"]["full_steps"] == 12
    assert draft.metadata["draft"]["steps"] == estimate_steps(draft.params) < 12
    assert draft_frames.shape == full.shape
    assert not np.array_equal(draft_frames, full)

    # Refine: the draft's params and seed at full quality reproduce the full render exactly.
    refine = draft.params.model_copy(update={"quality": "full", "seed": draft.seed_used})
    refined = engine.generate_video(refine)
    assert refined.metadata["quality"] == "full" and "draft" not in refined.metadata
    assert np.array_equal(frames(refined), full)
    seconds = estimate_refine_seconds(draft)
    assert seconds is not None and seconds > 0


def test_draft_on_the_partner_records_the_partner(engine: GenerationEngine) -> None:
    result = engine.generate_video(job("tiny_animatediff", quality="draft"))
    assert result.ok, result.error
    assert result.metadata["model"] == "tiny_lightning"
    assert result.metadata["draft"]["recipe"] == "partner"
    assert result.metadata["draft"]["model"] == "tiny_lightning"
    assert result.metadata["num_inference_steps"] == 4
    assert result.metadata["cache"]["name"] == "off"


def test_draft_without_a_partner_records_its_cache(engine: GenerationEngine) -> None:
    result = engine.generate_video(job("tiny_cogvideox", quality="draft", num_inference_steps=8))
    assert result.ok, result.error
    assert result.metadata["draft"] == {
        "recipe": "fewer_steps",
        "model": "tiny_cogvideox",
        "steps": 2,
        "full_steps": 8,
        "cache": "first_block",
        "note": "2 steps instead of 8, with the first_block cache",
        "saving": "2 steps instead of 8, with the first_block cache",
    }
    assert result.metadata["cache"]["name"] == "first_block"
    assert not engine.manager.get_loaded("tiny_cogvideox").pipeline.transformer.is_cache_enabled


def test_the_distilled_ltx_model_runs_its_recipe(engine: GenerationEngine) -> None:
    """The tiny counterpart of LTX-Video 0.9.7 distilled: 8 steps without guidance, decoding with
    the timestep-conditioned VAE at the card's decode timestep and noise."""
    spec = REGISTRY["tiny_ltx_distilled"]
    assert spec.call_options == {"decode_timestep": 0.05, "decode_noise_scale": 0.025}
    result = engine.generate_video(GenerationParams(prompt="a boat", model="tiny_ltx_distilled"))
    assert result.ok, result.error
    assert result.metadata["num_inference_steps"] == 8 and result.metadata["guidance_scale"] == 1.0
    vae = engine.manager.get_loaded("tiny_ltx_distilled").pipeline.vae
    assert vae.config.timestep_conditioning
