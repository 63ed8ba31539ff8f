"""The real process: ``videobot run`` in a subprocess, stopped with real signals, keeps the README's
promises.

- SIGTERM while one job runs and others wait: the running job finishes and is recorded and posted,
  the process exits 0, the waiting jobs stay queued and resume in order on the next start.
- SIGKILL while one job runs and another waits: on the next start the killed job is tried once
  more and completes, the waiting one resumes.
- In the end every job is final, with exactly one posted result, and none is lost.

The fake Discord runs in this test's event loop; the bot reaches it over 127.0.0.1 through
``fake_discord.launch``, which points discord.py at it and runs ``bot.cli.main`` unchanged. The
test watches the bot's database read-only and the fake's records; it never reaches into the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fake_discord import (
    FakeDiscord,
    FakeInteraction,
    FakeUser,
    RecordedRequest,
    StoredMessage,
)
from fake_discord.gateway import GatewaySession
from fake_discord.launch import RemoteFake
from process_helpers import environment, start, write_config

from bot.core.tiny import build_tiny_model

pytest_plugins = ("fake_discord.fixtures",)

T = TypeVar("T")
START_TIMEOUT_S = 90.0
JOB_TIMEOUT_S = 120.0

#: Slow enough to still be running after the next job is submitted and when the signal arrives
#: (within one 50 ms poll of the database), cheap enough to keep the test short: the smallest
#: frames and size, many steps.
SLOW = {"frames": 8, "steps": 40, "width": 32, "height": 32}
QUICK = {"frames": 8, "steps": 10, "width": 32, "height": 32}


@pytest.mark.slow
async def test_sigterm_drains_sigkill_retries_and_every_job_ends_once(
    fake_discord: FakeDiscord, model_cache: Path, tmp_path: Path
) -> None:
    fake = fake_discord
    assert RemoteFake(fake.base_url).api_base == fake.api_base
    assert RemoteFake(fake.base_url).gateway_url == fake.gateway_url
    build_tiny_model("tiny_t2v", model_cache / "tiny_t2v")  # built here, so no process builds it
    jobs = JobsTable(tmp_path / "videobot.sqlite3")
    config = write_config(
        tmp_path,
        fake.guild.id,
        model_cache,
        limits={"max_queued_per_user": 5, "progress_interval_s": 5.0},
    )
    alice, bob = fake.user, fake.other_user

    # 1. SIGTERM while A runs and B, C wait: A finishes and is posted, B and C stay queued.
    async with bot_process(fake, config, tmp_path / "run1.log", sync_commands=True) as bot:
        a = await submit(fake, bot, jobs, "job A", alice, SLOW)
        b = await submit(fake, bot, jobs, "job B", bob, QUICK)
        c = await submit(fake, bot, jobs, "job C", alice, QUICK)
        await bot.wait_for(
            lambda: jobs.statuses([a, b, c]) == ["running", "queued", "queued"],
            "A running while B and C wait",
            JOB_TIMEOUT_S,
        )
        signalled_at = datetime.now(UTC)
        assert await bot.stop(signal.SIGTERM) == 0, bot.log_tail()
    assert jobs.statuses([a, b, c]) == ["done", "queued", "queued"]
    assert jobs.row(a)["finished_at"] > signalled_at, "A must have finished after SIGTERM"
    assert len(results_posted(fake, a)) == 1, "the drained job's result was posted before exit"

    # 2. Restart: B and C resume in their order and complete; then SIGKILL while D runs.
    async with bot_process(fake, config, tmp_path / "run2.log") as bot:
        await bot.wait_for(
            lambda: jobs.statuses([b, c]) == ["done", "done"] and all_posted(fake, [b, c]),
            "B and C resumed, done and posted",
            JOB_TIMEOUT_S,
        )
        assert jobs.row(b)["started_at"] < jobs.row(c)["started_at"], "resumed out of order"
        d = await submit(fake, bot, jobs, "job D", alice, SLOW)
        e = await submit(fake, bot, jobs, "job E", bob, QUICK)
        await bot.wait_for(
            lambda: jobs.statuses([d, e]) == ["running", "queued"],
            "D running while E waits",
            JOB_TIMEOUT_S,
        )
        assert await bot.stop(signal.SIGKILL) == -signal.SIGKILL
    assert jobs.statuses([d, e]) == ["running", "queued"], "SIGKILL left D as it was"
    assert jobs.row(d)["attempts"] == 1

    # 3. Restart: D is tried once more and completes, E resumes; then an idle SIGTERM exits 0.
    async with bot_process(fake, config, tmp_path / "run3.log") as bot:
        await bot.wait_for(
            lambda: jobs.statuses([d, e]) == ["done", "done"] and all_posted(fake, [d, e]),
            "D retried, E resumed, both done and posted",
            JOB_TIMEOUT_S,
        )
        assert await bot.stop(signal.SIGTERM) == 0, bot.log_tail()

    # Every job ends exactly once: final in the database, one result posted, none lost.
    every = [a, b, c, d, e]
    assert jobs.all_ids() == sorted(every), "a job was lost or duplicated"
    assert jobs.statuses(every) == ["done"] * 5
    assert [jobs.row(i)["attempts"] for i in every] == [1, 1, 1, 2, 1]
    for job_id in every:
        posted = results_posted(fake, job_id)
        assert len(posted) == 1, f"job {job_id}: {len(posted)} results posted"
        result = posted[0]
        assert len(uploads_of(fake, job_id)) == 1, f"job {job_id} was uploaded more than once"
        announced = announcements(fake, job_id)
        if job_id == a:  # finished in the process that took it: in its interaction's response
            assert announced == []
        else:  # resumed: once in its channel, mentioning its member
            assert announced == [result], f"job {job_id} announced {len(announced)} times"
            assert f"<@{jobs.row(job_id)['user_id']}>" in result.content, result.content
    assert {jobs.row(i)["user_id"] for i in every} == {alice.id, bob.id}


# --------------------------------------------------------------------------------------------
# the bot process


@dataclass
class BotProcess:
    """A running ``videobot run``, started through ``fake_discord.launch``."""

    fake: FakeDiscord
    process: asyncio.subprocess.Process
    log: Path
    session: GatewaySession | None = None

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.log.name} (last {lines} lines) ---\n" + "\n".join(
            text.splitlines()[-lines:]
        )

    async def wait_for(self, check: Callable[[], T | None], what: str, timeout: float) -> T:
        """Wait until ``check`` holds; fail at once, with the bot's log, if the bot died."""

        def alive_check() -> T | None:
            if self.process.returncode is not None:
                raise AssertionError(
                    f"the bot exited ({self.process.returncode}) while waiting for {what}\n"
                    + self.log_tail()
                )
            return check()

        try:
            return await self.fake.wait_until(alive_check, timeout=timeout, what=what)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None

    async def wait_connected(self, known: set[str]) -> None:
        """Until the bot has identified with a new session and been sent every guild."""

        def new_session() -> GatewaySession | None:
            for session in self.fake.gateway.live_sessions():
                # READY and one GUILD_CREATE per guild have been sent on a new connection.
                guilds_sent = session.seq >= 1 + len(self.fake.guilds)
                if session.id not in known and session.connected and guilds_sent:
                    return session
            return None

        self.session = await self.wait_for(new_session, "the bot to connect", START_TIMEOUT_S)

    async def stop(self, signum: signal.Signals) -> int:
        """Send ``signum`` and return the exit status (negative: killed by that signal)."""
        self.process.send_signal(signum)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout=JOB_TIMEOUT_S)
        except TimeoutError:
            raise AssertionError(
                f"the bot did not exit within {JOB_TIMEOUT_S}s of {signum.name}\n{self.log_tail()}"
            ) from None


