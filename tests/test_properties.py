"""Property tests of the one owner of validation (bot.core.params).

Whatever a member, the CLI or a caller passes, ``GenerationParams(**kwargs)`` and ``validate_edit``
either return a value or raise ``InvalidParameterError``: never a TypeError, OverflowError, pydantic
ValidationError or any other exception that would surface as a traceback. When they return, what
they return is within the documented ranges, so validation is correct and not only crash-free.

The strategies mix, per field, valid values, values at and just past each boundary and hostile ones
(huge and negative ints, bools, nan/inf/-0.0/1e308, numeric and control-character strings, lone
surrogates, None, containers, numpy and Decimal numbers, unknown keys). Inputs found to escape as
something else are pinned by the example-based tests at the end of the file.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core import GenerationParams, InvalidParameterError
from bot.core.edits import change_speed
from bot.core.params import EditRequest, validate_edit
from bot.core.registry import REGISTRY, ModelSpec
from bot.core.rules import (
    EDIT_OPERATIONS,
    FPS,
    FRAMES,
    GUIDANCE,
    INTERPOLATE,
    LOOPS,
    MAX_EDIT_FRAMES,
    PROMPT_MAX_CHARS,
    SCHEDULERS,
    SEED,
    SIZE_MULTIPLE,
    SPEED,
    STEPS,
    FrameRule,
    Range,
)

PROPERTY = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

HUGE = 10**400  # past float's range: float(HUGE) raises OverflowError
HUGER = 10**5000  # past Python's 4300-digit limit: str(HUGER) raises ValueError
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
FIELDS = tuple(GenerationParams.model_fields)
GENERATORS = tuple(
    key
    for key, spec in REGISTRY.items()
    if spec.role == "generator" and not spec.image_only  # these need a picture: tested apart
)
UPSCALERS = tuple(key for key, spec in REGISTRY.items() if spec.role != "generator")
REGISTRY_MIN_SIZE = min(spec.min_size for spec in REGISTRY.values())
REGISTRY_MAX_SIZE = max(spec.max_size for spec in REGISTRY.values())


# --- strategies ----------------------------------------------------------------------------------

HOSTILE_NUMBERS = st.sampled_from(
    [
        True,
        False,
        -1,
        0,
        -(2**31),
        2**31,
        2**32,
        2**63 - 1,
        -(2**63),
        2**64,
        HUGE,
        -HUGE,
        HUGER,
        math.nan,
        math.inf,
        -math.inf,
        -0.0,
        1e308,
        -1e308,
        5e-324,
        0.5,
        7.999999999,
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("1e400"),
        Decimal("16"),
        Fraction(15, 2),
        complex(8, 0),
        np.int64(16),
        np.int64(2**62),
        np.uint64(2**64 - 1),
        np.float32("nan"),
        np.float64(7.5),
        np.bool_(True),
    ]
)
HOSTILE_STRINGS = st.sampled_from(
    [
        "",
        " ",
        "\t\n",
        "8",
        " 16 ",
        "1e3",
        "1e400",
        "-0",
        "nan",
        "inf",
        "0x10",
        "1_000",
        "\u0668",  # ARABIC-INDIC DIGIT EIGHT
        "\uff18",  # FULLWIDTH DIGIT EIGHT
        "9" * 5000,
        "\x00",
        "\x1b[31mred",
        "\u202e",
        "\ud800",
        "x" * (PROMPT_MAX_CHARS + 1),
        "DDIM",
        " Euler_A ",
        "TINY_T2V",
        "../../etc/passwd",
    ]
)
OTHER_HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=8),
    st.lists(st.integers(0, 64), max_size=3),
    st.tuples(st.integers(0, 64)),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sets(st.integers(), max_size=2),
    st.just(object()),
)
HOSTILE = st.one_of(HOSTILE_NUMBERS, HOSTILE_STRINGS, OTHER_HOSTILE)
EXTREMES = st.sampled_from([HUGE, -HUGE, HUGER, -HUGER, 2**64, -(2**63), 1e308, -1e308])


def _around(values: list[float]) -> list[float]:
    return sorted({v + d for v in values for d in (-1, 0, 1)})


_CASES: list[Callable[[str], str]] = [str.lower, str.upper, str.title, str.swapcase]


def _odd_case(names: list[str]) -> st.SearchStrategy[str]:
    """Names as a member might type them: any case, padded with whitespace."""
    return st.builds(
        lambda name, case, before, after: before + case(name) + after,
        st.sampled_from(names),
        st.sampled_from(_CASES),
        st.sampled_from(["", " ", "\t", "\n "]),
        st.sampled_from(["", " ", "\r\n"]),
    )


VALID_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"], exclude_characters=BIDI),
    max_size=40,
)
VALID_PROMPT = VALID_TEXT.filter(lambda s: s.strip())
ANY_TEXT = st.text(max_size=40)  # control characters, bidi overrides
VALID_SIZE = st.integers(REGISTRY_MIN_SIZE // 8, REGISTRY_MAX_SIZE // 8).map(lambda n: n * 8)


def _int_field(rng: Any) -> st.SearchStrategy[Any]:
    low, high = int(rng.low), int(rng.high)
    return st.one_of(
        st.integers(low, high),
        st.sampled_from(_around([low, high])),
        st.integers(low, high).map(float),
        st.integers(low, high).map(str),
        EXTREMES,
        HOSTILE,
    )


FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "prompt": st.one_of(VALID_PROMPT, ANY_TEXT, HOSTILE),
    "negative_prompt": st.one_of(VALID_TEXT, ANY_TEXT, HOSTILE),
    "width": st.one_of(
        VALID_SIZE,
        st.integers(0, 1100),
        st.sampled_from(_around([32, 256, 1024])),
        EXTREMES,
        HOSTILE,
    ),
    "height": st.one_of(
        VALID_SIZE,
        st.integers(0, 1100),
        st.sampled_from(_around([32, 256, 1024])),
        EXTREMES,
        HOSTILE,
    ),
    "num_inference_steps": _int_field(STEPS),
    "guidance_scale": st.one_of(
        st.floats(GUIDANCE.low, GUIDANCE.high),
        st.floats(-1e3, 1e3),
        st.sampled_from(
            [
                GUIDANCE.low,
                GUIDANCE.high,
                math.nextafter(GUIDANCE.low, 0),
                math.nextafter(GUIDANCE.high, math.inf),
                "7.5",
                " 1e1 ",
            ]
        ),
        EXTREMES,
        HOSTILE,
    ),
    "seed": st.one_of(st.none(), st.integers(int(SEED.low), int(SEED.high)), _int_field(SEED)),
    "scheduler": st.one_of(
        _odd_case(list(SCHEDULERS)), st.sampled_from(["dpm++ karras", "euler-a", "ddim2"]), HOSTILE
    ),
    "num_frames": _int_field(FRAMES),
    "fps": _int_field(FPS),
    "interpolate": _int_field(INTERPOLATE),
    "loop": st.one_of(
        st.booleans(), st.sampled_from(["yes", "no", "true", "0", 1, 0, 2, "maybe"]), HOSTILE
    ),
    "model": st.one_of(
        st.none(),
        _odd_case(list(REGISTRY)),
        st.sampled_from(["", "tiny", "stable-diffusion", "tiny_t2v/../x"]),
        HOSTILE,
    ),
}
UNKNOWN_KEYS = st.dictionaries(
    st.one_of(
        st.text(min_size=1, max_size=12).filter(lambda k: k not in FIELDS),
        st.sampled_from(
            ["Prompt", "num-frames", "steps", "guidance", "__class__", "model_config", "\ud800"]
        ),
    ),
    HOSTILE,
    max_size=2,
)
GENERATION_KWARGS = st.tuples(
    st.fixed_dictionaries({}, optional=FIELD_VALUES),
    st.one_of(st.just({}), st.just({}), UNKNOWN_KEYS),
).map(lambda t: {**t[0], **t[1]})

VALID_GENERATION_KWARGS = st.fixed_dictionaries(
    {"prompt": VALID_PROMPT},
    optional={
        "negative_prompt": VALID_TEXT,
        "seed": st.one_of(st.none(), st.integers(int(SEED.low), int(SEED.high))),
        "fps": st.integers(int(FPS.low), int(FPS.high)),
        "interpolate": st.integers(int(INTERPOLATE.low), int(INTERPOLATE.high)),
        "loop": st.booleans(),
    },
)


def rules_of(spec: ModelSpec | None) -> tuple[FrameRule, Range, Range, tuple[str, ...], int]:
    """What a model accepts; without a model, the seed's ranges."""
    if spec is None:
        frames = FrameRule(int(FRAMES.low), int(FRAMES.high))
        return frames, STEPS, GUIDANCE, tuple(SCHEDULERS), SIZE_MULTIPLE
    return spec.frames, spec.steps, spec.guidance, spec.schedulers, spec.size_multiple


