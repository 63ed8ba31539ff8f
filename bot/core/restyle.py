"""Restyle (video-to-video): the rules a member's video is fitted to before a model redraws it.

Pure functions of the registry and the video's probe (no torch), so the service refuses a video
up front with the same numbers the engine would, before anything is queued:

- **strength** 0.1-1.0, default 0.6: the share of the denoising schedule that is re-run. Low keeps
  the video (its shapes, motion and colours), high follows the prompt.
- **size**: the video's own aspect ratio, at most the model's native pixel count (832x480's worth
  for Wan 2.1 1.3B, which its memory plan was made for), each side at least the model's minimum
  and at most its maximum, in multiples of 16 (``WanVideoToVideoPipeline`` needs 16). The result
  stays at that size; it is not resized back to the source's.
- **frames**: the video is sampled at the model's frame rate where it is faster (a 30 fps phone
  clip is read at Wan's 16 fps, so five seconds fit the 81 frames Wan was trained on), then cut
  to the longest count the model's frame rule allows (Wan: 4k+1, so at most 3 frames go). A video
  longer than the model's most frames at that rate is refused with the numbers, never cut
  silently: the member trims it first.
- **sound**: the source's sound is carried over, cut to the result's length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.core.errors import InvalidParameterError, MediaError
from bot.core.registry import ModelSpec, restyle_models, spec_able_to
from bot.core.rules import Range

if TYPE_CHECKING:
    from collections.abc import Sequence

    from PIL import Image

    from bot.core.media import Sound

STRENGTH = Range(0.1, 1.0)
DEFAULT_STRENGTH = 0.6
STRENGTH_HELP = "0.1-1.0, default 0.6: low keeps the video, high follows the prompt"
"""The one wording of the range: the slash option, the CLI's help, the refusal and the docs."""
DEFAULT_RESTYLER = "wan2_1_1_3b"
SIZE_MULTIPLE = 16
"""``WanVideoToVideoPipeline.check_inputs`` refuses sides that are not multiples of 16."""


def check_strength(value: Any) -> float:
    """The strength as a float, or a one-line refusal naming the range."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidParameterError("strength", f"must be a number ({STRENGTH_HELP})")
    if not STRENGTH.low <= value <= STRENGTH.high:
        raise InvalidParameterError("strength", f"is {value:g}; it takes {STRENGTH_HELP}")
    return float(value)


def run_steps(steps: int, strength: float) -> int:
    """The schedule's length for a restyle of ``steps`` at ``strength``: the pipeline re-runs the
    last ``int(steps * strength)`` of them, so a low strength on a short schedule (4 steps at
    0.1) would run none and decode nothing; the schedule is lengthened until one step runs."""
    while int(steps * strength) < 1:
        steps += 1
    return steps


def restyler_spec(key: str) -> ModelSpec:
    """The spec of a model that restyles; any other is refused naming those that can."""
    return spec_able_to(key, "restyles", "restyle a video", restyle_models())


@dataclass(frozen=True)
class RestylePlan:
    """What a restyle renders: the size, which source frames (in order) and at what rate."""

    model: str
    width: int
    height: int
    indices: tuple[int, ...]
    fps: float

    @property
    def num_frames(self) -> int:
        return len(self.indices)

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    def as_metadata(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "width": self.width,
            "height": self.height,
            "num_frames": self.num_frames,
            "fps": self.fps,
        }


def restyle_size(spec: ModelSpec, width: int, height: int) -> tuple[int, int]:
    """The size a ``width`` x ``height`` video is restyled at (see the module's rules)."""
    if width <= 0 or height <= 0:
        raise MediaError(f"the video has no picture ({width}x{height})")
    multiple = max(SIZE_MULTIPLE, spec.size_multiple)
    area = spec.native_width * spec.native_height
    scale = min(1.0, math.sqrt(area / (width * height)))
    scale = max(scale, spec.min_size / min(width, height))
    scale = min(scale, spec.max_size / max(width, height))
    low = math.ceil(spec.min_size / multiple) * multiple
    high = spec.max_size // multiple * multiple

    def side(value: float) -> int:
        return min(high, max(low, round(value * scale / multiple) * multiple))

    return side(width), side(height)


def plan_restyle(
    spec: ModelSpec, width: int, height: int, frame_count: int, fps: float
) -> RestylePlan:
    """Fit a video to ``spec``'s rules, or refuse it in one line with the numbers."""
    rate = min(fps, float(spec.default_fps)) if fps > 0 else float(spec.default_fps)
    duration = frame_count / fps if fps > 0 else frame_count / rate
    available = math.floor(duration * rate + 1e-6)
    rule = spec.frames
    if available > rule.high:
        raise MediaError(
            f"the video lasts {duration:.1f} s ({frame_count} frames at {fps:g} fps); "
            f"{spec.key} restyles at most {rule.high} frames at {rate:g} fps "
            f"({rule.high / rate:.1f} s): trim it first"
        )
    count = max((n for n in range(rule.low, available + 1) if rule.accepts(n)), default=0)
    if count == 0:
        raise MediaError(
            f"the video has {frame_count} frames ({duration:.2f} s); {spec.key} restyles at "
            f"least {rule.low} frames at {rate:g} fps ({rule.low / rate:.2f} s)"
        )
    step = fps / rate if fps > 0 else 1.0
    indices = tuple(min(frame_count - 1, round(i * step)) for i in range(count))
    return RestylePlan(spec.key, *restyle_size(spec, width, height), indices, rate)


def fitted_frames(frames: Sequence[Image.Image], plan: RestylePlan) -> list[Image.Image]:
    """The plan's frames of the source, resized to the plan's size."""
    from PIL import Image

    return [
        frames[i].convert("RGB").resize((plan.width, plan.height), Image.Resampling.LANCZOS)
        for i in plan.indices
    ]


def restyled_sound(sound: Sound | None, plan: RestylePlan) -> Sound | None:
    """The source's sound cut to the result's length (the sampled frames keep the source's time,
    so the sound needs no other change); a silent source stays silent."""
    if sound is None:
        return None
    end = plan.duration_s
    return sound.then(f"atrim=end={end:.6f},asetpts=PTS-STARTPTS", min(end, sound.duration_s))


__all__ = [
    "DEFAULT_RESTYLER",
    "DEFAULT_STRENGTH",
    "STRENGTH",
    "STRENGTH_HELP",
    "RestylePlan",
    "check_strength",
    "fitted_frames",
    "plan_restyle",
    "restyle_size",
    "restyled_sound",
    "restyler_spec",
    "run_steps",
]
