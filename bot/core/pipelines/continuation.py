"""The conditioning an extender continues a clip from (``bot.core.extend``), built by family.

- ``tail`` (LTX-Video 0.9.7): ``LTXConditionPipeline`` over the loaded pipeline's very modules
  (the same five components as ``LTXPipeline``), with the tail frames as one
  ``LTXVideoCondition`` at frame 0: the model denoises the new frames around latents that hold
  the tail, so motion carries over. Its output starts with the tail rendered again.
  LTX-2 the same way with its own classes (``LTX2ConditionPipeline``, ``LTX2VideoCondition`` at
  latent index 0, :mod:`bot.core.pipelines.ltx2`), and its sound is made with the frames: the
  engine joins it after the clip's own (``bot.core.extend.continued_sound``).
- ``vace`` (Wan 2.1 VACE): the loaded ``WanVACEPipeline`` itself, given a context video of the
  whole render, the tail first and mid-grey after it, with a mask black over the tail (kept) and
  white after it (made): diffusers' own first-and-last-frame recipe for VACE, with the tail in
  place of the first frame. Its output starts with the tail rendered again.
- ``last_frame`` (an image-to-video model): the family's own image pipeline from the last frame.

Each returns the pipeline to run and the extra call arguments; the family's adapter then runs it
with its usual progress, cancel and previews.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

CONDITION_CLASS = "LTXConditionPipeline"
CONDITION_SCHEDULER = {"use_dynamic_shifting": False}
"""``LTXConditionPipeline`` makes its own schedule (Lightricks' linear-quadratic sigmas, handed to
the scheduler as explicit timesteps) and computes no ``mu``, so the scheduler must not shift by
resolution: with ``use_dynamic_shifting`` on, ``set_timesteps`` refuses to run."""


LTX2 = "ltx2"
"""The family whose tail conditioning is LTX-2's (:mod:`bot.core.pipelines.ltx2`)."""


def condition_scheduler(family: str) -> dict[str, Any]:
    """The scheduler settings a tail-conditioned render needs: LTX-Video 0.9.7's
    :data:`CONDITION_SCHEDULER`; nothing for LTX-2, whose condition pipeline computes the same
    resolution shift as its text pipeline."""
    return {} if family == LTX2 else dict(CONDITION_SCHEDULER)


def condition_pipeline(pipe: Any, family: str = "ltx") -> Any:
    """``LTXConditionPipeline`` (``LTX2ConditionPipeline`` for LTX-2) sharing ``pipe``'s
    modules: nothing is loaded or placed twice."""
    import inspect

    if family == LTX2:
        from bot.core.pipelines import ltx2

        return ltx2.condition_pipeline(pipe)

    import diffusers

    cls = getattr(diffusers, CONDITION_CLASS)
    if isinstance(pipe, cls):
        return pipe
    wanted = [n for n in inspect.signature(cls.__init__).parameters if n != "self"]
    components = pipe.components
    condition = cls(**{name: components[name] for name in wanted})
    condition.set_progress_bar_config(disable=True)
    return condition


def tail_condition(
    tail: Sequence[Image.Image], strength: float = 1.0, family: str = "ltx"
) -> dict[str, Any]:
    """The call arguments that condition an LTX-Video 0.9.7 (or LTX-2) render on ``tail`` at
    frame 0."""
    if family == LTX2:
        from bot.core.pipelines import ltx2

        return {"conditions": ltx2.tail_condition(tail, strength)}
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    return {"conditions": [LTXVideoCondition(video=list(tail), frame_index=0, strength=strength)]}


GREY = (128, 128, 128)
"""What VACE is shown where frames are to be made (diffusers' example: 127.5 in the original
code, 128 in a picture)."""


def vace_context(tail: Sequence[Image.Image], total: int) -> dict[str, Any]:
    """The call arguments that make Wan VACE continue ``tail`` to ``total`` frames."""
    from PIL import Image

    size = tail[0].size
    made = total - len(tail)
    video = [*tail, *[Image.new("RGB", size, GREY)] * made]
    kept, drawn = Image.new("L", size, 0), Image.new("L", size, 255)
    return {"video": video, "mask": [*[kept] * len(tail), *[drawn] * made]}


__all__ = [
    "CONDITION_CLASS",
    "CONDITION_SCHEDULER",
    "GREY",
    "LTX2",
    "condition_pipeline",
    "condition_scheduler",
    "tail_condition",
    "vace_context",
]
