"""``/help`` and presets end to end on the fake Discord: what a member reaches for. ``/help`` is
private and reads this server's models, limits and presets; presets are added by moderators only,
checked when added, fill in only what the member left out, and never cross servers."""

from __future__ import annotations

from typing import Any

from bot_helpers import custom_ids, make_bot, make_settings, private_reply, wait_for_result

pytest_plugins = ("fake_discord.fixtures",)


async def job_params(bot: Any, message: Any) -> dict[str, Any]:
    job_id = int(next(c for c in custom_ids(message) if c.startswith("vb:reroll")).split(":")[2])
    record = await bot.store.get_job(job_id)
    assert record is not None
    return dict(record.params)


WATERCOLOUR = {
    "name": "watercolour",
    "suffix": "soft watercolour painting",
    "negative": "blurry",
    "steps": 10,
    "frames": 8,
    "size": "64x64",
}


async def test_help_is_private_and_says_this_servers_models_limits_and_presets(
    fake_discord, manager, tmp_path
) -> None:
    fake = fake_discord
    settings = make_settings(tmp_path, limits={"max_queued_per_user_total": 5})
    async with fake.run_bot(make_bot(settings, manager)):
        asked = await fake.run_slash_command("help", {}, user=fake.other_user)
        text = await private_reply(fake, asked)
        for command in ("/video", "/edit", "/preset add", "/preset list", "/history", "/help"):
            assert f"`{command}`" in text, command
        assert "**tiny_t2v** (default)" in text and "tiny_animatediff" in text
        assert "Upscaler: tiny_v2v" in text
        assert "At most **3** job(s) queued or running here" in text
        assert "at most 5 across all servers" in text
        assert "None yet: moderators add them" in text
        assert "!trim 1s 3s" in text  # the examples use this bot's prefix
        assert "!extend the boat sails on" in text  # whole: the field's 1024 characters hold them
        assert asked.response_data["flags"] & 64  # only the member who asked sees it

        await private_reply(fake, await fake.run_slash_command("limits", {"max_queued": 1}))
        await private_reply(fake, await fake.run_slash_command("preset add", WATERCOLOUR))
        again = await private_reply(fake, await fake.run_slash_command("help", {}))
        assert "At most **1** job(s)" in again
        assert "watercolour" in again and "None yet" not in again


