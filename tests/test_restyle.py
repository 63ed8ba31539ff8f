"""Restyle (video-to-video): the rules a video is fitted to, and the real restyle pass.

The engine tests run Wan 2.1 T2V 1.3B's registry key on the local hub's replica of its repo (a
tiny ``WanPipeline`` in the real layout: 16 latent channels, the 2.1 VAE, UniPC), loaded through
the owner's ``sources`` override, with its sizes and frame rule shrunk so a pass takes a second.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from bot_helpers import WAN21_KEY, wan21_restyler

from bot.core import media
from bot.core.engine import GenerationEngine
from bot.core.errors import InvalidParameterError, MediaError
from bot.core.manager import ManagerOptions, ModelManager
from bot.core.registry import get_spec, restyle_models
from bot.core.restyle import (
    DEFAULT_STRENGTH,
    STRENGTH_HELP,
    check_strength,
    plan_restyle,
    restyle_size,
    restyler_spec,
)
from bot.core.result import GenerationResult
from tests.test_sound import assert_sound_fits, chirp, clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KEY = WAN21_KEY


# --- the rules (no model) ------------------------------------------------------------------------


def test_only_the_wan_2_1_t2v_models_restyle() -> None:
    assert restyle_models() == ["wan2_1_1_3b", "wan2_1_14b"]
    assert restyler_spec("wan2_1_14b").key == "wan2_1_14b"


@pytest.mark.parametrize("key", ["ltx_video", "tiny_wan", "zeroscope_v2_xl"])
def test_a_model_that_cannot_restyle_is_refused_naming_those_that_can(key: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        restyler_spec(key)
    assert info.value.field == "model"
    assert str(info.value) == (
        f"model: {key} cannot restyle a video; models that can: wan2_1_1_3b, wan2_1_14b"
    )


@pytest.mark.parametrize("value", [0.05, 1.5, -1, float("nan"), True, "0.5"])
def test_strength_outside_its_range_is_refused_with_the_range(value: object) -> None:
    with pytest.raises(InvalidParameterError) as info:
        check_strength(value)
    assert info.value.field == "strength"
    assert STRENGTH_HELP in str(info.value)
    assert "\n" not in str(info.value)


def test_strength_range_edges_are_accepted() -> None:
    assert check_strength(0.1) == 0.1
    assert check_strength(1) == 1.0
    assert check_strength(0.6) == DEFAULT_STRENGTH


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1920, 1080), (848, 480)),  # 16:9 at 832x480's pixel count, sides of 16
        ((1080, 1920), (480, 848)),  # portrait keeps its aspect
        ((640, 480), (640, 480)),  # within the model's rules: its own size
        ((128, 96), (336, 256)),  # too small: the shorter side to the 256 minimum
    ],
)
def test_the_size_keeps_the_aspect_within_the_models_rules(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    spec = get_spec(KEY)
    width, height = restyle_size(spec, *size)
    assert (width, height) == expected
    assert width % 16 == 0 and height % 16 == 0
    assert abs(width / height - size[0] / size[1]) / (size[0] / size[1]) < 0.05


def test_frames_are_sampled_at_the_models_rate_and_cut_to_its_rule() -> None:
    spec = get_spec(KEY)
    plan = plan_restyle(spec, 1280, 720, 150, 30.0)  # 5 s of a phone clip
    assert plan.fps == 16.0
    assert plan.num_frames == 77  # 80 frames at 16 fps, down to 4k+1
    assert spec.frames.accepts(plan.num_frames)
    assert plan.indices[:4] == (0, 2, 4, 6) and plan.indices[-1] <= 149
    slow = plan_restyle(spec, 640, 480, 40, 8.0)  # slower than the model: every frame
    assert slow.fps == 8.0 and slow.indices == tuple(range(37))


def test_a_video_too_long_for_the_model_is_refused_with_the_numbers() -> None:
    with pytest.raises(MediaError) as info:
        plan_restyle(get_spec(KEY), 640, 480, 300, 30.0)
    assert str(info.value) == (
        "the video lasts 10.0 s (300 frames at 30 fps); wan2_1_1_3b restyles at most 81 frames "
        "at 16 fps (5.1 s): trim it first"
    )
    with pytest.raises(MediaError, match="restyles at least 5 frames"):
        plan_restyle(get_spec(KEY), 640, 480, 2, 30.0)


# --- the real pass on the tiny replica -----------------------------------------------------------


@pytest.fixture(scope="module")
def restyler(model_cache: Path) -> Iterator[GenerationEngine]:
    """Wan 2.1 1.3B's key on the replica, at tiny sizes and at most 17 frames."""
    with wan21_restyler(model_cache) as manager:
        yield GenerationEngine(manager)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("restyle")
    return {
        "sound": clip(
            folder / "sound.mp4", size="80x48", rate=24, seconds=1.0, sounds=(chirp(1.5),)
        ),
        "silent": clip(folder / "silent.mp4", size="80x48", rate=24, seconds=1.0),
    }