@contextlib.asynccontextmanager
async def bot_process(
    fake: FakeDiscord, config: Path, log: Path, *, sync_commands: bool = False
) -> AsyncIterator[BotProcess]:
    """Start ``videobot run`` against ``fake``, wait until it is connected; always kill it after."""
    known = {s.id for s in fake.gateway.sessions.values()}
    args = ["run", "--sync-commands"] if sync_commands else ["run"]
    process = await start(args, environment(fake.base_url, config, fake.token), log)
    bot = BotProcess(fake, process, log)
    try:
        await bot.wait_connected(known)
        yield bot
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def submit(
    fake: FakeDiscord,
    bot: BotProcess,
    jobs: JobsTable,
    prompt: str,
    user: FakeUser,
    options: dict[str, int],
) -> int:
    """``/video`` from ``user``; returns the job's id once the bot has written it down, so jobs
    are created in the order they are submitted."""
    interaction: FakeInteraction = await fake.run_slash_command(
        "video", {"prompt": prompt, **options}, user=user
    )
    await bot.wait_for(lambda: interaction.response_type, f"{prompt} deferred", START_TIMEOUT_S)
    return await bot.wait_for(lambda: jobs.id_of(prompt), f"{prompt} written down", 30.0)


# --------------------------------------------------------------------------------------------
# what the fake and the database recorded


