"""Restyle end to end on the fake Discord: ``/edit operation:restyle prompt: strength:`` on an
uploaded video, ``!restyle`` in reply to one, and the refusals, on Wan 2.1 1.3B's key loaded from
the local hub's tiny replica of its repo (see tests/test_restyle.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bot_helpers import (
    TINY_MODELS,
    WAN21_KEY,
    decode_attachment,
    edit_refusal,
    edit_upload,
    has_video,
    make_bot,
    make_settings,
    wait_for_result,
    wan21_replica,
    wan21_restyler,
)
from fake_discord import Upload
from fake_discord.gateway import MESSAGE_CONTENT

from bot.core import media
from bot.core.manager import ModelManager
from tests.test_sound import chirp, clip

pytest_plugins = ("fake_discord.fixtures",)

KEY = WAN21_KEY


@pytest.fixture
def restyler(model_cache: Path) -> Iterator[ModelManager]:
    with wan21_restyler(model_cache) as manager:
        yield manager


@pytest.fixture
def upload(tmp_path: Path) -> bytes:
    path = clip(tmp_path / "clip.mp4", size="80x48", rate=24, seconds=1.0, sounds=(chirp(1.5),))
    return path.read_bytes()


def settings_with_restyler(tmp_path: Path, model_cache: Path):  # type: ignore[no-untyped-def]
    """The bot configures its manager from ``[models]``: the replica is named there too."""
    return make_settings(
        tmp_path,
        models={
            "enabled": [*TINY_MODELS, KEY],
            "default": "tiny_t2v",
            "sources": {KEY: str(wan21_replica(model_cache))},
        },
    )


async def test_slash_restyle_of_an_upload_keeps_its_sound(
    fake_discord, restyler, upload, tmp_path, model_cache
) -> None:
    fake = fake_discord
    async with fake.run_bot(
        make_bot(settings_with_restyler(tmp_path, model_cache), restyler)
    ) as bot:
        interaction = await edit_upload(
            fake, "restyle", upload, prompt="an oil painting", strength=0.5
        )
        message = await wait_for_result(fake, interaction)
        frames, fps = decode_attachment(message, tmp_path)
        assert frames.shape == (13, 48, 64, 3) and fps == pytest.approx(16.0)
        out = tmp_path / "restyled.mp4"
        out.write_bytes(message.attachments[0].data)
        info = media.probe(out)
        assert info.audio is not None
        assert abs(info.duration_s - 13 / 16) <= 0.15
        [record] = await bot.store.history(fake.user.id, fake.guild.id, limit=5)
        assert (record.kind.value, record.model, record.prompt) == (
            "restyle",
            KEY,
            "an oil painting",
        )
        assert record.params["strength"] == 0.5


async def test_reply_restyle_and_its_refusals(
    fake_discord, restyler, upload, tmp_path, model_cache
) -> None:
    fake = fake_discord
    fake.privileged_intents |= MESSAGE_CONTENT  # a member's video: its files need the intent
    settings = settings_with_restyler(tmp_path, model_cache)
    settings.discord.message_content_intent = True
    async with fake.run_bot(make_bot(settings, restyler)):
        video = await fake.send_message(
            "look", attachments=[Upload("clip.mp4", upload, "video/mp4")]
        )
        await fake.send_message("!restyle 1.5 neon", reply_to=video)
        refusal = await fake.wait_until(
            lambda: next((m for m in fake.messages_by_bot() if "strength" in m.content), None),
            what="the refusal",
        )
        assert "0.1-1.0, default 0.6: low keeps the video, high follows the prompt" in (
            refusal.content
        )
        await fake.send_message("!restyle 0.4 neon city", reply_to=video)
        result = await fake.wait_until(
            lambda: next((m for m in fake.messages_by_bot() if has_video(m)), None),
            timeout=60,
            what="the restyled video",
        )
        result = await fake.wait_until(
            lambda: result if len(result.attachments) == 1 else None, what="one attachment"
        )
        assert decode_attachment(result, tmp_path)[0].shape[0] == 13


async def test_a_bot_without_a_restyler_names_those_that_can(
    fake_discord, manager, upload, tmp_path
) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)):
        refusal = await edit_refusal(fake, "restyle", upload, prompt="neon")
        assert "no model on this bot can restyle videos" in refusal.content
        assert "wan2_1_1_3b, wan2_1_14b" in refusal.content
