"""LTX-2's latent upsampler as an upscaler for LTX-2 results (issue 25, section 4).

``ltx2`` (``/upscale upscaler:ltx2``, ``!upscale ltx2``, ``--upscaler ltx2``) runs the x2 latent
upsampler through the LTX-2 model that made the video: its own VAE encodes and decodes (no second
copy), the frame count and the sound are kept. Any other video, an upload whose model is
unknown, the one-stage tiny twin (which has no upsampler) and a video off LTX-2's rules are
refused in one line naming Real-ESRGAN, before anything loads. All on ``tiny_ltx2_distilled``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bot_helpers import custom_ids, decode_attachment, make_bot, make_settings, wait_for_result
from fake_discord import Upload
from PIL import Image
from test_sound import TOLERANCE_S, stream_ends

from bot.core import GenerationParams, media
from bot.core.engine import GenerationEngine
from bot.core.errors import InvalidParameterError
from bot.core.progress import JobControl
from bot.core.result import GenerationResult
from bot.refusals import RequestRefused
from bot.service import VideoService
from bot.textcommands import parse_reply_command

pytest_plugins = ("fake_discord.fixtures",)

MODEL = "tiny_ltx2_distilled"


@pytest.fixture(scope="module")
def made(manager: Any) -> GenerationResult:
    """A tiny LTX-2 result with its sound: 64x64, 9 frames (8k+1)."""
    params = GenerationParams(
        prompt="a cat", model=MODEL, seed=2, width=64, height=64, num_frames=9
    )
    result = GenerationEngine(manager).generate_video(params)
    assert result.error is None, result.error
    assert result.sound is not None
    return result


def test_an_ltx2_result_doubles_its_size_keeps_its_frames_and_sound_with_its_own_vae(
    engine: Any, made: GenerationResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import LTX2LatentUpsamplePipeline

    loaded = engine.manager.load_model(MODEL)
    vaes: list[Any] = []
    original = LTX2LatentUpsamplePipeline.__init__

    def record(self: Any, vae: Any, latent_upsampler: Any) -> None:
        vaes.append((vae, latent_upsampler))
        original(self, vae=vae, latent_upsampler=latent_upsampler)

    monkeypatch.setattr(LTX2LatentUpsamplePipeline, "__init__", record)
    upscaled = engine.upscale(made, upscaler="ltx2", seed=1)
    assert upscaled.error is None, upscaled.error
    assert upscaled.size == (2 * made.size[0], 2 * made.size[1])
    assert len(upscaled.images) == len(made.images)
    assert upscaled.metadata["upscaler"] == "LTX-2 latent upsampler x2"
    # The loaded model's own VAE and upsampler, not second copies.
    assert vaes == [(loaded.pipeline.vae, loaded.pipeline.latent_upsampler)]
    out = upscaled.save_as_video(tmp_path / "up.mp4", encoder="libx264")
    info = media.probe(out)
    assert (info.width, info.height, info.frame_count) == (128, 128, len(made.images))
    ends = stream_ends(Path(out))
    assert "audio" in ends and abs(ends["audio"] - ends["video"]) <= TOLERANCE_S, ends


def test_a_one_stage_model_takes_its_repos_upsampler_and_stays_one_stage(
    engine: Any, model_cache: Path
) -> None:
    """LTX-2 2.0 has no upsampler in its recipe: the one in its repo's ``latent_upsampler/`` is
    loaded once and kept beside the pipeline, never as ``latent_upsampler`` (which would make
    its generations two-stage)."""
    from bot.core.pipelines.ltx2 import UPSCALE_UPSAMPLER, upscale_frames

    pipe = engine.manager.load_model("tiny_ltx2").pipeline
    repo = model_cache / MODEL / "upsampler"  # stands in for Lightricks/LTX-2's folder
    frames = [Image.new("RGB", (64, 32), (30 * i, 90, 200)) for i in range(9)]
    try:
        out = upscale_frames(pipe, frames, str(repo), None, None, JobControl())
        assert out.shape == (9, 64, 128, 3)
        kept = getattr(pipe, UPSCALE_UPSAMPLER)
        assert getattr(pipe, "latent_upsampler", None) is None
        upscale_frames(pipe, frames, "/nonexistent", None, None, JobControl())  # loaded once
        assert getattr(pipe, UPSCALE_UPSAMPLER) is kept
    finally:
        if hasattr(pipe, UPSCALE_UPSAMPLER):
            delattr(pipe, UPSCALE_UPSAMPLER)


class _NoLoads:
    """A manager that fails the test if anything is loaded: refusals come first."""

    active_key = None

    def load_model(self, key: str) -> Any:
        raise AssertionError(f"{key} was loaded for a refused upscale")


def _video(model: str | None, size: tuple[int, int] = (64, 64), frames: int = 9) -> Any:
    images = [Image.new("RGB", size, (10, 20, 30)) for _ in range(frames)]
    metadata = {"model": model} if model else {}
    return GenerationResult(
        images=images, metadata=metadata, generation_time=0.0, seed_used=0, params=None
    )


@pytest.mark.parametrize(
    ("model", "size", "frames", "says"),
    [
        (
            "tiny_t2v",
            (64, 64),
            9,
            "ltx2 upscales LTX-2 results only and this video is from tiny_t2v",
        ),
        (None, (64, 64), 9, "this video's model is unknown"),
        ("tiny_ltx2", (64, 64), 9, "tiny_ltx2 has no latent upsampler"),
        (MODEL, (64, 64), 10, "has 10 frames; LTX-2's latent upsampler takes 8k+1 frames, 9 to 41"),
        (MODEL, (80, 64), 9, "is 80x64; LTX-2's latent upsampler takes sides in multiples of 32"),
        (MODEL, (256, 64), 9, "tiny_ltx2_distilled makes at most 256 pixels a side"),
    ],
)
def test_other_videos_are_refused_in_one_line_naming_realesrgan(
    model: str | None, size: tuple[int, int], frames: int, says: str
) -> None:
    engine = GenerationEngine(_NoLoads())  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError) as info:
        engine.upscale(_video(model, size, frames), upscaler="ltx2")
    message = str(info.value)
    assert says in message and "\n" not in message
    assert "use realesrgan (Real-ESRGAN, any video)" in message


def test_the_service_runs_ltx2_on_the_model_that_made_the_video(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, models={"enabled": [MODEL, "tiny_t2v"], "upscaler": None})
    service = VideoService.__new__(VideoService)
    service.settings = settings
    assert service._choose_upscaler(MODEL, "ltx2", None) == "ltx2"
    with pytest.raises(InvalidParameterError, match="this video is from tiny_t2v: use realesrgan"):
        service._choose_upscaler("tiny_t2v", "ltx2", None)
    with pytest.raises(InvalidParameterError, match="upscales 2x only"):
        service._choose_upscaler(MODEL, "ltx2", 4)
    with pytest.raises(RequestRefused, match="ltx2_distilled is not enabled"):
        service._choose_upscaler("ltx2_distilled", "ltx2", None)
    source: Any = type("Source", (), {"model": MODEL, "prompt": "a cat"})()
    job = service._upscale_job(source, "ltx2")
    assert (job.model, job.params, job.frame_limit) == (MODEL, {"upscaler": "ltx2"}, 41)
    assert parse_reply_command("!upscale ltx2").arguments == {"upscaler": "ltx2"}  # type: ignore[union-attr]


def test_the_cli_upscales_with_the_named_model_and_refuses_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    media.encode([Image.new("RGB", (64, 64))] * 9, tmp_path / "in.mp4", 8.0)
    assert main(["upscale", "in.mp4", "--upscaler", "ltx2", "-o", "a.mp4"]) == 2
    assert "needs the LTX-2 model that made the video: --model ltx2" in capsys.readouterr().err
    assert (
        main(["upscale", "in.mp4", "--upscaler", "ltx2", "--model", "tiny_t2v", "-o", "a.mp4"]) == 2
    )
    assert "this video is from tiny_t2v: use realesrgan" in capsys.readouterr().err
    assert not (tmp_path / "a.mp4").exists()
    monkeypatch.setenv("VIDEOBOT_ENHANCE__DEVICE", "cpu")
    assert main(["upscale", "in.mp4", "--upscaler", "ltx2", "--model", MODEL, "-o", "b.mp4"]) == 0
    made = media.probe(tmp_path / "b.mp4")
    assert (made.width, made.height, made.frame_count) == (128, 128, 9)


async def test_upscale_ltx2_in_discord_on_an_ltx2_result(
    fake_discord: Any, manager: Any, tmp_path: Path
) -> None:
    fake = fake_discord
    settings = make_settings(
        tmp_path, models={"enabled": [MODEL, "tiny_t2v"], "default": MODEL, "upscaler": None}
    )
    async with fake.run_bot(make_bot(settings, manager)):
        prompt = {"prompt": "a cat --seed 4 --frames 9", "width": 64, "height": 64}
        source = await wait_for_result(fake, await fake.run_slash_command("video", prompt))
        job_id = int(custom_ids(source)[0].split(":")[2])
        original, _ = decode_attachment(source, tmp_path)
        upscaled = await wait_for_result(
            fake, await fake.run_slash_command("upscale", {"upscaler": "ltx2", "job": job_id})
        )
        # The same mp4 uploaded: its model is unknown, so only Real-ESRGAN can take it.
        [made] = source.attachments
        refusal = await fake.wait_for_followup(
            await fake.run_slash_command(
                "upscale",
                {"upscaler": "ltx2", "video": Upload("clip.mp4", made.data, "video/mp4")},
            )
        )
    frames, _ = decode_attachment(upscaled, tmp_path)
    assert frames.shape == (len(original), 128, 128, 3)
    fields = {f["name"]: f["value"] for f in upscaled.embeds[0]["fields"]}
    assert fields["Model"] == "LTX-2 latent upsampler x2"
    [attachment] = upscaled.attachments
    posted = tmp_path / "posted.mp4"
    posted.write_bytes(attachment.data)
    assert media.probe(posted).audio is not None
    assert "this video's model is unknown: use realesrgan (Real-ESRGAN" in refusal.content
