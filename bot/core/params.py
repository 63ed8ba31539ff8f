"""Validated parameters for generation, edits and upscaling: all input validation lives here.

Errors are raised as :class:`~bot.core.errors.InvalidParameterError`, a ``ValueError`` whose message
names the field, what is allowed and what was given, so the CLI and the bot can show it unchanged.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from bot.core.aspect import fill_size, parse_aspect
from bot.core.errors import InvalidParameterError
from bot.core.registry import REGISTRY, get_spec
from bot.core.rules import (
    EDIT_OPERATIONS,
    FPS,
    FRAMES,
    GUIDANCE,
    INTERPOLATE,
    INTERPOLATE_FACTOR,
    LOOPS,
    MAX_EDIT_FRAMES,
    PROMPT_MAX_CHARS,
    SCHEDULERS,
    SEED,
    SIZE_MULTIPLE,
    SPEED,
    STEPS,
    UPSCALE_STRENGTH,
    FrameRule,
    Range,
    check_rules,
    display,
)


class _Validated(BaseModel):
    """Turns pydantic's ValidationError into the project's InvalidParameterError on construction."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise invalid_parameter_from(exc) from None


def invalid_parameter_from(exc: ValidationError) -> InvalidParameterError:
    """One readable message per wrong field, in the order pydantic found them."""
    errors = exc.errors()
    only_cause = (errors[0].get("ctx") or {}).get("error") if len(errors) == 1 else None
    if isinstance(only_cause, InvalidParameterError):
        return only_cause  # keeps its own type (UnknownModelError) and field
    messages: list[str] = []
    first_field = "params"
    for i, err in enumerate(errors):
        field = ".".join(str(p) for p in err["loc"]) or "params"
        if i == 0:
            first_field = field
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, InvalidParameterError):
            messages.append(str(cause))
        elif err["type"] == "extra_forbidden":
            messages.append(f"{field}: is not a known option")
        elif err["type"] == "missing":
            messages.append(f"{field}: is required")
        else:
            messages.append(f"{field}: {err['msg'].lower()} (got {display(err.get('input'))})")
    error = InvalidParameterError(first_field, "")
    error.args = ("; ".join(messages),)
    return error


QUALITIES: tuple[str, ...] = ("full", "draft")
"""``GenerationParams.quality``'s values: the full render, or the model's quick draft recipe."""


