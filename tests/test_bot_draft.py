"""Draft, then refine, end to end: ``/video quality:draft`` and ``--draft`` make a quick draft whose
result has a Refine button; Refine renders the same prompt and seed at full quality as a new job,
and goes through the one visibility rule like every button. The real discord.py bot on the tiny
models against the fake Discord."""

from __future__ import annotations

from typing import Any

from bot_helpers import custom_ids, make_bot, make_settings
from bot_helpers import wait_for_result as wait_for_job

pytest_plugins = ("fake_discord.fixtures",)

NOT_REACHABLE = "there is no job #{} you can use here"


async def wait_for_result(fake, interaction):  # type: ignore[no-untyped-def]
    """Generous: these tests are about what happens, not speed, and CI machines are busy."""
    return await wait_for_job(fake, interaction, timeout=180)


def job_of(message: Any) -> int:
    rerolls = [c for c in custom_ids(message) if c.startswith("vb:reroll")]
    assert rerolls, f"not a result: {message.content!r} {message.embeds}"
    return int(rerolls[0].split(":")[2])


def fields(message: Any) -> dict[str, str]:
    return {f["name"]: f["value"] for f in message.embeds[0]["fields"]}


async def private_reply(fake, interaction) -> str:  # type: ignore[no-untyped-def]
    """The text of the member-only answer (a follow-up after the defer)."""

    def check():  # type: ignore[no-untyped-def]
        followups = fake.followups(interaction)
        if followups and followups[-1].flags & 64:
            return followups[-1].content
        return None

    return str(await fake.wait_until(check, what="a private reply"))


async def test_a_draft_refines_into_the_full_video_with_the_same_seed(
    fake_discord, manager, tmp_path
) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        draft_message = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "video",
                {"prompt": "a paper boat --seed 5 --frames 8", "width": 64, "quality": "draft"},
            ),
        )
        draft_id = job_of(draft_message)
        # Refine comes first under a draft, then the usual buttons.
        assert custom_ids(draft_message)[:2] == [f"vb:refine:{draft_id}", f"vb:reroll:{draft_id}"]
        assert fields(draft_message)["Quality"].startswith("draft")

        refined_message = await wait_for_result(
            fake, await fake.click_button(draft_message, f"vb:refine:{draft_id}")
        )
        refined_id = job_of(refined_message)
        draft = await bot.store.get_job(draft_id)
        refined = await bot.store.get_job(refined_id)

    assert refined_id != draft_id
    assert draft is not None and refined is not None
    assert draft.params["quality"] == "draft" and refined.params["quality"] == "full"
    assert refined.seed == draft.seed == 5 and refined.parent_id == draft_id
    assert refined.params["prompt"] == draft.params["prompt"] == "a paper boat"
    assert refined.params["num_frames"] == 8 and refined.params["width"] == 64
    # A full result: no Refine, no draft label.
    assert not any(c.startswith("vb:refine") for c in custom_ids(refined_message))
    assert "Quality" not in fields(refined_message)
    # While it ran, its message said what Refine does and how long it should take.
    notes = [
        m.get("content") or ""
        for m in refined_message.history
        if "Refining draft" in (m.get("content") or "")
    ]
    assert notes, "the refine's progress never said what it does"
    assert f"Refining draft #{draft_id} at full quality:" in notes[0]
    assert " steps" in notes[0] and "about " in notes[0]


async def test_the_draft_flag_and_refine_of_a_result_that_is_no_draft(
    fake_discord, manager, tmp_path
) -> None:
    """``--draft`` in the prompt makes a draft too. A Refine button whose job is a full result (a
    stale or crafted custom id: the bot draws Refine under drafts only) says so and queues
    nothing."""
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        flagged = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "video", {"prompt": "rain on a window --draft --seed 3 --frames 8", "width": 64}
            ),
        )
        draft_id = job_of(flagged)
        assert f"vb:refine:{draft_id}" in custom_ids(flagged)
        record = await bot.store.get_job(draft_id)
        assert record is not None and record.params["quality"] == "draft"

        full = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "video", {"prompt": "a lighthouse --seed 4 --frames 8", "width": 64}
            ),
        )
        full_id = job_of(full)
        assert not any(c.startswith("vb:refine") for c in custom_ids(full))
        forge_button(full, "vb:reroll:", f"vb:refine:{full_id}")
        before = await bot.store.count_history(fake.user.id, fake.guild.id)
        pressed = await fake.click_button(full, f"vb:refine:{full_id}")
        answer = await private_reply(fake, pressed)
        assert f"job #{full_id} is not a draft" in answer and "full quality" in answer
        assert await bot.store.count_history(fake.user.id, fake.guild.id) == before


