"""LTX-2 makes the picture and its sound together (issue 24, section 2).

On the tiny twins (``tiny_ltx2``: one stage, text or picture; ``tiny_ltx2_distilled``: half size,
x2 latent upsampler, refine at full size): the mp4 carries an AAC stream as long as the picture
(measured from ffmpeg's packet listing, independently of ``bot.core.media``), ``sound=False``
and ``--no-sound`` give a silent one, the sound survives the trip a result makes to the bot on
Ray (pickling), and a fake-Discord ``/video`` posts it. The loader fetches only the files the
indexes name: the stale second set of text-encoder shards ``Lightricks/LTX-2`` is reported to
hold is never downloaded from the local hub.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from bot_helpers import make_bot, make_settings, wait_for_result
from PIL import Image
from test_sound import TOLERANCE_S, stream_ends

from bot.core import GenerationParams, media
from bot.core.pipelines.hub_files import needed_files
from bot.core.progress import JobControl
from bot.core.registry import get_spec
from tests.local_hub.replica import _Replica, load_manifest
from tests.local_hub.server import HubRepo, LocalHub

pytest_plugins = ("fake_discord.fixtures",)

ROOT = Path(__file__).resolve().parents[1]
LTX2_REPO = "Lightricks/LTX-2"


def render(engine: Any, tmp_path: Path, **options: Any) -> tuple[Any, Path]:
    params = GenerationParams(prompt="a cat surfing a wave", seed=3, **options)
    result = engine.generate_video(params)
    assert result.error is None, result.error
    out = tmp_path / f"{options['model']}-{len(list(tmp_path.iterdir()))}.mp4"
    result.save_as_video(out, encoder="libx264")
    return result, out


def assert_sound_as_long_as_the_picture(path: Path) -> None:
    ends = stream_ends(path)
    assert "audio" in ends, f"{path.name} has no audio stream"
    assert abs(ends["audio"] - ends["video"]) <= TOLERANCE_S, ends


@pytest.fixture
def picture(tmp_path: Path) -> str:
    path = tmp_path / "picture.png"
    Image.new("RGB", (64, 64), (200, 120, 40)).save(path)
    return str(path)


def test_text_and_picture_to_video_carry_sound_as_long_as_the_video(
    engine: Any, tmp_path: Path, picture: str
) -> None:
    for options in ({}, {"image": picture}, {"num_frames": 17, "loop": True}):
        result, out = render(engine, tmp_path, model="tiny_ltx2", **options)
        assert result.sound is not None and result.metadata["sound"] is True
        # The vocoder's own rate, kept by AAC.
        assert (
            result.sound.rate
            == engine.manager.get_loaded("tiny_ltx2").pipeline.vocoder.config.output_sampling_rate
        )
        assert media.probe(out).audio is not None
        assert_sound_as_long_as_the_picture(out)


def test_no_sound_gives_a_silent_mp4(engine: Any, tmp_path: Path) -> None:
    result, out = render(engine, tmp_path, model="tiny_ltx2", sound=False)
    assert result.sound is None and result.metadata["sound"] is False
    assert media.probe(out).audio is None
    assert "audio" not in stream_ends(out)


def test_a_silent_model_ignores_sound(engine: Any, tmp_path: Path) -> None:
    result, out = render(
        engine, tmp_path, model="tiny_t2v", sound=True, num_frames=8, num_inference_steps=10
    )
    assert result.sound is None and media.probe(out).audio is None
    from cogs.video import sound_note

    assert (
        sound_note(result.params, asked=True)
        == "tiny_t2v makes no sound, so the video is silent. The bot's owner can turn on "
        "soundtracks made from the prompt."
    )
    assert sound_note(result.params, asked=None) == ""
    assert sound_note(GenerationParams(prompt="a cat", model="tiny_ltx2"), asked=True) == ""


def test_the_distilled_recipe_upsamples_once_and_refines_at_full_size(
    engine: Any, tmp_path: Path, picture: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import LTX2ImageToVideoPipeline, LTX2Pipeline
    from diffusers.pipelines.ltx2.utils import (
        DISTILLED_SIGMA_VALUES,
        STAGE_2_DISTILLED_SIGMA_VALUES,
    )

    spec = get_spec("tiny_ltx2_distilled")
    loaded = engine.manager.load_model(spec.key)
    calls: list[dict[str, Any]] = []
    upsampled: list[tuple[int, ...]] = []
    for cls in (LTX2Pipeline, LTX2ImageToVideoPipeline):
        original = cls.__call__

        def record(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            calls.append(kwargs)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__call__", record)
    upsampler = loaded.pipeline.latent_upsampler
    forward = upsampler.forward

    def counted(latents: Any, *args: Any, **kwargs: Any) -> Any:
        out = forward(latents, *args, **kwargs)
        upsampled.append(tuple(out.shape))
        return out

    monkeypatch.setattr(upsampler, "forward", counted)
    seen: list[tuple[int, int]] = []
    control = JobControl(lambda progress: seen.append((progress.step, progress.total)))
    for extra in ({}, {"image": picture}):
        calls.clear()
        upsampled.clear()
        params = GenerationParams(
            prompt="a cat", model=spec.key, seed=1, width=128, height=64, **extra
        )
        result = engine.generate_video(params, control)
        assert result.error is None, result.error
        assert result.size == (128, 64) and result.sound is not None
        first, second = calls
        assert (first["width"], first["height"]) == (64, 32)
        assert first["sigmas"] == list(DISTILLED_SIGMA_VALUES) and first["output_type"] == "latent"
        assert (second["width"], second["height"]) == (128, 64)
        assert second["sigmas"] == list(STAGE_2_DISTILLED_SIGMA_VALUES)
        assert second["noise_scale"] == STAGE_2_DISTILLED_SIGMA_VALUES[0]
        assert second["audio_latents"] is not None and second["latents"] is not None
        assert first["guidance_scale"] == second["guidance_scale"] == 1.0
        assert first["stg_scale"] == 0.0 and first["audio_guidance_scale"] == 1.0
        # Once, from the half-size latents (64x32 pixels: 2x1) to the full size's (4x2).
        assert len(upsampled) == 1 and upsampled[0][-2:] == (2, 4)
        assert ("image" in first) == ("image" in extra)
    total = len(DISTILLED_SIGMA_VALUES) + len(STAGE_2_DISTILLED_SIGMA_VALUES)
    assert (total, total) in seen and max(step for step, _ in seen) == total


def test_the_one_stage_recipe_is_lightricks_ltx2_params() -> None:
    spec = get_spec("ltx2")
    options = spec.call_options_for(spec.default_scheduler)
    assert (spec.default_steps, spec.default_guidance, spec.default_frames) == (40, 3.0, 121)
    assert options["audio_guidance_scale"] == 7.0 and options["stg_scale"] == 1.0
    assert options["spatio_temporal_guidance_blocks"] == [29]
    assert options["use_cross_timestep"] is False and spec.sound
    distilled = get_spec("ltx2_distilled")
    assert spec.draft_model == distilled.key and distilled.size_multiple == 64
    assert distilled.adapter_source == "dg845/LTX-2.3-Spatial-Upsampler-Diffusers"


def test_the_sound_survives_the_trip_to_the_bot(engine: Any, tmp_path: Path) -> None:
    """A Ray worker sends the whole result back pickled: the waveform goes with it."""
    result, _ = render(engine, tmp_path, model="tiny_ltx2")
    back = pickle.loads(pickle.dumps(result))
    assert back.sound is not None and back.sound.rate == result.sound.rate
    assert (back.sound.samples == result.sound.samples).all()
    out = tmp_path / "after.mp4"
    back.save_as_video(out, encoder="libx264")
    assert_sound_as_long_as_the_picture(out)


def test_the_cli_says_sound_and_no_sound_silences_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    base = ["generate", "a cat", "--model", "tiny_ltx2", "--seed", "2"]
    assert main([*base, "-o", "with.mp4"]) == 0
    assert "with sound" in capsys.readouterr().out
    assert_sound_as_long_as_the_picture(tmp_path / "with.mp4")
    assert main([*base, "--no-sound", "-o", "without.mp4"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("silent")
    assert media.probe(tmp_path / "without.mp4").audio is None


# --- only what the indexes name ---------------------------------------------------------------


def test_the_loader_asks_only_for_the_indexed_shards_of_the_real_tree() -> None:
    entry = load_manifest()["repos"][LTX2_REPO]
    eleven = {f"text_encoder/model-{i:05d}-of-00011.safetensors" for i in range(1, 12)}
    stale = {f"text_encoder/model-{i:05d}-of-00012.safetensors" for i in range(1, 13)}
    assert eleven | stale <= set(entry["files"])

    def weight_map(name: str) -> set[str]:
        if name.startswith("text_encoder/"):
            return {f.split("/")[1] for f in eleven}
        return {
            f.split("/")[1] for f in entry["files"] if f.startswith("transformer/") and "-of-" in f
        }

    wanted = needed_files(entry["files"], entry["model_index"], None, weight_map)
    assert eleven <= wanted and not stale & wanted
    assert "text_encoder/model.safetensors.index.json" in wanted
    assert not [f for f in wanted if "/" not in f and f.endswith(".safetensors")]  # root files
    assert not [f for f in wanted if f.startswith("latent_upsampler/")]


def test_stale_text_encoder_shards_are_never_downloaded(model_cache: Path, tmp_path: Path) -> None:
    """A real load of ``Lightricks/LTX-2`` from the local hub (a new Hugging Face cache, the real
    download code in a fresh process) fetches the 11 indexed shards and none of the 12 stale
    ones, which the replica serves as unreadable placeholders."""
    from bot.core.tiny import build_tiny_model

    entry = load_manifest()["repos"][LTX2_REPO]
    build_tiny_model("tiny_ltx2", model_cache / "tiny_ltx2")
    repo = HubRepo(LTX2_REPO, _Replica(model_cache / entry["replica"], entry).files())
    hub = LocalHub({LTX2_REPO: repo}, {}).start()
    try:
        code = (
            "from bot.core.pipelines.ltx2 import LTX2_ADAPTER\n"
            "from bot.core.pipelines.base import LoadRequest\n"
            "import torch\n"
            f"pipe = LTX2_ADAPTER.load(LoadRequest(source={LTX2_REPO!r}, torch_dtype=torch.float32))\n"
            "print(type(pipe).__name__, pipe.vocoder.config.output_sampling_rate)\n"
        )
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_HUB_CACHE")}
        env.update(
            HF_ENDPOINT=hub.endpoint,
            HF_HOME=str(tmp_path / "hf_home"),
            HF_HUB_DISABLE_TELEMETRY="1",
            PYTHONPATH=str(ROOT),
            OMP_NUM_THREADS="1",
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split() == ["LTX2Pipeline", "16000"]
        fetched = {
            p.split("/resolve/")[1].split("/", 1)[1]
            for m, p in hub.requests
            if m == "GET" and "/resolve/" in p
        }
    finally:
        hub.stop()
    shards = {f for f in fetched if f.startswith("text_encoder/model-")}
    assert shards == {f"text_encoder/model-{i:05d}-of-00011.safetensors" for i in range(1, 12)}
    assert not [f for f in fetched if "-of-00012" in f or f.startswith("ltx-2-")]


# --- Discord ------------------------------------------------------------------------------------


async def test_video_in_discord_posts_the_mp4_with_its_sound(
    fake_discord: Any, manager: Any, tmp_path: Path
) -> None:
    fake = fake_discord
    settings = make_settings(
        tmp_path, models={"enabled": ["tiny_ltx2", "tiny_t2v"], "default": "tiny_ltx2"}
    )
    async with fake.run_bot(make_bot(settings, manager)):
        message = await wait_for_result(
            fake, await fake.run_slash_command("video", {"prompt": "a cat surfing --seed 4"})
        )
        silent = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "video", {"prompt": "a cat --seed 4", "model": "tiny_t2v", "sound": True}
            ),
        )
    [attachment] = [a for a in message.attachments if a.filename.endswith(".mp4")]
    out = Path(tempfile.mkdtemp(dir=tmp_path)) / "posted.mp4"
    out.write_bytes(attachment.data)
    assert_sound_as_long_as_the_picture(out)
    # The note stands above the job's status while it runs.
    note = "tiny_t2v makes no sound, so the video is silent."
    assert any(note in (m.get("content") or "") for m in silent.history)
    assert not any(note in (m.get("content") or "") for m in message.history)