async def test_presets_are_moderators_checked_applied_under_the_members_options(
    fake_discord, manager, tmp_path
) -> None:
    fake = fake_discord
    bob = fake.other_user
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        denied = await fake.run_slash_command("preset add", WATERCOLOUR, user=bob)
        assert "needs the Manage Server permission" in await private_reply(fake, denied)

        bad = [
            ({"name": "Bad Name!", "suffix": "x"}, "is not a preset name"),
            ({"name": "empty"}, "preset: is empty"),
            ({"name": "odd", "size": "65x64", "model": "tiny_t2v"}, "width: must be a multiple"),
            ({"name": "odd", "size": "big"}, "size: must be WIDTHxHEIGHT"),
            ({"name": "odd", "model": "tiny_v2v"}, "tiny_v2v is not a model this bot generates"),
        ]
        for options, message in bad:
            refused = await private_reply(fake, await fake.run_slash_command("preset add", options))
            assert message in refused, (options, refused)
        listed = await private_reply(fake, await fake.run_slash_command("preset list", {}))
        assert "Presets here: 0" in listed  # nothing refused was saved

        added = await private_reply(fake, await fake.run_slash_command("preset add", WATERCOLOUR))
        assert "Added the preset **watercolour**" in added
        typing = await fake.run_autocomplete(
            "video", {"prompt": "x", "preset": "water"}, focused="preset", user=bob
        )
        await fake.wait_until(lambda: typing.autocomplete_choices is not None or None)
        assert [c["value"] for c in typing.autocomplete_choices] == ["watercolour"]

        # bob's prompt gets the suffix; the preset's negative prompt, steps, frames and size
        # fill in what he left out, and his own --seed stays his.
        made = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "video", {"prompt": "a paper boat --seed 3", "preset": "watercolour"}, user=bob
            ),
        )
        params = await job_params(bot, made)
        assert params["prompt"] == "a paper boat, soft watercolour painting"
        assert params["negative_prompt"] == "blurry" and params["seed"] == 3
        assert (params["num_inference_steps"], params["num_frames"]) == (10, 8)
        assert (params["width"], params["height"]) == (64, 64)
        # his own option and flag win over the preset's
        mine = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "video",
                {"prompt": "a kite --neg dark", "preset": "watercolour", "width": 32},
                user=bob,
            ),
        )
        params = await job_params(bot, mine)
        assert params["width"] == 32 and params["negative_prompt"] == "dark"

        # blocked words are checked on the prompt the preset makes, and on /preset add
        bot.settings.moderation.blocked_words = ["watercolour"]
        refused = await fake.run_slash_command(
            "video", {"prompt": "a lake", "preset": "watercolour"}, user=bob
        )
        assert "the word 'watercolour' is not allowed" in await private_reply(fake, refused)
        refused = await fake.run_slash_command(
            "preset add", {"name": "wet", "suffix": "a WATERCOLOUR sky"}
        )
        assert "the word 'watercolour' is not allowed" in await private_reply(fake, refused)
        bot.settings.moderation.blocked_words = []

        unknown = await fake.run_slash_command(
            "video", {"prompt": "a lake", "preset": "oil"}, user=bob
        )
        assert "no preset 'oil'; its presets: watercolour" in await private_reply(fake, unknown)

        denied = await fake.run_slash_command("preset remove", {"name": "watercolour"}, user=bob)
        assert "needs the Manage Server permission" in await private_reply(fake, denied)
        removed = await fake.run_slash_command("preset remove", {"name": "watercolour"})
        assert "Removed the preset **watercolour**" in await private_reply(fake, removed)
        audit = await private_reply(fake, await fake.run_slash_command("audit", {}))
        assert "**preset.remove**" in audit and "**preset.add**" in audit


async def test_presets_never_cross_servers(fake_discord, manager, tmp_path) -> None:
    fake = fake_discord
    carol = fake.add_user("carol", global_name="Carol")
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        other = await fake.add_guild("Other server", owner=carol, channels=("lobby",))
        lobby = other.channel("lobby")
        await private_reply(fake, await fake.run_slash_command("preset add", WATERCOLOUR))

        listed = await fake.run_slash_command("preset list", {}, user=carol, channel=lobby)
        assert "Presets here: 0" in await private_reply(fake, listed)
        typing = await fake.run_autocomplete(
            "video", {"prompt": "x", "preset": ""}, focused="preset", user=carol, channel=lobby
        )
        await fake.wait_until(lambda: typing.autocomplete_choices is not None or None)
        assert typing.autocomplete_choices == []
        used = await fake.run_slash_command(
            "video", {"prompt": "a lake", "preset": "watercolour"}, user=carol, channel=lobby
        )
        assert "this server has no preset 'watercolour'" in await private_reply(fake, used)
        removed = await fake.run_slash_command(
            "preset remove", {"name": "watercolour"}, user=carol, channel=lobby
        )
        assert "this server has no preset 'watercolour'" in await private_reply(fake, removed)

        # carol's own preset of the same name is hers; the first server's is untouched
        mine = {"name": "watercolour", "suffix": "thick oil paint"}
        added = await fake.run_slash_command("preset add", mine, user=carol, channel=lobby)
        assert "Added the preset **watercolour**" in await private_reply(fake, added)
        first = await bot.store.get_preset(fake.guild.id, "watercolour")
        second = await bot.store.get_preset(other.id, "watercolour")
        assert first is not None and first.prompt_suffix == "soft watercolour painting"
        assert second is not None and second.prompt_suffix == "thick oil paint"