async def test_refine_follows_the_visibility_rule(fake_discord, manager, tmp_path) -> None:
    """A draft posted publicly in a server can be refined there by another member (the new job is
    theirs, with the draft's seed); a Refine that points at another server's draft reads like a
    job that does not exist, and queues nothing."""
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        carol = fake.add_user("carol", global_name="Carol")
        other = await fake.add_guild("Other server", owner=carol, channels=("lobby",))
        lobby = other.channel("lobby")

        draft_message = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "video",
                {"prompt": "alice's boat --seed 8 --frames 8", "width": 64, "quality": "draft"},
            ),
        )
        draft_id = job_of(draft_message)

        # bob, in the same server, refines alice's public draft: the job is bob's.
        by_bob = await wait_for_result(
            fake,
            await fake.click_button(draft_message, f"vb:refine:{draft_id}", user=fake.other_user),
        )
        bobs = await bot.store.get_job(job_of(by_bob))
        assert bobs is not None and bobs.user_id == fake.other_user.id
        assert bobs.seed == 8 and bobs.params["quality"] == "full"
        assert bobs.guild_id == fake.guild.id and bobs.parent_id == draft_id

        # carol's own draft in her server, its Refine pointed at alice's draft.
        carols_message = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "video",
                {"prompt": "carol's boat --seed 9 --frames 8", "width": 64, "quality": "draft"},
                user=carol,
                channel=lobby,
                guild=other,
            ),
        )
        carols_id = job_of(carols_message)
        forge_button(carols_message, f"vb:refine:{carols_id}", f"vb:refine:{draft_id}")
        jobs_before = len(await bot.store.history(carol.id, other.id))
        pressed = await fake.click_button(carols_message, f"vb:refine:{draft_id}", user=carol)
        answer = await private_reply(fake, pressed)
        assert NOT_REACHABLE.format(draft_id) in answer
        assert len(await bot.store.history(carol.id, other.id)) == jobs_before


def forge_button(message: Any, prefix: str, custom_id: str) -> None:
    """Point the first button whose id starts with ``prefix`` at ``custom_id``, as a stale or
    crafted message would: the bot must check what the id names, not trust that it drew it."""
    for row in message.components:
        for component in row.get("components", []):
            if component.get("custom_id", "").startswith(prefix):
                component["custom_id"] = custom_id
                return
    raise LookupError(prefix)


async def test_a_wan_draft_runs_on_its_fused_lora_partner_and_refines_on_wan(
    fake_discord, manager, tmp_path
) -> None:
    """The tiny twin of Wan 2.1 14B's draft: the partner with lightx2v's LoRA fused in renders the
    draft; Refine renders on the model the member chose."""
    fake = fake_discord
    settings = make_settings(tmp_path, models={"enabled": ["tiny_wan"], "default": "tiny_wan"})
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        draft_message = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "video", {"prompt": "a kite over dunes --seed 3 --draft", "model": "tiny_wan"}
            ),
        )
        draft_id = job_of(draft_message)
        shown = fields(draft_message)
        refined_message = await wait_for_result(
            fake, await fake.click_button(draft_message, f"vb:refine:{draft_id}")
        )
        refined = await bot.store.get_job(job_of(refined_message))
        draft = await bot.store.get_job(draft_id)
    assert draft is not None and refined is not None
    assert draft.params["model"] == "tiny_wan" and draft.params["quality"] == "draft"
    # The embed says what the draft spared: guidance, at tiny Wan's 4 steps.
    assert shown["Quality"] == (
        "draft (4 steps without guidance instead of 4 steps with guidance): "
        "press Refine for the full video"
    )
    assert "tiny_wan_lightx2v" in shown["Model"]
    assert refined.params["model"] == "tiny_wan" and refined.params["quality"] == "full"
    assert "tiny_wan_lightx2v" not in fields(refined_message)["Model"]
