"""``/help``: what a member can do here, privately: the commands (read from the command tree, so
a new command is listed without touching this file), this server's models and limits, its presets
and a few examples to copy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.registry import REGISTRY
from bot.render import EMBED_COLOUR

if TYPE_CHECKING:
    from bot.client import VideoBot

EXAMPLES = (
    "`/video prompt: a red fox running through fresh snow, golden hour`",
    "`/video prompt: a paper boat on a pond --seed 7 --frames 24` (flags work in the prompt)",
    "`/video prompt: a city at night quality: draft`: a rough version in seconds, then Refine",
    "`/video prompt: a hummingbird smooth: 48`: smoothed by RIFE to up to 48 fps (at most 60)",
    "`/edit operation: trim` on your latest video, or reply to a video with `{prefix}trim 1s 3s`",
    "Reply to a video with `{prefix}speed 2x`, `{prefix}loop 3` or `{prefix}upscale`",
    "Press **Extend** under a result, or reply `{prefix}extend the boat sails on`, to continue it",
    "`/video prompt: a lighthouse aspect: 9:16`; attach `image:` and `end_image:` to pin both ends",
)


class HelpCog(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    @app_commands.command(name="help")
    async def help(self, interaction: discord.Interaction) -> None:
        """What this bot does here: commands, models, limits, presets and examples (only you see it)."""
        settings = self.bot.settings
        guild_id = interaction.guild_id
        embed = discord.Embed(
            title="Video bot: how to use it",
            description="\n".join(self.command_lines())[:4096],
            colour=EMBED_COLOUR,
        )
        default = await self.bot.service.default_model(guild_id)
        generators = [k for k in settings.models.enabled if REGISTRY[k].role == "generator"]
        upscalers = [k for k in settings.models.enabled if REGISTRY[k].role == "upscaler"]
        models = ", ".join(
            f"**{key}**"
            + (" (default)" if key == default else "")
            + (" · animates pictures" if REGISTRY[key].image_to_video else "")
            for key in generators
        )
        if upscalers:
            models += f"\nUpscaler: {', '.join(upscalers)}"
        embed.add_field(name="Models here", value=models[:1024] or "none", inline=False)
        embed.add_field(name="Limits", value=await self.limits_text(guild_id), inline=False)
        if guild_id is not None:
            presets = [p.name for p in await self.bot.store.list_presets(guild_id)]
            embed.add_field(
                name="Presets here",
                value=(
                    ", ".join(presets) + "\nUse one with `/video preset:NAME` (see /preset list)"
                    if presets
                    else "None yet: moderators add them with /preset add"
                )[:1024],
                inline=False,
            )
        prefix = settings.discord.command_prefix or "@videobot "
        embed.add_field(
            name="Examples",
            value="\n".join(line.format(prefix=prefix) for line in EXAMPLES)[:1024],
            inline=False,
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    def command_lines(self) -> list[str]:
        """Each slash command and subcommand the bot has, with its description; the context
        menus by name."""
        lines = []
        for command in sorted(self.bot.tree.get_commands(), key=lambda c: c.name):
            if isinstance(command, app_commands.Group):
                for sub in command.walk_commands():
                    if isinstance(sub, app_commands.Command):
                        lines.append(f"`/{sub.qualified_name}`: {sub.description}")
            elif isinstance(command, app_commands.Command):
                lines.append(f"`/{command.name}`: {command.description}")
            else:
                lines.append(f"**{command.name}** (right-click a message → Apps)")
        return lines

    async def limits_text(self, guild_id: int | None) -> str:
        """The per-member cap and cooldown where the member asked, and the cross-server cap."""
        limits = self.bot.settings.limits
        cap, cooldown = limits.max_queued_per_user, limits.cooldown_s
        if guild_id is not None:
            guild = await self.bot.store.get_guild_settings(guild_id)
            cap = cap if guild.max_queued_per_user is None else guild.max_queued_per_user
            cooldown = cooldown if guild.cooldown_s is None else guild.cooldown_s
        where = "here" if guild_id is not None else "in direct messages"
        return (
            f"At most **{cap}** job(s) queued or running {where}, **{cooldown:g} s** between "
            f"jobs; at most {limits.max_queued_per_user_total} across all servers."
        )


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(HelpCog(bot))
