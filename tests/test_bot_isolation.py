"""Members of one server never reach another server's work, admission holds under simultaneous
requests, and every kind of interaction answers when something breaks (issue 12).

Everything runs through the real discord.py client against the fake Discord, with a second server,
a direct-message channel and several members, on the tiny models.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bot_helpers import custom_ids, make_bot, make_settings, private_reply
from bot_helpers import wait_for_result as wait_for_job
from fake_discord import Upload

from bot.interactions import UNEXPECTED
from bot.lifecycle import JobStatus

pytest_plugins = ("fake_discord.fixtures",)

NOT_YOURS = "there is no job #{} you can use here"


async def wait_for_result(fake, interaction):  # type: ignore[no-untyped-def]
    """Generous: these tests are about who may do what, not speed, and CI machines are busy."""
    return await wait_for_job(fake, interaction, timeout=180)


def video_options(seed: int, prompt: str = "a boat", frames: int = 8) -> dict[str, Any]:
    return {
        "prompt": f"{prompt} --seed {seed} --frames {frames} --steps 10",
        "width": 64,
        "height": 64,
    }


def job_id_of(message) -> int:  # type: ignore[no-untyped-def]
    return int(next(c for c in custom_ids(message) if c.startswith("vb:reroll")).split(":")[2])


async def second_server(fake):  # type: ignore[no-untyped-def]
    """A server the bot is in where alice and bob are not members; carol moderates it."""
    carol = fake.add_user("carol", global_name="Carol")
    guild = await fake.add_guild("Other server", owner=carol, channels=("lobby",))
    return guild, guild.channel("lobby"), carol


# --- visibility -----------------------------------------------------------------------------------


async def test_another_server_cannot_reach_a_job_by_id(fake_discord, manager, tmp_path) -> None:
    """/rerun, /edit and /upscale from another server read exactly like a job that does not
    exist, even for that server's owner; the owner's own server still may."""
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        _guild_b, lobby, carol = await second_server(fake)
        result = await wait_for_result(
            fake, await fake.run_slash_command("video", video_options(1, "alice's secret"))
        )
        job_id = job_id_of(result)
        missing = job_id + 1000
        jobs_before = len(await bot.store.history(fake.user.id, fake.guild.id))

        for name, options in (
            ("rerun", {"job": job_id}),
            ("edit", {"operation": "reverse", "job": job_id}),
            ("upscale", {"job": job_id}),
        ):
            stolen = await fake.run_slash_command(name, options, user=carol, channel=lobby)
            text = await private_reply(fake, stolen)
            assert NOT_YOURS.format(job_id) in text, (name, text)
            assert "secret" not in text
            # ... the same words as for an id that was never used
            absent = await fake.run_slash_command(
                name, {**options, "job": missing}, user=carol, channel=lobby
            )
            assert (await private_reply(fake, absent)).replace(str(missing), str(job_id)) == text
        # nothing was posted publicly in the other server and no job was made there
        assert not [m for m in fake.messages_in(lobby) if m.attachments]
        assert await bot.store.history(carol.id, None) == []
        assert len(await bot.store.history(fake.user.id, fake.guild.id)) == jobs_before

        # bob, in alice's server, may rerun her public result: the new job is his
        rerun = await wait_for_result(
            fake, await fake.run_slash_command("rerun", {"job": job_id}, user=fake.other_user)
        )
        new_id = job_id_of(rerun)
        record = await bot.store.get_job(new_id)
        assert record is not None and record.user_id == fake.other_user.id
        assert record.guild_id == fake.guild.id and record.parent_id == job_id


async def test_direct_message_results_stay_their_owners(fake_discord, manager, tmp_path) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        dm = fake.dm_channel(fake.user)
        private = await wait_for_result(
            fake, await fake.run_slash_command("video", video_options(3, "dm only"), channel=dm)
        )
        job_id = job_id_of(private)
        assert (await bot.store.get_job(job_id)).guild_id is None
        # bob, in a server he shares with alice, cannot reach her DM job
        stolen = await fake.run_slash_command("rerun", {"job": job_id}, user=fake.other_user)
        assert NOT_YOURS.format(job_id) in await private_reply(fake, stolen)
        # alice herself can
        mine = await wait_for_result(fake, await fake.run_slash_command("rerun", {"job": job_id}))
        assert mine.attachments


async def test_a_queued_job_is_not_reachable_before_it_is_posted(
    fake_discord, manager, tmp_path
) -> None:
    """A job still queued or running has no public result yet: another member can neither rerun
    it nor cancel it; the queue listing hides others' prompts from non-moderators."""
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        slow = await fake.run_slash_command(
            "video",
            video_options(5, "long secret", frames=16)
            | {
                "width": 128,
                "height": 128,
                "prompt": "long secret --seed 5 --frames 16 --steps 40",
            },
        )
        job = await fake.wait_until(lambda: bot.executor.snapshot() and bot.executor.snapshot()[0])
        refused = await fake.run_slash_command("rerun", {"job": job.id}, user=fake.other_user)
        assert NOT_YOURS.format(job.id) in await private_reply(fake, refused)
        cancel = await fake.run_slash_command("queue cancel", {"job": job.id}, user=fake.other_user)
        assert "not one of your queued or running jobs" in await private_reply(fake, cancel)
        listing = await fake.run_slash_command("queue show", {}, user=fake.other_user)
        text = await private_reply(fake, listing)
        assert f"job **{job.id}**" in text and "secret" not in text
        assert job.control.cancelled is False
        bot.service.cancel(job.id)
        await wait_for_result(fake, slow)


