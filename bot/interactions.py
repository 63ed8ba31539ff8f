"""What every handler shares: who asked, who may do what, and the one path every failure takes.

Who may do what, in one place: a job's reach goes through :func:`channel_visibility` (which
:mod:`bot.visibility` awaits), a server's settings need a moderator of that server
(:func:`moderator_only`), and what acts on every server at once (loading and unloading models,
the workers and their hosts) needs one of the bot's owners (:func:`owner_only`): the
application's owner or its team in the developer portal, or ``[discord] owner_ids``.

Slash commands, context menus (through the tree's ``on_error``), buttons (``DynamicItem``
callbacks, which discord.py would only log), modals and reply commands all end a failure the same
way: a private message that says what went wrong, sent through whichever channel the interaction
still has. Before any response it is the ephemeral response; after a defer or a status edit the
public placeholder ("thinking…", "Editing (trim)…") is removed and the message follows privately;
once Discord's token has expired (15 minutes, or a 404/401 on the webhook) it falls back to the
channel, mentioning only the member, as Red's command tree does. Errors of our own
(:class:`~bot.core.errors.VideoBotError`) are shown as they are; anything else is logged with its
traceback and the member gets a plain apology, never the traceback.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.admission import Requester
from bot.core.errors import VideoBotError

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)


UNEXPECTED = "Something went wrong on the bot's side; it was logged. Please try again."
REQUIRED_PERMISSIONS = {"attach_files": "Attach Files", "embed_links": "Embed Links"}
EXPIRED_CODES = {10015, 10062, 50027}
"""Unknown Webhook, Unknown Interaction, Invalid Webhook Token: the interaction can't answer."""


# --- who ------------------------------------------------------------------------------------------


def requester(interaction: discord.Interaction) -> Requester:
    return Requester(
        user_id=interaction.user.id,
        user_name=interaction.user.name,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id or 0,
        application_id=interaction.application_id,
        interaction_token=interaction.token,
        can_view_channel=channel_visibility(
            interaction.guild, interaction.user, here=interaction.channel_id
        ),
    )


def message_requester(message: discord.Message) -> Requester:
    """The author of a reply command."""
    return Requester(
        user_id=message.author.id,
        user_name=message.author.name,
        guild_id=message.guild.id if message.guild else None,
        channel_id=message.channel.id,
        can_view_channel=channel_visibility(message.guild, message.author, here=message.channel.id),
    )


def channel_visibility(
    guild: discord.Guild | None,
    user: discord.abc.User | discord.Member,
    *,
    here: int | None = None,
) -> Callable[[int], Awaitable[bool]] | None:
    """Whether ``user``, acting in channel ``here``, can see a channel of ``guild``: View Channel
    from the bot's cache and, for a private thread, membership (:func:`can_view_thread`). A
    channel the bot does not know counts as unseen."""
    if guild is None or not isinstance(user, discord.Member):
        return None

    async def can_view(channel_id: int) -> bool:
        channel = guild.get_channel_or_thread(channel_id)
        if channel is None:
            return False
        if isinstance(channel, discord.Thread):
            return await can_view_thread(channel, user, here=here)
        return channel.permissions_for(user).view_channel

    return can_view


async def can_view_thread(
    thread: discord.Thread, member: discord.Member, *, here: int | None
) -> bool:
    """A thread is seen by whoever sees its parent; a private one only by its members and by
    those with Manage Threads. discord.py's ``Thread.permissions_for`` is the parent's (it knows
    nothing of membership), and its member cache is filled only with the Server Members intent, so
    membership is asked of Discord (``GET /channels/{thread}/thread-members/{user}``: 404 for a
    non-member). Anything that cannot be settled (no parent cached, the bot not allowed to list the
    thread's members, Discord unreachable) counts as unseen."""
    try:
        permissions = thread.permissions_for(member)
    except discord.ClientException:  # the parent channel is not cached
        return False
    if not permissions.view_channel:
        return False
    if not thread.is_private() or permissions.manage_threads:
        return True
    if here == thread.id:
        return True  # Discord only lets members (or Manage Threads) act inside a private thread
    try:
        await thread.fetch_member(member.id)
    except discord.HTTPException:
        return False
    return True


def is_moderator(settings: Settings, member: discord.abc.User | discord.Member) -> bool:
    """Manage Server, or the role named in ``discord.moderator_role``."""
    if not isinstance(member, discord.Member):
        return False
    if member.guild_permissions.manage_guild:
        return True
    role = settings.discord.moderator_role
    return bool(role) and any(r.name == role for r in member.roles)


async def is_owner(client: discord.Client, user: discord.abc.User | discord.Member) -> bool:
    """One of the bot's owners: ``[discord] owner_ids``, or the application's owner or team
    (discord.py's ``Bot.is_owner``, which asks Discord once and remembers). Not knowing counts as
    no."""
    settings: Settings = client.settings  # type: ignore[attr-defined]
    if user.id in settings.discord.owner_ids:
        return True
    if not isinstance(client, commands.Bot):
        return False
    try:
        return await client.is_owner(user)  # type: ignore[arg-type]
    except discord.HTTPException as exc:
        log.warning("could not ask Discord who owns the application: %s", exc)
        return False


OWNERS_ONLY = (
    "This command is for the bot's owners: it changes the bot for every server. Owners are the "
    "application's owner or team in the Discord developer portal and the ids in [discord] owner_ids."
)


def owner_only() -> Any:
    """An app-command check for what acts on every server at once (models, workers)."""

    async def predicate(interaction: discord.Interaction) -> bool:
        if await is_owner(interaction.client, interaction.user):
            return True
        raise app_commands.CheckFailure(OWNERS_ONLY)

    return app_commands.check(predicate)


