"""``/video``: generate a video (or a quick draft); the Reroll, Refine and Cancel buttons."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import discord
from discord import app_commands
from discord.ext import commands

from bot.admission import Requester, RequestRefused
from bot.core import soundtrack
from bot.core.aspect import ASPECTS, aspect_of, size_for_aspect
from bot.core.drafts import denoiser_calls, estimate_steps
from bot.core.errors import InvalidParameterError, VideoBotError
from bot.core.params import GenerationParams
from bot.core.registry import REGISTRY, generator_bounds, get_spec
from bot.core.rules import FPS, INTERPOLATE, PROMPT_MAX_CHARS, SCHEDULERS, SEED
from bot.delivery import InteractionReply, follow_job
from bot.interactions import check_channel_permissions, is_moderator, press, requester
from bot.lifecycle import JobKind
from bot.presets import apply_preset, find_preset
from bot.render import (
    PICTURE_EXTENSIONS,
    RefineEstimate,
    button_template,
    is_picture,
    job_button,
    refine_note,
)
from bot.textcommands import parse_prompt_flags

if TYPE_CHECKING:
    from bot.client import VideoBot
    from bot.jobs import Job
    from bot.store import JobRecord


# Discord's own bounds for the options: the widest any model takes (the registry's), and the rules'
# ranges for the options every model shares. Each model's rules are checked by GenerationParams,
# which names the nearest valid values.
_BOUNDS = generator_bounds()
MIN_FRAMES, MAX_FRAMES = _BOUNDS.frames
MIN_STEPS, MAX_STEPS = _BOUNDS.steps
MIN_SIZE, MAX_SIZE = _BOUNDS.size
MIN_GUIDANCE, MAX_GUIDANCE = _BOUNDS.guidance
MIN_FPS, MAX_FPS = int(FPS.low), int(FPS.high)
MAX_SEED = int(SEED.high)
MAX_INTERPOLATE = int(INTERPOLATE.high)

DEFAULT_ANIMATE_PROMPT = "the picture comes to life with natural, gentle motion"
"""The prompt when a member animates a picture without describing the motion."""


async def build_params(
    bot: VideoBot,
    guild_id: int | None,
    prompt: str,
    explicit: dict[str, Any],
    picture: discord.Attachment | None = None,
    preset: str | None = None,
    end_picture: discord.Attachment | None = None,
) -> GenerationParams:
    """Flags typed in the prompt, overridden by the command's own options; options left out take
    the server's ``preset``'s settings, then the chosen model's defaults. With a picture, the
    model is one that can animate it (with ``end_picture``, one that also pins the last frame),
    and the pictures are downloaded and checked only after every other option has been accepted.
    A picture job with no size or aspect given takes the picture's own shape."""
    service = bot.service
    flags = parse_prompt_flags(prompt)
    options: dict[str, Any] = {**flags.options}
    options.update({k: v for k, v in explicit.items() if v is not None})
    typed = flags.prompt or (DEFAULT_ANIMATE_PROMPT if picture is not None else "")
    if preset is not None:
        style = await find_preset(bot.store, guild_id, preset)
        typed, options = apply_preset(typed, options, style)
    if end_picture is not None and picture is None:
        raise InvalidParameterError(
            "end_image", "is the last frame of a video that starts from a picture: attach image too"
        )
    if picture is not None:
        check_picture(picture, service.picture_limit_bytes())
        if end_picture is not None:
            check_picture(end_picture, service.picture_limit_bytes(), field="end_image")
        model = await service.image_model(
            guild_id, options.get("model"), last_frame=end_picture is not None
        )
    else:
        model = options.get("model") or await service.default_model(guild_id)
    spec = get_spec(str(model))
    service.check_enabled(spec.key)
    options["model"] = spec.key
    text = typed
    # Checked before any download, with stand-ins for the pictures (a picture-only model refuses
    # a job without one); the saved pictures replace them below.
    pending: dict[str, Any] = {}
    if picture is not None:
        pending = {"image": "upload", "end_image": "upload" if end_picture else None}
    params = GenerationParams(prompt=text, **options, **pending)
    if picture is None:
        return params
    follow = spec.image_size is None and not {"width", "height", "aspect"} & set(options)

    def size_for(width: int, height: int) -> tuple[int, int]:
        if follow:
            return size_for_aspect(spec, aspect_of(width, height))
        return params.width, params.height

    path, size = await service.fitted_picture(await picture.read(), size_for)
    saved = [path]
    try:
        update: dict[str, Any] = {"image": str(path), "width": size[0], "height": size[1]}
        if end_picture is not None:
            end = await service.picture_from_upload(
                await end_picture.read(), size, which="end_image"
            )
            saved.append(end)
            update["end_image"] = str(end)
        return GenerationParams(**{**params.model_dump(), **update})
    except Exception:
        for file in saved:
            file.unlink(missing_ok=True)
        raise


