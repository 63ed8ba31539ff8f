"""Smoothing at generation time (``/video smooth:``, ``--smooth``, issue 25 section 4): the clip
is interpolated to a target rate after its frames are made, RIFE from the local hub (or
``minterpolate`` without a GPU), the 60 fps cap refused up front, drafts left alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bot_helpers import (
    custom_ids,
    decode_attachment,
    hub_online,
    make_bot,
    make_settings,
    wait_for_result,
)

from bot.core import media
from bot.core.engine import GenerationEngine
from bot.core.errors import InvalidParameterError
from bot.core.params import GenerationParams
from bot.core.progress import JobControl, Progress
from bot.textcommands import parse_prompt_flags
from tests.local_hub.replica import build_repo
from tests.local_hub.server import LocalHub

pytest_plugins = ("fake_discord.fixtures",)
pytestmark = pytest.mark.usefixtures("one_torch_thread")

RIFE_REPO = "hzwer/RIFE"


@pytest.fixture(scope="module")
def hub(model_cache: Path) -> Iterator[LocalHub]:
    server = LocalHub({RIFE_REPO: build_repo(model_cache, RIFE_REPO)}).start()
    yield server
    server.stop()


@pytest.fixture
def online(hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    """The local hub online with an empty cache (``bot_helpers.hub_online``)."""
    with hub_online(hub, tmp_path / "hub-cache", monkeypatch) as served:
        yield served


def as_array(frames: Any) -> np.ndarray:
    return np.stack([np.asarray(frame.convert("RGB")) for frame in frames]).astype(int)


# --- the engine ----------------------------------------------------------------------------------


def test_smooth_doubles_frames_and_rate_with_rife_and_keeps_the_length(
    manager: Any, small_params: Any, online: LocalHub
) -> None:
    """16 fps asked of tiny_t2v's 8: twice the frames at twice the rate (the same length), every
    made frame kept at twice its index, RIFE's in-betweens new, progress under "smooth"."""
    base = GenerationEngine(manager).generate_video(small_params())
    stages: list[str] = []
    control = JobControl(on_progress=lambda p: stages.append(p.stage))
    engine = GenerationEngine(manager, enhance_device="cpu")
    smooth = engine.generate_video(small_params(smooth=16), control)
    assert smooth.error is None, smooth.error
    assert (len(smooth.images), smooth.frame_rate) == (2 * len(base.images), 2 * base.frame_rate)
    assert len(smooth.images) / smooth.frame_rate == len(base.images) / base.frame_rate
    made, smoothed = as_array(base.images), as_array(smooth.images)
    assert np.abs(smoothed[::2] - made).max() <= 1  # frame k at output 2k, unchanged
    assert np.abs(smoothed[1:-1:2] - made[:-1]).mean() > 0.5  # in-betweens are new frames
    assert smooth.metadata["interpolator"] == "RIFE 4.26"
    assert smooth.metadata["note"] == "Smoothed with RIFE 4.26 to 16 fps."
    assert smooth.metadata["smooth"] == 16 and "smooth" in smooth.timings
    assert "smooth" in stages and "interpolate" not in stages


def test_without_a_gpu_auto_smooths_with_minterpolate_to_the_largest_whole_factor(
    engine: Any, small_params: Any
) -> None:
    """30 fps of an 8 fps clip: 3x (24 fps), the largest whole factor under it."""
    smooth = engine.generate_video(small_params(smooth=30))
    assert smooth.error is None, smooth.error
    assert (len(smooth.images), smooth.frame_rate) == (24, 24)
    assert smooth.metadata["note"] == "Smoothed with minterpolate (no GPU) to 24 fps."


def test_a_cancel_stops_the_smoothing(engine: Any, small_params: Any) -> None:
    def cancel_on_smooth(progress: Progress) -> None:
        if progress.stage == "smooth":
            control.cancel()

    control = JobControl(on_progress=cancel_on_smooth)
    result = engine.generate_video(small_params(smooth=16), control)
    assert result.error == "Cancelled." and not result.images


