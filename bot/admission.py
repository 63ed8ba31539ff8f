"""Admission: whether a request may start a job, decided in one room.

Every job (a generation, an upscale, an edit) passes here first: blocked words (matched on their
confusable skeleton, :mod:`bot.wordfilter`), the direct-message policy, blocks, the member's
cooldown, the member's cap per server, the person's cap across every server and DM (one person in
many servers must not fill the shared queue) and the global queue cap. A request that passes gets a
:class:`Ticket`, a reservation counted against the caps and the cooldown from that moment until
the job ends, whatever happens in between.

Why it cannot be raced: the checks read the store first (blocks, the server's overrides, the time of
the member's last request), then decide and reserve with no ``await`` in between, on the one event
loop. Two requests sent at once therefore never both see "nothing reserved yet": the second sees
the first's reservation, its cooldown stamp and its slot.

The ledger is in memory: it counts the jobs of this process. After a restart the service tracks
each resumed job here again (:meth:`Admission.track`), so the caps hold across restarts too.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.lifecycle import JobKind
from bot.refusals import DirectMessages, RequestRefused
from bot.visibility import Viewer
from bot.wordfilter import WordFilter

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.store import Store


@dataclass(frozen=True)
class Requester:
    """Who asked, and where the answer goes."""

    user_id: int
    user_name: str
    guild_id: int | None
    channel_id: int
    application_id: int | None = None
    interaction_token: str | None = None
    can_view_channel: Callable[[int], Awaitable[bool]] | None = field(default=None, compare=False)

    @property
    def viewer(self) -> Viewer:
        return Viewer(self.user_id, self.guild_id, self.can_view_channel)


Scope = tuple[int | None, int]
"""(server id or None for direct messages, member id): what per-member limits count over."""


@dataclass(frozen=True)
class MemberLimits:
    """The limits that apply to one member in one place, after the server's overrides."""

    cap: int
    cooldown_s: float


@dataclass(eq=False)
class Ticket:
    """One reserved slot. ``release`` is idempotent; a ticket released before its job was recorded
    also gives back the cooldown, since no request was made after all."""

    admission: Admission
    scope: Scope
    kind: JobKind
    previous_request: float | None
    recorded: bool = False
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.admission._give_back(self)


