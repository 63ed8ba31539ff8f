"""GenerationParams and edit validation: the seed's ranges, with errors that name the field and what
is allowed."""

from __future__ import annotations

import pytest

from bot.core import GenerationParams, InvalidParameterError, UnknownModelError
from bot.core.params import validate_edit
from bot.core.rules import SCHEDULERS


def test_seed_defaults() -> None:
    params = GenerationParams(prompt="a beautiful sunset over mountains")
    assert (params.width, params.height) == (512, 512)
    assert params.num_inference_steps == 20
    assert params.guidance_scale == 7.5
    assert params.seed is None
    assert params.scheduler == "ddim"
    assert (params.num_frames, params.fps) == (16, 8)
    assert params.negative_prompt == ""
    assert params.interpolate == 1 and params.loop is False and params.model is None


@pytest.mark.parametrize(
    ("field", "low", "high", "bad"),
    [
        ("num_frames", 8, 64, [7, 65, 0, -1]),
        ("fps", 4, 30, [3, 31]),
        ("num_inference_steps", 10, 50, [9, 51]),
        ("guidance_scale", 1, 20, [0.99, 20.01, -3.0]),
    ],
)
def test_seed_ranges_name_field_and_range(
    field: str, low: int, high: int, bad: list[float]
) -> None:
    GenerationParams(prompt="x", **{field: low})
    GenerationParams(prompt="x", **{field: high})
    for value in bad:
        with pytest.raises(InvalidParameterError) as info:
            GenerationParams(prompt="x", **{field: value})
        message = str(info.value)
        assert message.startswith(f"{field}:")
        assert f"between {low} and {high}" in message
        assert info.value.field == field


def test_empty_and_blank_prompts_are_refused() -> None:
    for prompt in ("", "   ", "\n\t"):
        with pytest.raises(InvalidParameterError, match="prompt: must not be empty"):
            GenerationParams(prompt=prompt)


def test_overlong_prompt_is_refused_with_the_limit() -> None:
    with pytest.raises(InvalidParameterError, match="at most 1000 characters"):
        GenerationParams(prompt="a" * 1001)


@pytest.mark.parametrize("size", [63, 100, 4, 2048])
def test_size_must_be_multiple_of_8_in_range(size: int) -> None:
    with pytest.raises(InvalidParameterError, match="width: must be a multiple of 8"):
        GenerationParams(prompt="x", width=size)


def test_size_is_checked_against_the_named_model() -> None:
    GenerationParams(prompt="x", model="zeroscope_v2_576w", width=576, height=320)
    with pytest.raises(InvalidParameterError, match="between 256 and 1024 for zeroscope_v2_576w"):
        GenerationParams(prompt="x", model="zeroscope_v2_576w", width=128)
    assert GenerationParams(prompt="x", model="tiny_t2v", width=128).width == 128


def test_upscaler_cannot_generate() -> None:
    with pytest.raises(InvalidParameterError, match="zeroscope_v2_xl is an upscaler"):
        GenerationParams(prompt="x", model="zeroscope_v2_xl")


def test_animatediff_frame_limit_is_the_seed_range() -> None:
    assert GenerationParams(prompt="x", model="animatediff", num_frames=64).num_frames == 64


def test_schedulers_cover_the_required_names_and_unknown_lists_them() -> None:
    for name in ("ddim", "dpm++", "euler", "euler_a", "unipc", "pndm"):
        assert GenerationParams(prompt="x", scheduler=name).scheduler == name
    assert GenerationParams(prompt="x", scheduler="  Euler_A ").scheduler == "euler_a"
    with pytest.raises(InvalidParameterError) as info:
        GenerationParams(prompt="x", scheduler="karras9000")
    for name in SCHEDULERS:
        assert name in str(info.value)


def test_unknown_model_lists_known_keys() -> None:
    with pytest.raises(UnknownModelError) as info:
        GenerationParams(prompt="x", model="sora")
    for key in ("animatediff", "modelscope_t2v", "zeroscope_v2_576w", "zeroscope_v2_xl"):
        assert key in str(info.value)


def test_wrong_types_and_unknown_fields() -> None:
    with pytest.raises(InvalidParameterError, match="num_frames: input should be a valid integer"):
        GenerationParams(prompt="x", num_frames="many")
    with pytest.raises(InvalidParameterError, match="num_frames: input should be a valid integer"):
        GenerationParams(prompt="x", num_frames=16.5)
    with pytest.raises(InvalidParameterError, match="strength: is not a known option"):
        GenerationParams(prompt="x", strength=3)
    with pytest.raises(InvalidParameterError, match="guidance_scale: must be a number"):
        GenerationParams(prompt="x", guidance_scale=float("inf"))


def test_several_errors_are_all_reported() -> None:
    # Per-field checks first (fps, interpolate)…
    with pytest.raises(InvalidParameterError) as info:
        GenerationParams(prompt="x", interpolate=9, fps=99)
    assert "interpolate:" in str(info.value) and "fps:" in str(info.value)
    # …then every model rule at once.
    with pytest.raises(InvalidParameterError) as info:
        GenerationParams(
            prompt="x", model="ltx_video", num_frames=100, num_inference_steps=2, width=700
        )
    message = str(info.value)
    assert info.value.field == "width"
    for part in ("width:", "num_frames:", "num_inference_steps:"):
        assert part in message


def test_seed_range_and_interpolate_range() -> None:
    assert GenerationParams(prompt="x", seed=2**32 - 1).seed == 2**32 - 1
    with pytest.raises(InvalidParameterError, match="seed: must be between 0 and 4294967295"):
        GenerationParams(prompt="x", seed=-1)
    with pytest.raises(InvalidParameterError, match="interpolate: must be between 1 and 4"):
        GenerationParams(prompt="x", interpolate=5)


def test_params_are_immutable() -> None:
    params = GenerationParams(prompt="x")
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        params.num_frames = 99  # type: ignore[misc]


# --- edits ----------------------------------------------------------------------------------------


def test_trim_bounds_say_what_is_allowed() -> None:
    assert validate_edit("trim", 16, start_frame=5, end_frame=16).end_frame == 16
    with pytest.raises(InvalidParameterError, match=r"end_frame: must be between 6 and 16"):
        validate_edit("trim", 16, start_frame=5, end_frame=20)
    with pytest.raises(InvalidParameterError, match=r"start_frame: must be between 0 and 15"):
        validate_edit("trim", 16, start_frame=16)
    with pytest.raises(InvalidParameterError, match="end_frame"):
        validate_edit("trim", 16, start_frame=8, end_frame=8)


def test_speed_and_loop_limits() -> None:
    with pytest.raises(InvalidParameterError, match=r"speed_factor: must be between 0.25 and 4"):
        validate_edit("speed", 16, speed_factor=0)
    with pytest.raises(InvalidParameterError, match=r"loops: must be between 1 and 10"):
        validate_edit("loop", 16, loops=0)
    with pytest.raises(InvalidParameterError, match="the limit is 1024"):
        validate_edit("loop", 200, loops=10)
    with pytest.raises(InvalidParameterError, match="speed_factor: must be a number"):
        validate_edit("speed", 16, speed_factor="fast")


def test_unknown_operation_and_arguments() -> None:
    with pytest.raises(
        InvalidParameterError, match="known: trim, speed, reverse, loop, interpolate"
    ):
        validate_edit("blur", 16)
    with pytest.raises(InvalidParameterError, match="reverse takes no arguments"):
        validate_edit("reverse", 16, loops=2)
    with pytest.raises(InvalidParameterError, match="trim takes start_frame, end_frame"):
        validate_edit("trim", 16, speed_factor=2)
