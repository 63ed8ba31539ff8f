"""``VideoBot``: the Discord client. ``setup_hook`` opens the store, starts the GPU executor and
loads the cogs (which register their persistent buttons)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.core.engine import GenerationEngine
from bot.core.errors import VideoBotError
from bot.core.manager import ModelManager, get_model_manager
from bot.delivery import ChannelReply, follow_job
from bot.executors import make_executor
from bot.interactions import report_failure
from bot.jobs import Job, JobExecutor
from bot.lifecycle import INTERACTION_TOKEN_LIFETIME, JobStatus
from bot.render import error_embed
from bot.service import STATUS_EVERY_S, VideoService
from bot.store import JobRecord, Store

log = logging.getLogger(__name__)

SHUTDOWN_POST_TIMEOUT_S = 15.0
RETENTION_EVERY_S = 3600.0
"""How often retention runs while the bot is up (it also runs once at start)."""
COGS = ("cogs.video", "cogs.edit", "cogs.history", "cogs.admin", "cogs.help", "cogs.presets")


class VideoBotTree(app_commands.CommandTree["VideoBot"]):
    """Slash commands and context menus end their failures on the one failure path."""

    async def interaction_check(self, interaction: discord.Interaction[VideoBot]) -> bool:
        """A server outside ``[discord] allowed_guilds`` is left at once (:meth:`VideoBot.
        leave_if_not_allowed`); until Discord has processed that, its commands are refused."""
        if interaction.guild_id is None or interaction.client.guild_allowed(interaction.guild_id):
            return True
        if interaction.type is discord.InteractionType.autocomplete:
            return False  # no choices; there is no message to answer with
        raise app_commands.CheckFailure("This bot is not available in this server.")

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await report_failure(interaction, error)


class VideoBot(commands.Bot):
    settings: Settings
    store: Store
    executor: JobExecutor
    service: VideoService

    def __init__(
        self,
        settings: Settings,
        *,
        manager: ModelManager | None = None,
        executor: JobExecutor | None = None,
        status_every_s: float = STATUS_EVERY_S,
        **options: Any,
    ) -> None:
        intents = options.pop("intents", None) or discord.Intents.default()
        # Privileged: Discord closes the gateway with 4014 unless the portal enables it. Without
        # it, messages that mention the bot, DMs and the bot's own messages still carry content.
        intents.message_content = settings.discord.message_content_intent
        # The bot never joins voice: no start-up warnings about voice libraries.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=VideoBotTree,
            help_command=None,
            **options,
        )
        self.settings = settings
        self.manager = manager or get_model_manager()
        self._executor = executor
        self._background: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None
        self._status: asyncio.Task[None] | None = None
        self.status_every_s = status_every_s
        """How often the console gets a status line while jobs are queued, running or editing."""

    async def setup_hook(self) -> None:
        self.configure_models()
        self.store = await Store.open(self.settings.storage.database)
        engine = GenerationEngine(self.manager, enhance_device=self.settings.enhance.device)
        # [executor] backend: the local GPU thread (default) or the workers of a Ray cluster.
        self.executor = self._executor or make_executor(self.settings, engine)
        await self.executor.start()
        self.service = VideoService(self.settings, self.store, self.executor, engine)
        # Before any job runs, so every partial file in the output folder is a crash's leftover.
        await self.service.apply_retention(at_start=True)
        self._retention = asyncio.create_task(self.keep_tidy(), name="videobot-retention")
        self._status = asyncio.create_task(
            self.service.report_status(self.status_every_s), name="videobot-status"
        )
        resumed, failed = await self.service.recover()
        if resumed or failed:
            log.info("resuming %d job(s); %d could not be resumed", len(resumed), len(failed))
            self._background = asyncio.create_task(self.announce_recovered(resumed, failed))
        for extension in COGS:
            await self.load_extension(extension)
        for key in self.settings.models.preload:
            # Loaded on every worker and, where the denoiser is compiled, compiled for each shape
            # bucket, before the first member waits on it.
            for report in await self.executor.load_model(key):
                if not report.ok:
                    raise VideoBotError(f"preloading {key} on {report.worker}: {report.error}")
        if self.settings.discord.sync_commands_on_start:
            await self.sync_commands()
        models = self.settings.models
        log.info(
            "models: %s enabled, default %s%s",
            ", ".join(models.enabled),
            models.default_model,
            f"; preloaded {', '.join(models.preload)}" if models.preload else "",
        )

    async def on_ready(self) -> None:
        """Who logged in and where, once per connection: the first thing an owner checks."""
        assert self.user is not None
        guilds = ", ".join(f"{g.name} ({g.id})" for g in self.guilds) or "none yet: invite it"
        log.info(
            "logged in as %s (id %s) in %d server(s): %s",
            self.user,
            self.user.id,
            len(self.guilds),
            guilds,
        )
        content = "on" if self.intents.message_content else "off (reply commands need a mention)"
        log.info("message content intent: %s", content)
        for guild in list(self.guilds):
            await self.leave_if_not_allowed(guild)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.leave_if_not_allowed(guild)

    def guild_allowed(self, guild_id: int) -> bool:
        """``[discord] allowed_guilds``, when set, names the only servers the bot serves."""
        allowed = self.settings.discord.allowed_guilds
        return not allowed or guild_id in allowed

    async def leave_if_not_allowed(self, guild: discord.Guild) -> None:
        """A public bot can be invited anywhere: leave a server the owner did not allow, and say so
        in the log (which server, who owns it)."""
        if self.guild_allowed(guild.id):
            return
        log.warning(
            "leaving server %s (%s, owner id %s): it is not in [discord] allowed_guilds",
            guild.name,
            guild.id,
            guild.owner_id,
        )
        try:
            await guild.leave()
        except discord.HTTPException as exc:
            log.error("could not leave server %s (%s): %s", guild.name, guild.id, exc)

    async def announce_recovered(self, resumed: list[Job], failed: list[JobRecord]) -> None:
        """Jobs from before a restart report in their channel, mentioning their member: the
        interactions that started them belonged to the previous process."""
        await self.wait_until_ready()
        for record in failed:
            await self.retire_original(record, "stopped by a restart: see the message below")
            channel = await self.channel_for(record.channel_id)
            if channel is not None:
                reply = ChannelReply.to(channel, record.user_id)
                with contextlib.suppress(discord.HTTPException):
                    await reply.show(None, embed=error_embed(record.error or "failed", record.id))
        for job in resumed:
            stored = await self.store.get_job(job.id)
            if stored is not None:
                await self.retire_original(stored, "resumed after a restart: it continues below")
        await asyncio.gather(*(self.follow_resumed(job) for job in resumed))

    async def keep_tidy(self) -> None:
        """Retention every :data:`RETENTION_EVERY_S` while the bot runs (old jobs, interaction
        tokens, leftover files, the disk budget): a pass that fails is logged, the next one
        comes."""
        while True:
            await asyncio.sleep(RETENTION_EVERY_S)
            try:
                await self.service.apply_retention()
            except Exception:
                log.exception("retention failed; it runs again in %.0f s", RETENTION_EVERY_S)

    async def retire_original(self, record: JobRecord, what: str) -> None:
        """The member's original "queued…" message belonged to the old process and would keep a
        stale position and a live Cancel button forever: while Discord still accepts its token
        (15 minutes), say where the job went and remove the buttons."""
        if record.application_id is None or not record.interaction_token:
            return
        if discord.utils.utcnow() - record.created_at > INTERACTION_TOKEN_LIFETIME:
            return
        webhook = discord.Webhook.partial(
            record.application_id, record.interaction_token, client=self
        )
        text = f"↪️ {record.kind.label} #{record.id} was {what}."
        try:
            # "@original" is Discord's alias for the interaction's first response.
            await webhook.edit_message("@original", content=text, embed=None, view=None)  # type: ignore[call-overload]
        except discord.HTTPException as exc:
            log.info("could not update the original message of job %s: %s", record.id, exc)

    async def follow_resumed(self, job: Job) -> None:
        channel = await self.channel_for(job.channel_id)
        if channel is None:
            await self.service.outcome(job)  # still recorded, just not announced
            return
        reply = ChannelReply.to(channel, job.user_id)
        try:
            await follow_job(
                reply, self.service, job, interval_s=self.settings.limits.progress_interval_s
            )
        except discord.HTTPException as exc:
            log.warning("could not announce resumed job %s: %s", job.id, exc)

    async def channel_for(self, channel_id: int | None) -> Any:
        if not channel_id:
            return None
        channel = self.get_channel(channel_id)
        if channel is None:
            with contextlib.suppress(discord.HTTPException):
                channel = await self.fetch_channel(channel_id)
        return channel if isinstance(channel, discord.abc.Messageable) else None

    def configure_models(self) -> None:
        options = self.settings.models.manager_options(self.settings.speed.options())
        self.manager.configure(**vars(options))

    async def sync_commands(self) -> list[app_commands.AppCommand]:
        """To the configured guilds at once, else globally (Discord may take an hour)."""
        synced: list[app_commands.AppCommand] = []
        if self.settings.discord.guild_ids:
            for guild_id in self.settings.discord.guild_ids:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                synced += await self.tree.sync(guild=guild)
        else:
            synced = await self.tree.sync()
        log.info("synced %d commands", len(synced))
        return synced

    async def on_message(self, message: discord.Message) -> None:
        """No prefix commands: the cogs' listeners handle reply-to-video text commands."""

    async def close(self) -> None:
        """Drain: no new jobs, the running job finishes and is recorded, queued jobs stay queued
        in the database for the next start, then the database is closed cleanly."""
        if hasattr(self, "executor"):
            running = [j for j in self.executor.snapshot() if j.state == JobStatus.RUNNING]
            for job in running:
                log.info(
                    "stopping: waiting for the running job %s (%s) to finish", job.id, job.kind
                )
            await self.executor.stop()
        if hasattr(self, "service"):
            await self.service.drain()
            # Results being posted finish before the database and the HTTP session close.
            presenting = [t for t in self.service.presenting if t is not asyncio.current_task()]
            if presenting:
                log.info(
                    "stopping: waiting up to %.0f s for %d result post(s) to Discord",
                    SHUTDOWN_POST_TIMEOUT_S,
                    len(presenting),
                )
                await asyncio.wait(presenting, timeout=SHUTDOWN_POST_TIMEOUT_S)
        if self._background is not None:
            self._background.cancel()
        if self._retention is not None:
            self._retention.cancel()
        if self._status is not None:
            self._status.cancel()
        if hasattr(self, "store"):
            await self.store.close()
        await super().close()
