"""Restart safety: jobs are persisted before they are queued, a stopping bot drains the running job,
and the next start resumes the queue in order; a job that was running when the process died is
retried once, then failed with a message in its channel."""

from __future__ import annotations

from bot_helpers import make_bot, make_settings

from bot.store import Store

pytest_plugins = ("fake_discord.fixtures",)

SLOW = {"prompt": "a slow one --frames 16 --steps 30", "width": 96, "height": 96}


def video_messages_for(fake, job_id: int) -> list:  # type: ignore[no-untyped-def]
    return [
        m
        for m in fake.messages_by_bot()
        if m.attachments and m.embeds and f"job #{job_id} " in m.embeds[0]["footer"]["text"] + " "
    ]


async def test_stop_mid_queue_then_resume_completes_every_job_once(
    fake_discord, manager, tmp_path
) -> None:
    fake = fake_discord
    settings = make_settings(
        tmp_path, limits={"max_queued_per_user": 5, "progress_interval_s": 0.2}
    )
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        sent = [
            await fake.run_slash_command(
                "video", {**SLOW, "prompt": f"{SLOW['prompt']} --seed {seed}"}
            )
            for seed in (1, 2, 3)
        ]
        await fake.wait_until(lambda: len(bot.executor.snapshot()) == 3 or None, timeout=30)
        first_id = bot.executor.snapshot()[0].id
    # the bot closed: the running job was drained, the others stay queued in the database
    async with await Store.open(settings.storage.database) as store:
        statuses = {r.id: r.status for r in [await store.get_job(i) for i in range(1, 4)] if r}
    assert statuses[first_id] == "done"
    assert sorted(s for i, s in statuses.items() if i != first_id) == ["queued", "queued"]

    async with fake.run_bot(make_bot(settings, manager)) as bot:
        waiting = [i for i in statuses if i != first_id]
        await fake.wait_until(
            lambda: all(video_messages_for(fake, i) for i in waiting) or None, timeout=90
        )
        for job_id in waiting:
            record = await bot.store.get_job(job_id)
            assert record.status == "done" and record.attempts == 1
            [message] = video_messages_for(fake, job_id)  # announced exactly once
            assert f"<@{fake.user.id}>" in message.content  # in the channel, mentioning the member
    for job_id in statuses:
        assert len(video_messages_for(fake, job_id)) == 1
    # the members' original "queued" messages no longer show a stale position and Cancel button
    originals = [fake.original_response(i) for i in sent]
    retired = [m for m in originals if m is not None and "resumed after a restart" in m.content]
    assert len(retired) == 2 and all(not m.components for m in retired)


async def test_a_job_running_at_a_crash_is_retried_once_then_failed(
    fake_discord, manager, tmp_path
) -> None:
    fake = fake_discord
    settings = make_settings(tmp_path)
    params = {
        "prompt": "a crash test",
        "model": "tiny_t2v",
        "width": 64,
        "height": 64,
        "num_frames": 8,
        "num_inference_steps": 10,
        "seed": 4,
    }
    async with await Store.open(settings.storage.database) as store:
        common = dict(
            user_id=fake.user.id,
            user_name="alice",
            guild_id=fake.guild.id,
            channel_id=fake.channel.id,
            kind="generate",
            params=params,
            prompt="a crash test",
            model="tiny_t2v",
        )
        once = await store.create_job(**common)
        await store.mark_running(once.id)  # the process died during its first attempt
        twice = await store.create_job(**common)
        await store.mark_running(twice.id)
        await store.requeue(twice.id)
        await store.mark_running(twice.id)  # and died again during its retry
        edit = await store.create_job(
            **{**common, "kind": "edit", "params": {"operation": "reverse"}}
        )
        await store.mark_running(edit.id)
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        await fake.wait_until(lambda: video_messages_for(fake, once.id) or None, timeout=60)
        failures = await fake.wait_until(
            lambda: (
                [
                    m
                    for m in fake.messages_by_bot()
                    if m.embeds and "❌" in (m.embeds[0].get("description") or "")
                ][1:]
                or None
            )
        )
        texts = [
            m.embeds[0]["description"]
            for m in fake.messages_by_bot()
            if m.embeds and "❌" in (m.embeds[0].get("description") or "")
        ]
        assert any("stopped twice" in t for t in texts) and any("run it again" in t for t in texts)
        assert failures
        assert (await bot.store.get_job(once.id)).status == "done"
        assert (await bot.store.get_job(once.id)).attempts == 2
        assert (await bot.store.get_job(twice.id)).status == "failed"
        assert (await bot.store.get_job(edit.id)).status == "failed"