async def test_queue_and_cancel_are_per_server(fake_discord, manager, tmp_path) -> None:
    """/queue show lists this server's jobs only; a moderator of another server can neither see
    nor cancel them."""
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        guild_b, lobby, carol = await second_server(fake)
        slow = {
            "prompt": "alice's plan --seed 1 --frames 16 --steps 40",
            "width": 128,
            "height": 128,
        }
        first = await fake.run_slash_command("video", slow)
        job = await fake.wait_until(lambda: bot.executor.snapshot() and bot.executor.snapshot()[0])

        listing = await fake.run_slash_command("queue show", {}, user=carol, channel=lobby)
        text = await private_reply(fake, listing)
        assert f"job **{job.id}**" not in text and "alice" not in text
        assert "0 job(s) here" in text

        cancel = await fake.run_slash_command(
            "queue cancel", {"job": job.id}, user=carol, channel=lobby
        )
        assert "not one of your queued or running jobs" in await private_reply(fake, cancel)
        clear = await fake.run_slash_command("queue clear", {}, user=carol, channel=lobby)
        await fake.wait_for_response(clear)
        assert not job.control.cancelled
        [cleared] = await bot.store.audit_log(guild_b.id)
        assert cleared.action == "queue.clear" and cleared.details["jobs"] == []

        # alice's own server's moderator (alice is an admin there) sees her job with its prompt
        mine = await fake.run_slash_command("queue show", {})
        assert "alice's plan" in await private_reply(fake, mine)
        bot.service.cancel(job.id)
        assert "cancelled" in (await wait_for_result(fake, first)).content
        assert guild_b.id != fake.guild.id


async def test_buttons_pressed_in_another_server_or_by_another_member(
    fake_discord, manager, tmp_path
) -> None:
    """Buttons act for the presser: Reroll and edits of a public result make the presser's job;
    the Cancel button refuses anyone but the owner (or a moderator of that server)."""
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        result = await wait_for_result(
            fake, await fake.run_slash_command("video", video_options(7))
        )
        job_id = job_id_of(result)
        pressed = await fake.click_button(result, f"vb:reverse:{job_id}", user=fake.other_user)
        edited = await wait_for_result(fake, pressed)
        edit_id = job_id_of(edited)
        record = await bot.store.get_job(edit_id)
        assert record is not None and record.user_id == fake.other_user.id
        assert record.parent_id == job_id


