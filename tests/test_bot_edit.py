"""Edits and upscaling end to end: ``/edit``, ``/upscale``, the buttons under a result,
reply-to-video text commands and the "Edit video" message menu."""

from __future__ import annotations

import numpy as np
import pytest
from bot_helpers import (
    custom_ids,
    decode_attachment,
    has_video,
    make_bot,
    make_settings,
    wait_for_result,
)
from fake_discord import Upload
from fake_discord.gateway import MESSAGE_CONTENT

from bot.core import GenerationParams
from bot.core.engine import GenerationEngine

pytest_plugins = ("fake_discord.fixtures",)

VIDEO = {"prompt": "a red car --seed 3 --frames 8 --steps 10", "width": 64, "height": 64}


async def make_video(fake, prompt: dict | None = None):  # type: ignore[no-untyped-def]
    interaction = await fake.run_slash_command("video", prompt or VIDEO)
    message = await wait_for_result(fake, interaction)
    job_id = int(custom_ids(message)[0].split(":")[2])
    return message, job_id


def mp4_of(frames_seed: int, tmp_path, manager) -> bytes:  # type: ignore[no-untyped-def]
    result = GenerationEngine(manager).generate_video(
        GenerationParams(
            prompt="x",
            model="tiny_t2v",
            seed=frames_seed,
            num_frames=12,
            width=64,
            height=48,
            num_inference_steps=10,
        )
    )
    path = tmp_path / f"upload-{frames_seed}.mp4"
    result.save_as_video(path)
    return path.read_bytes()


async def test_edit_latest_by_id_and_by_button(fake_discord, manager, tmp_path) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        source, job_id = await make_video(fake)
        original, _ = decode_attachment(source, tmp_path)

        trimmed = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "edit", {"operation": "trim", "start_frame": 2, "end_frame": 6}
            ),
        )
        frames, _ = decode_attachment(trimmed, tmp_path)
        assert frames.shape[0] == 4
        assert np.abs(frames.astype(int) - original[2:6].astype(int)).mean() < 6

        reversed_message = await wait_for_result(
            fake, await fake.click_button(source, f"vb:reverse:{job_id}")
        )
        backwards, _ = decode_attachment(reversed_message, tmp_path)
        assert np.abs(backwards.astype(int) - original[::-1].astype(int)).mean() < 6

        looped = await wait_for_result(fake, await fake.click_button(source, f"vb:loop:{job_id}"))
        assert decode_attachment(looped, tmp_path)[0].shape[0] == 16
        smooth = await wait_for_result(
            fake, await fake.click_button(source, f"vb:interpolate:{job_id}")
        )
        frames, fps = decode_attachment(smooth, tmp_path)
        assert frames.shape[0] == 16 and fps == 16

        fast = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "edit", {"operation": "speed", "job": job_id, "speed_factor": 2.0}
            ),
        )
        assert decode_attachment(fast, tmp_path)[0].shape[0] == 4
        record = await bot.store.get_job(int(custom_ids(fast)[0].split(":")[2]))
        assert record.kind == "edit" and record.parent_id == job_id and record.status == "done"


async def test_upscale_by_button_and_command(fake_discord, manager, tmp_path) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        source, job_id = await make_video(fake)
        upscaled = await wait_for_result(
            fake, await fake.click_button(source, f"vb:upscale:{job_id}")
        )
        frames, _ = decode_attachment(upscaled, tmp_path)
        assert frames.shape == (8, 128, 128, 3)
        fields = {f["name"]: f["value"] for f in upscaled.embeds[0]["fields"]}
        assert fields["Model"] == "tiny_v2v"
        by_command = await wait_for_result(
            fake, await fake.run_slash_command("upscale", {"job": job_id})
        )
        assert decode_attachment(by_command, tmp_path)[0].shape == (8, 128, 128, 3)
        record = await bot.store.get_job(int(custom_ids(by_command)[0].split(":")[2]))
        assert record.kind == "upscale" and record.parent_id == job_id