def check_picture(attachment: discord.Attachment, limit: int, field: str = "image") -> None:
    """Refused from what Discord says about the file, before downloading it."""
    if not is_picture(attachment):
        raise InvalidParameterError(
            field,
            f"{attachment.filename[:60]!r} is not a picture; attach a "
            f"{', '.join(ext.lstrip('.') for ext in PICTURE_EXTENSIONS)} file",
        )
    if attachment.size > limit:
        raise InvalidParameterError(
            field,
            f"is {attachment.size / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB",
        )


def sound_note(params: GenerationParams, *, asked: bool | None) -> str:
    """A line for a member who asked for sound from a model that makes none: a soundtrack is made
    from the prompt (what to expect of it), or, where the owner has not enabled soundtracks, the
    video is silent and who can change that."""
    spec = get_spec(params.model or "")
    if not asked or spec.sound:
        return ""
    if params.soundtrack is not None:
        return (
            f"{spec.key} makes no sound: a soundtrack is made from your prompt after the video "
            "(ambience, not lip-sync)."
        )
    return (
        f"{spec.key} makes no sound, so the video is silent. The bot's owner can turn on "
        "soundtracks made from the prompt."
    )


async def submit_generation(bot: VideoBot, who: Requester, params: GenerationParams) -> Job:
    """Queue a generation; a refused job leaves no picture behind."""
    try:
        return await bot.service.submit_generation(who, params)
    except Exception:
        for picture in (params.image, params.end_image):
            if picture is not None:
                Path(picture).unlink(missing_ok=True)
        raise


async def run_job(
    bot: VideoBot, interaction: discord.Interaction, job: Job, *, note: str = ""
) -> None:
    """Show a job's queue position and progress on the deferred response, then its result."""
    await follow_job(
        InteractionReply(interaction),
        bot.service,
        job,
        interval_s=bot.settings.limits.progress_interval_s,
        note=note,
    )


