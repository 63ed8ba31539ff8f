"""Draft quality: what a draft (``GenerationParams.quality = "draft"``) of some params runs, and
how many steps and how long a render takes, as plain functions of the params and the registry.

Kept apart from the engine so that anything may read a recipe or an estimate without the engine's
imports (the cogs say how long Refine will take): it imports only the params, the registry and the
cache planner, none of which loads torch.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from bot.core.caches import plan_cache
from bot.core.errors import InvalidParameterError
from bot.core.params import GenerationParams
from bot.core.registry import ModelSpec, get_spec

if TYPE_CHECKING:
    from bot.core.result import GenerationResult

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DraftRecipe:
    """What a draft of some params runs: ``params`` (the partner model's, or the same model with
    fewer steps), the cache it runs with, and a line that says what was done."""

    params: GenerationParams
    kind: str
    """``"partner"`` (a step-distilled partner model) or ``"fewer_steps"``."""
    cache: str
    full_steps: int
    saving: str
    """What it spares against the full render, for a member: "4 steps without guidance instead of
    50 steps with guidance", "5 steps instead of 20, with the first_block cache"."""

    @property
    def note(self) -> str:
        """The saving, and on which model where a partner runs it."""
        if self.kind == "partner":
            return f"{get_spec(self.params.model or '').name}: {self.saving}"
        return self.saving

    def as_metadata(self) -> dict[str, Any]:
        return {
            "recipe": self.kind,
            "model": self.params.model,
            "steps": self.params.num_inference_steps,
            "full_steps": self.full_steps,
            "cache": self.cache,
            "note": self.note,
            "saving": self.saving,
        }


_DRAFT_KEEPS: tuple[str, ...] = (
    "prompt",
    "negative_prompt",
    "width",
    "height",
    "num_frames",
    "fps",
    "seed",
    "interpolate",
    "loop",
    "image",
    "end_image",
)
"""What a partner's draft keeps of the member's params; steps, guidance and scheduler are the
partner's own recipe."""


def draft_recipe(params: GenerationParams) -> DraftRecipe | None:
    """The draft of ``params`` (``None`` at full quality). The model's registered step-distilled
    partner runs the same prompt, size, frames and seed at its own steps, guidance and scheduler;
    where there is none, or the partner cannot take the job (a size or frame count outside its
    rules, a picture it cannot animate), the model itself runs with fewer steps and its draft
    cache. ``params.model`` must be set (the engine resolves it first)."""
    if params.quality != "draft" or params.model is None:
        return None
    spec = get_spec(params.model)
    if spec.draft_model is not None:
        partner = get_spec(spec.draft_model)
        kept = {k: getattr(params, k) for k in _DRAFT_KEEPS}
        try:
            draft = GenerationParams(**{**kept, "model": partner.key, "quality": "draft"})
        except InvalidParameterError as exc:
            log.info(
                "draft of %s cannot run on %s (%s); fewer steps instead", spec.key, partner.key, exc
            )
        else:
            return DraftRecipe(
                params=draft,
                kind="partner",
                cache="off",
                full_steps=params.num_inference_steps,
                saving=f"{_passes(draft)} instead of {_passes(params)}",
            )
    steps = draft_steps(spec, params.num_inference_steps)
    cache = spec.draft_cache
    taken = plan_cache(cache, spec)
    draft = params.model_copy(update={"num_inference_steps": steps})
    note = f"{steps} step{'s' if steps != 1 else ''} instead of {params.num_inference_steps}"
    if taken.name is not None:
        note += f", with the {taken.name} cache"
    return DraftRecipe(
        params=draft,
        kind="fewer_steps",
        cache=cache if taken.name is not None else "off",
        full_steps=params.num_inference_steps,
        saving=note,
    )


def _passes(params: GenerationParams) -> str:
    """Steps, and whether each runs the denoiser twice for guidance: a guidance-distilled partner
    saves that half even at the same step count."""
    steps = params.num_inference_steps
    guided = "with guidance" if params.guidance_scale > 1.0 else "without guidance"
    return f"{steps} step{'s' if steps != 1 else ''} {guided}"


def draft_steps(spec: ModelSpec, full_steps: int) -> int:
    """A draft's steps on ``spec`` without a partner: the registry's ``draft_steps``, else a
    quarter of the full steps; within the model's step range and never more than the full."""
    wanted = spec.draft_steps or round(full_steps / 4)
    return max(int(spec.steps.low), min(wanted, full_steps))


def estimate_steps(params: GenerationParams) -> int:
    """The denoising steps a job of ``params`` runs at its quality (a draft: its recipe's), so a
    caller can say how long a render takes before it starts. For the Refine button: the steps
    of ``params.model_copy(update={"quality": "full"})``."""
    if params.model is None:
        return params.num_inference_steps
    recipe = draft_recipe(params)
    return (recipe.params if recipe is not None else params).num_inference_steps


def denoiser_calls(params: GenerationParams) -> int:
    """Denoiser passes a job runs: steps, twice over with classifier-free guidance (guidance above
    1 runs a conditional and an unconditional pass, batched or not)."""
    recipe = draft_recipe(params)
    run = recipe.params if recipe is not None else params
    return run.num_inference_steps * (2 if run.guidance_scale > 1.0 else 1)


def estimate_refine_seconds(draft: GenerationResult) -> float | None:
    """How long the full render of a draft will take, from the draft's own denoising time scaled
    by the denoiser passes the full render runs (``None`` without the draft's timings or params).
    A rough figure for a member's message: a cache or a different partner model shifts it."""
    params = draft.params
    denoise = draft.timings.get("denoise") if draft.timings else None
    if params is None or not denoise:
        return None
    full = params.model_copy(update={"quality": "full"})
    ratio = denoiser_calls(full) / max(denoiser_calls(params), 1)
    return float(denoise) * ratio + float(draft.timings.get("postprocess", 0.0))