def test_a_draft_is_not_smoothed_and_says_so(engine: Any, small_params: Any) -> None:
    draft = engine.generate_video(small_params(smooth=16, quality="draft"))
    assert draft.error is None, draft.error
    assert (len(draft.images), draft.frame_rate) == (8, 8)
    assert "A draft is not smoothed" in draft.metadata["note"]
    assert "interpolator" not in draft.metadata


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"smooth": 120},
            "smooth: 120 fps is past the 60 fps Discord plays smoothly: at the video's 8 fps "
            "use 32 fps (4x)",
        ),
        (
            {"smooth": 61, "fps": 16},
            "smooth: 61 fps is past the 60 fps Discord plays smoothly: at the video's 16 fps "
            "use 48 fps (3x)",
        ),
        ({"smooth": 30, "fps": 16}, "smooth: 30 fps is less than twice the video's 16 fps"),
        ({"smooth": 0}, "smooth: must be a frame rate to reach, at most 60 (got 0)"),
        ({"smooth": 16, "interpolate": 2}, "smooth: give smooth (a target fps"),
    ],
)
def test_smooth_is_checked_against_the_models_rate_up_front(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        GenerationParams(prompt="a boat", model="tiny_t2v", **options)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_smoothed_clip_stays_under_the_frame_limit() -> None:
    """4x of LTX-Video's 257 frames would hold 1028 frames in memory: refused before queueing,
    with the count; 97 frames (388 smoothed) pass."""
    long = {"model": "ltx_video", "fps": 8, "smooth": 32}
    with pytest.raises(InvalidParameterError, match="the result would have 1028 frames; the limit"):
        GenerationParams(prompt="a boat", num_frames=257, **long)
    assert GenerationParams(prompt="a boat", num_frames=97, **long).smooth == 32


def test_smooth_is_a_prompt_flag_and_survives_a_rerun() -> None:
    flags = parse_prompt_flags("a boat --smooth 48 --fps 16")
    params = GenerationParams(prompt=flags.prompt, model="tiny_t2v", **flags.options)
    assert params.smooth == 48
    assert GenerationParams(**params.model_dump()).smooth == 48  # what a rerun rebuilds


# --- the CLI and the fake Discord --------------------------------------------------------------


def test_the_cli_smooths_with_smooth_and_refuses_past_60(
    online: LocalHub,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--smooth 16`` on ``[enhance] device = "cpu"`` (from the environment, as the bot reads
    it): RIFE from the hub; ``--smooth 120`` refused in one line before anything is made."""
    from bot.cli import main

    tiny = ["--model", "tiny_t2v", "--frames", "8", "--steps", "10", "--seed", "3"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIDEOBOT_ENHANCE__DEVICE", "cpu")
    assert main(["generate", "a boat", *tiny, "--smooth", "16", "-o", "smooth.mp4"]) == 0
    out = capsys.readouterr().out
    assert "16 frames at 16 fps" in out and "Smoothed with RIFE 4.26 to 16 fps." in out
    made = media.probe(tmp_path / "smooth.mp4")
    assert (made.frame_count, made.fps) == (16, 16)
    assert main(["generate", "a boat", *tiny, "--smooth", "120", "-o", "no.mp4"]) == 2
    assert "smooth: 120 fps is past the 60 fps" in capsys.readouterr().err
    assert not (tmp_path / "no.mp4").exists()


async def test_video_smooth_in_discord_refuses_past_60_and_reroll_keeps_it(
    fake_discord: Any, manager: Any, tmp_path: Path
) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        interaction = await fake.run_slash_command(
            "video", {"prompt": "a boat --frames 8 --steps 10", "width": 64, "smooth": 120}
        )
        refused = await fake.wait_for_followup(interaction)
        assert "smooth: 120 fps is past the 60 fps Discord plays smoothly" in refused.content
        assert "\n" not in refused.content and refused.flags & 64  # one line, privately
        assert await bot.store.count_history(fake.user.id, fake.guild.id) == 0  # nothing queued

        options = {"prompt": "a boat --seed 5 --frames 8 --steps 10", "width": 64, "smooth": 16}
        smooth = await wait_for_result(fake, await fake.run_slash_command("video", options))
        frames, fps = decode_attachment(smooth, tmp_path)
        assert (len(frames), fps) == (16, 16)
        assert smooth.content.startswith("Smoothed with ") and "to 16 fps." in smooth.content
        job_id = int(custom_ids(smooth)[0].split(":")[2])
        record = await bot.store.get_job(job_id)
        assert record is not None and record.params["smooth"] == 16

        rerolled = await wait_for_result(
            fake, await fake.click_button(smooth, f"vb:reroll:{job_id}")
        )
        frames, fps = decode_attachment(rerolled, tmp_path)
        assert (len(frames), fps) == (16, 16)
