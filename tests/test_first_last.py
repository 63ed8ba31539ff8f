"""First and last frame: ``end_image`` beside ``image`` on the models that take both (Wan 2.2 I2V
A14B's ``last_image``, Wan 2.1 FLF2V), through the real ``WanImageToVideoPipeline`` of the tiny
twins, the CLI's ``--end-image`` and ``/video image: end_image:`` in the fake Discord."""

from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bot_helpers import TINY_MODELS, make_bot, make_settings, wait_for_result
from fake_discord import Upload
from PIL import Image

from bot.core import GenerationParams
from bot.core.errors import InvalidParameterError
from bot.core.images import load_end_image
from bot.core.registry import REGISTRY, first_last_frame_models

pytest_plugins = ("fake_discord.fixtures",)


def picture(path: Path, colour: tuple[int, int, int]) -> Path:
    Image.new("RGB", (64, 64), colour).save(path)
    return path


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What each ``WanImageToVideoPipeline`` call received (the real call still runs)."""
    from diffusers import WanImageToVideoPipeline

    seen: list[dict[str, Any]] = []
    real = WanImageToVideoPipeline.__call__

    @functools.wraps(real)  # the adapter reads the real signature through it
    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(WanImageToVideoPipeline, "__call__", spy)
    return seen


def run(engine: Any, tmp_path: Path, model: str, end: tuple[int, int, int] | None) -> np.ndarray:
    first = picture(tmp_path / "first.png", (230, 40, 30))
    last = picture(tmp_path / f"last-{end}.png", end) if end else None
    params = GenerationParams(
        prompt="a red ball turns blue",
        model=model,
        image=str(first),
        end_image=str(last) if last else None,
        num_frames=5,
        num_inference_steps=2,
        seed=3,
    )
    result = engine.generate_video(params)
    assert result.error is None, result.error
    assert result.metadata["first_last_frame"] is (end is not None)
    return np.stack([np.asarray(frame) for frame in result.images])


def test_flf2v_twin_renders_from_both_pictures(engine, calls, tmp_path: Path) -> None:
    """The tiny FLF2V (CLIP over two pictures, two pictures' position embeddings) runs end to end
    and its last frame follows the end picture: another end picture, another video."""
    blue = run(engine, tmp_path, "tiny_wan_flf2v", (20, 40, 230))
    green = run(engine, tmp_path, "tiny_wan_flf2v", (20, 230, 40))
    assert blue.shape == green.shape == (5, 64, 64, 3)
    assert [c["last_image"].size for c in calls] == [(64, 64), (64, 64)]
    assert np.asarray(calls[0]["last_image"])[0, 0].tolist() == [20, 40, 230]
    assert np.abs(blue.astype(int) - green.astype(int)).mean() > 0


def test_wan22_i2v_takes_a_last_frame_and_it_changes_the_video(engine, calls, tmp_path) -> None:
    alone = run(engine, tmp_path, "tiny_wan_a14b_i2v", None)
    both = run(engine, tmp_path, "tiny_wan_a14b_i2v", (20, 40, 230))
    assert "last_image" not in calls[0] and calls[1]["last_image"] is not None
    assert np.abs(alone.astype(int) - both.astype(int)).mean() > 0


def test_the_abilities_are_in_the_registry() -> None:
    able = first_last_frame_models()
    assert {"wan2_2_i2v_a14b", "wan2_2_i2v_a14b_lightx2v", "wan2_1_flf2v_14b"} <= set(able)
    assert not {"ltx_video", "wan2_2_ti2v_5b", "cogvideox_5b"} & set(able)
    assert {"ltx2", "ltx2_distilled"} <= set(able)  # LTX2ConditionPipeline (test_ltx2_conditions)
    flf2v = REGISTRY["wan2_1_flf2v_14b"]
    assert flf2v.source == "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers"
    assert flf2v.first_last_only and flf2v.parameters["image_encoder"] > 600


def test_a_model_that_cannot_refuses_naming_the_models_that_can() -> None:
    with pytest.raises(InvalidParameterError) as info:
        GenerationParams(prompt="x", model="tiny_ltx", image="a.png", end_image="b.png")
    message = str(info.value)
    assert message.startswith("end_image: tiny_ltx cannot pin a last frame; models that can: ")
    assert ", ".join(first_last_frame_models()) in message and "\n" not in message
    with pytest.raises(InvalidParameterError, match=r"end_image: .*give image too"):
        GenerationParams(prompt="x", model="tiny_wan_a14b_i2v", end_image="b.png")
    with pytest.raises(InvalidParameterError, match="tiny_wan_flf2v needs a first and a last"):
        GenerationParams(prompt="x", model="tiny_wan_flf2v", image="a.png")


def test_a_bad_end_picture_is_named_as_the_end_image(tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    with pytest.raises(InvalidParameterError, match=r"^end_image: is not a picture I can read"):
        load_end_image(bad)


def test_cli_end_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls) -> None:
    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    first = picture(tmp_path / "a.png", (200, 30, 30))
    last = picture(tmp_path / "b.png", (30, 30, 200))
    code = main(
        [
            "generate",
            "a ball",
            "--model",
            "tiny_wan_flf2v",
            "--image",
            str(first),
            "--end-image",
            str(last),
            "--steps",
            "1",
            "--frames",
            "5",
            "-o",
            "out.mp4",
        ]
    )
    assert code == 0 and (tmp_path / "out.mp4").is_file()
    assert np.asarray(calls[0]["last_image"])[0, 0].tolist() == [30, 30, 200]


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_video_end_image_in_discord(fake_discord, manager, tmp_path: Path, calls) -> None:
    fake = fake_discord
    enabled = [*TINY_MODELS, "tiny_ltx", "tiny_wan_a14b_i2v"]
    settings = make_settings(tmp_path, models={"enabled": enabled})
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        options = {
            "prompt": "a ball turns blue --steps 1 --frames 5",
            "image": Upload("a.png", png((200, 30, 30)), "image/png"),
            "end_image": Upload("b.png", png((30, 30, 200)), "image/png"),
        }
        # No model named: the first enabled one that takes both pictures.
        message = await wait_for_result(fake, await fake.run_slash_command("video", options))
        job_id = int(message.embeds[0]["footer"]["text"].split("#")[1].split()[0])
        record = await bot.store.get_job(job_id)
        assert record is not None and record.status == "done"
        assert record.model == "tiny_wan_a14b_i2v" and Path(record.params["end_image"]).is_file()
        assert np.asarray(calls[-1]["last_image"])[0, 0].tolist() == [30, 30, 200]
        # A model that cannot: one line naming the enabled models that can; nothing is kept.
        refused = await fake.run_slash_command("video", {**options, "model": "tiny_ltx"})
        answer = await fake.wait_for_followup(refused)
        assert answer.flags & 64  # privately
        expected = "tiny_ltx cannot pin a first and a last frame; models that can: "
        assert expected + "tiny_wan_a14b_i2v" in answer.content
        assert "\n" not in answer.content.strip()
        folder = tmp_path / "outputs" / "inputs"
        assert len(list(folder.glob("*.png"))) == 2  # the accepted job's two pictures only