class GenerationParams(_Validated):
    """What to generate. The seed's fields and defaults, plus frame interpolation, looping and an
    optional model key (``None``: the model loaded last).

    Size limits depend on the model: when ``model`` is given they are checked against its spec here;
    otherwise the engine checks them against the model it resolves.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    prompt: str
    negative_prompt: str = ""
    width: int = 512
    height: int = 512
    num_inference_steps: int = 20
    guidance_scale: float = 7.5
    seed: int | None = None
    scheduler: str = "ddim"
    num_frames: int = 16
    fps: int = 8
    interpolate: int = 1
    loop: bool = False
    model: str | None = None

    image: str | None = None
    """A picture to animate (a file path): routed to the model's image-to-video pipeline."""

    end_image: str | None = None
    """The picture the video ends on (a file path), with ``image`` as the one it starts from:
    only on a model that takes both (``ModelSpec.first_last_frame``)."""

    aspect: str | None = None
    """The video's shape (``"16:9"``, ``"9:16"``, ``"1:1"``, ``"4:3"``, ``"3:4"``, ``"21:9"``):
    a width and height left out become the model's size for it (``bot.core.aspect``); a width
    or height given wins, and one side given alone takes the other from the shape."""

    sound: bool = True
    """Whether a model that makes sound (LTX-2) puts it in the video; ``False`` gives a silent
    mp4. A model without sound ignores it. The live preview is silent either way."""

    soundtrack: str | None = None
    """The registry key of a soundtrack model (``role="soundtrack"``: Stable Audio Open) that
    scores the clip of a model without sound of its own from the prompt, after the video and in
    the same GPU job (``bot.core.soundtrack``). The bot and the CLI set it only where the owner
    enabled soundtracks and the member asked for sound; ``None``: a silent model stays silent."""

    smooth: int | None = None
    """A frame rate to smooth the finished clip to with learned interpolation (RIFE 4.26 on the
    job's device, ``minterpolate`` where it cannot run; ``bot.core.smoothing``): the largest whole
    multiple of ``fps`` at or under it, never past the 60 fps Discord plays smoothly, so the clip
    keeps its length (and its sound). Checked here against the model's rate, before anything is
    queued. A draft and the live preview skip it; Refine and reruns keep it."""

    quality: Literal["full", "draft"] = "full"
    """``"draft"`` runs the model's draft recipe (its step-distilled partner when one is
    registered, else fewer steps with a feature cache) for a quick look; ``"full"`` runs the
    options as given. A draft's seed re-rendered at ``"full"`` gives the full render (Refine)."""

    _int_fields: ClassVar[dict[str, Range]] = {"fps": FPS, "interpolate": INTERPOLATE}

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        _no_control_characters("prompt", value)
        value = value.strip()
        if not value:
            raise InvalidParameterError("prompt", "must not be empty: describe the video you want")
        if len(value) > PROMPT_MAX_CHARS:
            raise InvalidParameterError(
                "prompt", f"must be at most {PROMPT_MAX_CHARS} characters (got {len(value)})"
            )
        return value

    @field_validator("negative_prompt")
    @classmethod
    def _negative_prompt(cls, value: str) -> str:
        _no_control_characters("negative_prompt", value)
        value = value.strip()
        if len(value) > PROMPT_MAX_CHARS:
            raise InvalidParameterError(
                "negative_prompt",
                f"must be at most {PROMPT_MAX_CHARS} characters (got {len(value)})",
            )
        return value

    @field_validator(
        "num_frames",
        "fps",
        "num_inference_steps",
        "interpolate",
        "seed",
        "width",
        "height",
        "guidance_scale",
        "smooth",
        mode="before",
    )
    @classmethod
    def _not_a_bool(cls, value: Any, info: Any) -> Any:
        """True and False are not numbers to a member, though Python would take them as 1 and 0."""
        if isinstance(value, bool):
            raise InvalidParameterError(info.field_name, f"must be a number (got {value})")
        return value

    @field_validator("fps", "interpolate")
    @classmethod
    def _int_range(cls, value: int, info: Any) -> int:
        cls._int_fields[info.field_name].check(info.field_name, value)
        return value

    @field_validator("guidance_scale")
    @classmethod
    def _guidance(cls, value: float) -> float:
        if not math.isfinite(value):
            raise InvalidParameterError("guidance_scale", f"must be a number (got {value})")
        return value

    @field_validator("image", "end_image")
    @classmethod
    def _image(cls, value: str | None, info: Any) -> str | None:
        if value is None:
            return None
        _no_control_characters(info.field_name, value)
        if not value.strip():
            raise InvalidParameterError(info.field_name, "must be the path of a picture, not empty")
        return value

    @field_validator("aspect", mode="before")
    @classmethod
    def _aspect(cls, value: Any) -> Any:
        """``16:9`` (``16x9`` and ``16/9`` too) kept in lowest terms, so a rerun reads the same."""
        if value is None:
            return None
        width, height = parse_aspect(value if isinstance(value, str) else repr(value))
        return f"{width}:{height}"

    @field_validator("soundtrack")
    @classmethod
    def _soundtrack(cls, value: str | None) -> str | None:
        if value is None:
            return None
        spec = REGISTRY.get(value.strip().lower())
        if spec is None or spec.role != "soundtrack":
            models = [k for k, s in REGISTRY.items() if s.role == "soundtrack"]
            raise InvalidParameterError(
                "soundtrack",
                f"must be a soundtrack model, one of {', '.join(models)} (got {display(value)})",
            )
        return spec.key

    @field_validator("quality", mode="before")
    @classmethod
    def _quality(cls, value: Any) -> Any:
        """Names are matched without case or spaces; anything else gets the allowed names."""
        name = value.strip().lower() if isinstance(value, str) else value
        if name not in QUALITIES:
            raise InvalidParameterError(
                "quality", f"must be one of {', '.join(QUALITIES)} (got {display(value)})"
            )
        return name

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int | None) -> int | None:
        if value is not None:
            SEED.check("seed", value)
        return value

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str) -> str:
        name = value.strip().lower()
        if name not in SCHEDULERS:
            raise InvalidParameterError(
                "scheduler", f"unknown scheduler {value!r}; known: {', '.join(SCHEDULERS)}"
            )
        return name

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return get_spec(value).key

    @model_validator(mode="before")
    @classmethod
    def _model_defaults(cls, data: Any) -> Any:
        """Options left out take the named model's own defaults (its native size, frame count,
        frame rate, steps, guidance and scheduler), so every model works with no options at all."""
        if not isinstance(data, dict) or not isinstance(data.get("model"), str):
            return data
        spec = REGISTRY.get(data["model"].strip().lower())
        if spec is None:
            return data  # the model field's own validator names the known keys
        sized = dict(data)
        if isinstance(data.get("aspect"), str):
            sized["width"], sized["height"] = fill_size(
                spec, data["aspect"], _whole(data.get("width")), _whole(data.get("height"))
            )
        return {**spec.defaults(), **sized}

    @model_validator(mode="after")
    def _fits_model(self) -> GenerationParams:
        """Sizes, frame counts, steps, guidance and schedulers depend on the model, so they are
        checked once it is known; without a model, against the seed's ranges."""
        if self.end_image is not None and self.image is None:
            raise InvalidParameterError(
                "end_image",
                "is the last frame of a video that starts from a picture: give image too",
            )
        if self.smooth is not None:
            _check_smooth(self.smooth, self.fps, self.interpolate, self.num_frames)
        if self.model is not None:
            get_spec(self.model).check_params(self)
        else:
            low, high = _registry_size_bounds()
            check_rules(
                self,
                frames=FrameRule(int(FRAMES.low), int(FRAMES.high)),
                steps=STEPS,
                guidance=GUIDANCE,
                size=(low, high, SIZE_MULTIPLE),
            )
        return self

    def for_model(self, key: str) -> GenerationParams:
        """These params on model ``key``: the options given stay, the ones left out take that
        model's defaults, and everything is checked against its rules."""
        given = self.model_dump(include=self.model_fields_set | {"prompt"})
        return GenerationParams(**{**given, "model": key})