def results_posted(fake: FakeDiscord, job_id: int) -> list[StoredMessage]:
    """The bot's messages that hold job ``job_id``'s video (after every edit)."""
    return [
        m
        for m in fake.messages_by_bot()
        if m.attachments and m.embeds and footer(m.embeds[0]) == f"job #{job_id}"
    ]


def uploads_of(fake: FakeDiscord, job_id: int) -> list[RecordedRequest]:
    """Successful requests that uploaded a video labelled with job ``job_id``."""
    return [
        r
        for r in fake.requests
        if r.files
        and r.status is not None
        and 200 <= r.status < 300
        and any(footer(e) == f"job #{job_id}" for e in _embeds_of(r.json))
    ]


def announcements(fake: FakeDiscord, job_id: int) -> list[StoredMessage]:
    """The bot's messages about job ``job_id`` that answer no interaction: channel posts."""
    responses = {i.original_message_id for i in fake.interactions.values()}
    responses |= {m for i in fake.interactions.values() for m in i.followup_message_ids}
    return [
        m
        for m in fake.messages_by_bot()
        if m.id not in responses and m.embeds and footer(m.embeds[0]) == f"job #{job_id}"
    ]


def all_posted(fake: FakeDiscord, job_ids: list[int]) -> bool:
    return all(results_posted(fake, i) for i in job_ids)


def footer(embed: dict[str, Any]) -> str:
    """``job #12`` from a result embed's footer ``job #12 · generate``."""
    text = (embed.get("footer") or {}).get("text") or ""
    return text.split(" · ")[0]


def _embeds_of(payload: Any) -> list[dict[str, Any]]:
    return list(payload.get("embeds") or []) if isinstance(payload, dict) else []


class JobsTable:
    """The bot's ``jobs`` table, read-only: a fresh connection per look, as an operator would."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        if not self.path.exists():
            return []
        with contextlib.closing(
            sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        ) as db:
            db.row_factory = sqlite3.Row
            return db.execute(sql, args).fetchall()

    def id_of(self, prompt: str) -> int | None:
        rows = self._query("SELECT id FROM jobs WHERE prompt = ?", (prompt,))
        assert len(rows) <= 1, f"{len(rows)} jobs for one /video {prompt!r}"
        return rows[0]["id"] if rows else None

    def row(self, job_id: int) -> dict[str, Any]:
        [row] = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        values = dict(row)
        for column in ("started_at", "finished_at"):
            if values[column] is not None:
                values[column] = datetime.fromisoformat(values[column])
        return values

    def statuses(self, job_ids: list[int]) -> list[str]:
        by_id = {r["id"]: r["status"] for r in self._query("SELECT id, status FROM jobs")}
        return [by_id.get(i, "missing") for i in job_ids]

    def all_ids(self) -> list[int]:
        return [r["id"] for r in self._query("SELECT id FROM jobs ORDER BY id")]