async def test_picture_jobs_never_leave_their_server(fake_discord, manager, tmp_path) -> None:
    """An image-to-video job made from alice's picture can be rerun in its own server by others
    once posted, never from another server: the picture is not reachable there. Nor through a
    rerun of one's own: bob's rerun of alice's job holds her picture, and rerunning that in
    another server (or a DM) is refused; alice herself may take her picture anywhere."""
    import io

    from PIL import Image

    fake = fake_discord
    settings = make_settings(
        tmp_path, models={"enabled": ["tiny_t2v", "tiny_ltx"], "default": "tiny_ltx"}
    )
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, "PNG")
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        _, lobby, carol = await second_server(fake)
        animated = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "video",
                {
                    "prompt": "it moves --seed 2",
                    "image": Upload("cat.png", buffer.getvalue(), "image/png"),
                },
            ),
        )
        job_id = job_id_of(animated)
        record = await bot.store.get_job(job_id)
        assert record is not None and record.params.get("image")
        stolen = await fake.run_slash_command("rerun", {"job": job_id}, user=carol, channel=lobby)
        assert NOT_YOURS.format(job_id) in await private_reply(fake, stolen)
        assert await bot.store.history(carol.id, None) == []

        bob = fake.other_user
        guild_b = fake.guilds[lobby.guild_id]
        await fake.add_member(bob, guild=guild_b)
        await fake.add_member(fake.user, guild=guild_b)
        his = job_id_of(
            await wait_for_result(
                fake, await fake.run_slash_command("rerun", {"job": job_id}, user=bob)
            )
        )
        assert (await bot.store.get_job(his)).params["image"] == record.params["image"]
        for channel in (lobby, fake.dm_channel(bob)):
            carried = await fake.run_slash_command("rerun", {"job": his}, user=bob, channel=channel)
            assert "can only be made again in that server" in await private_reply(fake, carried)
        assert [r.id for r in await bot.store.history(bob.id, None)] == [his]  # no new job
        hers = await wait_for_result(
            fake, await fake.run_slash_command("rerun", {"job": job_id}, channel=lobby)
        )
        assert (await bot.store.get_job(job_id_of(hers))).guild_id == guild_b.id


# --- admission ------------------------------------------------------------------------------------


async def test_simultaneous_requests_respect_the_cooldown(fake_discord, manager, tmp_path) -> None:
    """Five /video at once with a one-hour cooldown: exactly one is accepted."""
    fake = fake_discord
    settings = make_settings(tmp_path, limits={"cooldown_s": 3600, "max_queued_per_user": 10})
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        sent = await asyncio.gather(
            *(fake.run_slash_command("video", video_options(i)) for i in range(5))
        )
        refusals = []
        for interaction in sent:
            await fake.wait_until(
                lambda i=interaction: fake.followups(i) or fake.original_response(i) or None
            )
        await asyncio.sleep(0.5)
        for interaction in sent:
            followups = fake.followups(interaction)
            if followups and followups[-1].flags & 64:
                refusals.append(followups[-1].content)
        assert len(refusals) == 4, refusals
        assert all("slow down" in text for text in refusals)
        rows = await bot.store.history(fake.user.id, fake.guild.id)
        assert len(rows) == 1


async def test_direct_messages_follow_the_caps_or_are_off(fake_discord, manager, tmp_path) -> None:
    fake = fake_discord
    settings = make_settings(tmp_path, limits={"max_queued_per_user": 2})
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        dm = fake.dm_channel(fake.user)
        slow = {"prompt": "dm --seed 1 --frames 16 --steps 40", "width": 128, "height": 128}
        sent = [await fake.run_slash_command("video", slow, channel=dm) for _ in range(6)]
        await fake.wait_until(lambda: len(bot.executor.snapshot()) == 2 or None)
        texts = [await private_reply(fake, i) for i in sent[2:]]
        assert all("the limit is 2" in t for t in texts), texts
        assert bot.service.admission.active(None, fake.user.id) == 2
        for job in bot.executor.snapshot():
            bot.service.cancel(job.id)
        for interaction in sent[:2]:
            await wait_for_result(fake, interaction)

    off = make_settings(tmp_path / "off", limits={"direct_messages": "off"})
    async with fake.run_bot(make_bot(off, manager)) as bot:
        refused = await fake.run_slash_command(
            "video", video_options(1), channel=fake.dm_channel(fake.user)
        )
        assert "direct messages" in await private_reply(fake, refused)
        assert await bot.store.history(fake.user.id, None) == []


