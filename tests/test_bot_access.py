"""Who may reach and control what (issue 22): private threads, the bot's owners against one
server's moderators, the servers the bot stays in, and the Edit video form's permission check.

Everything runs through the real discord.py client against the fake Discord, whose threads follow
Discord's rules (a private thread is seen by its members and by Manage Threads only).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from bot_helpers import custom_ids, make_bot, make_settings, private_reply, wait_for_result
from fake_discord import Upload

from bot.config import ConfigError, load_settings
from bot.interactions import OWNERS_ONLY

pytest_plugins = ("fake_discord.fixtures",)

NOT_YOURS = "there is no job #{} you can use here"


def video_options(seed: int, prompt: str = "a boat") -> dict[str, Any]:
    return {"prompt": f"{prompt} --seed {seed} --frames 8 --steps 10", "width": 64, "height": 64}


def job_id_of(message) -> int:  # type: ignore[no-untyped-def]
    return int(next(c for c in custom_ids(message) if c.startswith("vb:reroll")).split(":")[2])


def edit_id_of(message) -> int:  # type: ignore[no-untyped-def]
    return int(next(c for c in custom_ids(message) if c.startswith("vb:upscale")).split(":")[2])


# --- private threads ------------------------------------------------------------------------------


async def test_a_private_threads_result_reaches_only_its_members(
    fake_discord, manager, tmp_path
) -> None:
    """discord.py gives a thread its parent's permissions, so a member who sees #general but is not
    in a private thread started there would reach its jobs by id. Only the thread's members (asked
    of Discord each time) and Manage Threads may; anyone else reads "no such job"."""
    fake = fake_discord
    bob = fake.other_user
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        thread = await fake.add_thread("alice's plans", members=[fake.bot_user])
        guild = bot.get_guild(fake.guild.id)
        await fake.wait_until(lambda: guild.get_thread(thread.id), what="the bot caching it")
        result = await wait_for_result(
            fake, await fake.run_slash_command("video", video_options(1, "secret"), channel=thread)
        )
        job_id = job_id_of(result)
        assert (await bot.store.get_job(job_id)).channel_id == thread.id
        # Discord offers bob nothing inside the thread ...
        with pytest.raises(ValueError, match="cannot see"):
            await fake.run_slash_command("rerun", {"job": job_id}, user=bob, channel=thread)

        # ... and the bot refuses him its job from the parent channel, by any command
        for name, options in (("rerun", {"job": job_id}), ("edit", {"operation": "reverse"})):
            refused = await fake.run_slash_command(name, {**options, "job": job_id}, user=bob)
            assert NOT_YOURS.format(job_id) in await private_reply(fake, refused), name
        asked = fake.requests_for("GET /channels/{channel_id}/thread-members/{user_id}")
        assert asked and asked[-1].status == 404  # Discord said: not a member
        assert await bot.store.history(bob.id, fake.guild.id) == []

        # a member with Manage Threads sees every private thread
        keepers = await fake.add_role("Thread keepers", "manage_threads")
        dave = fake.add_user("dave")
        await fake.add_member(dave, roles=[keepers])
        edited = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "edit", {"operation": "reverse", "job": job_id}, user=dave
            ),
        )
        assert (await bot.store.get_job(edit_id_of(edited))).user_id == dave.id

        # bob once added to the thread may; removed again, he may not
        await fake.add_thread_member(thread, bob)
        mine = await wait_for_result(
            fake,
            await fake.run_slash_command("edit", {"operation": "reverse", "job": job_id}, user=bob),
        )
        assert (await bot.store.get_job(edit_id_of(mine))).user_id == bob.id
        await fake.remove_thread_member(thread, bob)
        again = await fake.run_slash_command("rerun", {"job": job_id}, user=bob)
        assert NOT_YOURS.format(job_id) in await private_reply(fake, again)


# --- the bot's owners and one server's moderators -------------------------------------------------


async def test_models_load_unload_and_workers_belong_to_the_bots_owners(
    fake_discord, manager, tmp_path
) -> None:
    """Another server's owner (a moderator there) keeps that server's settings but cannot load or
    unload models for everyone, nor see the workers; an id in ``[discord] owner_ids`` can."""
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        carol = fake.add_user("carol")
        guild_b = await fake.add_guild("Carol's server", owner=carol, channels=("lobby",))
        lobby = guild_b.channel("lobby")
        loaded_before = bot.manager.is_loaded("tiny_t2v")

        for name in ("models load", "models unload"):
            refused = await fake.run_slash_command(
                name, {"model": "tiny_t2v"}, user=carol, channel=lobby
            )
            assert OWNERS_ONLY in await private_reply(fake, refused), name
        assert bot.manager.is_loaded("tiny_t2v") == loaded_before
        assert await bot.store.audit_log(guild_b.id) == []
        typing = await fake.run_autocomplete(
            "models load", {"model": "tiny_t2v", "worker": ""}, "worker", user=carol, channel=lobby
        )
        await fake.wait_for_response(typing)
        assert typing.autocomplete_choices == []
        listing = await fake.run_slash_command("models list", {}, user=carol, channel=lobby)
        text = await private_reply(fake, listing)
        assert "tiny_t2v" in text and "Workers" not in text and "`local`" not in text
        # her own server's setting is hers
        default = await fake.run_slash_command(
            "models default", {"model": "tiny_animatediff"}, user=carol, channel=lobby
        )
        assert "tiny_animatediff" in await private_reply(fake, default)

        bot.settings.discord.owner_ids.append(carol.id)
        typing = await fake.run_autocomplete(
            "models load", {"model": "tiny_v2v", "worker": ""}, "worker", user=carol, channel=lobby
        )
        await fake.wait_for_response(typing)
        assert [c["value"] for c in typing.autocomplete_choices] == ["local"]
        unload = await fake.run_slash_command(
            "models unload", {"model": "tiny_v2v"}, user=carol, channel=lobby
        )
        assert "tiny_v2v" in await private_reply(fake, unload)
        listing = await fake.run_slash_command("models list", {}, user=carol, channel=lobby)
        assert "`local`" in await private_reply(fake, listing)
        assert [e.action for e in await bot.store.audit_log(guild_b.id)] == [
            "models.unload",
            "models.default",
        ]


# --- the servers the bot stays in -----------------------------------------------------------------


async def test_the_bot_leaves_servers_outside_allowed_guilds(
    fake_discord, manager, tmp_path, caplog
) -> None:
    """At start and when invited, a server not in ``allowed_guilds`` is left and logged; if
    Discord refuses the leave, its commands are still refused."""
    fake = fake_discord
    carol = fake.add_user("carol")
    early = await fake.add_guild("Early stranger", owner=carol)
    settings = make_settings(tmp_path, discord={"allowed_guilds": [fake.guild.id]})
    caplog.set_level(logging.WARNING, logger="bot.client")
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        await fake.wait_for_request(
            "DELETE /users/@me/guilds/{guild_id}", lambda r: r.params["guild_id"] == str(early.id)
        )
        await fake.wait_until(lambda: bot.get_guild(early.id) is None or None)
        assert bot.get_guild(fake.guild.id) is not None
        assert f"leaving server Early stranger ({early.id}" in caplog.text

        late = await fake.add_guild("Late stranger", owner=carol, channels=("lobby",))
        await fake.wait_for_request(
            "DELETE /users/@me/guilds/{guild_id}", lambda r: r.params["guild_id"] == str(late.id)
        )
        await fake.wait_until(lambda: bot.get_guild(late.id) is None or None)

        # Discord refuses the leave: the bot stays, and refuses to serve there
        fake.fail_next(
            "DELETE /users/@me/guilds/*", status=403, code=50001, message="Missing Access"
        )
        stuck = await fake.add_guild("Stuck stranger", owner=carol, channels=("lobby",))
        await fake.wait_until(
            lambda: "could not leave server Stuck stranger" in caplog.text or None
        )
        refused = await fake.run_slash_command(
            "video", video_options(1), user=carol, channel=stuck.channel("lobby")
        )
        assert "not available in this server" in await private_reply(fake, refused)
        assert await bot.store.history(carol.id, stuck.id) == []


def test_synced_guilds_must_be_allowed(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A guild to sync commands to that the bot would leave at once is a config mistake."""
    config = tmp_path / "bot.toml"
    config.write_text("[discord]\nallowed_guilds = [1]\nguild_ids = [1, 2]\n")
    monkeypatch.setenv("VIDEOBOT_CONFIG", str(config))
    with pytest.raises(ConfigError, match=r"\[discord\] guild_ids: 2 not in allowed_guilds"):
        load_settings()