def _check_smooth(wanted: int, fps: int, interpolate: int, frames: int) -> None:
    """``smooth`` against the video's rate (``fps``: the member's or the model's): one line that
    says what fits when it is refused (:func:`bot.core.enhance.rates.target_fps`: a whole factor
    of 2 to 4, at most 60 fps), so the refusal comes before anything is queued. The smoothed clip
    holds ``frames`` times the factor, under the same frame limit as an edit's result."""
    from bot.core.enhance.rates import MAX_OUTPUT_FPS, target_fps

    if interpolate > 1:
        raise InvalidParameterError(
            "smooth",
            f"give smooth (a target fps, learned interpolation) or interpolate (a factor), not "
            f"both (got smooth {wanted} and interpolate {interpolate})",
        )
    if wanted <= 0:
        raise InvalidParameterError(
            "smooth", f"must be a frame rate to reach, at most {MAX_OUTPUT_FPS:g} (got {wanted})"
        )
    if wanted > MAX_OUTPUT_FPS:
        factors = range(int(INTERPOLATE_FACTOR.high), int(INTERPOLATE_FACTOR.low) - 1, -1)
        fitting = [f for f in factors if fps * f <= MAX_OUTPUT_FPS]
        advice = (
            f"at the video's {fps} fps use {fps * fitting[0]} fps ({fitting[0]}x)"
            if fitting
            else f"the video's {fps} fps is already smooth enough"
        )
        raise InvalidParameterError(
            "smooth",
            f"{wanted} fps is past the {MAX_OUTPUT_FPS:g} fps Discord plays smoothly: {advice}",
        )
    try:
        factor, _ = target_fps(fps, fps=wanted)
    except InvalidParameterError as exc:  # the rate's own wording, under the member's name for it
        raise InvalidParameterError("smooth", str(exc).removeprefix(f"{exc.field}: ")) from None
    _check_growth("smooth", frames * factor)


