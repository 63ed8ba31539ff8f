"""Learned interpolation and upscaling as members and owners reach them (issue 25 section 4):
the interpolate edit through RIFE 4.26 and the 60 fps cap, Real-ESRGAN as the default upscaler at
any size with Zeroscope XL still selectable, the sound carried through both, from the engine, the
service's choices, the reply commands and the fake Discord.

The weights come from the local hub (``hzwer/RIFE``, ``ai-forever/Real-ESRGAN``: tiny random twins
in the released layouts) through huggingface_hub's own download, never from a file path.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imageio_ffmpeg
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
from fake_discord import Upload

from bot.core import enhance, media
from bot.core.edits import RIFE_CHUNK, plan_edit
from bot.core.engine import GenerationEngine
from bot.core.errors import InvalidParameterError
from bot.core.params import validate_edit
from bot.core.result import GenerationResult
from bot.service import VideoService
from bot.textcommands import parse_reply_command
from tests.local_hub.replica import build_repo
from tests.local_hub.server import LocalHub

pytest_plugins = ("fake_discord.fixtures",)

RIFE_REPO = "hzwer/RIFE"
ESRGAN_REPO = "ai-forever/Real-ESRGAN"


@pytest.fixture(scope="module")
def hub(model_cache: Path) -> Iterator[LocalHub]:
    server = LocalHub({r: build_repo(model_cache, r) for r in (RIFE_REPO, ESRGAN_REPO)}).start()
    yield server
    server.stop()


@pytest.fixture
def online(hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    """The local hub online with an empty cache (``bot_helpers.hub_online``)."""
    with hub_online(hub, tmp_path / "hub-cache", monkeypatch) as served:
        yield served


def fetched(hub: LocalHub) -> set[str]:
    return {
        p.split("/resolve/")[1].split("/", 1)[1]
        for m, p in hub.requests
        if m == "GET" and "/resolve/" in p
    }


def clip(path: Path, *, size: str, rate: int, frames: int, sound: bool = True) -> Path:
    """A test pattern with (or without) a 440 Hz tone, encoded as the bot's uploads are."""
    seconds = frames / rate
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    command += ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={seconds}"]
    if sound:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac"]
    command += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "12", str(path)]
    subprocess.run(command, check=True, timeout=60)
    return path


def frames_of(path: Path) -> np.ndarray:
    result = GenerationResult.from_video_file(path)
    return np.stack([np.asarray(frame.convert("RGB")) for frame in result.images])


LIMITS = media.MediaLimits()


# --- the interpolate edit --------------------------------------------------------------------


def test_an_interpolation_to_a_target_fps_runs_rife_from_the_hub(
    online: LocalHub, tmp_path: Path
) -> None:
    """16 fps asked of an 8 fps clip: 2x through RIFE (its weights downloaded from the hub), every
    source frame kept at twice its index across the chunk seams, the sound kept, and the result
    says what smoothed it."""
    count = RIFE_CHUNK + 4  # two chunks: the frames at the seam must be right too
    source = clip(tmp_path / "in.mp4", size="64x48", rate=8, frames=count)
    info = media.probe(source, LIMITS)
    plan = plan_edit("interpolate", info, LIMITS, target_fps=16)
    assert (plan.request.factor, plan.fps, plan.frames) == (2, 16, 2 * count)
    out = tmp_path / "out.mp4"
    result = GenerationEngine().edit_file(plan, source, out, limits=LIMITS, enhance_device="cpu")
    assert result.metadata["interpolator"] == "RIFE 4.26"
    assert result.metadata["note"].startswith("Smoothed with RIFE 4.26 to 16 fps")
    assert "RIFEv4.26_0921.zip" in fetched(online)
    made = media.probe(out, LIMITS)
    assert (made.frame_count, made.fps) == (2 * count, 16) and made.audio is not None
    original, smooth = frames_of(source).astype(int), frames_of(out).astype(int)
    assert np.abs(smooth[::2] - original).mean() < 4  # source frame k at output 2k
    assert np.abs(smooth[1::2][:-1] - original[:-1]).mean() > 1  # in-betweens are new frames


def test_without_a_gpu_auto_keeps_minterpolate_and_says_so(tmp_path: Path) -> None:
    source = clip(tmp_path / "in.mp4", size="64x48", rate=8, frames=6, sound=False)
    info = media.probe(source, LIMITS)
    plan = plan_edit("interpolate", info, LIMITS, factor=3)
    result = GenerationEngine().edit_file(plan, source, tmp_path / "out.mp4", limits=LIMITS)
    assert result.metadata["interpolator"] == "minterpolate (no GPU)"
    assert len(result.images) == 18 and result.frame_rate == 24


