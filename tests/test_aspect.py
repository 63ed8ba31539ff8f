"""Aspect ratios: the pure sizing table across every model, the params that use it, ``--ar`` in
the CLI and ``/video aspect:`` in the fake Discord (a portrait mp4, its size probed)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from bot_helpers import TINY_MODELS, make_bot, make_settings, wait_for_result

from bot.core import GenerationParams, media
from bot.core.aspect import ASPECTS, aspect_of, fill_size, parse_aspect, size_for_aspect
from bot.core.errors import InvalidParameterError
from bot.core.registry import REGISTRY

pytest_plugins = ("fake_discord.fixtures",)

GENERATORS = [key for key, spec in REGISTRY.items() if spec.role == "generator"]


@pytest.mark.parametrize("key", GENERATORS)
def test_every_shape_is_a_valid_size_of_about_the_native_pixel_count(key: str) -> None:
    spec = REGISTRY[key]
    area = spec.native_width * spec.native_height
    pictures = {"image": "first.png"} if spec.image_only else {}
    if spec.first_last_only:
        pictures["end_image"] = "last.png"
    for aspect in ASPECTS:
        width, height = size_for_aspect(spec, aspect)
        shape_w, shape_h = parse_aspect(aspect)
        assert width % spec.size_multiple == 0 and height % spec.size_multiple == 0
        assert spec.min_size <= min(width, height) and max(width, height) <= spec.max_size
        # A shape and its upright twin get the same two sides, swapped.
        assert size_for_aspect(spec, f"{shape_h}:{shape_w}") == (height, width)
        # The size is a valid job on the model.
        GenerationParams(prompt="x", model=key, aspect=aspect, **pictures)
        if spec.tiny:
            continue  # 64x64 on a 32-pixel step: two sizes per side, no finer shapes
        # The shape within a few percent ...
        assert abs(math.log(width / height / (shape_w / shape_h))) < 0.05, (aspect, width, height)
        # ... and, unless a limit forces it, about the pixels the model was trained at.
        forced = max(width, height) == spec.max_size or min(width, height) == spec.min_size
        assert forced or abs(math.log(width * height / area)) < 0.2, (aspect, width, height)


@pytest.mark.parametrize(
    ("key", "table"),
    [
        # The trained sizes themselves: Wan 14B's 1280x720 either way round, Wan 1.3B's 832x480
        # and Zeroscope's 576x320 as the 16:9 their cards mean.
        ("wan2_2_t2v_a14b", {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (960, 960)}),
        ("wan2_1_flf2v_14b", {"16:9": (1280, 720), "9:16": (720, 1280), "21:9": (1280, 560)}),
        ("wan2_1_1_3b", {"16:9": (832, 480), "9:16": (480, 832), "4:3": (720, 544)}),
        ("zeroscope_v2_576w", {"16:9": (576, 320), "1:1": (432, 432)}),
        ("ltx_video", {"16:9": (864, 480), "1:1": (640, 640), "21:9": (960, 416)}),
        ("ltx2_distilled", {"9:16": (512, 896), "4:3": (768, 576)}),
        ("animatediff", {"1:1": (512, 512), "16:9": (680, 384)}),
        ("modelscope_t2v", {"16:9": (456, 256)}),  # its 256 minimum: the long side grows
    ],
)
def test_the_documented_table(key: str, table: dict[str, tuple[int, int]]) -> None:
    """The rows docs/DIRECTING.md shows ("Aspect ratios")."""
    for aspect, size in table.items():
        assert size_for_aspect(REGISTRY[key], aspect) == size, aspect


def test_params_fill_the_size_from_the_aspect_and_a_given_side_wins() -> None:
    portrait = GenerationParams(prompt="x", model="wan2_2_t2v_a14b", aspect="9:16")
    assert (portrait.width, portrait.height, portrait.aspect) == (720, 1280, "9:16")
    explicit = GenerationParams(
        prompt="x", model="wan2_2_t2v_a14b", aspect="9:16", width=832, height=480
    )
    assert (explicit.width, explicit.height) == (832, 480)
    one_side = GenerationParams(prompt="x", model="wan2_2_t2v_a14b", aspect="16:9", width=832)
    assert (one_side.width, one_side.height) == (832, 464)  # 468 on Wan's 16-pixel step
    # A rerun reads the stored params back unchanged; another model sizes the shape its own way.
    again = GenerationParams(**portrait.model_dump())
    assert (again.width, again.height) == (720, 1280)
    moved = GenerationParams(prompt="x", aspect="16:9").for_model("ltx_video")
    assert (moved.width, moved.height) == (864, 480)
    assert GenerationParams(prompt="x", model="ltx_video", aspect="32x18").aspect == "16:9"


@pytest.mark.parametrize(
    ("aspect", "message"),
    [
        ("wide", "aspect: 'wide' is not a shape like 16:9; use one of 16:9, 9:16, 1:1"),
        ("16:0", "is not a shape like 16:9"),
        ("4:1", "aspect: '4:1' is wider or taller than 21:9 allows; use one of 16:9"),
    ],
)
def test_a_bad_aspect_is_refused_in_one_line(aspect: str, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message) as info:
        GenerationParams(prompt="x", model="tiny_wan", aspect=aspect)
    assert "\n" not in str(info.value)


def test_a_picture_shape_is_its_aspect_within_21_9() -> None:
    assert aspect_of(4032, 3024) == "4:3" and aspect_of(1080, 1920) == "9:16"
    assert aspect_of(5000, 1000) == "21:9" and aspect_of(100, 1000) == "9:21"
    assert fill_size(REGISTRY["tiny_wan"], "1:1", None, 96) == (96, 96)


def test_cli_ar_renders_that_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``videobot generate --ar 21:9`` on a tiny model: the mp4 is the table's size."""
    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "wide.mp4"
    code = main(
        [
            "generate",
            "a long beach",
            "--model",
            "tiny_wan",
            "--ar",
            "21:9",
            "--steps",
            "1",
            "--frames",
            "5",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    info = media.probe(out)
    assert (info.width, info.height) == size_for_aspect(REGISTRY["tiny_wan"], "21:9")
    assert info.width > 2 * info.height - 1  # wide, on tiny_wan's 32-pixel step


async def test_video_aspect_option_renders_a_portrait_mp4(
    fake_discord, manager, tmp_path: Path
) -> None:
    fake = fake_discord
    settings = make_settings(tmp_path, models={"enabled": [*TINY_MODELS, "tiny_wan"]})
    async with fake.run_bot(make_bot(settings, manager)):
        message = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "video",
                {
                    "prompt": "a tall tower --steps 1 --frames 5",
                    "model": "tiny_wan",
                    "aspect": "9:16",
                },
            ),
        )
    [attachment] = message.attachments
    path = tmp_path / "portrait.mp4"
    path.write_bytes(attachment.data)
    info = media.probe(path)
    assert info.height > info.width
    assert (info.width, info.height) == size_for_aspect(REGISTRY["tiny_wan"], "9:16")
