"""The rules a request is checked against, as plain data: numeric ranges, frame-count rules, the
seed's limits, the scheduler names and the edit operations, and the checks that apply them.

A leaf: it imports nothing of the project's but its error type, so the registry, the parameters and
the speed options can all build on it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.errors import InvalidParameterError


@dataclass(frozen=True)
class Range:
    """An inclusive numeric range with the wording used in error messages."""

    low: float
    high: float

    def check(self, field: str, value: float) -> None:
        if isinstance(value, bool) or not (self.low <= value <= self.high):
            raise InvalidParameterError(
                field, f"must be between {_num(self.low)} and {_num(self.high)} (got {_num(value)})"
            )


@dataclass(frozen=True)
class FrameRule:
    """The frame counts a model accepts: ``low`` to ``high`` in steps of ``step`` counted from
    ``offset``. Video VAEs compress time, so most newer models need ``step*k + offset`` frames
    (LTX-Video 8k+1, Wan 4k+1); the seed's models take any count in their range."""

    low: int
    high: int
    step: int = 1
    offset: int = 0

    def __post_init__(self) -> None:
        if not (self.accepts(self.low) and self.accepts(self.high)):
            raise ValueError(f"the bounds of {self} must themselves be valid frame counts")

    @property
    def formula(self) -> str:
        return f"{self.step}k+{self.offset}" if self.step > 1 else ""

    def accepts(self, frames: int) -> bool:
        return self.low <= frames <= self.high and (frames - self.offset) % self.step == 0

    def nearest(self, frames: int) -> list[int]:
        """The valid counts closest to ``frames``: one on each side where both exist."""
        return _nearest(frames, self.low, self.high, self.step, self.offset)


def _nearest(value: int, low: int, high: int, step: int, offset: int = 0) -> list[int]:
    if value < low:
        return [low]
    if value > high:
        return [high]
    below = value - (value - offset) % step
    return [v for v in dict.fromkeys((below, below + step)) if low <= v <= high]


def _num(value: float) -> str:
    return display(value) if isinstance(value, int) else f"{value:g}"


def display(value: Any, limit: int = 40) -> str:
    """A value quoted back to the user: short, and safe for numbers too large to print."""
    try:
        text = str(value) if isinstance(value, int | float) else repr(value)
    except (ValueError, OverflowError):  # ints past Python's digit limit
        return "a number too large to show"
    return text if len(text) <= limit else text[: limit - 1] + "…"


# The seed's ranges (docs: "Video Generation Parameters").
FRAMES = Range(8, 64)
FPS = Range(4, 30)
STEPS = Range(10, 50)
GUIDANCE = Range(1.0, 20.0)
SEED = Range(0, 2**32 - 1)
INTERPOLATE = Range(1, 4)
SIZE_MULTIPLE = 8
PROMPT_MAX_CHARS = 1000

# Edit limits: an edit may not grow a video past MAX_EDIT_FRAMES, whatever the chain of edits.
SPEED = Range(0.25, 4.0)
LOOPS = Range(1, 10)
INTERPOLATE_FACTOR = Range(2, 4)
"""The interpolate edit's frame-rate multiplier: from 2 (1 would change nothing)."""
MAX_EDIT_FRAMES = 1024
UPSCALE_STRENGTH = Range(0.1, 1.0)

# Scheduler names members and the CLI may use, mapped to diffusers classes and extra config. The
# mapping lives here, as data, so validation needs no diffusers import.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {}),
    "dpm++_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "lms": ("LMSDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    # Flow-matching and CogVideoX schedulers: only the newer models accept them (ModelSpec rules).
    "flow_euler": ("FlowMatchEulerDiscreteScheduler", {}),
    "cogvideox_ddim": ("CogVideoXDDIMScheduler", {}),
    "cogvideox_dpm": ("CogVideoXDPMScheduler", {}),
}

EDIT_OPERATIONS = ("trim", "speed", "reverse", "loop", "interpolate")