async def test_cap_is_per_server_and_zero_pauses(fake_discord, manager, tmp_path) -> None:
    """The per-member cap counts jobs per server; a server override of 0 pauses members there,
    not elsewhere; edits count against the cap."""
    fake = fake_discord
    settings = make_settings(tmp_path, limits={"max_queued_per_user": 1})
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        guild_b = await fake.add_guild("Second", owner=fake.other_user, channels=("lobby",))
        await fake.add_member(fake.user, guild=guild_b)
        lobby = guild_b.channel("lobby")
        slow = {"prompt": "slow --seed 1 --frames 16 --steps 40", "width": 128, "height": 128}
        here = await fake.run_slash_command("video", slow)
        await fake.wait_until(lambda: bot.executor.snapshot() or None)
        there = await fake.run_slash_command("video", video_options(2), channel=lobby)
        await fake.wait_until(lambda: len(bot.executor.snapshot()) == 2 or None)

        # an edit in the first server now counts against the cap there
        upload = Upload("clip.mp4", _tiny_mp4(tmp_path), "video/mp4")
        edit = await fake.run_slash_command("edit", {"operation": "reverse", "video": upload})
        assert "the limit is 1" in await private_reply(fake, edit)

        await bot.store.update_guild_settings(guild_b.id, max_queued_per_user=0)
        paused = await fake.run_slash_command(
            "video", video_options(3), channel=lobby, user=fake.other_user
        )
        assert "paused" in await private_reply(fake, paused)
        bot.service.cancel(bot.executor.snapshot()[0].id)
        await wait_for_result(fake, here)
        await wait_for_result(fake, there)


def _tiny_mp4(tmp_path) -> bytes:  # type: ignore[no-untyped-def]
    import numpy as np
    from PIL import Image

    from bot.core import media

    frames = [Image.fromarray(np.full((32, 32, 3), 10 * i, np.uint8)) for i in range(8)]
    path = tmp_path / "clip.mp4"
    media.encode(frames, path, fps=8)
    return path.read_bytes()


# --- every interaction answers --------------------------------------------------------------------


async def test_modal_with_an_out_of_range_edit_answers_and_cleans_up(
    fake_discord, manager, tmp_path
) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        result = await wait_for_result(
            fake, await fake.run_slash_command("video", video_options(4))
        )
        menu = await fake.run_message_command("Edit video", result)
        await fake.wait_for_response(menu)
        submitted = await fake.submit_modal(menu, {"command": "trim 50 60"})
        text = await private_reply(fake, submitted)
        assert "start_frame" in text and "got 50" in text and "❌" in text
        # no public placeholder is left behind
        original = fake.original_response(submitted)
        assert original is None or original.deleted
        edits = [
            r for r in await bot.store.history(fake.user.id, fake.guild.id) if r.kind == "edit"
        ]
        assert edits == [] or all(r.status is not JobStatus.RUNNING for r in edits)


async def test_an_unexpected_error_in_any_handler_reaches_the_member(
    fake_discord, manager, tmp_path, monkeypatch
) -> None:
    """A bug (not a refusal) inside a slash command, a button, a modal, a context menu and a reply
    command: the member gets a private apology, never a traceback, and the bot keeps serving."""
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        result = await wait_for_result(
            fake, await fake.run_slash_command("video", video_options(8))
        )
        job_id = job_id_of(result)

        def boom(*args: object, **kwargs: object) -> Any:
            raise RuntimeError("secret internal detail")

        with monkeypatch.context() as patch:
            patch.setattr(bot.service, "submit_generation", boom)
            patch.setattr(bot.service, "rerun", boom)
            patch.setattr(bot.service, "source_from_job", boom)

            slash = await fake.run_slash_command("video", video_options(9))
            assert UNEXPECTED in await private_reply(fake, slash)
            button = await fake.click_button(result, f"vb:reroll:{job_id}")
            assert UNEXPECTED in await private_reply(fake, button)
            menu = await fake.run_message_command("Edit video", result)
            await fake.wait_for_response(menu)
            modal = await fake.submit_modal(menu, {"command": "reverse"})
            assert UNEXPECTED in await private_reply(fake, modal)
            reply = await fake.send_message("reverse", reply_to=result, mentions=[fake.bot_user])
            answer = await fake.wait_for_message(
                lambda m: (
                    m.author.id == fake.bot_user.id
                    and (m.message_reference or {}).get("message_id") == str(reply.id)
                )
            )
            assert UNEXPECTED in answer.content and "secret" not in answer.content

        # the bot still serves everyone
        again = await wait_for_result(
            fake, await fake.run_slash_command("video", video_options(10), user=fake.other_user)
        )
        assert again.attachments