# --- the Edit video form --------------------------------------------------------------------------


async def test_the_edit_video_form_checks_the_channel_permissions(
    fake_discord, manager, tmp_path
) -> None:
    """Where the bot cannot post a video, the menu says so instead of opening the form, and a
    form submitted after the permission went away is refused before any edit is made."""
    from test_bot_isolation import _tiny_mp4

    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        clip = await fake.send_message(
            "my clip",
            attachments=[Upload("clip.mp4", _tiny_mp4(tmp_path), "video/mp4")],
            mentions=[fake.bot_user],
        )
        await fake.deny_permission(fake.channel, "attach_files")
        menu = await fake.run_message_command("Edit video", clip)
        assert "missing the Attach Files permission" in await private_reply(fake, menu)
        assert menu.modal is None

        await fake.allow_permission(fake.channel, "attach_files")
        menu = await fake.run_message_command("Edit video", clip)
        await fake.wait_for_response(menu)
        assert menu.modal is not None
        await fake.deny_permission(fake.channel, "attach_files")
        submitted = await fake.submit_modal(menu, {"command": "reverse"})
        assert "missing the Attach Files permission" in await private_reply(fake, submitted)
        assert await bot.store.history(fake.user.id, fake.guild.id) == []


async def test_a_team_owned_applications_admins_and_developers_are_owners(
    fake_discord, manager, tmp_path
) -> None:
    """For a team's application the owners are its admins and developers (discord.py's
    ``is_owner`` reading the application info), not its read-only members nor the server's
    owner."""
    fake = fake_discord
    bob, carol = fake.other_user, fake.add_user("carol")
    fake.application_team = {bob: "admin", carol: "read_only"}
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)):
        await fake.add_member(carol)
        for user in (fake.user, carol):  # alice owns the server, carol only reads the team
            refused = await fake.run_slash_command(
                "models unload", {"model": "tiny_v2v"}, user=user
            )
            assert OWNERS_ONLY in await private_reply(fake, refused), user.username
        allowed = await fake.run_slash_command("models unload", {"model": "tiny_v2v"}, user=bob)
        assert "tiny_v2v" in await private_reply(fake, allowed)
        # an owner who does not moderate this server may still read the models and workers
        listing = await fake.run_slash_command("models list", {}, user=bob)
        assert "`local`" in await private_reply(fake, listing)
