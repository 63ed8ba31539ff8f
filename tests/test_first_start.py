"""A server owner's first start: a new Discord application (no Message Content intent), the real
``videobot run`` and the mistakes a newcomer makes, each answered by one clear line.

- Without the intent the bot still serves what Discord still delivers content for: messages that
  mention it (a reply to the bot's own video pings it), and DMs. A plain prefix reply to a
  member's message arrives empty, and the fake proves it: it strips content as Discord does.
- Asking for the intent while the portal has it off: Discord closes with 4014; the bot says how
  to fix it.
- A wrong token, no network: one line each. A good start says who logged in, where, with which
  models and which config file; SIGTERM says what the shutdown waits for.

The ``videobot run`` cases start the real command through ``fake_discord.launch`` (see
tests/test_bot_process.py), since a process's exit status and output are what an owner sees.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
from pathlib import Path
from typing import Any

import discord
import pytest
from bot_helpers import (
    TINY_MODELS,
    decode_attachment,
    has_video,
    make_bot,
    make_settings,
    wait_for_result,
)
from fake_discord import FakeDiscord, Upload
from fake_discord.gateway import MESSAGE_CONTENT, strip_message_content
from process_helpers import environment, start, write_config

from bot.core import GenerationParams
from bot.core.engine import GenerationEngine

pytest_plugins = ("fake_discord.fixtures",)

VIDEO = {"prompt": "a red car --seed 3 --frames 8 --steps 10", "width": 64, "height": 64}


def clip(tmp_path: Path, manager: Any) -> bytes:
    result = GenerationEngine(manager).generate_video(
        GenerationParams(
            prompt="x",
            model="tiny_t2v",
            seed=5,
            num_frames=12,
            width=64,
            height=48,
            num_inference_steps=10,
        )
    )
    path = tmp_path / "clip.mp4"
    result.save_as_video(path)
    return path.read_bytes()


# --------------------------------------------------------------------------------------------
# the fake is as strict as Discord


def test_fake_strips_content_as_discord_does() -> None:
    bot_id, member = 1, {"id": "2"}
    video = {"id": "9", "author": member, "content": "look", "attachments": [{"id": "5"}]}
    message = {
        "guild_id": "7",
        "author": member,
        "content": "!trim 2 8",
        "mentions": [],
        "embeds": [{"title": "x"}],
        "components": [{"type": 1}],
        "poll": {"question": {"text": "?"}},
        "referenced_message": video,
    }
    plain = strip_message_content("MESSAGE_CREATE", message, 0, bot_id)
    assert (plain["content"], plain["embeds"], plain["components"]) == ("", [], [])
    assert "poll" not in plain
    assert plain["referenced_message"]["attachments"] == []  # a message of its own

    mentioned = strip_message_content(
        "MESSAGE_CREATE", {**message, "mentions": [{"id": "1"}]}, 0, bot_id
    )
    assert mentioned["content"] == "!trim 2 8"
    assert mentioned["referenced_message"]["attachments"] == []  # the member's, not mentioning
    own = {**video, "author": {"id": "1"}}
    reply_to_bot = strip_message_content(
        "MESSAGE_CREATE", {**message, "referenced_message": own}, 0, bot_id
    )
    assert reply_to_bot["referenced_message"]["attachments"] == [{"id": "5"}]

    dm = strip_message_content("MESSAGE_CREATE", {**message, "guild_id": None}, 0, bot_id)
    assert dm["content"] == "!trim 2 8" and dm["referenced_message"]["attachments"]
    granted = strip_message_content("MESSAGE_CREATE", message, MESSAGE_CONTENT, bot_id)
    assert granted["content"] == "!trim 2 8"


async def test_intent_the_portal_has_not_enabled_is_refused_with_4014(
    fake_discord: FakeDiscord, manager: Any, tmp_path: Path
) -> None:
    fake = fake_discord
    assert not fake.privileged_intents & MESSAGE_CONTENT  # a new application
    settings = make_settings(tmp_path, discord={"message_content_intent": True})
    with pytest.raises(discord.PrivilegedIntentsRequired):
        async with fake.run_bot(make_bot(settings, manager), ready_timeout=20):
            pass
    assert fake.gateway.connections[-1].close_code == 4014


# --------------------------------------------------------------------------------------------
# the bot without the intent


async def test_without_the_intent_mentions_and_dms_still_work(
    fake_discord: FakeDiscord, manager: Any, tmp_path: Path
) -> None:
    fake = fake_discord
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)):
        [identify] = fake.frames(direction="recv", op=2)
        assert not identify.d["intents"] & MESSAGE_CONTENT

        # Slash commands and a reply to the bot's own video (the reply pings the bot).
        result = await wait_for_result(
            fake, await fake.run_slash_command("video", VIDEO), timeout=240
        )
        await fake.send_message("!reverse", reply_to=result)
        reversed_ = await fake.wait_until(
            lambda: next(
                (m for m in fake.messages_by_bot() if has_video(m) and m.type == 19), None
            ),
            timeout=240,
            what="the reversed video",
        )
        assert decode_attachment(reversed_, tmp_path)[0].shape[0] == 8

        # A plain prefix reply to a member's video arrives empty: the bot cannot see it.
        upload = await fake.send_message(
            "look", attachments=[Upload("clip.mp4", clip(tmp_path, manager), "video/mp4")]
        )
        unseen = await fake.send_message("!trim 2 8", reply_to=upload)
        [created] = [f for f in fake.dispatched("MESSAGE_CREATE") if f.d["id"] == str(unseen.id)]
        assert created.d["content"] == ""
        # Mentioning the bot delivers the command, but the member's files stay hidden: it says so.
        await fake.send_message("trim 2 8", reply_to=upload, mentions=[fake.bot_user])
        hint = await fake.wait_until(
            lambda: next(
                (m for m in fake.messages_by_bot() if "Message Content" in m.content), None
            ),
            what="the hidden-files hint",
        )
        assert "Edit video" in hint.content
        answered = {(m.message_reference or {}).get("message_id") for m in fake.messages_by_bot()}
        assert str(unseen.id) not in answered and unseen.id not in answered

        # In a DM everything is delivered: a prefix reply to a member's own video works.
        dm = fake.dm_channel(fake.user)
        posted = await fake.send_message(
            "mine",
            channel=dm,
            attachments=[Upload("clip.mp4", clip(tmp_path, manager), "video/mp4")],
        )
        await fake.send_message("!trim 2 8", channel=dm, reply_to=posted)
        trimmed = await fake.wait_until(
            lambda: next((m for m in fake.messages_in(dm) if m.author.bot and has_video(m)), None),
            timeout=240,
            what="the trimmed video in the DM",
        )
        assert decode_attachment(trimmed, tmp_path)[0].shape[0] == 6


# --------------------------------------------------------------------------------------------
# `videobot run`: what the owner reads


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("case", "code", "line"),
    [
        (
            "wrong token",
            2,
            "videobot run: error: Discord refused the token in DISCORD_TOKEN (401 Unauthorized): "
            "copy it again from https://discord.com/developers/applications",
        ),
        (
            "intent off in the portal",
            2,
            "videobot run: error: Discord refused the Message Content intent (gateway close 4014): "
            "enable 'Message Content Intent' under Bot → Privileged Gateway Intents in the "
            "developer portal, or set message_content_intent = false",
        ),
        ("no network", 1, "videobot run: error: cannot reach Discord (ClientConnectorError"),
    ],
)
async def test_run_failures_are_one_line(
    fake_discord: FakeDiscord, model_cache: Path, tmp_path: Path, case: str, code: int, line: str
) -> None:
    fake = fake_discord
    config = write_config(tmp_path, fake.guild.id, model_cache)
    url, token, extra = fake.base_url, fake.token, {}
    if case == "wrong token":
        token = "not.a.token"
    elif case == "intent off in the portal":
        extra = {"VIDEOBOT_DISCORD__MESSAGE_CONTENT_INTENT": "true"}
    else:
        url = f"http://127.0.0.1:{closed_port()}"
    log = tmp_path / "run.log"
    process = await start(["run"], environment(url, config, token, **extra), log)
    assert await asyncio.wait_for(process.wait(), timeout=120) == code
    output = log.read_text()
    assert "Traceback" not in output, output
    errors = [text for text in output.splitlines() if text.startswith("videobot run: error")]
    assert len(errors) == 1, output
    assert errors[0].startswith(line), output


async def test_a_damaged_database_is_one_line_naming_the_file(
    fake_discord: FakeDiscord, model_cache: Path, tmp_path: Path
) -> None:
    fake = fake_discord
    config = write_config(tmp_path, fake.guild.id, model_cache)
    database = tmp_path / "videobot.sqlite3"
    database.write_bytes(b"\x00garbage, not SQLite\xff" * 500)
    log = tmp_path / "run.log"
    process = await start(["run"], environment(fake.base_url, config, fake.token), log)
    assert await asyncio.wait_for(process.wait(), timeout=120) == 2  # as for a config error
    output = log.read_text()
    assert "Traceback" not in output, output
    [error] = [line for line in output.splitlines() if "error" in line.lower()]
    assert error.startswith(f"videobot run: error: the database {database} cannot be used")
    assert "restore it from a backup" in error and "move it" in error
    assert database.read_bytes().startswith(b"\x00garbage")  # left as it was, for the owner


async def test_start_says_who_where_and_what_and_the_drain_says_what_it_waits_for(
    fake_discord: FakeDiscord, model_cache: Path, tmp_path: Path
) -> None:
    fake = fake_discord
    config = write_config(tmp_path, fake.guild.id, model_cache)
    log = tmp_path / "run.log"
    process = await start(
        ["run", "--sync-commands"], environment(fake.base_url, config, fake.token), log
    )
    try:

        def said(text: str) -> bool:
            assert process.returncode is None, log.read_text()
            return text in log.read_text()

        await fake.wait_until(
            lambda: said("message content intent"), timeout=120, what="the start lines"
        )
        output = log.read_text()
        assert f"config: {config.resolve()}" in output
        assert f"models: {', '.join(TINY_MODELS)} enabled, default tiny_t2v" in output
        assert f"logged in as videobot (id {fake.bot_user.id}) in 1 server(s)" in output
        assert f"{fake.guild.name} ({fake.guild.id})" in output
        assert "message content intent: off (reply commands need a mention)" in output
        assert "WARNING" not in output and "Traceback" not in output, output

        # A job long enough to be running when SIGTERM comes: the drain names it.
        await fake.wait_until(lambda: fake.commands.get(fake.guild.id), what="synced commands")
        await fake.run_slash_command(
            "video", {"prompt": "slow --frames 8 --steps 40", "width": 32, "height": 32}
        )
        database = tmp_path / "videobot.sqlite3"

        def running() -> bool:
            if not database.exists():
                return False
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
                return bool(db.execute("SELECT 1 FROM jobs WHERE status = 'running'").fetchall())

        await fake.wait_until(running, timeout=120, what="the job to run")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=120) == 0
        output = log.read_text()
        assert "stopping: waiting for the running job 1 (generate) to finish" in output, output
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
