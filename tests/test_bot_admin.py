"""History, rerun, the queue and moderator controls end to end, with permission refusals and the
audit log."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from bot_helpers import custom_ids, decode_attachment, make_bot, make_settings, wait_for_result

pytest_plugins = ("fake_discord.fixtures",)


def video_options(seed: int, prompt: str = "a boat") -> dict:
    return {"prompt": f"{prompt} --seed {seed} --frames 8 --steps 10", "width": 64, "height": 64}


async def ephemeral_reply(fake, interaction):  # type: ignore[no-untyped-def]
    """The text of an ephemeral answer, whether sent as the response or as a follow-up."""

    def check():  # type: ignore[no-untyped-def]
        followups = fake.followups(interaction)
        if followups and followups[-1].flags & 64:
            return followups[-1].content or followups[-1].embeds
        data = interaction.response_data or {}
        if interaction.response_type == 4 and data.get("flags", 0) & 64:
            return data.get("content") or data.get("embeds")
        return None

    return await fake.wait_until(check, what="an ephemeral reply")


async def test_history_pages_and_rerun_reproduces(fake_discord, manager, tmp_path) -> None:
    fake = fake_discord
    settings = make_settings(tmp_path, limits={"history_page_size": 1})
    async with fake.run_bot(make_bot(settings, manager)):
        first = await wait_for_result(
            fake, await fake.run_slash_command("video", video_options(1, "first"))
        )
        await wait_for_result(
            fake, await fake.run_slash_command("video", video_options(2, "second"))
        )
        first_id = int(custom_ids(first)[0].split(":")[2])

        history = await fake.run_slash_command("history", {})
        embeds = await ephemeral_reply(fake, history)
        assert "second" in embeds[0]["description"] and "first" not in embeds[0]["description"]
        assert "page 1 of 2" in embeds[0]["footer"]["text"]
        assert "[result](https://discord.com/channels/" in embeds[0]["description"]
        page = fake.original_response(history)
        older = await fake.click_button(page, custom_ids(page)[1])
        await fake.wait_for_response(older)
        page = fake.original_response(history)
        assert "first" in page.embeds[0]["description"]
        # The page is ephemeral: no other member sees it, so none can press its buttons.
        assert not fake.visible_to(page, fake.other_user)
        with pytest.raises(LookupError, match="ephemeral"):
            await fake.click_button(page, custom_ids(page)[0], user=fake.other_user)

        rerun = await wait_for_result(
            fake, await fake.run_slash_command("rerun", {"job": first_id})
        )
        original, _ = decode_attachment(first, tmp_path)
        again, _ = decode_attachment(rerun, tmp_path)
        assert np.array_equal(original, again)  # same params, same seed, same encoder


async def test_moderators_control_models_limits_and_blocks(fake_discord, manager, tmp_path) -> None:
    fake = fake_discord
    bob = fake.other_user
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        # members without Manage Server are told what they need
        denied = await fake.run_slash_command("models list", {}, user=bob)
        assert "needs the Manage Server permission" in await ephemeral_reply(fake, denied)

        listing = await fake.run_slash_command("models list", {})
        text = (await ephemeral_reply(fake, listing))[0]["description"]
        assert "tiny_t2v" in text and "default" in text

        default = await fake.run_slash_command("models default", {"model": "tiny_animatediff"})
        assert "tiny_animatediff" in await ephemeral_reply(fake, default)
        made = await wait_for_result(fake, await fake.run_slash_command("video", video_options(3)))
        fields = {f["name"]: f["value"] for f in made.embeds[0]["fields"]}
        assert fields["Model"] == "tiny_animatediff"

        unload = await fake.run_slash_command("models unload", {"model": "tiny_animatediff"})
        assert "Unloaded" in await ephemeral_reply(fake, unload)
        assert not bot.manager.is_loaded("tiny_animatediff")
        load = await fake.run_slash_command("models load", {"model": "tiny_animatediff"})
        assert "Loaded **tiny_animatediff**" in await ephemeral_reply(fake, load)

        block = await fake.run_slash_command("block", {"member": bob, "reason": "spam"})
        await ephemeral_reply(fake, block)
        refused = await fake.run_slash_command("video", video_options(4), user=bob)
        assert "blocked you" in await ephemeral_reply(fake, refused)
        assert await bot.store.count_history(bob.id, fake.guild.id) == 0
        await ephemeral_reply(fake, await fake.run_slash_command("unblock", {"member": bob}))

        limits = await fake.run_slash_command("limits", {"max_queued": 1})
        assert "at most **1** job(s)" in await ephemeral_reply(fake, limits)

        audit = await fake.run_slash_command("audit", {})
        log = (await ephemeral_reply(fake, audit))[0]["description"]
        for action in (
            "limits",
            "unblock",
            "block",
            "models.load",
            "models.unload",
            "models.default",
        ):
            assert f"**{action}**" in log
        assert log.index("**limits**") < log.index("**models.default**")  # newest first


async def test_queue_cap_cancel_and_queue_listing(fake_discord, manager, tmp_path) -> None:
    fake = fake_discord
    settings = make_settings(
        tmp_path, limits={"max_queued_per_user": 1, "progress_interval_s": 0.2}
    )
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        slow = {"prompt": "slow --seed 1 --frames 16 --steps 50", "width": 128, "height": 128}
        first = await fake.run_slash_command("video", slow)
        await fake.wait_until(lambda: bot.executor.snapshot() or None)
        second = await fake.run_slash_command("video", video_options(5))
        assert "the limit is 1" in await ephemeral_reply(fake, second)

        other = await fake.run_slash_command("video", video_options(6), user=fake.other_user)
        await fake.wait_until(lambda: len(bot.executor.snapshot()) == 2 or None)
        listing = await fake.run_slash_command("queue show", {})
        text = (await ephemeral_reply(fake, listing))[0]["description"]
        assert "running" in text and "#1 in line" in text

        # bob may not cancel alice's job; alice may, with the button under the progress message
        running_id = bot.executor.snapshot()[0].id
        progress = await fake.wait_until(
            lambda: (
                (m := fake.original_response(first))
                and f"vb:cancel:{running_id}" in custom_ids(m)
                and m
            )
        )
        refused = await fake.click_button(progress, f"vb:cancel:{running_id}", user=fake.other_user)
        assert "is not one of your queued or running jobs" in await ephemeral_reply(fake, refused)
        await fake.click_button(progress, f"vb:cancel:{running_id}")
        cancelled = await wait_for_result(fake, first)
        assert "cancelled" in cancelled.content
        assert (await bot.store.get_job(running_id)).status == "cancelled"
        await wait_for_result(fake, other)  # the next member's job still runs
        await asyncio.sleep(0)


async def test_simultaneous_requests_cannot_slip_past_the_member_cap(
    fake_discord, manager, tmp_path
) -> None:
    fake = fake_discord
    settings = make_settings(
        tmp_path, limits={"max_queued_per_user": 2, "progress_interval_s": 0.2}
    )
    slow = {"prompt": "burst --frames 16 --steps 30", "width": 96, "height": 96}
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        burst = await asyncio.gather(*(fake.run_slash_command("video", slow) for _ in range(6)))
        await fake.wait_until(
            lambda: (
                sum(1 for i in burst if (f := fake.followups(i)) and f[-1].flags & 64) == 4 or None
            ),
            timeout=30,
        )
        assert await bot.store.count_history(fake.user.id, fake.guild.id) == 2
        assert len(bot.executor.snapshot()) == 2


async def test_every_synced_command_and_option_has_a_real_description(
    fake_discord, manager, tmp_path
) -> None:
    """discord.py registers an option without ``describe`` as "…": members would see that in the
    command picker. Checked on what the bot really synced to the fake Discord."""
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)):
        synced = [c for scope in fake.commands.values() for c in scope.values()]
    slash = [c for c in synced if c.get("type", 1) == 1]
    assert {c["name"] for c in slash} >= {"video", "edit", "upscale", "history", "unblock"}

    def undescribed(node: dict, path: str) -> list[str]:
        missing = [] if node.get("description", "").strip("…. ") else [path]
        for option in node.get("options", []):
            missing += undescribed(option, f"{path} {option['name']}")
        return missing

    assert [p for c in slash for p in undescribed(c, "/" + c["name"])] == []


async def test_models_list_shows_the_memory_plan_this_card_gets(
    fake_discord, tmp_path, monkeypatch
) -> None:
    """A moderator sees which memory plan each model gets on the bot's card, and why."""
    import dataclasses

    from bot.core.manager import ManagerOptions, ModelManager
    from bot.core.registry import REGISTRY
    from tests.conftest import _CACHE

    big = dataclasses.replace(
        REGISTRY["tiny_animatediff"], parameters=REGISTRY["wan2_1_14b"].parameters
    )
    monkeypatch.setitem(REGISTRY, "tiny_animatediff", big)
    monkeypatch.setattr("bot.core.manager.host_ram_gb", lambda: 64.0)
    manager = ModelManager(ManagerOptions(cache_dir=_CACHE))
    fake = fake_discord
    settings = make_settings(tmp_path, models={"vram_gb": 24})  # [models] vram_gb reaches it
    async with fake.run_bot(make_bot(settings, manager)):
        listing = await fake.run_slash_command("models list", {})
        text = (await ephemeral_reply(fake, listing))[0]["description"]
    block = text.split("**tiny_animatediff**", 1)[1].split("**", 1)[0]
    assert "plan: torchao_int8" in block and "of 24 GB" in block
    assert "plan:" not in text.split("**tiny_t2v**", 1)[1].split("**", 1)[0]  # no parameters
