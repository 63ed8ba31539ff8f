"""Edits and upscaling: ``/edit``, ``/upscale``, reply-to-video text commands, the "Edit video"
message menu and the Upscale/Reverse/Loop/Interpolate buttons."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Literal, cast

import discord
from discord import app_commands
from discord.ext import commands

from bot.admission import Requester
from bot.core.enhance.names import (
    DIFFUSION_UPSCALER,
    LEARNED_UPSCALER,
    LTX2_UPSCALER,
    UPSCALE_FACTORS,
)
from bot.core.enhance.rates import MAX_OUTPUT_FPS
from bot.core.errors import VideoBotError
from bot.core.restyle import STRENGTH, STRENGTH_HELP
from bot.core.rules import INTERPOLATE_FACTOR, LOOPS, SPEED
from bot.delivery import InteractionReply, MessageReply, Reply, follow_job, show_finished
from bot.interactions import (
    AnsweringModal,
    answer_reply_failure,
    check_channel_permissions,
    message_requester,
    press,
    refuse,
    requester,
)
from bot.render import (
    PICTURE_EXTENSIONS,
    button_template,
    is_picture,
    job_button,
    job_id_of,
    picture_attachment,
    video_attachment,
)
from bot.service import StoredVideo, UploadedVideo, VideoRef
from bot.textcommands import REPLY_COMMAND_HELP, ReplyCommand, parse_reply_command
from cogs.video import build_params, submit_generation

if TYPE_CHECKING:
    from bot.client import VideoBot

log = logging.getLogger(__name__)

BUTTON_EDITS: dict[str, dict[str, Any]] = {
    "reverse": {},
    "loop": {"loops": 2},
    "interpolate": {"factor": 2},
}


class EditCommandModal(AnsweringModal, title="Edit video"):
    """The "Edit video" menu's form, in Discord's current layout (a Label around the input).
    A failure anywhere in ``on_submit`` reaches the member (``AnsweringModal``)."""

    command: discord.ui.Label[EditCommandModal] = discord.ui.Label(
        text="Command",
        description="What to do with the video, as in a reply to it",
        component=discord.ui.TextInput(
            placeholder="trim 5 20 · speed 2 · loop 3 · interpolate 60fps · upscale 4x",
            max_length=200,
            custom_id="command",
        ),
    )

    def __init__(self, cog: EditCog, target: discord.Message) -> None:
        super().__init__()
        self.cog = cog
        self.target = target

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        check_channel_permissions(interaction)  # as every other edit path: before any work
        # The modal is addressed to the bot already; a fixed prefix marks it so.
        typed = self.command.component
        assert isinstance(typed, discord.ui.TextInput)
        command = parse_reply_command("!" + typed.value.strip(), prefix="!")
        if command is None or command.operation == "help":
            await refuse(interaction, REPLY_COMMAND_HELP)
            return
        who = requester(interaction)
        source = await self.cog.source_of_message(who, self.target)
        await self.cog.perform(InteractionReply(interaction), who, source, command)


class ExtendModal(AnsweringModal, title="Extend the clip"):
    """The Extend button's form: how the clip goes on, prefilled with its prompt. A failure
    anywhere in ``on_submit`` reaches the member (``AnsweringModal``)."""

    prompt: discord.ui.Label[ExtendModal] = discord.ui.Label(
        text="Prompt",
        description="How the clip goes on from its last frames",
        component=discord.ui.TextInput(
            style=discord.TextStyle.paragraph, max_length=500, custom_id="prompt"
        ),
    )

    def __init__(self, cog: EditCog, job_id: int, prompt: str) -> None:
        super().__init__()
        self.cog = cog
        self.job_id = job_id
        typed = self.prompt.component
        assert isinstance(typed, discord.ui.TextInput)
        typed.default = prompt[:500] or None

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        check_channel_permissions(interaction)
        typed = self.prompt.component
        assert isinstance(typed, discord.ui.TextInput)
        await self.cog.perform(
            InteractionReply(interaction),
            requester(interaction),
            StoredVideo(self.job_id),
            ReplyCommand("extend", {"prompt": typed.value}),
        )


class EditCog(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Edit video", callback=self.edit_menu)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)
        self.bot.add_dynamic_items(EditButton)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)
        self.bot.remove_dynamic_items(EditButton)

    # --- slash commands ------------------------------------------------------------------------

    @app_commands.command(name="edit")
    @app_commands.describe(
        operation="What to do",
        job="The job id of a previous result (see /history); default: your latest video",
        video="Or a video file to edit",
        start_frame="trim: first frame kept (0-based)",
        end_frame="trim: frames are kept up to but not including this one",
        speed_factor=f"speed: 2 plays twice as fast, 0.5 half as fast ({SPEED.low:g}-{SPEED.high:g})",
        loops=f"loop: how many times in a row ({LOOPS.low:g}-{LOOPS.high:g})",
        factor="interpolate: multiply the frame rate by this "
        f"({INTERPOLATE_FACTOR.low:g}-{INTERPOLATE_FACTOR.high:g})",
        fps=f"interpolate: or the frame rate to reach, at most {MAX_OUTPUT_FPS:g} (e.g. 60)",
        prompt="restyle: what the video should look like; extend: how the clip goes on",
        strength=f"restyle: {STRENGTH_HELP}",
    )
    async def edit(
        self,
        interaction: discord.Interaction,
        operation: Literal["trim", "speed", "reverse", "loop", "interpolate", "restyle", "extend"],
        job: app_commands.Range[int, 1] | None = None,
        video: discord.Attachment | None = None,
        start_frame: app_commands.Range[int, 0] | None = None,
        end_frame: app_commands.Range[int, 1] | None = None,
        speed_factor: app_commands.Range[float, SPEED.low, SPEED.high] | None = None,
        loops: app_commands.Range[int, int(LOOPS.low), int(LOOPS.high)] | None = None,
        factor: app_commands.Range[int, int(INTERPOLATE_FACTOR.low), int(INTERPOLATE_FACTOR.high)]
        | None = None,
        fps: app_commands.Range[float, 1.0, MAX_OUTPUT_FPS] | None = None,
        prompt: app_commands.Range[str, 1, 500] | None = None,
        strength: app_commands.Range[float, STRENGTH.low, STRENGTH.high] | None = None,
    ) -> None:
        """Trim, speed up, reverse, loop or smooth a video you made or uploaded."""
        arguments: dict[str, object] = {
            name: value
            for name, value in {
                "start_frame": start_frame,
                "end_frame": end_frame,
                "speed_factor": speed_factor,
                "loops": loops,
                "factor": factor,
                "target_fps": fps,
                "prompt": prompt,
                "strength": strength,
            }.items()
            if value is not None
        }
        await self.respond(
            interaction, self.choose_source(job, video), ReplyCommand(operation, arguments)
        )

    @app_commands.command(name="upscale")
    @app_commands.describe(
        job="The job id of a previous result (see /history); default: your latest video",
        video="Or a video file to upscale",
        upscaler="Real-ESRGAN (any size, 2x/4x; default), Zeroscope XL (1024x576), "
        "LTX-2 upsampler (LTX-2 videos, 2x)",
        scale="Real-ESRGAN: 2x or 4x wider and taller (default 2x)",
    )
    @app_commands.choices(
        upscaler=[
            app_commands.Choice(name="Real-ESRGAN (any size)", value=LEARNED_UPSCALER),
            app_commands.Choice(
                name="Zeroscope XL (diffusion, 1024x576)", value=DIFFUSION_UPSCALER
            ),
            app_commands.Choice(
                name="LTX-2 latent upsampler (LTX-2 results, 2x)", value=LTX2_UPSCALER
            ),
        ]
    )
    @app_commands.choices(
        scale=[app_commands.Choice(name=f"{s}x", value=s) for s in UPSCALE_FACTORS]
    )
    async def upscale(
        self,
        interaction: discord.Interaction,
        job: app_commands.Range[int, 1] | None = None,
        video: discord.Attachment | None = None,
        upscaler: str | None = None,
        scale: int | None = None,
    ) -> None:
        """Upscale a video: Real-ESRGAN at any size, or Zeroscope XL to 1024x576."""
        given: dict[str, object] = {"upscaler": upscaler, "scale": scale}
        arguments: dict[str, object] = {
            name: value for name, value in given.items() if value is not None
        }
        await self.respond(
            interaction, self.choose_source(job, video), ReplyCommand("upscale", arguments)
        )

    def choose_source(self, job: int | None, video: discord.Attachment | None) -> VideoRef:
        """Where the video is; nothing is fetched or opened here (see :meth:`upload_of`)."""
        if video is not None:
            return self.upload_of(video)
        return StoredVideo(job)

    def upload_of(self, attachment: discord.Attachment) -> UploadedVideo:
        """A member's attachment, not downloaded: the service checks its size and fetches it only
        after admission (a blocked member's file is never fetched) and, for an edit, once the
        edit has a worker."""
        return UploadedVideo(attachment.filename, attachment.size, attachment.read)

    # --- the shared path -----------------------------------------------------------------------

    async def perform(
        self, reply: Reply, who: Requester, source: VideoRef, command: ReplyCommand
    ) -> None:
        """Run an edit (off the GPU queue) or an upscale (queued) of the video ``source`` names
        and show the result; the service admits the request before it reads the video."""
        service = self.bot.service
        if command.operation == "restyle":
            await self.restyle(reply, who, source, command.arguments)
            return
        if command.operation == "extend":
            await self.extend(reply, who, source, str(command.arguments.get("prompt") or ""))
            return
        if command.operation == "upscale":
            upscaler, scale = command.arguments.get("upscaler"), command.arguments.get("scale")
            job = await service.submit_upscale(
                who,
                source,
                upscaler=str(upscaler) if upscaler is not None else None,
                scale=int(cast("int", scale)) if scale is not None else None,
            )
            await follow_job(
                reply, service, job, interval_s=self.bot.settings.limits.progress_interval_s
            )
            return
        finished = await service.edit(
            who,
            source,
            command.operation,
            dict(command.arguments),
            on_start=lambda: reply.show(f"✂️ Editing ({command.operation})…"),
        )
        await show_finished(reply, service, finished)

    async def restyle(
        self, reply: Reply, who: Requester, source: VideoRef, arguments: dict[str, object]
    ) -> None:
        """Restyle (video-to-video): queued on the GPU like an upscale."""
        strength = arguments.get("strength")
        job = await self.bot.service.submit_restyle(
            who,
            source,
            prompt=str(arguments.get("prompt") or ""),
            strength=float(cast("float", strength)) if strength is not None else None,
        )
        await follow_job(
            reply, self.bot.service, job, interval_s=self.bot.settings.limits.progress_interval_s
        )

    async def extend(self, reply: Reply, who: Requester, source: VideoRef, prompt: str) -> None:
        """Extend (continue the clip from its last frames): queued on the GPU like an upscale."""
        job = await self.bot.service.submit_extend(who, source, prompt=prompt)
        await follow_job(
            reply, self.bot.service, job, interval_s=self.bot.settings.limits.progress_interval_s
        )

    # --- reply-to-video ------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.reference is None or self.bot.user is None:
            return
        mention_ids = [self.bot.user.id]
        if message.guild is not None and message.guild.self_role is not None:
            mention_ids.append(message.guild.self_role.id)
        prefix = self.bot.settings.discord.command_prefix
        reply = MessageReply(message)
        try:
            command = parse_reply_command(
                message.content, bot_mention_ids=mention_ids, prefix=prefix
            )
            if command is None:
                return
            if command.operation == "help":
                await reply.show(REPLY_COMMAND_HELP)
                return
            target = await self.referenced_message(message)
            who = message_requester(message)
            if command.operation == "animate":
                await self.animate(reply, who, target, str(command.arguments["prompt"]))
                return
            source = await self.source_of_message(who, target)
            await self.perform(reply, who, source, command)
        except Exception as exc:
            await answer_reply_failure(message, exc)

    async def animate(
        self, reply: MessageReply, who: Requester, target: discord.Message, prompt: str
    ) -> None:
        """``animate [prompt]`` in reply to a picture: image-to-video, queued like /video. With
        two pictures on the message, the first is the first frame and the second the last."""
        picture = picture_attachment(target)
        if picture is None:
            raise VideoBotError(
                "animate needs a reply to a message with a picture "
                f"({', '.join(ext.lstrip('.') for ext in PICTURE_EXTENSIONS)})"
                + self.hidden_content_hint(target)
            )
        others = [a for a in target.attachments if a is not picture and is_picture(a)]
        params = await build_params(
            self.bot,
            who.guild_id,
            prompt,
            {},
            picture=picture,
            end_picture=others[0] if others else None,
        )
        job = await submit_generation(self.bot, who, params)
        await follow_job(
            reply, self.bot.service, job, interval_s=self.bot.settings.limits.progress_interval_s
        )

    def hidden_content_hint(self, target: discord.Message) -> str:
        """Without the Message Content intent Discord hides other members' attachments from the
        bot (its own messages, DMs and messages that mention it stay visible): say so."""
        own = self.bot.user is not None and target.author.id == self.bot.user.id
        if self.bot.intents.message_content or own or target.guild is None:
            return ""
        return (
            ". I can't see the files of members' messages on this bot (the Message Content "
            "intent is off): use the message's Apps → Edit video menu, or /edit video:"
        )

    async def referenced_message(self, message: discord.Message) -> discord.Message:
        reference = message.reference
        assert reference is not None
        if isinstance(reference.resolved, discord.Message):
            return reference.resolved
        if reference.message_id is None:
            raise VideoBotError("reply to the message that holds the video")
        channel = message.channel
        try:
            return await channel.fetch_message(reference.message_id)
        except discord.HTTPException:
            raise VideoBotError("I cannot read the message you replied to") from None

    async def source_of_message(self, who: Requester, message: discord.Message) -> VideoRef:
        """The bot's own results come from the stored full-quality file (if ``who`` may reach
        the job, which the service checks); anything else from the message's video attachment.
        Nothing is fetched here."""
        if self.bot.user is not None and message.author.id == self.bot.user.id:
            job_id = job_id_of(message)
            if job_id is not None:
                return StoredVideo(job_id)
        attachment = video_attachment(message)
        if attachment is None:
            raise VideoBotError(
                "that message has no video (mp4, mov, webm, mkv or gif)"
                + self.hidden_content_hint(message)
            )
        return self.upload_of(attachment)

    # --- context menu and buttons --------------------------------------------------------------

    async def edit_menu(self, interaction: discord.Interaction, message: discord.Message) -> None:
        check_channel_permissions(interaction)  # no form to fill in where no result can be posted
        if video_attachment(message) is None and job_id_of(message) is None:
            await interaction.response.send_message(
                "That message has no video to edit.", ephemeral=True
            )
            return
        await interaction.response.send_modal(EditCommandModal(self, message))

    async def upscale_button(self, interaction: discord.Interaction, job_id: int) -> None:
        await self.respond(interaction, StoredVideo(job_id), ReplyCommand("upscale"))

    async def extend_button(self, interaction: discord.Interaction, job_id: int) -> None:
        """Extend under a result: a form asks how the clip goes on, prefilled with its prompt
        (read through the visibility rule, like every lookup)."""
        check_channel_permissions(interaction)  # no form to fill in where no result can be posted
        self.bot.service.extender()  # nor on a bot that has no model to extend with
        record = await self.bot.service.reachable_job(requester(interaction), job_id)
        await interaction.response.send_modal(ExtendModal(self, job_id, record.prompt or ""))

    async def edit_button(self, interaction: discord.Interaction, job_id: int, action: str) -> None:
        """Reverse, Loop (x2) and Interpolate (x2) under a result."""
        await self.respond(
            interaction, StoredVideo(job_id), ReplyCommand(action, dict(BUTTON_EDITS[action]))
        )

    async def respond(
        self,
        interaction: discord.Interaction,
        source: VideoRef,
        command: ReplyCommand,
    ) -> None:
        """Defer at once, then run the command on the video ``source`` names and show the result.
        Refusals raise: the tree (slash commands) or ``press`` (buttons) answers the member
        privately."""
        await interaction.response.defer(thinking=True)
        check_channel_permissions(interaction)
        await self.perform(InteractionReply(interaction), requester(interaction), source, command)


class EditButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=button_template("upscale", "extend", *BUTTON_EDITS),
):
    """Upscale, Reverse, Loop and Interpolate under a result; rebuilt from its custom id after a
    restart like every button of the bot."""

    def __init__(self, action: str, job_id: int) -> None:
        super().__init__(job_button(action, job_id))
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> EditButton:
        return cls(match["action"], int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await press(interaction, lambda: self.run(interaction))

    async def run(self, interaction: discord.Interaction) -> None:
        cog = cast("VideoBot", interaction.client).get_cog(EditCog.__cog_name__)
        if not isinstance(cog, EditCog):
            raise VideoBotError("this button is not available any more")
        if self.action == "upscale":
            await cog.upscale_button(interaction, self.job_id)
        elif self.action == "extend":
            await cog.extend_button(interaction, self.job_id)
        else:
            await cog.edit_button(interaction, self.job_id, self.action)


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(EditCog(bot))
