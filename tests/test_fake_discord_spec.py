"""The fake Discord refuses what real Discord refuses: every request is checked against Discord's
OpenAPI spec and the limits its docs add, and answered with Discord's Invalid Form Body.

Requests go over the fake's real HTTP (aiohttp, as a bot would send them, with the bot token);
the driver checks (registered commands, option values, ephemeral visibility) run a real
discord.py bot.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands
from fake_discord import FAST_CLIENT_OPTIONS, FakeDiscord, Upload
from fake_discord.validation import default_validator, error_tree

pytest_plugins = ("fake_discord.fixtures",)


@pytest.fixture
async def fake(fake_discord: FakeDiscord) -> FakeDiscord:
    fake_discord.strict_requests = False  # these tests send invalid requests on purpose
    return fake_discord


@pytest.fixture
async def http(fake: FakeDiscord) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bot {fake.token}"}
    async with aiohttp.ClientSession(base_url=fake.base_url, headers=headers) as session:
        yield session


def _messages(fake: FakeDiscord) -> str:
    return f"/api/v10/channels/{fake.channel.id}/messages"


def _commands(fake: FakeDiscord) -> str:
    return f"/api/v10/applications/{fake.application_id}/guilds/{fake.guild.id}/commands"


async def _send(
    session: aiohttp.ClientSession, method: str, url: str, body: Any
) -> tuple[int, Any]:
    async with session.request(method, url, json=body) as response:
        return response.status, await response.json(content_type=None)


def _leaf(errors: dict[str, Any], *path: str | int) -> list[dict[str, str]]:
    node = errors
    for key in path:
        node = node[str(key)]
    result: list[dict[str, str]] = node["_errors"]
    return result


async def _rejected(
    fake: FakeDiscord,
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any,
    path: tuple[str | int, ...],
    code: str,
) -> None:
    before = len(fake.invalid_requests)
    status, answer = await _send(session, method, url, body)
    assert status == 400, answer
    assert answer["code"] == 50035 and answer["message"] == "Invalid Form Body"
    assert [e["code"] for e in _leaf(answer["errors"], *path)] == [code], answer
    assert len(fake.invalid_requests) == before + 1


# ------------------------------------------------------------------ messages and embeds

LONG = "x" * 7000

MESSAGE_CASES = [
    ({"content": "x" * 2001}, ("content",), "BASE_TYPE_MAX_LENGTH"),
    ({"embeds": [{"title": "t"}] * 11}, ("embeds",), "BASE_TYPE_MAX_LENGTH"),
    ({"embeds": [{"title": LONG[:257]}]}, ("embeds", 0, "title"), "BASE_TYPE_MAX_LENGTH"),
    (
        {"embeds": [{"description": LONG[:4097]}]},
        ("embeds", 0, "description"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        {"embeds": [{"fields": [{"name": "n", "value": "v"}] * 26}]},
        ("embeds", 0, "fields"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        {"embeds": [{"fields": [{"name": LONG[:257], "value": "v"}]}]},
        ("embeds", 0, "fields", 0, "name"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        {"embeds": [{"fields": [{"name": "n", "value": LONG[:1025]}]}]},
        ("embeds", 0, "fields", 0, "value"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        {"embeds": [{"footer": {"text": LONG[:2049]}}]},
        ("embeds", 0, "footer", "text"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        {"embeds": [{"author": {"name": LONG[:257]}}]},
        ("embeds", 0, "author", "name"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (  # each embed within its own limits, 6001 characters across the message
        {"embeds": [{"description": "d" * 4000}, {"description": "d" * 2001}]},
        ("embeds",),
        "MAX_EMBED_SIZE_EXCEEDED",
    ),
    # schema violations: wrong type, unknown enum, missing required
    ({"embeds": [{"color": "red"}]}, ("embeds", 0, "color"), "NUMBER_TYPE_COERCE"),
    ({"content": "hi", "tts": "loud"}, ("tts",), "BOOLEAN_TYPE_CONVERT"),
    ({"embeds": [{"color": 16777216}]}, ("embeds", 0, "color"), "NUMBER_TYPE_MAX"),
    (
        {"content": "hi", "allowed_mentions": {"parse": ["friends"]}},
        ("allowed_mentions", "parse", 0),
        "BASE_TYPE_CHOICES",
    ),
    (
        {"embeds": [{"fields": [{"name": "only a name"}]}]},
        ("embeds", 0, "fields", 0, "value"),
        "BASE_TYPE_REQUIRED",
    ),
]


@pytest.mark.parametrize(("body", "path", "code"), MESSAGE_CASES)
async def test_message_limits_and_schema(fake, http, body, path, code) -> None:
    await _rejected(fake, http, "POST", _messages(fake), body, path, code)
    assert fake.messages_in() == []  # nothing was posted


def _button(custom_id: str, label: str = "go") -> dict[str, Any]:
    return {"type": 2, "style": 1, "label": label, "custom_id": custom_id}


COMPONENT_CASES = [
    (
        {"components": [{"type": 1, "components": [_button(f"b{i}")]} for i in range(6)]},
        ("components",),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        {"components": [{"type": 1, "components": [_button(f"b{i}") for i in range(6)]}]},
        ("components", 0, "components"),
        "BASE_TYPE_BAD_LENGTH",
    ),
    (
        {"components": [{"type": 1, "components": [_button("c" * 101)]}]},
        ("components", 0, "components", 0, "custom_id"),
        "BASE_TYPE_BAD_LENGTH",
    ),
    (
        {"components": [{"type": 1, "components": [_button("")]}]},
        ("components", 0, "components", 0, "custom_id"),
        "BASE_TYPE_BAD_LENGTH",
    ),
    (
        {"components": [{"type": 1, "components": [_button("b", "l" * 81)]}]},
        ("components", 0, "components", 0, "label"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (  # an unknown button style
        {"components": [{"type": 1, "components": [{**_button("b"), "style": 9}]}]},
        ("components", 0, "components", 0, "style"),
        "BASE_TYPE_CHOICES",
    ),
    (  # an unknown component type
        {"components": [{"type": 77}]},
        ("components", 0),
        "UNION_TYPE_CHOICES",
    ),
]


@pytest.mark.parametrize(("body", "path", "code"), COMPONENT_CASES)
async def test_component_limits(fake, http, body, path, code) -> None:
    body = {"content": "pick one", **body}
    await _rejected(fake, http, "POST", _messages(fake), body, path, code)


async def test_valid_requests_pass(fake, http) -> None:
    """The largest of everything that is allowed is accepted, and nothing is recorded invalid."""
    embed = {
        "title": "t" * 256,
        "description": "d" * 2000,
        "fields": [{"name": "n" * 10, "value": "v" * 100, "inline": True}] * 25,
        "footer": {"text": "f" * 100},
        "author": {"name": "a" * 256},
        "color": 0xFFFFFF,
    }
    rows = [{"type": 1, "components": [_button(f"b{b}", "l" * 80) for b in range(5)]}]
    rows += [{"type": 1, "components": [_button(f"x{r}")]} for r in range(4)]
    body = {
        "content": "c" * 2000,
        "embeds": [embed],
        "components": rows,
        "message_reference": None,
        "allowed_mentions": {"parse": ["users"], "replied_user": False},
    }
    status, answer = await _send(http, "POST", _messages(fake), body)
    assert status == 200, answer
    assert fake.messages_in()[0].content == "c" * 2000
    status, answer = await _send(http, "GET", _messages(fake) + "?limit=100", None)
    assert status == 200
    assert fake.invalid_requests == []


async def test_query_parameters_are_checked(fake, http) -> None:
    async with http.get(_messages(fake) + "?limit=500") as response:
        answer = await response.json(content_type=None)
    assert response.status == 400
    assert _leaf(answer["errors"], "limit")[0]["code"] == "NUMBER_TYPE_MAX"
    async with http.get(_messages(fake) + "?limit=ten") as response:
        answer = await response.json(content_type=None)
    assert _leaf(answer["errors"], "limit")[0]["code"] == "NUMBER_TYPE_COERCE"


async def test_multipart_payload_json_is_checked_and_uploads_are_per_file(fake, http) -> None:
    fake.max_upload_size = 1000

    def form(payload: dict[str, Any], *sizes: int) -> aiohttp.FormData:
        data = aiohttp.FormData()
        data.add_field("payload_json", json.dumps(payload), content_type="application/json")
        for index, size in enumerate(sizes):
            data.add_field(f"files[{index}]", b"\0" * size, filename=f"f{index}.bin")
        return data

    async with http.post(_messages(fake), data=form({"content": "x" * 2001}, 10)) as response:
        answer = await response.json(content_type=None)
    assert response.status == 400
    assert _leaf(answer["errors"], "content")[0]["code"] == "BASE_TYPE_MAX_LENGTH"
    # Two files of 900 bytes pass a 1000-byte limit: Discord's limit is per file.
    async with http.post(_messages(fake), data=form({"content": "two"}, 900, 900)) as response:
        assert response.status == 200
    async with http.post(_messages(fake), data=form({"content": "big"}, 1001)) as response:
        answer = await response.json(content_type=None)
    assert (response.status, answer["code"]) == (413, 40005)


# ------------------------------------------------------------------ application commands


def _command(**changes: Any) -> dict[str, Any]:
    return {"name": "video", "description": "Make a video", "type": 1, **changes}


def _option(**changes: Any) -> dict[str, Any]:
    return {"type": 3, "name": "prompt", "description": "What to make", **changes}


COMMAND_CASES = [
    (_command(name="Video"), ("name",), "APPLICATION_COMMAND_INVALID_NAME"),
    (_command(name="two words"), ("name",), "APPLICATION_COMMAND_INVALID_NAME"),
    (_command(name="n" * 33), ("name",), "BASE_TYPE_BAD_LENGTH"),
    (_command(description=""), ("description",), "BASE_TYPE_BAD_LENGTH"),
    (_command(description="d" * 101), ("description",), "BASE_TYPE_MAX_LENGTH"),
    (
        _command(options=[_option(name=f"o{i}") for i in range(26)]),
        ("options",),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        _command(options=[{"type": 3, "name": "prompt", "description": ""}]),
        ("options", 0, "description"),
        "BASE_TYPE_BAD_LENGTH",
    ),
    (
        _command(options=[{"type": 3, "name": "prompt"}]),
        ("options", 0, "description"),
        "BASE_TYPE_REQUIRED",
    ),
    (
        _command(options=[_option(choices=[{"name": f"c{i}", "value": "v"} for i in range(26)])]),
        ("options", 0, "choices"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        _command(options=[_option(choices=[{"name": "c" * 101, "value": "v"}])]),
        ("options", 0, "choices", 0, "name"),
        "BASE_TYPE_BAD_LENGTH",
    ),
    (
        _command(options=[_option(choices=[{"name": "c", "value": "v" * 101}])]),
        ("options", 0, "choices", 0, "value"),
        "BASE_TYPE_BAD_LENGTH",
    ),
    (  # each part within its limit, 4000+ characters in all
        _command(
            options=[
                _option(
                    name=f"o{i}",
                    description="d" * 100,
                    choices=[{"name": "n" * 100, "value": "v" * 100}] * 25,
                )
                for i in range(2)
            ]
        ),
        (),
        "APPLICATION_COMMAND_TOO_LARGE",
    ),
    (_command(type=7), ("type",), "BASE_TYPE_CHOICES"),
    (
        _command(options=[_option(), _option(name="seed", type=4, required=True)]),
        ("options", 1),
        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
    ),
]


@pytest.mark.parametrize(("command", "path", "code"), COMMAND_CASES)
async def test_command_limits(fake, http, command, path, code) -> None:
    await _rejected(fake, http, "POST", _commands(fake), command, path, code)
    await _rejected(fake, http, "PUT", _commands(fake), [command], (0, *path), code)
    assert fake.commands.get(fake.guild.id, {}) == {}


async def test_command_counts_per_scope(fake, http) -> None:
    many = [_command(name=f"c{i}") for i in range(101)]
    await _rejected(
        fake, http, "PUT", _commands(fake), many, (), "APPLICATION_COMMANDS_MAX_EXCEEDED"
    )
    status, _ = await _send(http, "PUT", _commands(fake), many[:100])
    assert status == 200
    assert len(fake.commands[fake.guild.id]) == 100
    twice = [_command(), _command()]
    await _rejected(
        fake,
        http,
        "PUT",
        _commands(fake),
        twice,
        (1, "name"),
        "APPLICATION_COMMANDS_DUPLICATE_NAME",
    )


# ------------------------------------------------------------------ interaction responses


class SpecBot(commands.Bot):
    """A bot whose commands answer with whatever the test hands them, valid or not."""

    def __init__(self, guild_id: int) -> None:
        intents = discord.Intents.default()  # no privileged intent: slash commands need none
        super().__init__(command_prefix="!", intents=intents, **FAST_CLIENT_OPTIONS)
        self.guild_id = guild_id
        self.errors: list[discord.HTTPException] = []
        self.modal_title = "Describe it"

        @self.tree.command(name="say", description="Say something")
        @app_commands.describe(text="What to say", times="How often", style="How")
        @app_commands.choices(
            style=[
                app_commands.Choice(name="Plain", value="plain"),
                app_commands.Choice(name="Loud", value="loud"),
            ]
        )
        async def say(
            interaction: discord.Interaction,
            text: app_commands.Range[str, 1, 50],
            times: app_commands.Range[int, 1, 50] = 1,
            style: str = "plain",
        ) -> None:
            try:
                await interaction.response.send_message(text * times, ephemeral=style == "plain")
            except discord.HTTPException as exc:
                self.errors.append(exc)

        @self.tree.command(name="ask", description="Open a modal")
        async def ask(interaction: discord.Interaction) -> None:
            modal = discord.ui.Modal(title=self.modal_title)
            modal.add_item(discord.ui.TextInput(label="Prompt", custom_id="prompt", max_length=20))
            try:
                await interaction.response.send_modal(modal)
            except discord.HTTPException as exc:
                self.errors.append(exc)

    async def setup_hook(self) -> None:
        guild = discord.Object(self.guild_id)
        self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)


@pytest.fixture
async def spec_bot(fake: FakeDiscord) -> AsyncIterator[SpecBot]:
    async with fake.run_bot(SpecBot(fake.guild.id)) as bot:
        yield bot


async def test_invalid_interaction_response_reaches_discord_py_as_400(fake, spec_bot) -> None:
    interaction = await fake.run_slash_command("say", {"text": "y" * 50, "times": 41})
    await fake.wait_until(lambda: spec_bot.errors, what="discord.py to see the 400")
    [error] = spec_bot.errors
    assert (error.status, error.code) == (400, 50035)
    assert "data.content" in str(error)  # discord.py flattens Discord's errors tree
    assert not interaction.responded
    [invalid] = fake.invalid_requests
    assert [e.code for e in invalid.invalid] == ["BASE_TYPE_MAX_LENGTH"]


async def test_modal_title_and_label_limits(fake, spec_bot) -> None:
    spec_bot.modal_title = "t" * 46
    await fake.run_slash_command("ask", {})
    await fake.wait_until(lambda: spec_bot.errors, what="the modal to be refused")
    [invalid] = fake.invalid_requests
    assert [(e.path, e.code) for e in invalid.invalid] == [
        (("data", "title"), "BASE_TYPE_BAD_LENGTH")
    ]
    tree = error_tree(invalid.invalid)
    assert tree["data"]["title"]["_errors"][0]["message"] == "Must be between 1 and 45 in length."
    errors = default_validator().validate(
        "POST",
        "/interactions/1/token/callback",
        {},
        {
            "type": 9,
            "data": {
                "custom_id": "m",
                "title": "ok",
                "components": [
                    {
                        "type": 1,
                        "components": [
                            {
                                "type": 4,
                                "custom_id": "p",
                                "style": 1,
                                "label": "l" * 46,
                                "placeholder": "p" * 101,
                            }
                        ],
                    }
                ],
            },
        },
        True,
    )[1]
    paths = {e.path[-1]: e.code for e in errors}
    assert paths == {"label": "BASE_TYPE_BAD_LENGTH", "placeholder": "BASE_TYPE_MAX_LENGTH"}


# ------------------------------------------------------------------ what members can send


async def test_only_registered_commands_with_allowed_values(fake, spec_bot) -> None:
    with pytest.raises(LookupError, match="not registered"):
        await fake.run_slash_command("nope", {})
    target = await fake.send_message("a message to remix")
    with pytest.raises(LookupError, match="not registered"):
        await fake.run_message_command("Remix", target)
    impossible = [
        {"text": ""},  # min_length 1
        {"text": "t" * 51},  # max_length 50
        {"text": "t", "times": 51},  # max_value 50
        {"text": "t", "times": 0},  # min_value 1
        {"text": "t", "times": 2.5},  # not an integer
        {"text": "t", "times": True},  # not an integer either
        {"text": 5},  # not a string
        {"text": "t", "style": "shouting"},  # not one of the choices
        {"text": "t", "colour": "red"},  # no such option
        {"times": 2},  # the required option left out
    ]
    for options in impossible:
        with pytest.raises(ValueError):
            await fake.run_slash_command("say", options)
    assert fake.interactions == {}
    with pytest.raises(ValueError):
        await fake.run_slash_command("say", {"text": Upload("a.txt", b"a")})
    ok = await fake.run_slash_command("say", {"text": "t", "times": 5, "style": "loud"})
    await fake.wait_for_response(ok)
    assert fake.original_response(ok).content == "ttttt"


async def test_ephemeral_messages_are_seen_only_by_their_member(fake, spec_bot) -> None:
    private = await fake.run_slash_command("say", {"text": "secret"})  # style plain: ephemeral
    await fake.wait_for_response(private)
    message = fake.original_response(private)
    assert message is not None and message.ephemeral
    assert fake.visible_to(message, fake.user)
    assert not fake.visible_to(message, fake.other_user)
    assert message in fake.messages_in(as_user=fake.user)
    assert message not in fake.messages_in(as_user=fake.other_user)
    with pytest.raises(ValueError, match="ephemeral"):
        await fake.send_message("replying", user=fake.other_user, reply_to=message)
    # The bot cannot fetch it from the channel either; only through the interaction token.
    channel = spec_bot.get_channel(fake.channel.id)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.NotFound):
        await channel.fetch_message(message.id)
    assert [m async for m in channel.history()] == []


async def test_rest_reads_empty_content_without_the_message_content_intent(
    fake, spec_bot, http
) -> None:
    """Discord empties message content "across the API" for an app whose Message Content intent
    is off in the portal: reading a message over REST is no way around the gateway's rule."""
    from fake_discord.gateway import MESSAGE_CONTENT

    plain = await fake.send_message("make it faster", attachments=[("a.png", b"png", "image/png")])
    mention = await fake.send_message("trim 1 2", mentions=[fake.bot_user])
    url = _messages(fake)
    _, one = await _send(http, "GET", f"{url}/{plain.id}", None)
    assert (one["content"], one["attachments"]) == ("", [])
    _, listed = await _send(http, "GET", url, None)
    content = {int(m["id"]): m["content"] for m in listed}
    assert content[plain.id] == "" and content[mention.id].endswith("trim 1 2")

    fake.privileged_intents |= MESSAGE_CONTENT
    _, one = await _send(http, "GET", f"{url}/{plain.id}", None)
    assert one["content"] == "make it faster" and len(one["attachments"]) == 1
