"""The fake Discord server, exercised by a real discord.py ``commands.Bot`` (no mocks).

Each test starts a small bot shaped like videobot (a deferring slash command that uploads an mp4,
a button, an ``on_message`` listener that downloads attachments) against ``FakeDiscord`` over
real HTTP and websocket on 127.0.0.1, then asserts on what the fake recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands
from fake_discord import (
    FAST_CLIENT_OPTIONS,
    FakeDiscord,
    StoredMessage,
    Upload,
    default_intents,
)
from fake_discord.gateway import MESSAGE_CONTENT

pytest_plugins = ("fake_discord.fixtures",)

VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8


class RetryView(discord.ui.View):
    """The button row videobot puts under a finished video."""

    def __init__(self) -> None:
        super().__init__(timeout=60)

    @discord.ui.button(label="Retry", style=discord.ButtonStyle.primary, custom_id="video:retry")
    async def retry(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        button.disabled = True
        await interaction.response.edit_message(content="Retrying...", view=self)


class CaptionModal(discord.ui.Modal, title="Caption"):
    caption: discord.ui.TextInput = discord.ui.TextInput(label="Caption", custom_id="caption")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"caption={self.caption.value}")


class VideoTestBot(commands.Bot):
    """A miniature videobot; what it did or failed to do is kept for the assertions."""

    def __init__(self, guild_id: int, video: bytes = VIDEO_BYTES) -> None:
        super().__init__(command_prefix="!", intents=default_intents(), **FAST_CLIENT_OPTIONS)
        self.guild_id = guild_id
        self.video = video
        self.errors: list[Exception] = []
        self.seen: list[discord.Message] = []
        self.filesize_limits: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self._register_commands()

    def _register_commands(self) -> None:
        @self.tree.command(name="video", description="Generate a video from a prompt")
        @app_commands.describe(prompt="What to generate", clip="An optional input clip")
        async def video(
            interaction: discord.Interaction, prompt: str, clip: discord.Attachment | None = None
        ) -> None:
            self.filesize_limits.append(interaction.filesize_limit)
            await interaction.response.defer(thinking=True)
            note = f" from {len(await clip.read())} bytes" if clip else ""
            try:
                await interaction.followup.send(
                    f"Here is **{prompt}**{note}",
                    file=discord.File(io.BytesIO(self.video), "video.mp4"),
                    view=RetryView(),
                )
            except discord.HTTPException as exc:
                self.errors.append(exc)

        @video.autocomplete("prompt")
        async def suggest(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            ideas = ["a paper boat", "a paper plane", "a red kite"]
            return [app_commands.Choice(name=i, value=i) for i in ideas if i.startswith(current)]

        @self.tree.command(name="slow", description="Answers only when the test lets it")
        async def slow(interaction: discord.Interaction) -> None:
            await self.gate.wait()
            try:
                await interaction.response.send_message("finally")
            except discord.HTTPException as exc:
                self.errors.append(exc)

        @self.tree.command(name="caption", description="Ask for a caption")
        async def caption(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(CaptionModal())

        @self.tree.context_menu(name="Remix video")
        async def remix(interaction: discord.Interaction, message: discord.Message) -> None:
            names = ",".join(a.filename for a in message.attachments)
            await interaction.response.send_message(f"remixing {names}", ephemeral=True)

    async def setup_hook(self) -> None:
        guild = discord.Object(self.guild_id)
        self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        self.seen.append(message)
        try:
            if message.attachments:
                data = await message.attachments[0].read()
                digest = hashlib.sha256(data).hexdigest()[:12]
                await message.reply(f"got {len(data)} bytes sha={digest}")
            elif message.reference is not None:
                await message.channel.send("thanks for the reply", reference=message)
        except discord.HTTPException as exc:
            self.errors.append(exc)


@pytest.fixture
async def bot(fake_discord: FakeDiscord) -> AsyncIterator[VideoTestBot]:
    fake_discord.privileged_intents |= MESSAGE_CONTENT  # VideoTestBot asks for it
    async with fake_discord.run_bot(VideoTestBot(fake_discord.guild.id)) as running:
        yield running


async def _video(fake: FakeDiscord, prompt: str = "a paper boat") -> StoredMessage:
    interaction = await fake.run_slash_command("video", {"prompt": prompt})
    return await fake.wait_for_followup(interaction)


# ---------------------------------------------------------------------------------------------


async def test_gateway_handshake_compression_and_heartbeats(
    fake_discord: FakeDiscord, bot: VideoTestBot
) -> None:
    fake = fake_discord
    [connection] = fake.gateway.connections
    # zstd-stream when a zstd module is importable, zlib-stream otherwise; both are honoured.
    assert connection.query["compress"] in ("zlib-stream", "zstd-stream")
    assert connection.compress is not None
    sent = fake.frames(direction="send")
    assert sent[0].op == 10 and [f.t for f in sent if f.op == 0][:2] == ["READY", "GUILD_CREATE"]
    [identify] = fake.frames(direction="recv", op=2)
    assert identify.d["token"] == fake.token
    assert identify.d["intents"] & default_intents().value == default_intents().value
    await fake.wait_until(lambda: fake.frames(direction="send", op=11), what="a heartbeat ACK")
    assert bot.user is not None and bot.user.id == fake.bot_user.id
    assert bot.application_id == fake.application_id
    guild = bot.get_guild(fake.guild.id)
    assert guild is not None and guild.me is not None
    assert {c.name for c in guild.text_channels} == {"general", "videos"}


async def test_slash_command_defers_then_follows_up_with_a_file(
    fake_discord: FakeDiscord, bot: VideoTestBot
) -> None:
    fake = fake_discord
    synced = fake.requests_for("PUT /applications/*/guilds/*/commands")
    assert [c["name"] for c in synced[0].json] == ["video", "slow", "caption", "Remix video"]

    interaction = await fake.run_slash_command("video", {"prompt": "a paper boat"})
    followup = await fake.wait_for_followup(interaction)

    callback = fake.requests_for(f"POST /interactions/{interaction.id}/*/callback")[0]
    assert callback.json == {"type": 5}  # a "thinking" defer
    assert interaction.response_latency is not None
    upload = fake.requests_for("POST /webhooks/*")[0]
    assert upload.multipart and upload.query["wait"] == "1"
    assert [(f.field_name, f.filename, f.data) for f in upload.files] == [
        ("files[0]", "video.mp4", VIDEO_BYTES)
    ]
    assert upload.interaction_id == interaction.id

    # Discord turns the first follow-up after a defer into the deferred message itself.
    original = fake.original_response(interaction)
    assert original is followup and not original.loading
    assert followup.content == "Here is **a paper boat**"
    assert followup.custom_ids() == ["video:retry"]
    [attachment] = followup.attachments
    assert (attachment.filename, attachment.content_type) == ("video.mp4", "video/mp4")
    async with aiohttp.ClientSession() as session, session.get(attachment.url) as response:
        assert await response.read() == VIDEO_BYTES
    assert bot.filesize_limits == [fake.max_upload_size]


async def test_button_press_updates_the_message(
    fake_discord: FakeDiscord, bot: VideoTestBot
) -> None:
    fake = fake_discord
    message = await _video(fake)

    click = await fake.click_button(message, "video:retry", user=fake.other_user)
    await fake.wait_for_response(click)

    assert click.response_type == 7  # UPDATE_MESSAGE
    assert message.content == "Retrying..."
    assert (message.find_component("video:retry") or {}).get("disabled") is True
    assert message.edits >= 1 and message.history[-1]["content"] == "Here is **a paper boat**"
    with pytest.raises(ValueError, match="disabled"):
        await fake.click_button(message, "video:retry")


async def test_reply_is_handled_by_on_message(fake_discord: FakeDiscord, bot: VideoTestBot) -> None:
    fake = fake_discord
    video = await _video(fake)

    reply = await fake.send_message("love it!", reply_to=video)
    answer = await fake.wait_for_request(
        "POST /channels/*/messages", lambda r: r.body.get("content") == "thanks for the reply"
    )

    assert answer.channel_id == fake.channel.id
    assert int(answer.body["message_reference"]["message_id"]) == reply.id
    [seen] = bot.seen
    assert seen.reference is not None and seen.reference.message_id == video.id
    assert answer.message_id is not None
    stored = fake.message(answer.message_id)
    assert stored.type == 19 and stored.author is fake.bot_user


async def test_member_upload_is_downloaded_from_the_fake_cdn(
    fake_discord: FakeDiscord, bot: VideoTestBot
) -> None:
    fake = fake_discord
    clip = bytes(range(256)) * 40
    await fake.send_message("remix this", attachments=[Upload("my clip.mp4", clip, "video/mp4")])

    reply = await fake.wait_for_message(lambda m: m.author.bot and m.content.startswith("got"))

    assert reply.content == f"got {len(clip)} bytes sha={hashlib.sha256(clip).hexdigest()[:12]}"
    [download] = fake.requests_for("GET /attachments/*", api_only=False)
    assert download.path.endswith("/my_clip.mp4")  # Discord replaces spaces in filenames


async def test_rate_limit_is_waited_out_and_retried(
    fake_discord: FakeDiscord, bot: VideoTestBot
) -> None:
    fake = fake_discord
    fault = fake.rate_limit_next("POST /webhooks/*", retry_after=0.3)

    followup = await _video(fake)

    limited, succeeded = fake.requests_for("POST /webhooks/*")
    assert (limited.status, limited.fault, succeeded.status) == (429, "rate_limit", 200)
    assert limited.response["retry_after"] == pytest.approx(0.3)
    assert limited.answered_at is not None
    assert succeeded.received_at - limited.answered_at >= 0.25  # discord.py slept first
    assert succeeded.files[0].data == VIDEO_BYTES  # the file was re-sent on the retry
    assert fault.exhausted and followup.attachments and bot.errors == []


async def test_upload_over_the_limit_surfaces_as_http_exception_413(
    fake_discord: FakeDiscord, bot: VideoTestBot
) -> None:
    fake = fake_discord
    fake.max_upload_size = len(VIDEO_BYTES) - 1

    interaction = await fake.run_slash_command("video", {"prompt": "too big"})
    await fake.wait_until(lambda: bot.errors, what="the bot to see the 413")

    [error] = bot.errors
    assert isinstance(error, discord.HTTPException)
    assert (error.status, error.code) == (413, 40005)
    assert bot.filesize_limits == [len(VIDEO_BYTES) - 1]
    assert fake.requests_for("POST /webhooks/*")[0].fault == "upload_limit"
    thinking = fake.original_response(interaction)
    assert thinking is not None and thinking.loading  # nothing replaced the "thinking" message


async def test_expired_interaction_token_gives_not_found(
    fake_discord: FakeDiscord, bot: VideoTestBot
) -> None:
    fake = fake_discord
    bot.gate.clear()
    interaction = await fake.run_slash_command("slow")
    fake.expire_interaction(interaction)
    bot.gate.set()

    await fake.wait_until(lambda: bot.errors, what="the bot to see the expired token")

    [error] = bot.errors
    assert isinstance(error, discord.NotFound)
    assert (error.status, error.code) == (404, 10062)
    assert not interaction.responded


async def test_second_initial_response_is_already_acknowledged(
    fake_discord: FakeDiscord, bot: VideoTestBot
) -> None:
    fake = fake_discord
    interaction = await fake.run_slash_command("caption")
    await fake.wait_for_response(interaction)

    url = f"{fake.api_base}/interactions/{interaction.id}/{interaction.token}/callback"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"type": 4, "data": {"content": "again"}}) as again:
            assert again.status == 400
            assert (await again.json())["code"] == 40060
        async with session.post(url.replace(str(interaction.id), "1"), json={"type": 5}) as bad:
            assert bad.status == 404 and (await bad.json())["code"] == 10062


async def test_websocket_drop_then_resume_loses_no_event(
    fake_discord: FakeDiscord, bot: VideoTestBot
) -> None:
    fake = fake_discord
    session = await fake.wait_until_connected()
    log_mark = len(fake.gateway_log)

    await fake.drop_connection()  # no close frame: a network failure
    sent = await fake.send_message("sent while the bot was offline")
    await fake.wait_for_resume(since=log_mark)
    await fake.wait_until(lambda: bot.seen, what="the replayed MESSAGE_CREATE")

    assert [m.id for m in bot.seen] == [sent.id]
    identifies = [f for f in fake.frames(direction="recv", op=2)]
    resumes = [f for f in fake.frames(direction="recv", op=6)]
    assert len(identifies) == 1 and len(resumes) == 1
    assert resumes[0].d["session_id"] == session.id
    creates = [f for f in fake.dispatched("MESSAGE_CREATE") if f.d["id"] == str(sent.id)]
    assert len(creates) == 1 and creates[0].s > resumes[0].d["seq"]  # replayed, not re-sent
    assert fake.gateway.connections[-1].path == "/resume-gateway/"

    # The resumed session still works end to end.
    await _video(fake, "after the resume")


async def test_close_code_4000_resumes_too(fake_discord: FakeDiscord, bot: VideoTestBot) -> None:
    fake = fake_discord
    log_mark = len(fake.gateway_log)
    await fake.drop_connection(code=4000)
    await fake.wait_for_resume(since=log_mark)
    assert len(fake.frames(direction="recv", op=2)) == 1
    await _video(fake, "after 4000")


async def test_modal_context_menu_and_autocomplete(
    fake_discord: FakeDiscord, bot: VideoTestBot
) -> None:
    fake = fake_discord
    opened = await fake.run_slash_command("caption")
    await fake.wait_for_response(opened)
    assert opened.response_type == 9 and opened.modal is not None

    submitted = await fake.submit_modal(opened, {"caption": "sunset"})
    await fake.wait_for_response(submitted)
    caption = fake.original_response(submitted)
    assert caption is not None and caption.content == "caption=sunset"

    source = await fake.send_message("", attachments=[Upload("in.mp4", b"1234", "video/mp4")])
    remix = await fake.run_message_command("Remix video", source)
    await fake.wait_for_response(remix)
    answer = fake.original_response(remix)
    assert answer is not None and answer.content == "remixing in.mp4" and answer.ephemeral

    typing = await fake.run_autocomplete("video", {"prompt": "a pa"}, focused="prompt")
    await fake.wait_for_response(typing)
    assert typing.response_type == 8
    assert [c["value"] for c in typing.autocomplete_choices or []] == [
        "a paper boat",
        "a paper plane",
    ]


async def test_denied_permissions_are_forbidden(
    fake_discord: FakeDiscord, bot: VideoTestBot
) -> None:
    fake = fake_discord
    channel = bot.get_channel(fake.channel.id)
    assert isinstance(channel, discord.TextChannel)
    await fake.deny_permission(fake.channel, "attach_files")
    await fake.wait_until(lambda: not channel.permissions_for(channel.guild.me).attach_files)

    with pytest.raises(discord.Forbidden) as no_files:
        await channel.send("here", file=discord.File(io.BytesIO(VIDEO_BYTES), "video.mp4"))
    assert (no_files.value.status, no_files.value.code) == (403, 50013)
    await channel.send("text still works")

    await fake.deny_permission(fake.channel, "send_messages")
    await fake.send_message("anyone?", reply_to=fake.messages_by_bot()[-1])
    await fake.wait_until(lambda: bot.errors, what="the bot's reply to be refused")
    [error] = bot.errors
    assert isinstance(error, discord.Forbidden) and error.code == 50013
    statuses = [r.status for r in fake.requests_for("POST /channels/*/messages")]
    assert statuses == [403, 200, 403]


async def test_unknown_routes_answer_404_and_are_recorded(
    fake_discord: FakeDiscord, bot: VideoTestBot
) -> None:
    fake = fake_discord
    fake.strict_routes = False
    with pytest.raises(discord.NotFound):
        await bot.http.request(discord.http.Route("GET", "/sticker-packs"))
    [unknown] = fake.unknown_requests
    assert unknown.key == "GET /sticker-packs" and unknown.response == {
        "message": "404: Not Found",
        "code": 0,
    }
