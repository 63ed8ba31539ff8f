"""``/preset add``, ``/preset remove`` and ``/preset list``: a server's named styles for ``/video
preset:``. Moderators add and remove them (recorded in the audit log); anyone in the server may
list them. The rules are in :mod:`bot.presets`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.errors import InvalidParameterError
from bot.core.registry import REGISTRY
from bot.core.rules import FPS
from bot.interactions import moderator_only
from bot.presets import (
    MAX_PRESETS,
    SUFFIX_MAX_CHARS,
    check_name,
    check_preset,
    describe,
    parse_size,
)
from bot.render import EMBED_COLOUR
from cogs.video import (
    MAX_FRAMES,
    MAX_GUIDANCE,
    MAX_STEPS,
    MIN_FRAMES,
    MIN_GUIDANCE,
    MIN_STEPS,
    preset_choices,
)

if TYPE_CHECKING:
    from bot.client import VideoBot


class PresetCog(commands.Cog):
    preset = app_commands.Group(
        name="preset",
        description="Named styles for /video in this server; moderators add and remove them",
        guild_only=True,
    )

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    @preset.command(name="add")
    @moderator_only()
    @app_commands.describe(
        name="Its name, as members pick it: lower-case letters, digits, - or _",
        suffix="Text added after the member's prompt, e.g. cinematic lighting, 35mm film",
        negative="What to avoid, unless the member gives their own negative prompt",
        model="The model it renders with (default: the member's choice or the server's)",
        steps="Denoising steps",
        guidance="How closely to follow the prompt",
        frames="Number of frames",
        fps="Frames per second",
        size="Width and height, e.g. 576x320",
    )
    async def add(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 32],
        suffix: app_commands.Range[str, 1, SUFFIX_MAX_CHARS] | None = None,
        negative: app_commands.Range[str, 1, SUFFIX_MAX_CHARS] | None = None,
        model: str | None = None,
        steps: app_commands.Range[int, MIN_STEPS, MAX_STEPS] | None = None,
        guidance: app_commands.Range[float, MIN_GUIDANCE, MAX_GUIDANCE] | None = None,
        frames: app_commands.Range[int, MIN_FRAMES, MAX_FRAMES] | None = None,
        fps: app_commands.Range[int, int(FPS.low), int(FPS.high)] | None = None,
        size: app_commands.Range[str, 3, 11] | None = None,
    ) -> None:
        """Moderators: add a preset (or replace the one of that name)."""
        assert interaction.guild_id is not None
        width, height = parse_size(size) if size is not None else (None, None)
        service = self.bot.service
        draft = check_preset(
            name,
            prompt_suffix=suffix or "",
            negative_prompt=negative or "",
            settings={
                "model": model,
                "num_inference_steps": steps,
                "guidance_scale": guidance,
                "num_frames": frames,
                "fps": fps,
                "width": width,
                "height": height,
            },
            enabled=list(self.bot.settings.models.enabled),
            default_model=await service.default_model(interaction.guild_id),
        )
        # Blocked words are checked again on every prompt made with it; refuse them here too.
        service.admission.check_words(
            [("suffix", draft.prompt_suffix), ("negative", draft.negative_prompt)]
        )
        store = self.bot.store
        existing = {p.name for p in await store.list_presets(interaction.guild_id)}
        if draft.name not in existing and len(existing) >= MAX_PRESETS:
            raise InvalidParameterError(
                "name", f"this server has {MAX_PRESETS} presets, the most it may have: remove one"
            )
        saved = await store.save_preset(
            interaction.guild_id,
            draft.name,
            prompt_suffix=draft.prompt_suffix,
            negative_prompt=draft.negative_prompt,
            settings=draft.settings,
            created_by=interaction.user.id,
        )
        await store.record_audit(
            interaction.guild_id,
            interaction.user.id,
            "preset.add",
            saved.name,
            {"replaced": saved.name in existing},
        )
        verb = "Replaced" if saved.name in existing else "Added"
        await interaction.response.send_message(
            f"{verb} the preset {describe(saved)}\nMembers use it with `/video preset:{saved.name}`.",
            ephemeral=True,
        )

    @preset.command(name="remove")
    @moderator_only()
    @app_commands.describe(name="The preset to remove")
    async def remove(self, interaction: discord.Interaction, name: str) -> None:
        """Moderators: remove one of this server's presets."""
        assert interaction.guild_id is not None
        key = check_name(name)
        removed = await self.bot.store.delete_preset(interaction.guild_id, key)
        if not removed:
            raise InvalidParameterError("name", f"this server has no preset {key!r}")
        await self.bot.store.record_audit(
            interaction.guild_id, interaction.user.id, "preset.remove", key, {}
        )
        await interaction.response.send_message(f"Removed the preset **{key}**.", ephemeral=True)

    @preset.command(name="list")
    async def list_presets(self, interaction: discord.Interaction) -> None:
        """This server's presets and what each does."""
        assert interaction.guild_id is not None
        presets = await self.bot.store.list_presets(interaction.guild_id)
        embed = discord.Embed(
            title=f"Presets here: {len(presets)}",
            description="\n".join(describe(p) for p in presets)[:4096]
            or "None yet: a moderator adds them with /preset add.",
            colour=EMBED_COLOUR,
        )
        embed.set_footer(text="Use one with /video preset:NAME; your own options win over it.")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @remove.autocomplete("name")
    async def preset_names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await preset_choices(self.bot, interaction, current)

    @add.autocomplete("model")
    async def model_keys(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=key, value=key)
            for key in self.bot.settings.models.enabled
            if REGISTRY[key].role == "generator" and current.lower() in key
        ][:25]


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(PresetCog(bot))
