"""What the bot's own media work may take at once: one memory budget for decoded video, shared by
the whole process, and the bounded queue edits wait in.

A video's decoded size is known from its probe before anything is decoded (width x height x 3
bytes per frame held), so every edit asks :class:`DecodeBudget` for what it will hold before it
starts and gives it back when it ends, whatever happens. A request larger than the whole budget is
refused by the caller with the numbers (:func:`bot.core.media.memory_refusal`); one that fits but
not right now waits its turn, first come first served, so a large edit is not starved by small
ones. The service owns the one instance.

:class:`EditQueue` bounds the edits in flight: ``edit_workers`` run, a few more wait, and the next
one is refused at once ("the edit queue is full") rather than piling up. A waiting edit holds
nothing: its video is downloaded and decoded only once it has a worker.

Imports only asyncio and the admission's refusal (floor 2), never discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

from bot.refusals import RequestRefused

DECODE_MEMORY_SHARE = 4
"""The default budget is this fraction (1/4) of the machine's memory: the rest is the bot's own,
its models', ffmpeg's and the system's."""
DECODE_MEMORY_MAX_MB = 1024
"""The default budget's ceiling: a hostile upload can then never grow the bot by more than about
1 GiB, whatever the machine. Owners with more memory raise ``[limits] decode_memory_mb``."""
DECODE_MEMORY_MIN_MB = 256


def default_decode_memory_mb() -> int:
    """A quarter of this machine's memory (or of its container's limit, when lower), at most
    ``DECODE_MEMORY_MAX_MB`` and at least ``DECODE_MEMORY_MIN_MB``."""
    total = _physical_memory()
    limit = _cgroup_limit()
    if limit is not None:
        total = min(total, limit) if total else limit
    if not total:
        return DECODE_MEMORY_MAX_MB
    share = total // DECODE_MEMORY_SHARE // 2**20
    return int(max(DECODE_MEMORY_MIN_MB, min(DECODE_MEMORY_MAX_MB, share)))


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def _cgroup_limit() -> int | None:
    """The container's memory limit (cgroup v2, then v1); None when there is none."""
    for name in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # v1 writes a huge number for "no limit"
            return int(text)
        return None
    return None


class DecodeBudget:
    """Bytes of decoded video the whole process may hold at once (``[limits] decode_memory_mb``).

    Used from the event loop only: :meth:`reserve` waits without blocking a thread."""

    def __init__(self, total_bytes: int) -> None:
        if total_bytes <= 0:
            raise ValueError(f"the decode budget must be positive (got {total_bytes} bytes)")
        self.total = total_bytes
        self._used = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def in_use(self) -> int:
        return self._used

    def fits(self, amount: int) -> bool:
        """Whether ``amount`` could ever be granted (it is not over the whole budget)."""
        return 0 <= amount <= self.total

    @contextlib.asynccontextmanager
    async def reserve(self, amount: int) -> AsyncIterator[None]:
        """Hold ``amount`` bytes while the block runs; wait, in arrival order, while the others
        hold too much. Given back on any exit, a cancellation included. ``amount`` over the whole
        budget is a ValueError: callers refuse it first, in the member's words."""
        if not self.fits(amount):
            raise ValueError(f"{amount} bytes can never fit a budget of {self.total}")
        if self._waiting or self._used + amount > self.total:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (amount, turn)
            self._waiting.append(entry)
            try:
                await turn
            except BaseException:
                if turn.done() and not turn.cancelled():  # granted just as it was cancelled
                    self._give_back(amount)
                else:
                    with contextlib.suppress(ValueError):
                        self._waiting.remove(entry)
                    self._grant()
                raise
        else:
            self._used += amount
        try:
            yield
        finally:
            self._give_back(amount)

    def _give_back(self, amount: int) -> None:
        self._used -= amount
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self._used + self._waiting[0][0] <= self.total:
            amount, turn = self._waiting.popleft()
            if turn.done():  # its waiter was cancelled
                continue
            self._used += amount
            turn.set_result(None)


class EditQueue:
    """Edits in flight: ``workers`` run at once, ``waiting`` more may wait for one; the next is
    refused at once. Used from the event loop only."""

    def __init__(self, workers: int, waiting: int) -> None:
        if workers < 1 or waiting < 0:
            raise ValueError(f"bad edit queue: {workers} workers, {waiting} waiting")
        self.workers = workers
        self.waiting = waiting
        self._inside = 0
        self._turns = asyncio.Semaphore(workers)

    @property
    def capacity(self) -> int:
        return self.workers + self.waiting

    @property
    def inside(self) -> int:
        """Edits running or waiting now."""
        return self._inside

    @contextlib.asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        """A place in the queue, refused when it is full; the block runs once a worker is free.
        Whatever the block holds (the download, the decoded frames) it takes only then."""
        if self._inside >= self.capacity:
            raise RequestRefused(
                f"the edit queue is full ({self.workers} edits running and {self.waiting} "
                "waiting); try again in a minute"
            )
        self._inside += 1
        try:
            async with self._turns:
                yield
        finally:
            self._inside -= 1


__all__ = ["DecodeBudget", "EditQueue", "default_decode_memory_mb"]