def _no_control_characters(field: str, value: str) -> None:
    """Control characters (NUL, escape sequences, bidi overrides) have no place in a prompt and
    can garble logs and embeds; tabs and line breaks are fine."""
    for char in value:
        if char in "\t\n\r":
            continue
        category = unicodedata.category(char)
        if category in ("Cc", "Cs") or char in _BIDI_CONTROLS:
            raise InvalidParameterError(
                field, f"contains a control character (U+{ord(char):04X}); remove it"
            )


def _whole(value: Any) -> int | None:
    """A width or height the member gave, where it is a whole number (anything else is left to
    the field's own check)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _registry_size_bounds() -> tuple[int, int]:
    return (
        min(spec.min_size for spec in REGISTRY.values()),
        max(spec.max_size for spec in REGISTRY.values()),
    )


# --- edits ---------------------------------------------------------------------------------------


EditOperation = Literal["trim", "speed", "reverse", "loop", "interpolate"]


@dataclass(frozen=True)
class EditRequest:
    """A validated edit: the operation and its arguments, checked against the video it applies to."""

    operation: EditOperation
    start_frame: int = 0
    end_frame: int = 0
    speed_factor: float = 1.0
    loops: int = 1
    factor: int = 2
    target_fps: float | None = None
    """interpolate: the rate the member asked for (``fps``), when they gave one instead of a
    factor; ``factor`` is then the largest whole factor at or under it."""


_EDIT_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "trim": ("start_frame", "end_frame", "start_s", "end_s"),
    "speed": ("speed_factor",),
    "reverse": (),
    "loop": ("loops",),
    "interpolate": ("factor", "target_fps"),
}


def validate_edit(
    operation: str, frame_count: int, *, fps: float | None = None, **kwargs: Any
) -> EditRequest:
    """Check an edit against a video of ``frame_count`` frames (at ``fps``, for times).

    ``trim`` keeps frames ``start_frame`` up to but not including ``end_frame`` (Python slicing;
    ``end_frame`` defaults to the end); ``start_s`` and ``end_s`` give the same in seconds, each
    time taken to the nearest frame. ``speed`` keeps the frame rate and drops or repeats frames;
    it needs its ``speed_factor`` (without one the result would be the same video).
    """
    op = operation.strip().lower() if isinstance(operation, str) else None
    if op not in _EDIT_ARGUMENTS:
        raise InvalidParameterError(
            "operation", f"unknown edit {display(operation)}; known: {', '.join(EDIT_OPERATIONS)}"
        )
    allowed = _EDIT_ARGUMENTS[op]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        takes = ", ".join(allowed) if allowed else "no arguments"
        raise InvalidParameterError(unknown[0], f"{op} takes {takes}")
    if op == "trim":
        kwargs = _times_as_frames(kwargs, frame_count, fps)
        start = _as_int("start_frame", kwargs.get("start_frame", 0))
        end = _as_int("end_frame", kwargs.get("end_frame", frame_count))
        if not 0 <= start < frame_count:
            raise InvalidParameterError(
                "start_frame",
                f"must be between 0 and {frame_count - 1} (the video has {frame_count} frames; "
                f"got {start})",
            )
        if not start < end <= frame_count:
            raise InvalidParameterError(
                "end_frame",
                f"must be between {start + 1} and {frame_count} (frames are kept up to but not "
                f"including end_frame; the video has {frame_count} frames; got {end})",
            )
        return EditRequest("trim", start_frame=start, end_frame=end)
    if op == "speed":
        if "speed_factor" not in kwargs:
            raise InvalidParameterError(
                "speed_factor",
                f"speed needs a factor, {SPEED.low:g} to {SPEED.high:g}: 2 plays twice as fast, "
                "0.5 half as fast",
            )
        factor = _as_float("speed_factor", kwargs["speed_factor"])
        SPEED.check("speed_factor", factor)
        if factor < 1:  # speeding up shortens a video of any length; slowing down grows it
            _check_growth("speed_factor", round(frame_count / factor))
        return EditRequest("speed", speed_factor=factor)
    if op == "loop":
        loops = _as_int("loops", kwargs.get("loops", 2))
        LOOPS.check("loops", loops)
        _check_growth("loops", frame_count * loops)
        return EditRequest("loop", loops=loops)
    if op == "interpolate":
        return _interpolation(frame_count, fps, kwargs)
    return EditRequest("reverse")


def _interpolation(frame_count: int, fps: float | None, kwargs: dict[str, Any]) -> EditRequest:
    """A factor (2-4) or a target rate (``target_fps``, what members give as ``fps``), checked
    against the 60 fps cap of :func:`bot.core.enhance.rates.target_fps` when the video's rate is
    known, so a request past it is refused here, before anything is queued or decoded."""
    from bot.core.enhance.rates import target_fps

    factor = _as_int("factor", kwargs["factor"]) if "factor" in kwargs else None
    wanted = (
        _as_float("fps", kwargs["target_fps"], kind="a frame rate")
        if "target_fps" in kwargs
        else None
    )
    if fps is None or not fps > 0:
        if wanted is not None:
            raise InvalidParameterError(
                "fps", "needs the video's frame rate; give a factor instead"
            )
        factor = 2 if factor is None else factor
        INTERPOLATE_FACTOR.check("factor", factor)
    else:
        asked = int(wanted) if wanted is not None and wanted.is_integer() else wanted
        factor, _ = target_fps(fps, factor=factor, fps=asked)  # "60 fps", not "60.0 fps"
    _check_growth("factor" if wanted is None else "fps", frame_count * factor)
    return EditRequest("interpolate", factor=factor, target_fps=wanted)


def _times_as_frames(kwargs: dict[str, Any], frame_count: int, fps: float | None) -> dict[str, Any]:
    """A trim's ``start_s``/``end_s`` as ``start_frame``/``end_frame`` (the nearest frame at
    ``fps``). A time outside the video, or an end not after the start, is refused in seconds, as
    it was given."""
    frames = dict(kwargs)
    times = {name: frames.pop(name) for name in ("start_s", "end_s") if name in frames}
    if not times:
        return frames
    for name in times:
        other = name.replace("_s", "_frame")
        if other in frames:
            raise InvalidParameterError(name, f"give {name} or {other}, not both")
    if fps is None or not fps > 0:
        field = next(iter(times))
        raise InvalidParameterError(field, "needs the video's frame rate; give frames instead")
    length = frame_count / fps
    if "start_s" in times:
        start = _as_float("start_s", times["start_s"], kind="a time in seconds")
        if not 0 <= start < length:
            raise InvalidParameterError(
                "start_s",
                f"must be from 0 to under {length:.2f} s, the video's length (got {start:g} s)",
            )
        frames["start_frame"] = min(round(start * fps), frame_count - 1)
    if "end_s" in times:
        end = _as_float("end_s", times["end_s"], kind="a time in seconds")
        if not 0 < end <= length + 0.5 / fps:
            raise InvalidParameterError(
                "end_s",
                f"must be over 0 and at most {length:.2f} s, the video's length (got {end:g} s)",
            )
        frames["end_frame"] = min(max(round(end * fps), 1), frame_count)
        first = frames.get("start_frame", 0)
        is_number = isinstance(first, int | float) and not isinstance(first, bool)
        if is_number and frames["end_frame"] <= first:
            raise InvalidParameterError(
                "end_s",
                f"must come after the start ({first / fps:g} s), so the trim keeps something "
                f"(got {end:g} s)",
            )
    return frames


def _check_growth(field: str, frames: int) -> None:
    if frames > MAX_EDIT_FRAMES:
        raise InvalidParameterError(
            field, f"the result would have {frames} frames; the limit is {MAX_EDIT_FRAMES}"
        )


def _as_int(field: str, value: Any) -> int:
    number = _as_float(field, value, kind="a whole number")
    if not number.is_integer():
        raise InvalidParameterError(field, f"must be a whole number (got {display(value)})")
    return int(number)


def _as_float(field: str, value: Any, kind: str = "a number") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidParameterError(field, f"must be {kind} (got {display(value)})")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise InvalidParameterError(field, f"must be {kind} (got {display(value)})") from None
    if not math.isfinite(number):
        raise InvalidParameterError(field, f"must be a finite number (got {display(value)})")
    return number


def check_upscale_strength(strength: float) -> float:
    value = _as_float("strength", strength)
    UPSCALE_STRENGTH.check("strength", value)
    return value