@st.composite
def valid_generation_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    """Only values the documentation allows, sized for the model drawn (or any model)."""
    kwargs = draw(VALID_GENERATION_KWARGS)
    model = draw(st.one_of(st.none(), st.sampled_from(GENERATORS)))
    spec = REGISTRY[model] if model else None
    frames, steps, guidance, schedulers, multiple = rules_of(spec)
    low = spec.min_size if spec else REGISTRY_MIN_SIZE
    high = spec.max_size if spec else REGISTRY_MAX_SIZE
    size = st.integers(-(-low // multiple), high // multiple).map(lambda n: n * multiple)
    kwargs.update(
        width=draw(size),
        height=draw(size),
        num_frames=draw(
            st.integers(0, (frames.high - frames.low) // frames.step).map(
                lambda k: frames.low + k * frames.step
            )
        ),
    )
    optional = {
        "num_inference_steps": st.integers(int(steps.low), int(steps.high)),
        "guidance_scale": st.floats(guidance.low, guidance.high),
        "scheduler": _odd_case(list(schedulers)),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            kwargs[name] = draw(strategy)
    if model is not None:
        kwargs["model"] = draw(_odd_case([model]))
    return kwargs


# --- checks --------------------------------------------------------------------------------------


def assert_usable_error(error: InvalidParameterError) -> None:
    """The message goes to Discord and the logs as it is: a non-empty str that UTF-8 can encode."""
    assert type(error.field) is str and error.field
    message = str(error)
    assert message
    message.encode("utf-8")


def _is_int(value: object) -> bool:
    return type(value) is int


def assert_within_ranges(params: GenerationParams) -> None:
    """Everything a validated GenerationParams holds is within the documented ranges."""
    assert isinstance(params.prompt, str)
    assert params.prompt == params.prompt.strip() and 1 <= len(params.prompt) <= PROMPT_MAX_CHARS
    assert isinstance(params.negative_prompt, str)
    assert params.negative_prompt == params.negative_prompt.strip()
    assert len(params.negative_prompt) <= PROMPT_MAX_CHARS
    for text in (params.prompt, params.negative_prompt):
        for char in text:
            assert char in "\t\n\r" or (unicodedata.category(char) != "Cc" and char not in BIDI)

    spec = REGISTRY[params.model] if params.model is not None else None
    if spec is not None:
        assert spec.role == "generator"
    frames, steps, guidance, schedulers, multiple = rules_of(spec)
    low = spec.min_size if spec else REGISTRY_MIN_SIZE
    high = spec.max_size if spec else REGISTRY_MAX_SIZE
    for size in (params.width, params.height):
        assert _is_int(size) and size % multiple == 0 and low <= size <= high

    assert _is_int(params.num_frames) and frames.accepts(params.num_frames)
    assert _is_int(params.fps) and FPS.low <= params.fps <= FPS.high
    assert _is_int(params.num_inference_steps)
    assert steps.low <= params.num_inference_steps <= steps.high
    assert _is_int(params.interpolate) and INTERPOLATE.low <= params.interpolate <= INTERPOLATE.high
    assert type(params.guidance_scale) is float and math.isfinite(params.guidance_scale)
    assert guidance.low <= params.guidance_scale <= guidance.high
    assert params.seed is None or (_is_int(params.seed) and SEED.low <= params.seed <= SEED.high)
    assert params.scheduler in schedulers
    assert type(params.loop) is bool


def edited_frame_count(request: EditRequest, frame_count: int) -> int:
    """How many frames bot.core.edits makes from ``frame_count`` frames with this request."""
    if request.operation == "trim":
        return len(range(frame_count)[request.start_frame : request.end_frame])
    if request.operation == "speed":
        return len(change_speed(range(frame_count), request.speed_factor))  # type: ignore[arg-type]
    if request.operation == "loop":
        return frame_count * request.loops
    if request.operation == "interpolate":
        return frame_count * request.factor
    return frame_count


# --- GenerationParams ----------------------------------------------------------------------------


@PROPERTY
@given(GENERATION_KWARGS)
def test_generation_params_validate_or_raise_invalid_parameter_error(
    kwargs: dict[str, Any],
) -> None:
    try:
        params = GenerationParams(**kwargs)
    except InvalidParameterError as error:
        assert_usable_error(error)
        return
    assert set(kwargs) <= set(FIELDS)  # an unknown key is never ignored
    assert_within_ranges(params)
    # Validation normalises (strips, lower-cases names) once: the result validates to itself.
    assert GenerationParams(**params.model_dump()) == params


@PROPERTY
@given(valid_generation_kwargs())
def test_documented_values_always_validate(kwargs: dict[str, Any]) -> None:
    params = GenerationParams(**kwargs)
    assert_within_ranges(params)
    assert (params.width, params.height, params.num_frames) == (
        kwargs["width"],
        kwargs["height"],
        kwargs["num_frames"],
    )
    assert params.prompt == kwargs["prompt"].strip()
    spec = REGISTRY[params.model] if params.model else None
    default_scheduler = spec.default_scheduler if spec else "ddim"
    assert params.scheduler == kwargs.get("scheduler", default_scheduler).strip().lower()
    if "model" in kwargs:
        assert params.model == kwargs["model"].strip().lower()


@settings(max_examples=150, deadline=None)
@given(
    field=st.sampled_from(["width", "height"]),
    model=st.sampled_from(GENERATORS),
    value=st.integers(0, 1100),
)
def test_sizes_follow_the_named_model(field: str, model: str, value: int) -> None:
    spec = REGISTRY[model]
    fits = value % spec.size_multiple == 0 and spec.min_size <= value <= spec.max_size
    try:
        kwargs: dict[str, Any] = {"prompt": "a red kite", "model": model, field: value}
        params = GenerationParams(**kwargs)
    except InvalidParameterError as error:
        assert not fits, f"{field}={value} fits {model} but was refused: {error}"
        assert error.field == field
        return
    assert fits and getattr(params, field) == value


# --- validate_edit -------------------------------------------------------------------------------

EDIT_ARGUMENT_NAMES = ("start_frame", "end_frame", "speed_factor", "loops", "factor")
EDIT_NUMBERS = st.one_of(
    st.integers(-10, 2100),
    st.integers(-10, 2100).map(float),
    st.integers(-10, 2100).map(str),
    st.floats(-10, 2100),
    st.sampled_from([0.25, 4.0, 0.2499999, 4.0000001, "0.5", " 2 ", "2.0"]),
    EXTREMES,
    HOSTILE,
)
EDIT_OPERATION = st.one_of(
    _odd_case(list(EDIT_OPERATIONS)),
    st.sampled_from(["ping_pong", "upscale", "trim ", "", "TRIM\x00"]),
    HOSTILE,
)
EDIT_KWARGS = st.tuples(
    st.fixed_dictionaries({}, optional=dict.fromkeys(EDIT_ARGUMENT_NAMES, EDIT_NUMBERS)),
    st.one_of(st.just({}), st.just({}), st.just({}), UNKNOWN_KEYS),
).map(lambda t: {**t[0], **t[1]})
ALLOWED_ARGUMENTS = {
    "trim": {"start_frame", "end_frame"},
    "speed": {"speed_factor"},
    "reverse": set(),
    "loop": {"loops"},
    "interpolate": {"factor"},
}


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(operation=EDIT_OPERATION, frame_count=st.integers(1, 2000), kwargs=EDIT_KWARGS)
def test_validate_edit_validates_or_raises_invalid_parameter_error(
    operation: Any, frame_count: int, kwargs: dict[str, Any]
) -> None:
    try:
        request = validate_edit(operation, frame_count, **kwargs)
    except InvalidParameterError as error:
        assert_usable_error(error)
        return
    assert isinstance(operation, str) and request.operation == operation.strip().lower()
    assert set(kwargs) <= ALLOWED_ARGUMENTS[request.operation]
    if request.operation == "trim":
        assert _is_int(request.start_frame) and _is_int(request.end_frame)
        assert 0 <= request.start_frame < request.end_frame <= frame_count
    elif request.operation == "speed":
        assert type(request.speed_factor) is float and math.isfinite(request.speed_factor)
        assert SPEED.low <= request.speed_factor <= SPEED.high
    elif request.operation == "loop":
        assert _is_int(request.loops) and LOOPS.low <= request.loops <= LOOPS.high
        assert frame_count * request.loops <= MAX_EDIT_FRAMES
    elif request.operation == "interpolate":
        assert _is_int(request.factor) and 2 <= request.factor <= INTERPOLATE.high
        assert frame_count * request.factor <= MAX_EDIT_FRAMES
    result = edited_frame_count(request, frame_count)
    assert result >= 1
    # "An edit may not grow a video past MAX_EDIT_FRAMES, whatever the chain of edits."
    assert result <= max(frame_count, MAX_EDIT_FRAMES), (
        f"{request} turns {frame_count} frames into {result} (limit {MAX_EDIT_FRAMES})"
    )


@st.composite
def valid_edits(draw: st.DrawFn) -> tuple[str, int, dict[str, Any]]:
    """Edits the documentation allows: they must validate, with the values given."""
    operation = draw(st.sampled_from(EDIT_OPERATIONS))
    if operation == "trim":
        frame_count = draw(st.integers(1, 2000))
        start = draw(st.integers(0, frame_count - 1))
        end = draw(st.integers(start + 1, frame_count))
        return operation, frame_count, {"start_frame": start, "end_frame": end}
    if operation == "speed":
        factor = draw(st.floats(SPEED.low, SPEED.high))
        frame_count = draw(st.integers(1, int(MAX_EDIT_FRAMES * factor)))
        return operation, frame_count, {"speed_factor": factor}
    if operation == "loop":
        loops = draw(st.integers(int(LOOPS.low), int(LOOPS.high)))
        frame_count = draw(st.integers(1, MAX_EDIT_FRAMES // loops))
        return operation, frame_count, {"loops": loops}
    if operation == "interpolate":
        factor = draw(st.integers(2, int(INTERPOLATE.high)))
        frame_count = draw(st.integers(1, MAX_EDIT_FRAMES // factor))
        return operation, frame_count, {"factor": factor}
    return operation, draw(st.integers(1, 2000)), {}


@settings(max_examples=300, deadline=None)
@given(valid_edits())
def test_documented_edits_always_validate(edit: tuple[str, int, dict[str, Any]]) -> None:
    operation, frame_count, kwargs = edit
    request = validate_edit(operation, frame_count, **kwargs)
    assert request.operation == operation
    for name, value in kwargs.items():
        assert getattr(request, name) == value
    assert 1 <= edited_frame_count(request, frame_count) <= max(frame_count, MAX_EDIT_FRAMES)


# --- pinned inputs -------------------------------------------------------------------------------
# Each of these was found to escape as something other than InvalidParameterError (or to validate
# into a state the documentation rules out). They stay here as regression examples.


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seed": HUGE},
        {"seed": -HUGE},
        {"num_frames": HUGE},
        {"fps": -HUGE},
        {"num_inference_steps": HUGE},
        {"interpolate": HUGE},
        {"num_frames": HUGE, "model": "tiny_t2v"},
        {"width": HUGER},
        {"height": -HUGER},
        {"width": HUGER, "model": "tiny_t2v"},
        {"guidance_scale": HUGER},
        {"seed": HUGER},
    ],
    ids=[
        "seed=10**400",
        "seed=-10**400",
        "num_frames=10**400",
        "fps=-10**400",
        "num_inference_steps=10**400",
        "interpolate=10**400",
        "num_frames=10**400,model=tiny_t2v",
        "width=10**5000",
        "height=-10**5000",
        "width=10**5000,model=tiny_t2v",
        "guidance_scale=10**5000",
        "seed=10**5000",
    ],
)
def test_huge_numbers_raise_invalid_parameter_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameterError) as info:
        GenerationParams(prompt="a red kite", **kwargs)
    assert_usable_error(info.value)


@pytest.mark.parametrize(
    ("operation", "frame_count", "kwargs"),
    [
        ("trim", 10, {"start_frame": HUGE}),
        ("trim", 10, {"end_frame": -HUGE}),
        ("speed", 10, {"speed_factor": HUGE}),
        ("loop", 10, {"loops": HUGE}),
        ("interpolate", 10, {"factor": HUGE}),
        (["trim"], 10, {}),
        ({"op": "trim"}, 10, {}),
        ({"trim"}, 10, {}),
        (HUGER, 10, {}),
        ("trim", 10, {"\ud800": 1}),
    ],
    ids=[
        "trim-start-10**400",
        "trim-end--10**400",
        "speed-10**400",
        "loops-10**400",
        "factor-10**400",
        "operation-list",
        "operation-dict",
        "operation-set",
        "operation-10**5000",
        "surrogate-argument-name",
    ],
)
def test_hostile_edits_raise_invalid_parameter_error(
    operation: Any, frame_count: int, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(InvalidParameterError) as info:
        validate_edit(operation, frame_count, **kwargs)
    assert_usable_error(info.value)


@pytest.mark.parametrize("frame_count", [257, 300, 1000, 1024])
def test_slowing_down_cannot_grow_a_video_past_the_edit_limit(frame_count: int) -> None:
    """speed 0.25 makes 4x the frames; unchecked, a chain of slow-downs grows without bound."""
    try:
        request = validate_edit("speed", frame_count, speed_factor=0.25)
    except InvalidParameterError as error:
        assert error.field == "speed_factor"
        return
    assert edited_frame_count(request, frame_count) <= MAX_EDIT_FRAMES


@pytest.mark.parametrize(
    "kwargs",
    [{"seed": True}, {"interpolate": True}, {"num_frames": np.bool_(True)}, {"seed": False}],
    ids=["seed-True", "interpolate-True", "num_frames-np.bool_", "seed-False"],
)
def test_booleans_are_not_numbers(kwargs: dict[str, Any]) -> None:
    """validate_edit refuses True as a whole number; GenerationParams should agree."""
    with pytest.raises(InvalidParameterError):
        GenerationParams(prompt="a red kite", **kwargs)


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_prompts_that_cannot_be_encoded_are_refused(field: str) -> None:
    """A lone surrogate cannot be sent to Discord, logged as UTF-8 or tokenised."""
    kwargs: dict[str, Any] = {"prompt": "a red kite", field: "a red \ud800 kite"}
    try:
        params = GenerationParams(**kwargs)
    except InvalidParameterError as error:
        assert_usable_error(error)
        return
    getattr(params, field).encode("utf-8")
