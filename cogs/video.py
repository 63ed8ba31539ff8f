"""``/video``: generate a video; the Reroll and Cancel buttons."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import is_moderator, send_error
from bot.core.errors import VideoBotError
from bot.core.models import REGISTRY, get_spec
from bot.core.params import SCHEDULERS, GenerationParams
from bot.render import InteractionReply, follow_job
from bot.service import Requester
from bot.textcommands import parse_prompt_flags

if TYPE_CHECKING:
    from bot.client import VideoBot
    from bot.jobs import Job


def requester(interaction: discord.Interaction) -> Requester:
    return Requester(
        user_id=interaction.user.id,
        user_name=interaction.user.name,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id or 0,
        application_id=interaction.application_id,
        interaction_token=interaction.token,
    )


async def refuse(interaction: discord.Interaction, message: str) -> None:
    """After a defer: drop the public 'thinking…' message and answer the member privately."""
    with contextlib.suppress(discord.HTTPException):
        await interaction.delete_original_response()
    await send_error(interaction, message)


REQUIRED_PERMISSIONS = {"attach_files": "Attach Files", "embed_links": "Embed Links"}


def check_channel_permissions(interaction: discord.Interaction) -> None:
    """Refuse before queueing anything when the bot could not post the result here."""
    permissions = interaction.app_permissions
    missing = [
        name for attr, name in REQUIRED_PERMISSIONS.items() if not getattr(permissions, attr)
    ]
    if missing:
        raise VideoBotError(
            f"I can't post videos in this channel: I'm missing the {' and '.join(missing)} "
            "permission. Ask a moderator to allow it here, or use me in another channel."
        )


async def run_job(bot: VideoBot, interaction: discord.Interaction, job: Job) -> None:
    """Show a job's queue position and progress on the deferred response, then its result."""
    await follow_job(
        InteractionReply(interaction),
        bot.service,
        job,
        interval_s=bot.settings.limits.progress_interval_s,
    )


class VideoCog(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.offer_enabled_models()

    def offer_enabled_models(self) -> None:
        """The model option's choices are the generators this server owner enabled (Discord shows
        them as a list), set when the cog is built since they come from the config."""
        enabled = [k for k in self.bot.settings.models.enabled if REGISTRY[k].role == "generator"]
        self.video._params["model"].choices = [
            app_commands.Choice(name=f"{key}: {REGISTRY[key].name}"[:100], value=key)
            for key in enabled[:25]
        ]

    async def cog_load(self) -> None:
        self.bot.button_handlers.update({"reroll": self.reroll, "cancel": self.cancel})

    @app_commands.command(name="video")
    @app_commands.describe(
        prompt="What the video shows. Flags work too: a cat surfing --seed 7 --frames 24",
        negative="What to avoid (negative prompt)",
        model="Which model renders it (default: the server's)",
        frames="Number of frames (8-64)",
        fps="Frames per second (4-30)",
        width="Width in pixels, a multiple of 8 (default: the model's native size)",
        height="Height in pixels, a multiple of 8 (default: the model's native size)",
        steps="Denoising steps: more is slower and finer (10-50)",
        guidance="How closely to follow the prompt (1-20)",
        seed="Seed for a reproducible result",
        scheduler="Diffusion scheduler",
        interpolate="Multiply the frame rate with motion interpolation (1-4)",
        loop="Play forward then backward so it loops seamlessly",
    )
    @app_commands.choices(
        scheduler=[app_commands.Choice(name=name, value=name) for name in SCHEDULERS]
    )
    async def video(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 1000],
        negative: app_commands.Range[str, 0, 1000] | None = None,
        model: str | None = None,
        frames: app_commands.Range[int, 8, 64] | None = None,
        fps: app_commands.Range[int, 4, 30] | None = None,
        width: app_commands.Range[int, 32, 1024] | None = None,
        height: app_commands.Range[int, 32, 1024] | None = None,
        steps: app_commands.Range[int, 10, 50] | None = None,
        guidance: app_commands.Range[float, 1.0, 20.0] | None = None,
        seed: app_commands.Range[int, 0, 2**32 - 1] | None = None,
        scheduler: str | None = None,
        interpolate: app_commands.Range[int, 1, 4] | None = None,
        loop: bool | None = None,
    ) -> None:
        """Generate a short video from a text prompt."""
        await interaction.response.defer(thinking=True)
        explicit = {
            "negative_prompt": negative,
            "model": model,
            "num_frames": frames,
            "fps": fps,
            "width": width,
            "height": height,
            "num_inference_steps": steps,
            "guidance_scale": guidance,
            "seed": seed,
            "scheduler": scheduler,
            "interpolate": interpolate,
            "loop": loop,
        }
        try:
            check_channel_permissions(interaction)
            params = await self.build_params(interaction, prompt, explicit)
            job = await self.bot.service.submit_generation(requester(interaction), params)
        except VideoBotError as exc:
            await refuse(interaction, str(exc))
            return
        await run_job(self.bot, interaction, job)

    async def build_params(
        self, interaction: discord.Interaction, prompt: str, explicit: dict[str, Any]
    ) -> GenerationParams:
        """Flags typed in the prompt, overridden by the command's own options; sizes default to
        the chosen model's native size."""
        flags = parse_prompt_flags(prompt)
        options: dict[str, Any] = {**flags.options}
        options.update({k: v for k, v in explicit.items() if v is not None})
        model = options.get("model") or await self.bot.service.default_model(interaction.guild_id)
        spec = get_spec(str(model))
        self.bot.service.check_enabled(spec.key)
        options["model"] = spec.key
        options.setdefault("width", spec.native_width)
        options.setdefault("height", spec.native_height)
        return GenerationParams(prompt=flags.prompt, **options)

    # --- buttons -------------------------------------------------------------------------------

    async def reroll(self, interaction: discord.Interaction, job_id: int) -> None:
        """Same parameters, new seed."""
        await interaction.response.defer(thinking=True)
        record = await self.bot.store.get_job(job_id)
        if record is None or record.kind != "generate":
            await refuse(interaction, f"job #{job_id} cannot be rerolled")
            return
        try:
            params = GenerationParams(**{**record.params, "seed": None})
            job = await self.bot.service.submit_generation(
                requester(interaction), params, parent_id=job_id
            )
        except VideoBotError as exc:
            await refuse(interaction, str(exc))
            return
        await run_job(self.bot, interaction, job)

    async def cancel(self, interaction: discord.Interaction, job_id: int) -> None:
        job = self.bot.executor.get(job_id)
        if job is None:
            await interaction.response.send_message(
                f"Job #{job_id} is not queued or running.", ephemeral=True
            )
            return
        if job.user_id != interaction.user.id and not is_moderator(
            self.bot.settings, interaction.user
        ):
            await interaction.response.send_message(
                "Only the member who started this job or a moderator can cancel it.",
                ephemeral=True,
            )
            return
        self.bot.service.cancel(job_id)
        await interaction.response.send_message(f"Cancelling job #{job_id}…", ephemeral=True)


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(VideoCog(bot))