def moderator_only(*, or_owner: bool = False) -> Any:
    """An app-command check that explains itself: what is needed, not just "no". ``or_owner``
    lets the bot's owners in too (for what only reads, such as the models list)."""

    async def predicate(interaction: discord.Interaction) -> bool:
        settings: Settings = interaction.client.settings  # type: ignore[attr-defined]
        if interaction.guild_id is None:
            raise app_commands.CheckFailure("Moderator commands only work in a server.")
        if is_moderator(settings, interaction.user):
            return True
        if or_owner and await is_owner(interaction.client, interaction.user):
            return True
        role = settings.discord.moderator_role
        needs = "the Manage Server permission" + (f" or the '{role}' role" if role else "")
        raise app_commands.CheckFailure(f"This command needs {needs}.")

    return app_commands.check(predicate)


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


# --- what members read ----------------------------------------------------------------------------


def error_text(message: str, limit: int = 1800) -> str:
    """An error for a member: our own wording, so markdown stays (field names read as written);
    mentions are defused in case the message quotes what the member typed."""
    text = discord.utils.escape_mentions(message)
    return "❌ " + (text if len(text) <= limit else text[: limit - 1] + "…")


def explain(error: BaseException) -> str:
    """The member's line for any exception; unexpected ones are logged here, once."""
    original = getattr(error, "original", None) or error
    if isinstance(original, VideoBotError):
        return str(original)
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or "You are not allowed to use this command here."
    if isinstance(error, app_commands.TransformerError | app_commands.CommandSignatureMismatch):
        return str(error)
    if isinstance(original, discord.Forbidden):
        log.warning("missing permission: %s", original)
        return (
            "Discord refused what I tried to do here (a missing permission). Ask a moderator "
            "to check my Send Messages, Attach Files and Embed Links permissions."
        )
    log.error("unexpected error", exc_info=original)
    return UNEXPECTED


# --- the one failure path -------------------------------------------------------------------------


async def report_failure(interaction: discord.Interaction, error: BaseException) -> None:
    """End any interaction that failed with a private message explaining ``error``."""
    await tell_privately(interaction, explain(error))


async def press(interaction: discord.Interaction, handler: Callable[[], Awaitable[None]]) -> None:
    """Run a button's handler. discord.py only logs what a ``DynamicItem`` callback raises, so
    here any failure goes to the member through the one failure path."""
    try:
        await handler()
    except Exception as exc:
        await report_failure(interaction, exc)


async def refuse(interaction: discord.Interaction, message: str) -> None:
    """A refusal we chose (bad input, a rule): the same path as a failure."""
    await tell_privately(interaction, message)


async def tell_privately(interaction: discord.Interaction, message: str) -> None:
    """Send ``message`` to the member only, through whatever the interaction's state allows."""
    text = error_text(message)
    response = interaction.response
    try:
        if not response.is_done():
            await response.send_message(text, ephemeral=True)
            return
        if response.type is discord.InteractionResponseType.deferred_channel_message:
            # The public placeholder ("thinking…" or a status line) would stay forever.
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
        await interaction.followup.send(text, ephemeral=True)
    except discord.HTTPException as exc:
        if not _token_expired(exc):
            log.warning("could not answer %s: %s", interaction.user, exc)
            return
        await _tell_in_channel(interaction, text)


async def _tell_in_channel(interaction: discord.Interaction, text: str) -> None:
    channel = interaction.channel
    if not isinstance(channel, discord.abc.Messageable):
        return
    mention = discord.AllowedMentions(users=[interaction.user])
    try:
        await channel.send(f"{interaction.user.mention} {text}", allowed_mentions=mention)
    except discord.HTTPException as exc:
        log.warning("could not tell %s in the channel: %s", interaction.user, exc)


def _token_expired(exc: discord.HTTPException) -> bool:
    return exc.code in EXPIRED_CODES or exc.status == 401


class AnsweringModal(discord.ui.Modal):
    """A modal whose failures reach the member (discord.py's default only logs them)."""

    async def on_error(  # type: ignore[override]  # Modal.on_error takes no item
        self, interaction: discord.Interaction, error: Exception, /
    ) -> None:
        await report_failure(interaction, error)


async def answer_reply_failure(message: discord.Message, error: BaseException) -> None:
    """A reply command failed: answer in a reply; without the right to post there, by DM."""
    if isinstance(error, discord.Forbidden):
        await explain_missing_permissions(message)
        return
    text = error_text(explain(error))
    try:
        await message.reply(text, mention_author=False)
    except discord.Forbidden:
        await explain_missing_permissions(message)
    except discord.HTTPException as exc:
        log.warning("could not answer a reply command in %s: %s", message.channel.id, exc)


async def explain_missing_permissions(message: discord.Message) -> None:
    """The bot cannot answer in the channel, so it tells the member directly."""
    where = getattr(message.channel, "mention", "that channel")
    with contextlib.suppress(discord.HTTPException):
        await message.author.send(
            f"I can't reply with videos in {where}: I'm missing the Send Messages, Attach "
            "Files or Embed Links permission there. Ask a moderator to allow it."
        )


__all__ = [
    "AnsweringModal",
    "answer_reply_failure",
    "can_view_thread",
    "channel_visibility",
    "check_channel_permissions",
    "error_text",
    "explain",
    "explain_missing_permissions",
    "is_moderator",
    "is_owner",
    "message_requester",
    "moderator_only",
    "owner_only",
    "press",
    "refuse",
    "report_failure",
    "requester",
    "tell_privately",
]
