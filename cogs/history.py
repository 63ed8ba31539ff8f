"""``/history`` (a member's own jobs, paginated) and ``/rerun`` (the same job again, same seed)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.interactions import check_channel_permissions, requester
from bot.render import EMBED_COLOUR, clean
from cogs.video import run_job

if TYPE_CHECKING:
    from bot.client import VideoBot
    from bot.store import JobRecord

STATUS_ICONS = {"queued": "⏳", "running": "🎬", "done": "✅", "failed": "❌", "cancelled": "✖️"}


def history_line(record: JobRecord) -> str:
    icon = STATUS_ICONS.get(str(record.status), "•")
    what = clean(record.prompt or "(no prompt)", 60)
    link = ""
    if record.message_id and record.channel_id:
        where = record.guild_id or "@me"
        link = f" · [result](https://discord.com/channels/{where}/{record.channel_id}/{record.message_id})"
    pruned = " · file deleted" if record.output_pruned else ""
    model = f" · {record.model}" if record.model else ""
    return f"{icon} **#{record.id}** {record.kind}{model} · {what}{link}{pruned}"


class HistoryView(discord.ui.View):
    """Newer/Older buttons that only the member who asked may press."""

    def __init__(self, cog: HistoryCog, owner_id: int, guild_id: int | None, total: int) -> None:
        super().__init__(timeout=300)
        self.cog = cog
        self.owner_id = owner_id
        self.guild_id = guild_id
        self.total = total
        self.page = 0
        self.update_buttons()

    @property
    def page_size(self) -> int:
        return self.cog.bot.settings.limits.history_page_size

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    def update_buttons(self) -> None:
        self.newer.disabled = self.page == 0
        self.older.disabled = self.page >= self.pages - 1

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await interaction.response.send_message(
                "This is someone else's history; use /history for yours.", ephemeral=True
            )
            return False
        return True

    async def embed(self) -> discord.Embed:
        records = await self.cog.bot.store.history(
            self.owner_id, self.guild_id, limit=self.page_size, offset=self.page * self.page_size
        )
        embed = discord.Embed(
            title="Your videos",
            description="\n".join(history_line(r) for r in records) or "Nothing yet: try /video.",
            colour=EMBED_COLOUR,
        )
        embed.set_footer(text=f"page {self.page + 1} of {self.pages} · {self.total} jobs")
        return embed

    async def show(self, interaction: discord.Interaction) -> None:
        self.update_buttons()
        await interaction.response.edit_message(embed=await self.embed(), view=self)

    @discord.ui.button(label="Newer", emoji="◀️", style=discord.ButtonStyle.secondary)
    async def newer(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.page = max(0, self.page - 1)
        await self.show(interaction)

    @discord.ui.button(label="Older", emoji="▶️", style=discord.ButtonStyle.secondary)
    async def older(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.page = min(self.pages - 1, self.page + 1)
        await self.show(interaction)


class HistoryCog(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    @app_commands.command(name="history")
    async def history(self, interaction: discord.Interaction) -> None:
        """Your jobs here, newest first, with links to the results."""
        total = await self.bot.store.count_history(interaction.user.id, interaction.guild_id)
        view = HistoryView(self, interaction.user.id, interaction.guild_id, total)
        await interaction.response.send_message(embed=await view.embed(), view=view, ephemeral=True)

    @app_commands.command(name="rerun")
    @app_commands.describe(job="The job id (see /history): yours, or one posted in this server")
    async def rerun(
        self, interaction: discord.Interaction, job: app_commands.Range[int, 1]
    ) -> None:
        """Run a video job again with the same settings and seed."""
        await interaction.response.defer(thinking=True)
        check_channel_permissions(interaction)
        new_job = await self.bot.service.rerun(requester(interaction), job, same_seed=True)
        await run_job(self.bot, interaction, new_job)


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(HistoryCog(bot))