def refine_estimate(draft: JobRecord, full: GenerationParams) -> RefineEstimate:
    """How long the full render should take, from the draft's own pace: its denoising time per
    denoiser pass times the passes the full render runs (the recipe in ``bot.core.drafts``),
    plus its decoding and encoding. A draft that ran a cache or a distilled model went faster per
    pass than the full model will, so this leans low."""
    drafted = full.model_copy(update={"quality": "draft"})
    denoise = draft.timings.get("denoise")
    seconds = None
    if denoise is not None:
        ratio = denoiser_calls(full) / max(denoiser_calls(drafted), 1)
        seconds = denoise * ratio + draft.timings.get("postprocess", 0.0)
    return RefineEstimate(estimate_steps(full), estimate_steps(drafted), seconds)


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
        self.bot.add_dynamic_items(VideoButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(VideoButton)

    @app_commands.command(name="video")
    @app_commands.describe(
        prompt="What the video shows. Flags work too: a cat surfing --seed 7 --frames 24",
        negative="What to avoid (negative prompt)",
        model="Which model renders it (default: the server's)",
        frames="Number of frames (default: the model's; LTX 8k+1, Wan 4k+1, CogVideoX 8k+1)",
        fps="Frames per second (4-30)",
        width="Width in pixels, a multiple of 8 (32 for LTX) (default: the model's native size)",
        height="Height in pixels, a multiple of 8 (32 for LTX) (default: the model's native)",
        steps="Denoising steps: more is slower and finer (default: the model's)",
        guidance="How closely to follow the prompt (1-20)",
        seed="Seed for a reproducible result",
        scheduler="Diffusion scheduler",
        interpolate="Multiply the frame rate with motion interpolation (1-4)",
        smooth="Smooth it to this fps (at most 60) with RIFE, e.g. 48; drafts are not smoothed",
        loop="Play forward then backward so it loops seamlessly",
        sound="Keep a model's own sound (LTX-2; default on); True: a soundtrack for silent models",
        image="A picture to animate (image-to-video models: LTX-Video, Wan 2.2, CogVideoX-5B)",
        end_image="The picture the video ends on, with image as its first (Wan 2.2 I2V, FLF2V)",
        aspect="The video's shape, sized for the model (default: the model's; with a picture, its)",
        quality="full (default) or draft: a rough version in seconds, with a Refine button",
        preset="A style this server's moderators made (see /preset list); your options win",
    )
    @app_commands.choices(
        scheduler=[app_commands.Choice(name=name, value=name) for name in SCHEDULERS],
        aspect=[app_commands.Choice(name=name, value=name) for name in ASPECTS],
        quality=[
            app_commands.Choice(name="full: the finished video (default)", value="full"),
            app_commands.Choice(name="draft: a rough version in seconds; Refine it", value="draft"),
        ],
    )
    async def video(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, PROMPT_MAX_CHARS],
        negative: app_commands.Range[str, 0, PROMPT_MAX_CHARS] | None = None,
        model: str | None = None,
        frames: app_commands.Range[int, MIN_FRAMES, MAX_FRAMES] | None = None,
        fps: app_commands.Range[int, MIN_FPS, MAX_FPS] | None = None,
        width: app_commands.Range[int, MIN_SIZE, MAX_SIZE] | None = None,
        height: app_commands.Range[int, MIN_SIZE, MAX_SIZE] | None = None,
        steps: app_commands.Range[int, MIN_STEPS, MAX_STEPS] | None = None,
        guidance: app_commands.Range[float, MIN_GUIDANCE, MAX_GUIDANCE] | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        scheduler: str | None = None,
        interpolate: app_commands.Range[int, 1, MAX_INTERPOLATE] | None = None,
        loop: bool | None = None,
        sound: bool | None = None,
        image: discord.Attachment | None = None,
        quality: str | None = None,
        preset: app_commands.Range[str, 1, 32] | None = None,
        end_image: discord.Attachment | None = None,
        aspect: str | None = None,
        smooth: int | None = None,
    ) -> None:
        """Generate a short video from a text prompt, or animate a picture."""
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
            "smooth": smooth,
            "loop": loop,
            "sound": sound,
            "quality": quality,
            "aspect": aspect,
        }
        # Refusals raise: the tree's error handler answers the member privately.
        check_channel_permissions(interaction)
        params = await build_params(
            self.bot,
            interaction.guild_id,
            prompt,
            explicit,
            picture=image,
            preset=preset,
            end_picture=end_image,
        )
        params = soundtrack.requested(params, sound, self.bot.settings.sound.soundtrack_model)
        job = await submit_generation(self.bot, requester(interaction), params)
        await run_job(self.bot, interaction, job, note=sound_note(params, asked=sound))

    @video.autocomplete("preset")
    async def preset_names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await preset_choices(self.bot, interaction, current)

    # --- buttons -------------------------------------------------------------------------------

    # Button handlers raise on refusal: ``VideoButton`` answers the member privately.

    async def reroll(self, interaction: discord.Interaction, job_id: int) -> None:
        """Same parameters, new seed; the new video is the presser's."""
        await interaction.response.defer(thinking=True)
        check_channel_permissions(interaction)
        job = await self.bot.service.rerun(requester(interaction), job_id, same_seed=False)
        await run_job(self.bot, interaction, job)

    async def refine(self, interaction: discord.Interaction, job_id: int) -> None:
        """A draft again at full quality: the same prompt, seed and options as a new job of the
        presser's (a draft they may reach), with how long it should take above its progress."""
        await interaction.response.defer(thinking=True)
        check_channel_permissions(interaction)
        who = requester(interaction)
        service = self.bot.service
        draft = await service.reachable_job(who, job_id)
        if draft.kind is not JobKind.GENERATE or draft.params.get("quality") != "draft":
            raise RequestRefused(
                f"job #{job_id} is not a draft, so there is nothing to refine: it is already at "
                "full quality (Reroll makes another with a new seed)"
            )
        job = await service.rerun(who, job_id, same_seed=True, changes={"quality": "full"})
        full = GenerationParams(**{**draft.params, "quality": "full"})
        note = refine_note(job_id, refine_estimate(draft, full))
        await run_job(self.bot, interaction, job, note=note)

    async def cancel(self, interaction: discord.Interaction, job_id: int) -> None:
        """The job's member, or a moderator of the job's server."""
        moderator = is_moderator(self.bot.settings, interaction.user)
        job = self.bot.service.cancel_for(requester(interaction), job_id, moderator=moderator)
        if job.user_id != interaction.user.id and interaction.guild_id is not None:
            await self.bot.store.record_audit(
                interaction.guild_id,
                interaction.user.id,
                "queue.cancel",
                job_id,
                {"owner": job.user_id},
            )
        await interaction.response.send_message(f"Cancelling job #{job_id}…", ephemeral=True)


async def preset_choices(
    bot: VideoBot, interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """This server's presets whose name holds what was typed; none in direct messages, and never
    another server's."""
    if interaction.guild_id is None:
        return []
    typed = current.strip().lower()
    return [
        app_commands.Choice(name=preset.name, value=preset.name)
        for preset in await bot.store.list_presets(interaction.guild_id)
        if typed in preset.name
    ][:25]


class VideoButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=button_template("reroll", "refine", "cancel"),
):
    """Reroll and Refine (a draft's) under a result, Cancel under a running job. The custom id
    carries the action and the job, so the button works after a restart: discord.py rebuilds it
    from the id."""

    def __init__(self, action: str, job_id: int) -> None:
        super().__init__(job_button(action, job_id))
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> VideoButton:
        return cls(match["action"], int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await press(interaction, lambda: self.run(interaction))

    async def run(self, interaction: discord.Interaction) -> None:
        cog = cast("VideoBot", interaction.client).get_cog(VideoCog.__cog_name__)
        if not isinstance(cog, VideoCog):
            raise VideoBotError("this button is not available any more")
        handler = {"reroll": cog.reroll, "refine": cog.refine, "cancel": cog.cancel}[self.action]
        await handler(interaction, self.job_id)


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(VideoCog(bot))