class Sized(Protocol):
    """What :func:`check_rules` reads of a request (``GenerationParams`` has it)."""

    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def num_frames(self) -> int: ...
    @property
    def num_inference_steps(self) -> int: ...
    @property
    def guidance_scale(self) -> float: ...
    @property
    def scheduler(self) -> str: ...


class Request(Sized, Protocol):
    """What a model's own checks (``ModelSpec.check_params``) read besides: the picture, if any.
    A protocol here keeps the registry from importing ``GenerationParams`` (which imports it)."""

    @property
    def image(self) -> object | None: ...


CACHE_NAMES = ("first_block", "mag", "faster", "pab", "taylorseer")
"""The named caches, as ``[speed] cache`` and the registry spell them (``bot.core.caches``)."""
CACHE_CHOICES = ("auto", "off", *CACHE_NAMES)
"""What ``[speed] cache`` accepts: the model's default, none, or one named cache."""


def check_rules(
    params: Sized,
    *,
    frames: FrameRule,
    steps: Range,
    guidance: Range,
    size: tuple[int, int, int],
    schedulers: tuple[str, ...] | None = None,
    model_name: str | None = None,
) -> None:
    """The checks whose limits depend on the model, with the nearest valid values named. Every
    broken rule is reported at once, so a member fixes them all in one go."""
    where = f" for {model_name}" if model_name else ""
    low, high, multiple = size
    errors: list[InvalidParameterError] = []

    def collect(check: Any, *args: Any) -> None:
        try:
            check(*args)
        except InvalidParameterError as exc:
            errors.append(exc)

    collect(check_size, "width", params.width, low, high, model_name, multiple)
    collect(check_size, "height", params.height, low, high, model_name, multiple)
    if not frames.accepts(params.num_frames):
        try_values = " or ".join(str(v) for v in frames.nearest(params.num_frames))
        verb = f"needs {frames.formula} frames" if frames.formula else "must be"
        errors.append(
            InvalidParameterError(
                "num_frames",
                f"{verb} between {frames.low} and {frames.high}{where}: try {try_values} "
                f"(got {display(params.num_frames)})",
            )
        )
    if not steps.low <= params.num_inference_steps <= steps.high:
        errors.append(
            InvalidParameterError(
                "num_inference_steps",
                f"must be between {_num(steps.low)} and {_num(steps.high)}{where} "
                f"(got {display(params.num_inference_steps)})",
            )
        )
    if not guidance.low <= params.guidance_scale <= guidance.high:
        errors.append(
            InvalidParameterError(
                "guidance_scale",
                f"must be between {_num(guidance.low)} and {_num(guidance.high)}{where} "
                f"(got {_num(params.guidance_scale)})",
            )
        )
    if schedulers is not None and params.scheduler not in schedulers:
        errors.append(
            InvalidParameterError(
                "scheduler",
                f"{params.scheduler} does not work with {model_name}; "
                f"use {' or '.join(schedulers)}",
            )
        )
    if errors:
        combined = InvalidParameterError(errors[0].field, "")
        combined.args = ("; ".join(str(e) for e in errors),)
        raise combined


def check_size(
    field: str,
    value: int,
    low: int,
    high: int,
    model_name: str | None = None,
    multiple: int = SIZE_MULTIPLE,
) -> None:
    """Width and height: multiples of the model's step (the VAE's downsampling times its patch
    size) within the model's supported range."""
    where = f" for {model_name}" if model_name else ""
    if value % multiple or not (low <= value <= high):
        hint = ""
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**9:
            first = -(-low // multiple) * multiple
            last = high // multiple * multiple
            hint = ": try " + " or ".join(str(v) for v in _nearest(value, first, last, multiple))
        raise InvalidParameterError(
            field,
            f"must be a multiple of {multiple} between {low} and {high}{where}{hint} "
            f"(got {display(value)})",
        )
