"""Image-to-video through the bot: ``/video image:`` and replying ``animate`` to a picture, on the
tiny LTX and Wan models against the fake Discord."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from bot_helpers import (
    TINY_MODELS,
    decode_attachment,
    has_video,
    make_bot,
    make_settings,
    wait_for_result,
)
from fake_discord import Upload
from fake_discord.gateway import MESSAGE_CONTENT
from PIL import Image

from bot.core import GenerationParams, media
from bot.core.aspect import size_for_aspect
from bot.core.engine import GenerationEngine

pytest_plugins = ("fake_discord.fixtures",)

ENABLED = [*TINY_MODELS, "tiny_ltx", "tiny_wan"]


def png(colour: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> bytes:
    buffer = io.BytesIO()
    picture = Image.new("RGB", size, colour)
    picture.paste((255 - colour[0], 40, 200), (0, 0, size[0] // 3, size[1]))
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def settings_for(tmp_path: Path):  # type: ignore[no-untyped-def]
    return make_settings(tmp_path, models={"enabled": ENABLED})


def inputs(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "outputs" / "inputs"
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


async def test_video_with_an_image_attachment_animates_it(fake_discord, manager, tmp_path) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(settings_for(tmp_path), manager)) as bot:
        interaction = await fake.run_slash_command(
            "video",
            {
                "prompt": "a red kite --seed 5",
                "model": "tiny_ltx",
                "image": Upload("kite.png", png((200, 30, 30)), "image/png"),
            },
        )
        message = await wait_for_result(fake, interaction)
        job_id = int(message.embeds[0]["footer"]["text"].split("#")[1].split()[0])
        record = await bot.store.get_job(job_id)

    assert record is not None and record.status == "done" and record.model == "tiny_ltx"
    saved = Path(record.params["image"])
    assert saved.parent == tmp_path / "outputs" / "inputs" and saved.is_file()
    assert "kite" not in saved.name  # the member's filename never reaches the disk
    frames, fps = decode_attachment(message, tmp_path)
    # The model's own defaults (9 frames at 24 fps) in the picture's shape (96x64 is 3:2, which
    # tiny_ltx makes 96x64: bot.core.aspect), and exactly the engine's frames for that picture
    # and seed.
    assert frames.shape == (9, 64, 96, 3) and fps == 24
    expected = GenerationEngine(manager).generate_video(
        GenerationParams(
            prompt="a red kite", model="tiny_ltx", seed=5, image=str(saved), aspect="3:2"
        )
    )
    expected.save_as_video(tmp_path / "expected.mp4")
    reference = np.stack([np.asarray(f) for f in media.decode(tmp_path / "expected.mp4")[0]])
    assert np.abs(frames.astype(int) - reference.astype(int)).max() <= 1
    fields = {f["name"]: f["value"] for f in message.embeds[0]["fields"]}
    assert fields["Model"] == "tiny_ltx · from a picture"


async def test_an_image_without_a_model_goes_to_a_model_that_can_animate(
    fake_discord, manager, tmp_path
) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(settings_for(tmp_path), manager)) as bot:
        # The server's default (tiny_t2v) cannot animate; the first enabled model that can does.
        interaction = await fake.run_slash_command(
            "video",
            {"prompt": "waves --seed 1", "image": Upload("sea.jpg", png((20, 60, 200)), None)},
        )
        message = await wait_for_result(fake, interaction)
        job_id = int(message.embeds[0]["footer"]["text"].split("#")[1].split()[0])
        record = await bot.store.get_job(job_id)
    assert record is not None and record.model == "tiny_ltx"


async def test_bad_pictures_are_refused_privately_and_leave_nothing(
    fake_discord, manager, tmp_path
) -> None:
    fake = fake_discord
    cases = [
        (
            {"model": "tiny_t2v", "image": Upload("a.png", png((1, 2, 3)), "image/png")},
            "tiny_t2v cannot animate a picture; models that can: tiny_ltx, tiny_wan",
        ),
        (
            {"image": Upload("notes.png", b"this is not a picture at all", "image/png")},
            "is not a picture I can read",
        ),
        (
            {"image": Upload("clip.mp4", b"\x00\x00\x00\x18ftypmp42", "video/mp4")},
            "is not a picture; attach a png",
        ),
        (
            {"model": "tiny_ltx", "image": Upload("a.png", png((1, 2, 3)), "image/png")},
            None,  # accepted: proves the refusals above were about the pictures
        ),
    ]
    async with fake.run_bot(make_bot(settings_for(tmp_path), manager)) as bot:
        for options, message in cases:
            interaction = await fake.run_slash_command(
                "video", {"prompt": "a cat --frames 9", **options}
            )
            if message is None:
                await wait_for_result(fake, interaction)
                continue
            refusal = await fake.wait_for_followup(interaction)
            assert message in refusal.content, refusal.content
            assert refusal.flags & 64  # ephemeral
            assert len(inputs(tmp_path)) == 0, "a refused picture was kept"
        assert await bot.store.count_history(fake.user.id, fake.guild.id) == 1
    assert len(inputs(tmp_path)) == 1


async def test_reply_animate_to_a_picture(fake_discord, manager, tmp_path) -> None:
    fake = fake_discord
    fake.privileged_intents |= MESSAGE_CONTENT  # a member's picture: its files need the intent
    settings = settings_for(tmp_path)
    settings.discord.message_content_intent = True
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        picture = await fake.send_message(
            "my cat", attachments=[Upload("cat.webp", png((90, 200, 40)), "image/webp")]
        )
        await fake.send_message(
            "!animate the cat jumps --model tiny_wan --seed 2", reply_to=picture
        )
        reply = await fake.wait_until(
            lambda: next(
                (m for m in fake.messages_by_bot() if has_video(m) and m.message_reference), None
            ),
            timeout=60,
        )
        frames, fps = decode_attachment(reply, tmp_path)
        # tiny_wan's defaults, in the picture's shape (96x64, 3:2: bot.core.aspect).
        assert frames.shape == (9, 64, 96, 3) and fps == 16
        latest = await bot.store.latest_done(fake.user.id, fake.guild.id)
        assert latest is not None and latest.model == "tiny_wan"
        assert latest.prompt == "the cat jumps" and latest.params["image"]
        # A reply to a message without a picture gets a clear answer.
        text_only = await fake.send_message("no picture here")
        await fake.send_message("!animate", reply_to=text_only)
        answer = await fake.wait_until(
            lambda: next((m for m in fake.messages_by_bot() if "animate needs" in m.content), None)
        )
        assert "png" in answer.content


async def test_every_new_family_is_served_by_video(fake_discord, manager, tmp_path) -> None:
    """/video model:X with no other option, for each newer family; and a picture for each that
    can animate one. The frames are the model's defaults."""
    from bot.core.registry import REGISTRY

    fake = fake_discord
    families = ["tiny_ltx", "tiny_wan", "tiny_cogvideox", "tiny_lightning"]
    settings = make_settings(tmp_path, models={"enabled": [*TINY_MODELS, *families]})
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        for key in families:
            spec = REGISTRY[key]
            requests = [{"prompt": "a dog runs --seed 4", "model": key}]
            if spec.image_to_video:
                picture = Upload("dog.png", png((120, 90, 30)), "image/png")
                requests.append({**requests[0], "image": picture})
            for options in requests:
                message = await wait_for_result(
                    fake, await fake.run_slash_command("video", options)
                )
                frames, fps = decode_attachment(message, tmp_path)
                # A picture job takes the picture's shape (96x64 is 3:2) at the model's size.
                width, height = (
                    size_for_aspect(spec, "3:2")
                    if "image" in options and spec.image_size is None
                    else (spec.native_width, spec.native_height)
                )
                assert frames.shape == (spec.default_frames, height, width, 3), (key, options)
                assert fps == spec.default_fps
                job_id = int(message.embeds[0]["footer"]["text"].split("#")[1].split()[0])
                record = await bot.store.get_job(job_id)
                assert record is not None and record.model == key and record.status == "done"
                assert (record.params.get("image") is not None) == ("image" in options)


async def test_a_kept_picture_is_fitted_to_the_job(fake_discord, manager, tmp_path) -> None:
    """A large upload is kept at the job's size, so stored pictures stay small."""
    fake = fake_discord
    big = png((10, 200, 90), size=(1600, 1200))
    async with fake.run_bot(make_bot(settings_for(tmp_path), manager)):
        await wait_for_result(
            fake,
            await fake.run_slash_command(
                "video",
                {
                    "prompt": "a field",
                    "model": "tiny_wan",
                    "width": 96,
                    "height": 64,
                    "image": Upload("field.png", big, "image/png"),
                },
            ),
        )
    (saved,) = inputs(tmp_path)
    with Image.open(saved) as kept:
        assert kept.size == (96, 64)
    assert saved.stat().st_size < len(big)
