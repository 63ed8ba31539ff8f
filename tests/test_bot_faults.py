"""Discord faults, injected by the fake: 413 on upload, 429, an expired interaction token, a
websocket drop mid-job, and a channel where the bot may not attach files."""

from __future__ import annotations

from bot_helpers import has_video, make_bot, make_settings, wait_for_result

pytest_plugins = ("fake_discord.fixtures",)

VIDEO = {"prompt": "a kite --seed 5 --frames 8 --steps 10", "width": 64, "height": 64}
SLOW = {"prompt": "a slow kite --seed 5 --frames 16 --steps 40", "width": 96, "height": 96}


def uploads(fake) -> list:  # type: ignore[no-untyped-def]
    return [r for r in fake.requests if r.files and r.method == "PATCH"]


async def test_upload_rejected_as_too_large_is_reencoded_smaller(
    fake_discord, manager, tmp_path
) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)):
        # The video's upload (a running job's live preview is an upload too).
        fake.too_large_next(
            lambda r: r.method == "PATCH" and any(f.filename == "video.mp4" for f in r.files)
        )
        message = await wait_for_result(fake, await fake.run_slash_command("video", VIDEO))
    rejected, accepted = [r for r in uploads(fake) if r.files[0].filename == "video.mp4"][-2:]
    assert rejected.status == 413 and accepted.status == 200
    assert accepted.files[0].size <= rejected.files[0].size // 2
    assert message.attachments[0].size == accepted.files[0].size


async def test_rate_limits_are_waited_out(fake_discord, manager, tmp_path) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)):
        fake.rate_limit_next("PATCH /webhooks/*", retry_after=0.5, count=2)
        message = await wait_for_result(fake, await fake.run_slash_command("video", VIDEO))
    assert message.attachments
    limited = [r for r in fake.requests if r.status == 429]
    assert len(limited) == 2


async def test_expired_token_falls_back_to_a_channel_message(
    fake_discord, manager, tmp_path
) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        interaction = await fake.run_slash_command("video", SLOW)
        await fake.wait_until(lambda: bot.executor.snapshot() or None)
        fake.expire_interaction(interaction)  # as if the job outlived Discord's 15 minutes
        message = await fake.wait_until(
            lambda: next(
                (m for m in fake.messages_by_bot() if has_video(m) and m.interaction_id is None),
                None,
            ),
            timeout=60,
        )
    assert message.channel_id == fake.channel.id
    assert message.content.startswith(f"<@{fake.user.id}>")
    assert fake.user.id in message.mention_user_ids  # the member is pinged, nobody else


async def test_gateway_drop_mid_job_loses_nothing(fake_discord, manager, tmp_path) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        interaction = await fake.run_slash_command("video", SLOW)
        await fake.wait_until(lambda: bot.executor.snapshot() or None)
        mark = len(fake.gateway_log)
        await fake.drop_connection()
        await fake.wait_for_resume(since=mark)
        second = await fake.run_slash_command("video", VIDEO)  # served after the reconnect
        first_result = await wait_for_result(fake, interaction)
        second_result = await wait_for_result(fake, second)
        assert first_result.attachments and second_result.attachments
        history = await bot.store.history(fake.user.id, fake.guild.id)
        assert [r.status for r in history] == ["done", "done"]


async def test_missing_attach_permission_is_explained_privately(
    fake_discord, manager, tmp_path
) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        await fake.deny_permission(fake.channel, "attach_files")
        interaction = await fake.run_slash_command("video", VIDEO)
        followup = await fake.wait_for_followup(interaction)
        assert "missing the Attach Files permission" in followup.content and followup.flags & 64
        assert await bot.store.count_history(fake.user.id, fake.guild.id) == 0


async def test_out_of_memory_in_the_pipeline_retries_then_fails_clearly(
    fake_discord, manager, tmp_path
) -> None:
    """OOM once: retried with the memory savers and delivered. OOM every time: a clear failure with
    advice, and the executor serves the next member."""
    import torch

    fake = fake_discord
    pipe = manager.load_model("tiny_t2v").pipeline
    failures = {"left": 1}

    def oom(*args: object) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 12.00 GiB")

    handle = pipe.unet.register_forward_pre_hook(oom)
    try:
        async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
            recovered = await wait_for_result(fake, await fake.run_slash_command("video", VIDEO))
            assert recovered.attachments
            failures["left"] = 10**6
            failed = await wait_for_result(fake, await fake.run_slash_command("video", VIDEO))
            description = failed.embeds[0]["description"]
            assert "Out of GPU memory on tiny_t2v" in description and "CPU offload" in description
            failures["left"] = 0
            after = await wait_for_result(
                fake, await fake.run_slash_command("video", VIDEO, user=fake.other_user)
            )
            assert after.attachments  # the executor survived
            statuses = [r.status for r in await bot.store.history(fake.user.id, fake.guild.id)]
            assert statuses == ["failed", "done"]
            assert manager.options.cpu_offload is False  # the owner's settings were restored
    finally:
        handle.remove()