def test_restyle_runs_wans_video_to_video_pipeline_fitted_to_its_rules(
    restyler: GenerationEngine, clips: dict[str, Path], tmp_path: Path
) -> None:
    source = GenerationResult.from_video_file(clips["sound"])
    assert len(source.images) == 24 and source.frame_rate == 24.0
    result = restyler.restyle(source, prompt="an oil painting", strength=0.5, seed=3)
    assert result.error is None, result.error
    assert result.metadata["restyle"]["pipeline"] == "WanVideoToVideoPipeline"
    # 1 s at 24 fps read at Wan's 16 fps: 16 frames, down to 4k+1 = 13; 80x48 within the rules.
    assert len(result.images) == 13 and result.frame_rate == 16.0
    assert result.size == (64, 48)
    assert result.metadata["model"] == KEY
    frames = np.stack([np.asarray(image) for image in result.images])
    assert np.isfinite(frames).all() and frames.std() > 0
    out = Path(result.save_as_video(tmp_path / "restyled.mp4"))
    ends = assert_sound_fits(out)  # the sound is kept, as long as the picture within 0.15 s
    assert abs(ends["audio"] - 13 / 16) <= 0.15, ends


def test_strength_changes_how_far_the_video_moves(
    restyler: GenerationEngine, clips: dict[str, Path]
) -> None:
    source = GenerationResult.from_video_file(clips["silent"])
    fitted = np.stack([np.asarray(f.resize((64, 48))) for f in source.images[:13]]).astype(float)
    low = restyler.restyle(source, prompt="a watercolour", strength=0.1, seed=3)
    high = restyler.restyle(source, prompt="a watercolour", strength=1.0, seed=3)
    assert low.error is None and high.error is None
    assert low.sound is None and high.sound is None  # silent stays silent
    distance = [
        np.abs(np.stack([np.asarray(f) for f in r.images]).astype(float) - fitted).mean()
        for r in (low, high)
    ]
    assert distance[0] != distance[1]


def test_silent_source_gives_a_silent_mp4(
    restyler: GenerationEngine, clips: dict[str, Path], tmp_path: Path
) -> None:
    source = GenerationResult.from_video_file(clips["silent"])
    result = restyler.restyle(source, prompt="neon", strength=0.3, seed=1)
    out = Path(result.save_as_video(tmp_path / "silent.mp4"))
    assert media.probe(out).audio is None


def test_engine_refuses_bad_input_before_loading(
    restyler: GenerationEngine, clips: dict[str, Path]
) -> None:
    source = GenerationResult.from_video_file(clips["silent"])
    with pytest.raises(InvalidParameterError, match=r"strength: is 1\.5"):
        restyler.restyle(source, prompt="neon", strength=1.5)
    with pytest.raises(InvalidParameterError, match="ltx_video cannot restyle a video"):
        restyler.restyle(source, prompt="neon", model="ltx_video")
    with pytest.raises(InvalidParameterError, match="prompt"):
        restyler.restyle(source, prompt="  ")
    long = dataclasses.replace(source, images=source.images * 2, fps=8.0)  # 6 s
    with pytest.raises(MediaError, match="restyles at most 17 frames"):
        restyler.restyle(long, prompt="neon")


def test_a_low_strength_on_a_short_schedule_still_runs_a_step() -> None:
    from bot.core.restyle import run_steps

    assert run_steps(4, 0.1) == 10 and int(10 * 0.1) == 1
    assert run_steps(50, 0.6) == 50


# --- how to ask: the reply command, the CLI, the registry as JSON --------------------------------


@pytest.mark.parametrize(
    ("text", "arguments"),
    [
        ("!restyle 0.6 An Oil Painting", {"strength": 0.6, "prompt": "An Oil Painting"}),
        ("!restyle 1920s film noir", {"prompt": "1920s film noir"}),
        ("!restyle .3 neon", {"strength": 0.3, "prompt": "neon"}),
    ],
)
def test_reply_restyle_takes_an_optional_leading_strength(
    text: str, arguments: dict[str, object]
) -> None:
    from bot.textcommands import parse_reply_command

    command = parse_reply_command(text)
    assert command is not None and command.operation == "restyle"
    assert command.arguments == arguments


@pytest.mark.parametrize("text", ["!restyle", "!restyle 0.5", "!restyle   "])
def test_reply_restyle_without_a_prompt_gives_its_usage(text: str) -> None:
    from bot.textcommands import parse_reply_command

    with pytest.raises(InvalidParameterError) as info:
        parse_reply_command(text)
    assert "say what the video should look like; usage: restyle [STRENGTH] PROMPT" in str(
        info.value
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--strength", "1.5"], f"strength: is 1.5; it takes {STRENGTH_HELP}"),
        (["--model", "ltx_video"], "ltx_video cannot restyle a video; models that can: "),
    ],
)
def test_cli_restyle_refuses_before_loading(
    options: list[str],
    message: str,
    clips: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.test_cli import run_in_process

    args = ["restyle", str(clips["silent"]), "--prompt", "neon", *options, "-o", "out.mp4"]
    code, _, err = run_in_process(args, tmp_path, capsys, monkeypatch)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.mp4").exists()


def test_models_json_says_which_models_restyle() -> None:
    from bot.models_json import registry_json

    entries = registry_json(ModelManager(ManagerOptions()))["models"]
    restyling = [e["key"] for e in entries if e["abilities"]["restyle"]]
    assert restyling == restyle_models()
