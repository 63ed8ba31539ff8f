"""Extend end to end on the fake Discord: ``/edit operation:extend prompt:`` on an uploaded video
with sound, the Extend button under its result (a form prefilled with the prompt) extending the
extension, and the refusals, on the tiny Wan 2.2 TI2V twin (from the last frame)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from bot_helpers import (
    TINY_MODELS,
    custom_ids,
    decode_attachment,
    edit_refusal,
    edit_upload,
    make_bot,
    make_settings,
    wait_for_result,
)

from bot.core import media
from bot.service import VideoService
from tests.test_sound import chirp, clip

pytest_plugins = ("fake_discord.fixtures",)

KEY = "tiny_wan"
NEW = 12
"""Frames tiny_wan adds by default: 1 frame of context + 9 asked, rounded up to its 4k+1 rule
(13), less the context."""


@pytest.fixture
def upload(tmp_path: Path) -> bytes:
    path = clip(tmp_path / "clip.mp4", size="64x48", rate=8, seconds=1.125, sounds=(chirp(1.5),))
    return path.read_bytes()


def settings_with_extender(tmp_path: Path, **limits: object):  # type: ignore[no-untyped-def]
    return make_settings(
        tmp_path,
        models={"enabled": [*TINY_MODELS, KEY], "default": "tiny_t2v"},
        limits={"progress_interval_s": 0.2, **limits},
    )


async def test_slash_extend_then_the_extend_button_extends_the_extension(
    fake_discord, manager, upload, tmp_path
) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(settings_with_extender(tmp_path), manager)) as bot:
        interaction = await edit_upload(fake, "extend", upload, prompt="the boat sails on")
        first = await wait_for_result(fake, interaction)
        frames, fps = decode_attachment(first, tmp_path)
        assert frames.shape == (9 + NEW, 48, 64, 3) and fps == pytest.approx(8.0)
        out = tmp_path / "first.mp4"
        out.write_bytes(first.attachments[0].data)
        info = media.probe(out)
        assert info.audio is not None and abs(info.duration_s - (9 + NEW) / 8) <= 0.15
        [record] = await bot.store.history(fake.user.id, fake.guild.id, limit=5)
        assert (record.kind.value, record.model, record.prompt) == (
            "extend",
            KEY,
            "the boat sails on",
        )

        pressed = await fake.click_button(first, f"vb:extend:{record.id}")
        await fake.wait_for_response(pressed)
        assert pressed.modal is not None
        assert "the boat sails on" in str(pressed.modal)  # prefilled with the clip's prompt
        submitted = await fake.submit_modal(pressed)
        second = await wait_for_result(fake, submitted)
        assert decode_attachment(second, tmp_path)[0].shape[0] == 9 + 2 * NEW
        latest = (await bot.store.history(fake.user.id, fake.guild.id, limit=5))[0]
        assert (latest.kind.value, latest.parent_id) == ("extend", record.id)


async def test_extend_refusals_name_the_extenders_and_the_numbers(
    fake_discord, manager, upload, tmp_path
) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)):
        refusal = await edit_refusal(fake, "extend", upload, prompt="on")
        assert "no model on this bot can extend a clip" in refusal.content
        assert "tiny_wan" in refusal.content
        # the Extend button under a result says so at once, before any form
        made = await fake.run_slash_command(
            "video",
            {"prompt": "a red car --seed 3 --frames 8 --steps 10", "width": 64, "height": 64},
        )
        result = await wait_for_result(fake, made)
        [extend_id] = [c for c in custom_ids(result) if c.startswith("vb:extend:")]
        pressed = await fake.click_button(result, extend_id)
        await fake.wait_for_response(pressed)
        assert pressed.modal is None
        answer = await fake.wait_until(
            lambda: next(
                (
                    m
                    for m in fake.messages_by_bot()
                    if "can extend a clip" in m.content and m.id != refusal.id
                ),
                None,
            ),
            what="the button's refusal",
        )
        assert "no model on this bot can extend a clip" in answer.content
    settings = settings_with_extender(tmp_path, max_upload_seconds=2.0)
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        before = await bot.store.count_history(fake.user.id, fake.guild.id)
        refusal = await edit_refusal(fake, "extend", upload, prompt="on")
        assert f"the result would last 2.6 s (9 + {NEW} frames at 8 fps)" in refusal.content
        assert "the limit is 2 s" in refusal.content
        assert await bot.store.count_history(fake.user.id, fake.guild.id) == before  # nothing


async def test_a_clip_with_sound_goes_to_an_extender_that_continues_its_sound(
    upload: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The extender is chosen once the clip is open (``_submit_on_source``'s plan): with VACE
    and LTX-2 enabled, a clip with sound goes to LTX-2, which makes the continuation's sound;
    a silent one to VACE, first in the usual order; a model asked for is kept either way."""
    settings = make_settings(
        tmp_path, models={"enabled": ["tiny_t2v", "tiny_wan_vace", "tiny_ltx2"]}
    )
    service = VideoService.__new__(VideoService)
    service.settings = settings
    service.decode_budget = SimpleNamespace(total=2**30)  # type: ignore[assignment]

    async def planned(who, where, kind, texts, plan):  # type: ignore[no-untyped-def]
        return plan(SimpleNamespace(info=media.probe(where)))

    monkeypatch.setattr(service, "_submit_on_source", planned)
    with_sound = tmp_path / "sound.mp4"
    with_sound.write_bytes(upload)
    silent = clip(tmp_path / "silent.mp4", size="64x48", rate=8, seconds=1.125)
    chosen = {
        path.name: (await service.submit_extend(None, path, prompt="on")).model  # type: ignore[arg-type]
        for path in (with_sound, silent)
    }
    assert chosen == {"sound.mp4": "tiny_ltx2", "silent.mp4": "tiny_wan_vace"}
    asked = await service.submit_extend(None, with_sound, prompt="on", model="tiny_wan_vace")  # type: ignore[arg-type]
    assert asked.model == "tiny_wan_vace"