class Admission:
    def __init__(
        self, settings: Settings, store: Store, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.store = store
        self._clock = clock
        self._active: Counter[Scope] = Counter()
        self._per_person: Counter[int] = Counter()
        self._gpu_active = 0
        self._last_request: dict[Scope, float] = {}
        self._words: tuple[tuple[str, ...], WordFilter] | None = None

    # --- the checks ----------------------------------------------------------------------------

    async def admit(
        self, who: Requester, kind: JobKind, texts: Iterable[tuple[str, str]] = ()
    ) -> Ticket:
        """Check every rule for ``who`` starting a ``kind`` job and reserve its slot; raises
        RequestRefused naming the rule. ``texts`` are (field, text) pairs checked for blocked
        words (the prompt and the negative prompt)."""
        self.check_words(texts)
        scope: Scope = (who.guild_id, who.user_id)
        limits = await self.limits_for(who)
        last_stored = await self.store.last_request_time(who.user_id, who.guild_id)
        # From here to the reservation there is no await: the decision and the slot are one step.
        now = self._clock()
        last = max(
            (t for t in (self._last_request.get(scope), _timestamp(last_stored)) if t is not None),
            default=None,
        )
        if limits.cooldown_s and last is not None:
            wait = limits.cooldown_s - (now - last)
            if wait > 0:
                raise RequestRefused(
                    f"slow down: you can start another job in {max(1, round(wait))} s "
                    f"(the cooldown here is {limits.cooldown_s:g} s)"
                )
        mine = self._active[scope]
        if limits.cap == 0:
            raise RequestRefused(
                "video jobs are paused here: a moderator set the per-member limit to 0 "
                "(/limits max_queued changes it)"
            )
        if mine >= limits.cap:
            raise RequestRefused(
                f"you already have {mine} job(s) queued or running here; the limit is "
                f"{limits.cap}. Wait for one to finish or cancel one with /queue cancel."
            )
        total = self.settings.limits.max_queued_per_user_total
        everywhere = self._per_person[who.user_id]
        if everywhere >= total:
            raise RequestRefused(
                f"you already have {everywhere} job(s) queued or running across all servers and "
                f"direct messages; the limit is {total}. Wait for one to finish or cancel one "
                "with /queue cancel where you started it."
            )
        if kind.uses_gpu and self._gpu_active >= self.queue_capacity:
            raise RequestRefused(
                f"the queue is full ({self.settings.limits.max_queue} jobs waiting); "
                "try again in a few minutes"
            )
        return self._reserve(scope, kind, now)

    def track(self, who: Requester, kind: JobKind) -> Ticket:
        """Count a job that was admitted before (one resumed after a restart) without checks."""
        ticket = self._reserve((who.guild_id, who.user_id), kind, None)
        ticket.recorded = True
        return ticket

    async def limits_for(self, who: Requester) -> MemberLimits:
        """The cap and cooldown for ``who`` where they asked; refuses blocked members and, when
        the owner turned them off, direct messages."""
        defaults = self.settings.limits
        if who.guild_id is None:
            if self.settings.limits.direct_messages is DirectMessages.OFF:
                raise RequestRefused(
                    "I don't make videos in direct messages on this bot; use me in a server"
                )
            if await self.store.is_blocked_anywhere(who.user_id):
                raise RequestRefused(
                    "a moderator has blocked you from using the video bot, so I don't make "
                    "videos for you in direct messages either"
                )
            return MemberLimits(defaults.max_queued_per_user, defaults.cooldown_s)
        if await self.store.is_blocked(who.guild_id, who.user_id):
            raise RequestRefused("a moderator has blocked you from using the video bot here")
        guild = await self.store.get_guild_settings(who.guild_id)
        cap = guild.max_queued_per_user
        cooldown = guild.cooldown_s
        return MemberLimits(
            defaults.max_queued_per_user if cap is None else cap,
            defaults.cooldown_s if cooldown is None else cooldown,
        )

    def check_words(self, texts: Iterable[tuple[str, str]]) -> None:
        """Refuse a text holding a blocked word, however it is spelled (:mod:`bot.wordfilter`)."""
        words = self._word_filter()
        for field_name, text in texts:
            entry = words.find(text)
            if entry is not None:
                raise RequestRefused(
                    f"{field_name}: the word '{entry.lower()}' is not allowed on this bot"
                )

    def _word_filter(self) -> WordFilter:
        """The blocked words keyed once (again only if the list changed)."""
        entries = tuple(self.settings.moderation.blocked_words)
        if self._words is None or self._words[0] != entries:
            self._words = (entries, WordFilter.of(entries))
        return self._words[1]

    # --- the ledger ----------------------------------------------------------------------------

    @property
    def queue_capacity(self) -> int:
        """GPU jobs in flight at most: the queue's length plus the one running."""
        return self.settings.limits.max_queue + 1

    def active(self, guild_id: int | None, user_id: int) -> int:
        """Jobs reserved, queued or running for the member in that place."""
        return self._active[(guild_id, user_id)]

    def active_everywhere(self, user_id: int) -> int:
        """Jobs reserved, queued or running for the person in every server and DM together."""
        return self._per_person[user_id]

    @property
    def gpu_active(self) -> int:
        return self._gpu_active

    def _reserve(self, scope: Scope, kind: JobKind, now: float | None) -> Ticket:
        ticket = Ticket(self, scope, kind, self._last_request.get(scope))
        self._active[scope] += 1
        self._per_person[scope[1]] += 1
        if kind.uses_gpu:
            self._gpu_active += 1
        if now is not None:
            self._last_request[scope] = now
        return ticket

    def _give_back(self, ticket: Ticket) -> None:
        self._active[ticket.scope] -= 1
        if self._active[ticket.scope] <= 0:
            del self._active[ticket.scope]
        person = ticket.scope[1]
        self._per_person[person] -= 1
        if self._per_person[person] <= 0:
            del self._per_person[person]
        if ticket.kind.uses_gpu:
            self._gpu_active -= 1
        if not ticket.recorded:
            if ticket.previous_request is None:
                self._last_request.pop(ticket.scope, None)
            else:
                self._last_request[ticket.scope] = ticket.previous_request


def _timestamp(value: object) -> float | None:
    if value is None:
        return None
    stamp = getattr(value, "timestamp", None)
    return float(stamp()) if callable(stamp) else float(value)  # type: ignore[arg-type]


__all__ = ["Admission", "DirectMessages", "MemberLimits", "RequestRefused", "Requester", "Ticket"]