@pytest.mark.parametrize(
    ("fps", "arguments", "message"),
    [
        (24, {"factor": 4}, "4x of the video's 24 fps would be 96 fps, past the 60 fps"),
        (24, {"target_fps": 90}, "fps: must be at most 60, the most Discord plays smoothly"),
        (60, {}, "this video is already smooth enough to play as it is"),
        (24, {"target_fps": 30}, "30 fps is less than twice the video's 24 fps"),
        (24, {"factor": 2, "target_fps": 48}, "give a factor or a target fps, not both"),
    ],
)
def test_the_60_fps_cap_is_checked_when_the_edit_is_validated(
    fps: float, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        validate_edit("interpolate", 48, fps=fps, **arguments)


def test_a_target_fps_picks_the_largest_whole_factor() -> None:
    assert validate_edit("interpolate", 16, fps=8, target_fps=60).factor == 4
    assert validate_edit("interpolate", 16, fps=24, target_fps=60).factor == 2
    assert validate_edit("interpolate", 16, fps=12, target_fps=40).target_fps == 40


def test_reply_commands_take_a_rate_and_an_upscaler() -> None:
    assert parse_reply_command("!interpolate 60fps").arguments == {"target_fps": 60.0}  # type: ignore[union-attr]
    assert parse_reply_command("!smooth fps=48").arguments == {"target_fps": 48.0}  # type: ignore[union-attr]
    assert parse_reply_command("!upscale 4x").arguments == {"scale": 4}  # type: ignore[union-attr]
    assert parse_reply_command("!upscale zeroscope").arguments == {"upscaler": "zeroscope_xl"}  # type: ignore[union-attr]
    with pytest.raises(InvalidParameterError, match="'fast' is not 2x, 4x, zeroscope or ltx2"):
        parse_reply_command("!upscale fast")


# --- upscaling -------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
def test_realesrgan_upscales_any_size_from_the_hub_and_keeps_the_sound(
    online: LocalHub, tmp_path: Path, scale: int
) -> None:
    source = GenerationResult.from_video_file(
        clip(tmp_path / "in.mp4", size="96x64", rate=8, frames=4)
    )
    result = GenerationEngine().upscale(source, upscaler=f"realesrgan_x{scale}")
    assert result.error is None
    assert result.size == (96 * scale, 64 * scale) and len(result.images) == 4
    assert result.metadata["upscaler"] == f"Real-ESRGAN x{scale}"
    assert result.sound is not None
    assert fetched(online) == {f"RealESRGAN_x{scale}.pth"}
    out = result.save_as_video(tmp_path / "out.mp4")
    assert media.probe(out, LIMITS).audio is not None


def test_an_upscale_past_4k_is_refused_with_the_scale_that_fits() -> None:
    with pytest.raises(InvalidParameterError, match=r"past 3840x2160 .* use 2x"):
        enhance.check_upscale(1280, 720, 4)


def _bare(settings: Any) -> VideoService:
    """The service's choice of upscaler needs only its settings."""
    bare = VideoService.__new__(VideoService)
    bare.settings = settings
    return bare


def test_realesrgan_is_the_default_and_zeroscope_xl_stays_selectable() -> None:
    unset = {"upscaler": None}
    plain = _bare(make_settings(Path("/nonexistent"), models={"enabled": ["tiny_t2v"], **unset}))
    assert plain._choose_upscaler("tiny_t2v", None, None) == "realesrgan_x2"
    assert plain._choose_upscaler("tiny_t2v", None, 4) == "realesrgan_x4"
    enabled = {"enabled": ["tiny_t2v", "tiny_v2v"], **unset}
    with_xl = _bare(make_settings(Path("/nonexistent"), models=enabled))
    assert with_xl._choose_upscaler("tiny_t2v", "zeroscope_xl", None) == "tiny_v2v"
    # An enabled diffusion upscaler is there by name; the default stays Real-ESRGAN.
    assert with_xl._choose_upscaler("tiny_t2v", None, None) == "realesrgan_x2"
    configured = _bare(make_settings(Path("/nonexistent"), models={"upscaler": "realesrgan"}))
    assert configured._choose_upscaler("tiny_t2v", None, None) == "realesrgan_x2"
    with pytest.raises(InvalidParameterError, match="only Real-ESRGAN takes a scale"):
        with_xl._choose_upscaler("tiny_t2v", "zeroscope_xl", 4)
    with pytest.raises(InvalidParameterError, match="must be 2 or 4"):
        plain._choose_upscaler("tiny_t2v", "realesrgan", 3)


async def test_an_interpolation_on_a_gpu_takes_the_gpu_threads_turn(tmp_path: Path) -> None:
    """With ``[enhance] device`` on a GPU the interpolation goes to the executor's GPU thread (after
    the running job, never beside it); other edits, and interpolation on the CPU, stay on the
    edit pool."""
    from concurrent.futures import ThreadPoolExecutor

    ran: list[str] = []

    class Executor:
        async def run_on_gpu_thread(self, work: Any) -> Any:
            ran.append("gpu")
            return work()

    source = clip(tmp_path / "in.mp4", size="48x32", rate=8, frames=4, sound=False)
    info = media.probe(source, LIMITS)
    smooth, cut = plan_edit("interpolate", info, LIMITS), plan_edit("trim", info, LIMITS)
    for device, plan, where in (
        ("cuda", smooth, "gpu"),
        ("cuda", cut, "pool"),
        ("cpu", smooth, "pool"),
    ):
        bare = _bare(make_settings(tmp_path, enhance={"device": device}))
        bare.executor = Executor()  # type: ignore[assignment]
        bare._edit_pool = ThreadPoolExecutor(1)
        ran.clear()
        assert await bare._edit_turn(plan, lambda: "done") == "done"  # type: ignore[arg-type,return-value]
        assert ran == ([] if where == "pool" else ["gpu"]), (device, plan.request.operation)
        bare._edit_pool.shutdown()


# --- the CLI --------------------------------------------------------------------------------


def test_the_cli_interpolates_to_a_rate_and_upscales_with_realesrgan(
    online: LocalHub,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same names as in Discord: ``interpolate --fps``, ``upscale --scale``; ``[enhance]
    device`` read from the environment as the bot reads it."""
    from bot.cli import main

    clip(tmp_path / "in.mp4", size="48x32", rate=8, frames=4)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIDEOBOT_ENHANCE__DEVICE", "cpu")
    assert main(["edit", "in.mp4", "interpolate", "--fps", "24", "-o", "smooth.mp4"]) == 0
    assert "smoothed with RIFE 4.26" in capsys.readouterr().out
    made = media.probe(tmp_path / "smooth.mp4", LIMITS)
    assert (made.frame_count, made.fps) == (12, 24) and made.audio is not None
    assert main(["upscale", "in.mp4", "--scale", "4", "--device", "cpu", "-o", "big.mp4"]) == 0
    big = media.probe(tmp_path / "big.mp4", LIMITS)
    assert (big.width, big.height) == (192, 128) and big.audio is not None
    assert main(["edit", "in.mp4", "interpolate", "--fps", "90", "-o", "no.mp4"]) == 2
    assert "must be at most 60" in capsys.readouterr().err
    assert not (tmp_path / "no.mp4").exists()


# --- the fake Discord ------------------------------------------------------------------------


async def test_upscale_button_and_interpolate_fps_in_discord(
    fake_discord: Any, manager: Any, online: LocalHub, tmp_path: Path
) -> None:
    """Upscale under a result runs Real-ESRGAN (the configured default); ``/edit interpolate
    fps:`` runs RIFE; a rate past 60 fps is refused before anything is recorded."""
    fake = fake_discord
    settings = make_settings(tmp_path, models={"upscaler": "realesrgan"}, enhance={"device": "cpu"})
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        prompt = {"prompt": "a red car --seed 3 --frames 8 --steps 10", "width": 64, "height": 64}
        source = await wait_for_result(fake, await fake.run_slash_command("video", prompt))
        job_id = int(custom_ids(source)[0].split(":")[2])
        original, fps = decode_attachment(source, tmp_path)

        upscaled = await wait_for_result(
            fake, await fake.click_button(source, f"vb:upscale:{job_id}")
        )
        frames, _ = decode_attachment(upscaled, tmp_path)
        assert frames.shape == (len(original), 128, 128, 3)
        fields = {f["name"]: f["value"] for f in upscaled.embeds[0]["fields"]}
        assert fields["Model"] == "Real-ESRGAN x2"

        smooth = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "edit", {"operation": "interpolate", "job": job_id, "fps": 2 * fps}
            ),
        )
        frames, smooth_fps = decode_attachment(smooth, tmp_path)
        assert frames.shape[0] == 2 * len(original) and smooth_fps == 2 * fps
        assert "Smoothed with RIFE 4.26" in smooth.content

        before = await bot.store.count_history(fake.user.id, fake.guild.id)
        fast = clip(tmp_path / "fast.mp4", size="64x48", rate=30, frames=12, sound=False)
        interaction = await fake.run_slash_command(
            "edit",
            {
                "operation": "interpolate",
                "factor": 3,
                "video": Upload("fast.mp4", fast.read_bytes(), "video/mp4"),
            },
        )
        refused = await fake.wait_for_followup(interaction)
        assert "3x of the video's 30 fps would be 90 fps, past the 60 fps" in refused.content
        assert refused.flags & 64  # privately, as every refusal
        assert await bot.store.count_history(fake.user.id, fake.guild.id) == before
