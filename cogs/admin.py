"""Moderator commands and the queue: ``/models``, ``/queue``, ``/block``, ``/unblock``,
``/limits`` and ``/audit``. Moderators have Manage Server or the role named in the config and
control their own server; what changes the bot for every server (``/models load`` and ``unload``,
the workers and their hosts in ``/models list``) is the bot's owners' (:func:`bot.interactions.
owner_only`). Every such action is recorded in the audit table of the server it was taken in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.errors import VideoBotError
from bot.core.registry import REGISTRY, get_spec
from bot.interactions import is_moderator, is_owner, moderator_only, owner_only, requester
from bot.lifecycle import JobStatus
from bot.render import EMBED_COLOUR, clean

if TYPE_CHECKING:
    from bot.client import VideoBot


class AdminCog(commands.Cog):
    models = app_commands.Group(
        name="models",
        description="Choose this server's model; owners: load and unload",
        guild_only=True,
    )
    queue = app_commands.Group(name="queue", description="What is queued and running")

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    async def audit(
        self, interaction: discord.Interaction, action: str, target: Any, **details: Any
    ) -> None:
        assert interaction.guild_id is not None
        await self.bot.store.record_audit(
            interaction.guild_id, interaction.user.id, action, target, details
        )

    # --- /models -------------------------------------------------------------------------------

    @models.command(name="list")
    @moderator_only(or_owner=True)
    async def models_list(self, interaction: discord.Interaction) -> None:
        """Which models are enabled and loaded; for the bot's owners, each worker's state."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        default = await self.bot.service.default_model(interaction.guild_id)
        owner = await is_owner(self.bot, interaction.user)
        workers = await self.bot.executor.workers()
        rows = {row.key: row for row in self.bot.manager.list_models()}
        lines = []
        for key in self.bot.settings.models.enabled:
            row = rows[key]
            holders = [
                (worker.name, model.memory_mb)
                for worker in workers
                for model in worker.loaded
                if model.key == key
            ]
            if not holders:
                state = "not loaded"
            elif len(workers) == 1:
                memory = holders[0][1]
                state = f"loaded, {memory:.0f} MB" if memory else "loaded"
            elif owner:
                state = "loaded on " + ", ".join(name for name, _ in holders)
            else:
                state = f"loaded on {len(holders)} of {len(workers)} workers"
            marks = " · default" if key == default else ""
            spec = REGISTRY[key]
            if spec.image_to_video:
                marks += " · animates pictures"
            if spec.first_last_frame:
                marks += " · first and last frame"
            advice = f"\n  small cards: {spec.memory_advice}" if spec.memory_advice else ""
            if row.plan is not None:  # the memory plan this card gets, and why
                chosen = row.plan.chosen.key if row.plan.chosen else "no plan fits"
                advice = f"\n  plan: {chosen} ({row.plan.reason})"
            lines.append(
                f"**{key}** ({row.role}) · {state} · needs {row.vram_gb:g} GB VRAM · "
                f"native {row.native_size[0]}x{row.native_size[1]}{marks}{advice}"
            )
        # Worker names, hosts (a Ray node's address) and what runs where are the owners' to see.
        if owner:
            lines.append("")
            lines.append(
                f"**Workers** ({len(workers)})" if workers else "**Workers**: none reachable"
            )
            for worker in workers:
                doing = f"running #{worker.job_id}" if worker.job_id is not None else worker.status
                holds = ", ".join(model.key for model in worker.loaded) or "no model loaded"
                lines.append(
                    f"`{worker.name}` · {worker.node} · {worker.device} · {doing} · {holds}"
                )
        embed = discord.Embed(
            title="Models", description="\n".join(lines)[:4096], colour=EMBED_COLOUR
        )
        await interaction.followup.send(embed=embed, ephemeral=True)

    @models.command(name="load")
    @owner_only()
    @app_commands.describe(model="Model key", worker="One worker by name (default: every worker)")
    async def models_load(
        self, interaction: discord.Interaction, model: str, worker: str | None = None
    ) -> None:
        """Owners: load a model now on every worker or one (each after its current job)."""
        key = self.enabled_key(model)
        await interaction.response.defer(ephemeral=True, thinking=True)
        reports = await self.bot.executor.load_model(key, worker)
        await self.audit(interaction, "models.load", key, worker=worker)
        lines = []
        for report in reports:
            where = f"`{report.worker}`: " if len(reports) > 1 else ""
            if not report.ok:
                lines.append(f"{where}could not load **{key}**: {report.error}")
                continue
            # Where the denoiser is compiled (CUDA), each shape bucket was compiled at load.
            compiled = f" Compiled for {report.warmed} job sizes." if report.warmed else ""
            lines.append(
                f"{where}Loaded **{key}** in {report.load_time_s:.1f} s on {report.device} "
                f"({report.dtype}).{compiled}"
            )
        await interaction.followup.send(
            "\n".join(lines) or "No worker is reachable.", ephemeral=True
        )

    @models.command(name="unload")
    @owner_only()
    @app_commands.describe(model="Model key", worker="One worker by name (default: every worker)")
    async def models_unload(
        self, interaction: discord.Interaction, model: str, worker: str | None = None
    ) -> None:
        """Owners: free a model's memory on every worker or one (each after its current job)."""
        key = self.enabled_key(model)
        await interaction.response.defer(ephemeral=True, thinking=True)
        reports = await self.bot.executor.unload_model(key, worker)
        await self.audit(
            interaction,
            "models.unload",
            key,
            worker=worker,
            was_loaded=any(report.changed for report in reports),
        )
        lines = []
        for report in reports:
            where = f"`{report.worker}`: " if len(reports) > 1 else ""
            if not report.ok:
                lines.append(f"{where}could not unload **{key}**: {report.error}")
            else:
                done = f"Unloaded **{key}**." if report.changed else f"**{key}** was not loaded."
                lines.append(where + done)
        await interaction.followup.send(
            "\n".join(lines) or "No worker is reachable.", ephemeral=True
        )

    @models_load.autocomplete("worker")
    @models_unload.autocomplete("worker")
    async def worker_names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if not await is_owner(self.bot, interaction.user):
            return []  # worker names are the owners' (the commands refuse anyone else anyway)
        return [
            app_commands.Choice(name=worker.name, value=worker.name)
            for worker in await self.bot.executor.workers()
            if current.lower() in worker.name.lower()
        ][:25]

    @models.command(name="default")
    @moderator_only()
    @app_commands.describe(model="Model key used when members do not pick one")
    async def models_default(self, interaction: discord.Interaction, model: str) -> None:
        """Set this server's default model."""
        key = self.enabled_key(model)
        if REGISTRY[key].role != "generator":
            raise VideoBotError(f"{key} is an upscaler and cannot be the default")
        assert interaction.guild_id is not None
        await self.bot.store.update_guild_settings(interaction.guild_id, default_model=key)
        await self.audit(interaction, "models.default", key)
        await interaction.response.send_message(
            f"The default model is now **{key}**.", ephemeral=True
        )

    @models_load.autocomplete("model")
    @models_unload.autocomplete("model")
    @models_default.autocomplete("model")
    async def model_keys(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=key, value=key)
            for key in self.bot.settings.models.enabled
            if current.lower() in key
        ][:25]

    def enabled_key(self, model: str) -> str:
        key = get_spec(model).key
        self.bot.service.check_enabled(key)
        return key

    # --- /queue --------------------------------------------------------------------------------

    @queue.command(name="show")
    async def queue_show(self, interaction: discord.Interaction) -> None:
        """This server's running and queued jobs, in the order they will run."""
        who = requester(interaction)
        moderator = is_moderator(self.bot.settings, interaction.user)
        jobs = self.bot.service.queue_for(who)
        lines = []
        for job in jobs[:20]:
            where = "▶️ running" if job.state == JobStatus.RUNNING else f"#{job.position} in line"
            line = f"{where} · job **{job.id}** · {job.kind} · {job.model}"
            if job.user_id == who.user_id or moderator:  # others' prompts are theirs to share
                line += f" · <@{job.user_id}> · {clean(job.prompt, 40)}"
            lines.append(line)
        if len(jobs) > 20:
            lines.append(f"… and {len(jobs) - 20} more")
        total = len(self.bot.executor.snapshot())
        where = "here" if who.guild_id is not None else "of yours"
        embed = discord.Embed(
            title=f"Queue: {len(jobs)} job(s) {where}",
            description="\n".join(lines) or "Nothing queued here.",
            colour=EMBED_COLOUR,
        )
        embed.set_footer(text=f"{total} job(s) in the bot's queue across all servers")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @queue.command(name="cancel")
    @app_commands.describe(job="The job id (see /queue show)")
    async def queue_cancel(self, interaction: discord.Interaction, job: int) -> None:
        """Cancel one of your jobs (moderators: any of this server's)."""
        moderator = is_moderator(self.bot.settings, interaction.user)
        queued = self.bot.service.cancel_for(requester(interaction), job, moderator=moderator)
        if queued.user_id != interaction.user.id and interaction.guild_id is not None:
            await self.audit(interaction, "queue.cancel", job, owner=queued.user_id)
        await interaction.response.send_message(f"Cancelling job #{job}.", ephemeral=True)

    @queue.command(name="clear")
    @moderator_only()
    async def queue_clear(self, interaction: discord.Interaction) -> None:
        """Moderators: cancel every queued and running job of this server."""
        jobs = self.bot.service.queue_for(requester(interaction))
        for job in jobs:
            self.bot.service.cancel(job.id)
        await self.audit(interaction, "queue.clear", None, jobs=[j.id for j in jobs])
        await interaction.response.send_message(f"Cancelled {len(jobs)} job(s).", ephemeral=True)

    # --- members -------------------------------------------------------------------------------

    @app_commands.command(name="block")
    @app_commands.guild_only()
    @moderator_only()
    @app_commands.describe(
        member="Who may no longer use the bot here", reason="Why (kept in /audit)"
    )
    async def block(
        self, interaction: discord.Interaction, member: discord.Member, reason: str | None = None
    ) -> None:
        """Moderators: stop a member from using the video bot in this server."""
        assert interaction.guild_id is not None
        await self.bot.store.block(
            interaction.guild_id, member.id, moderator_id=interaction.user.id, reason=reason
        )
        await self.audit(interaction, "block", member.id, reason=reason)
        await interaction.response.send_message(f"Blocked {member.mention}.", ephemeral=True)

    @app_commands.command(name="unblock")
    @app_commands.guild_only()
    @moderator_only()
    @app_commands.describe(member="Who may use the bot here again")
    async def unblock(self, interaction: discord.Interaction, member: discord.Member) -> None:
        """Moderators: let a blocked member use the bot again."""
        assert interaction.guild_id is not None
        removed = await self.bot.store.unblock(interaction.guild_id, member.id)
        await self.audit(interaction, "unblock", member.id, was_blocked=removed)
        text = f"Unblocked {member.mention}." if removed else f"{member.mention} was not blocked."
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(name="limits")
    @app_commands.guild_only()
    @moderator_only()
    @app_commands.describe(
        max_queued="Most jobs one member may have queued or running here (0 pauses the bot, up to 20)",
        cooldown="Seconds a member waits between jobs (0-3600)",
    )
    async def limits(
        self,
        interaction: discord.Interaction,
        max_queued: app_commands.Range[int, 0, 20] | None = None,
        cooldown: app_commands.Range[float, 0, 3600] | None = None,
    ) -> None:
        """Moderators: show or set this server's per-member limits."""
        assert interaction.guild_id is not None
        changes: dict[str, Any] = {}
        if max_queued is not None:
            changes["max_queued_per_user"] = max_queued
        if cooldown is not None:
            changes["cooldown_s"] = cooldown
        guild = await self.bot.store.update_guild_settings(interaction.guild_id, **changes)
        if changes:
            await self.audit(interaction, "limits", None, **changes)
        defaults = self.bot.settings.limits
        queued = (
            defaults.max_queued_per_user
            if guild.max_queued_per_user is None
            else guild.max_queued_per_user
        )
        wait = guild.cooldown_s if guild.cooldown_s is not None else defaults.cooldown_s
        blocks = await self.bot.store.list_blocks(interaction.guild_id)
        await interaction.response.send_message(
            f"Per member: at most **{queued}** job(s) queued, cooldown **{wait:g} s**. "
            f"Across all servers a person has at most {defaults.max_queued_per_user_total} "
            f"(set by the bot's owner). Blocked members: {len(blocks)}.",
            ephemeral=True,
        )

    @app_commands.command(name="audit")
    @app_commands.guild_only()
    @moderator_only()
    async def audit_command(self, interaction: discord.Interaction) -> None:
        """Moderators: the latest moderator actions in this server."""
        assert interaction.guild_id is not None
        entries = await self.bot.store.audit_log(interaction.guild_id, limit=20)
        lines = [
            f"`{e.created_at:%Y-%m-%d %H:%M}` <@{e.moderator_id}> **{e.action}**"
            + (f" {clean(str(e.target), 40)}" if e.target else "")
            for e in entries
        ]
        embed = discord.Embed(
            title="Audit log",
            description="\n".join(lines) or "No moderator actions yet.",
            colour=EMBED_COLOUR,
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(AdminCog(bot))