async def test_reply_to_a_video_with_text_commands(fake_discord, manager, tmp_path) -> None:
    """With the Message Content intent (enabled in the portal and asked for); without it, see
    tests/test_first_start.py."""
    fake = fake_discord
    fake.privileged_intents |= MESSAGE_CONTENT
    settings = make_settings(tmp_path, discord={"message_content_intent": True})
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        upload = await fake.send_message(
            "look at this",
            attachments=[Upload("clip.mp4", mp4_of(5, tmp_path, manager), "video/mp4")],
        )
        # prefix form, on a member's upload
        await fake.send_message("!trim 2 8", reply_to=upload)
        reply = await fake.wait_until(
            lambda: next(
                (m for m in fake.messages_by_bot() if has_video(m) and m.message_reference), None
            ),
            timeout=60,
        )
        assert reply.message_reference["message_id"] != upload.id  # replies to the command
        assert decode_attachment(reply, tmp_path)[0].shape[0] == 6
        # mention form, on the bot's own result
        await fake.send_message("reverse", reply_to=reply, mentions=[fake.bot_user])
        second = await fake.wait_until(
            lambda: [m for m in fake.messages_by_bot() if has_video(m)][1:] or None, timeout=60
        )
        assert decode_attachment(second[0], tmp_path)[0].shape[0] == 6
        # bad input: a clear reply, nothing recorded
        before = await bot.store.count_history(fake.user.id, fake.guild.id)
        await fake.send_message("!speed 99", reply_to=upload)
        error = await fake.wait_until(
            lambda: next((m for m in fake.messages_by_bot() if "speed_factor" in m.content), None)
        )
        assert "between 0.25 and 4" in error.content
        await fake.send_message("!blur", reply_to=upload)
        unknown = await fake.wait_until(
            lambda: next(
                (m for m in fake.messages_by_bot() if "unknown command" in m.content), None
            )
        )
        assert "trim" in unknown.content
        # chat that is not addressed to the bot is ignored
        await fake.send_message("nice video!", reply_to=upload)
        assert await bot.store.count_history(fake.user.id, fake.guild.id) == before


async def test_edit_video_message_menu(fake_discord, manager, tmp_path) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)):
        upload = await fake.send_message(
            "", attachments=[Upload("clip.mp4", mp4_of(6, tmp_path, manager), "video/mp4")]
        )
        menu = await fake.run_message_command("Edit video", upload)
        await fake.wait_for_response(menu)
        assert menu.modal is not None
        submitted = await fake.submit_modal(menu, {"command": "loop 2"})
        result = await wait_for_result(fake, submitted)
        assert decode_attachment(result, tmp_path)[0].shape[0] == 24


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"operation": "trim", "start_frame": 5, "end_frame": 20},
            "end_frame: must be between 6 and 8",
        ),
        ({"operation": "reverse", "job": 999}, "there is no job #999"),
    ],
)
async def test_bad_edits_are_refused_privately(
    fake_discord, manager, tmp_path, options, message
) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)):
        await make_video(fake)
        interaction = await fake.run_slash_command("edit", options)
        followup = await fake.wait_for_followup(interaction)
        assert message in followup.content and followup.flags & 64  # ephemeral


async def test_bad_upload_is_refused(fake_discord, manager, tmp_path) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        interaction = await fake.run_slash_command(
            "edit",
            {
                "operation": "reverse",
                "video": Upload("evil.mp4", b"not a video at all" * 100, "video/mp4"),
            },
        )
        followup = await fake.wait_for_followup(interaction)
        assert "not a video" in followup.content and followup.flags & 64
        assert await bot.store.count_history(fake.user.id, fake.guild.id) == 0


async def test_old_videos_are_pruned_past_the_disk_budget(fake_discord, manager, tmp_path) -> None:
    """A tiny budget keeps only the newest video; the pruned job stays in history and says so."""
    fake = fake_discord
    settings = make_settings(tmp_path, storage={"max_output_mb": 0.001})
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        _, first_id = await make_video(fake)
        _, second_id = await make_video(
            fake, {**VIDEO, "prompt": "a blue car --seed 4 --frames 8 --steps 10"}
        )
        first = await bot.store.get_job(first_id)
        assert first.output_pruned and not first.output_path.exists()
        assert bot.service.output_path(second_id).exists()  # the newest is always kept
        interaction = await fake.run_slash_command(
            "edit", {"operation": "reverse", "job": first_id}
        )
        followup = await fake.wait_for_followup(interaction)
        assert "was deleted to free disk space" in followup.content
        assert f"/rerun {first_id}" in followup.content
        assert await bot.store.count_history(fake.user.id, fake.guild.id) == 2
