"""The bot's SQLite store: job history and states, per-guild settings, presets, blocks and the
audit log.

One aiosqlite connection per bot. Every operation holds the store's lock, and every operation of
more than one statement runs in one ``BEGIN IMMEDIATE`` transaction, so concurrent coroutines never
see each other's half-done work and a crash never leaves one. All SQL of the bot lives here and in
the numbered files of ``bot/migrations``; values always travel as parameters.

Timestamps are stored as UTC ISO-8601 text with microseconds and come back as aware ``datetime``
objects in UTC. ``guild_id=None`` in a query means "every guild and direct messages", never "direct
messages only".

A job in a final state (done, failed, cancelled) is never silently overwritten: a state change that
is not allowed from the job's current state raises ``JobStateError`` and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite

from bot.lifecycle import FINAL_STATUSES, UNFINISHED_STATUSES, JobKind, JobStatus

__all__ = [
    "GUILD_SETTING_KEYS",
    "AuditRecord",
    "BlockRecord",
    "DatabaseUnusable",
    "GuildSettings",
    "JobKind",
    "JobNotFoundError",
    "JobRecord",
    "JobStateError",
    "JobStatus",
    "Migration",
    "PresetRecord",
    "Store",
    "StoreError",
    "load_migrations",
]

BUSY_TIMEOUT_MS = 5000
MIGRATIONS_PACKAGE = "bot.migrations"
_MIGRATION_NAME = re.compile(r"^V(?P<version>\d+)__(?P<name>\w+)\.sql$")


# Errors ------------------------------------------------------------------------------------------


class StoreError(Exception):
    """Base of the store's own errors (a broken migration set, a job that cannot change state)."""


class DatabaseUnusable(StoreError):
    """The database file cannot be used: damaged, not a database, locked, unreachable or on a
    full disk. The message names the file and what to do, in one line for the owner."""

    def __init__(self, path: str, error: BaseException) -> None:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        lowered = detail.lower()
        if "locked" in lowered or "busy" in lowered:
            advice = "another process holds it: is a second videobot running on this file?"
        elif "full" in lowered:
            advice = "its disk is full: free some space, then start again"
        elif isinstance(error, OSError) or "unable to open" in lowered:
            advice = "check that its folder exists and that the bot may write there"
        else:
            advice = (
                "it is damaged: restore it from a backup, or move it (and its -wal and -shm "
                "files) aside to start with an empty one"
            )
        super().__init__(f"the database {path} cannot be used ({detail}); {advice}")
        self.path = path


class JobNotFoundError(StoreError, LookupError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"no job with id {job_id}")
        self.job_id = job_id


class JobStateError(StoreError):
    """A state change the job's current state does not allow; the job was left as it was."""

    def __init__(
        self, job_id: int, status: JobStatus, action: str, allowed: Iterable[JobStatus]
    ) -> None:
        allowed_text = ", ".join(allowed)
        super().__init__(f"job {job_id} is {status}; {action} needs it to be {allowed_text}")
        self.job_id = job_id
        self.status = status
        self.action = action


# Types -------------------------------------------------------------------------------------------


_UNFINISHED = UNFINISHED_STATUSES

# Which states each change may start from. Done needs running so that a job the executor never
# started cannot be recorded as a success; requeue takes queued jobs too, so restart recovery can
# requeue everything ``unfinished_jobs`` returns.
_ALLOWED_FROM: dict[str, tuple[JobStatus, ...]] = {
    "mark_running": (JobStatus.QUEUED,),
    "mark_done": (JobStatus.RUNNING,),
    "mark_failed": _UNFINISHED,
    "mark_cancelled": _UNFINISHED,
    "requeue": _UNFINISHED,
    "mark_pruned": (JobStatus.DONE,),
    "set_message": tuple(JobStatus),
}


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One row of ``jobs``, parsed: JSON columns as dicts, timestamps as aware UTC datetimes."""

    id: int
    created_at: datetime
    user_id: int
    user_name: str
    guild_id: int | None
    channel_id: int | None
    kind: JobKind
    params: dict[str, Any]
    prompt: str | None
    model: str | None
    seed: int | None
    status: JobStatus
    error: str | None
    output_path: Path | None
    output_pruned: bool
    parent_id: int | None
    message_id: int | None
    application_id: int | None
    interaction_token: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    timings: dict[str, float]
    attempts: int

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    @property
    def has_output(self) -> bool:
        """True when the video file should still exist: done, with a path, and not pruned."""
        return (
            self.status is JobStatus.DONE
            and self.output_path is not None
            and not self.output_pruned
        )


GUILD_SETTING_KEYS = ("default_model", "max_queued_per_user", "cooldown_s")


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """A guild's overrides; ``None`` means "use the bot's configured default"."""

    guild_id: int
    default_model: str | None = None
    max_queued_per_user: int | None = None
    cooldown_s: float | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class BlockRecord:
    guild_id: int
    user_id: int
    moderator_id: int
    reason: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PresetRecord:
    """A server's named style: text added to members' prompts, a negative prompt, and
    ``GenerationParams`` settings (steps, guidance, frames, fps, size, model) as JSON."""

    guild_id: int
    name: str
    prompt_suffix: str
    negative_prompt: str
    settings: dict[str, Any]
    created_by: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    guild_id: int
    moderator_id: int
    action: str
    target: str | None
    details: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The file split into single statements, since sqlite3 executes one at a time.

        Splits only where SQLite itself says a statement is complete, so a ';' inside a string,
        a comment or a trigger body does not cut it.
        """
        statements: list[str] = []
        buffer = ""
        *pieces, last = self.sql.split(";")
        for piece in pieces:
            buffer += piece + ";"
            if sqlite3.complete_statement(buffer):
                statements.append(buffer.strip())
                buffer = ""
        tail = (buffer + last).strip()
        if tail:
            statements.append(tail)  # comments only, or an unfinished statement SQLite will name
        return statements


def load_migrations(package: str = MIGRATIONS_PACKAGE) -> list[Migration]:
    """The ``V{n}__{name}.sql`` files of ``package``, in version order.

    Read through ``importlib.resources`` so they are found in an installed wheel as in a checkout.
    """
    migrations: dict[int, Migration] = {}
    for entry in resources.files(package).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            continue
        version = int(match["version"])
        if version in migrations:
            raise StoreError(f"two migrations claim version {version} in {package}")
        migrations[version] = Migration(version, match["name"], entry.read_text("utf-8"))
    return [migrations[version] for version in sorted(migrations)]


# The store ---------------------------------------------------------------------------------------


class Store:
    """The bot's database. Create with ``await Store.open(path)``; close with ``await close()``
    or use ``async with await Store.open(path) as store``."""

    path: str
    _db: aiosqlite.Connection
    _lock: asyncio.Lock
    _now: Callable[[], datetime]
    _closed: bool

    def __init__(self, db: aiosqlite.Connection, path: str, now: Callable[[], datetime]) -> None:
        self.path = path
        self._db = db
        self._lock = asyncio.Lock()
        self._now = now
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        migrations: Sequence[Migration] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> Store:
        """Open (or create) the database at ``path`` and bring its schema up to date.

        ``migrations`` defaults to the files in ``bot/migrations``; ``now`` (an aware datetime
        factory) lets tests control timestamps. ``":memory:"`` gives a throwaway database.
        A file that is not a usable database (garbage, damaged pages, locked, on a full disk)
        raises :class:`DatabaseUnusable`, whose one line says which file and what to do.
        """
        path = str(path)
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseUnusable(path, exc) from exc
        try:
            db.row_factory = aiosqlite.Row
            try:
                await _configure(db)
                await _check_integrity(db)
            except sqlite3.DatabaseError as exc:
                raise DatabaseUnusable(path, exc) from exc
            try:
                await _migrate(db, load_migrations() if migrations is None else migrations)
            except sqlite3.DatabaseError as exc:
                if not _is_file_fault(exc):  # a broken migration is the bot's bug, not the file's
                    raise
                raise DatabaseUnusable(path, exc) from exc
        except BaseException:
            await db.close()
            raise
        return cls(db, path, now or _utcnow)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def schema_version(self) -> int:
        """The highest migration applied to this database (0 for none)."""
        row = await self._fetchone("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return int(row[0]) if row is not None else 0

    # Jobs: creation and state changes ------------------------------------------------------------

    async def create_job(
        self,
        *,
        user_id: int,
        user_name: str,
        guild_id: int | None,
        channel_id: int | None,
        kind: JobKind | str,
        params: Mapping[str, Any],
        prompt: str | None,
        model: str | None,
        parent_id: int | None = None,
        application_id: int | None = None,
        interaction_token: str | None = None,
    ) -> JobRecord:
        """Record a new queued job. Call before the job enters the queue, so a crash between the two
        leaves a job that restart recovery finds rather than one that is lost."""
        values = {
            "now": self._timestamp(),
            "user_id": user_id,
            "user_name": user_name,
            "guild_id": guild_id,
            "channel_id": channel_id,
            "kind": _job_kind(kind),
            "params": _dump_object(params, "params"),
            "prompt": prompt,
            "model": model,
            "parent_id": parent_id,
            "application_id": application_id,
            "interaction_token": interaction_token,
        }
        async with self._transaction() as db:
            if parent_id is not None and not await _job_exists(db, parent_id):
                raise JobNotFoundError(parent_id)
            rows = await db.execute_fetchall(_INSERT_JOB, values)
        return _job_from_row(_single(rows))

    async def mark_running(self, job_id: int) -> JobRecord:
        """Queued -> running; stamps ``started_at`` and counts the attempt."""
        sql = "UPDATE jobs SET status = 'running', started_at = :now, attempts = attempts + 1"
        return await self._change(job_id, "mark_running", sql, {"now": self._timestamp()})

    async def mark_done(
        self,
        job_id: int,
        *,
        output_path: str | Path | None,
        seed: int | None,
        timings: Mapping[str, float] | None,
    ) -> JobRecord:
        """Running -> done, with the output file, the seed actually used and the engine's timings."""
        sql = (
            "UPDATE jobs SET status = 'done', finished_at = :now, output_path = :output_path,"
            " seed = :seed, timings = :timings, error = NULL"
        )
        values = {
            "now": self._timestamp(),
            "output_path": None if output_path is None else str(output_path),
            "seed": seed,
            "timings": _dump_object(timings or {}, "timings"),
        }
        return await self._change(job_id, "mark_done", sql, values)

    async def mark_failed(self, job_id: int, error: str) -> JobRecord:
        """Queued or running -> failed, keeping the error a member will be shown."""
        sql = "UPDATE jobs SET status = 'failed', finished_at = :now, error = :error"
        return await self._change(
            job_id, "mark_failed", sql, {"now": self._timestamp(), "error": error}
        )

    async def mark_cancelled(self, job_id: int) -> JobRecord:
        sql = "UPDATE jobs SET status = 'cancelled', finished_at = :now"
        return await self._change(job_id, "mark_cancelled", sql, {"now": self._timestamp()})

    async def requeue(self, job_id: int) -> JobRecord:
        """Queued or running -> queued, for restart recovery. ``queued_at`` and ``attempts`` are
        kept, so the job keeps its place and a job that keeps crashing the bot can be given up."""
        sql = "UPDATE jobs SET status = 'queued', started_at = NULL"
        return await self._change(job_id, "requeue", sql, {})

    async def set_message(self, job_id: int, channel_id: int, message_id: int) -> JobRecord:
        """Where the job's result message lives, so buttons and edits can find it again."""
        sql = "UPDATE jobs SET channel_id = :channel_id, message_id = :message_id"
        values = {"channel_id": channel_id, "message_id": message_id}
        return await self._change(job_id, "set_message", sql, values)

    async def mark_pruned(self, job_id: int) -> JobRecord:
        """The done job's output file was deleted to save disk; it can no longer be edited."""
        return await self._change(job_id, "mark_pruned", "UPDATE jobs SET output_pruned = 1", {})

    # Jobs: queries -------------------------------------------------------------------------------

    async def get_job(self, job_id: int) -> JobRecord | None:
        row = await self._fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else _job_from_row(row)

    async def history(
        self, user_id: int, guild_id: int | None, *, limit: int = 10, offset: int = 0
    ) -> list[JobRecord]:
        """A member's jobs, newest first; ``guild_id=None`` lists every guild and DMs."""
        _check_page(limit, offset)
        values = {"user_id": user_id, "guild_id": guild_id, "limit": limit, "offset": offset}
        return [_job_from_row(row) for row in await self._fetchall(_HISTORY, values)]

    async def count_history(self, user_id: int, guild_id: int | None) -> int:
        return await self._count(_COUNT_HISTORY, {"user_id": user_id, "guild_id": guild_id})

    async def latest_done(self, user_id: int, guild_id: int | None) -> JobRecord | None:
        """The member's most recently finished video whose file still exists."""
        row = await self._fetchone(_LATEST_DONE, {"user_id": user_id, "guild_id": guild_id})
        return None if row is None else _job_from_row(row)

    async def unfinished_jobs(self) -> list[JobRecord]:
        """Queued and running jobs, oldest first: what a restart must requeue or fail."""
        sql = "SELECT * FROM jobs WHERE status IN (?, ?) ORDER BY id"
        return [_job_from_row(row) for row in await self._fetchall(sql, _UNFINISHED)]

    async def pictures(self, *, unfinished_only: bool = False) -> set[str]:
        """The pictures jobs animate (their ``params.image`` and last frame's ``end_image``): of
        every job, or only of queued and running ones, which must never lose theirs."""
        pictures: set[str] = set()
        for field in ("$.image", "$.end_image"):
            sql = (
                "SELECT DISTINCT json_extract(params, :field) FROM jobs"
                " WHERE json_extract(params, :field) IS NOT NULL"
                " AND (:all OR status IN (SELECT value FROM json_each(:statuses)))"
            )
            values = {
                "field": field,
                "all": not unfinished_only,
                "statuses": json.dumps(_UNFINISHED),
            }
            pictures |= {str(row[0]) for row in await self._fetchall(sql, values)}
        return pictures

    # Retention -----------------------------------------------------------------------------------

    async def delete_finished_jobs(self, older_than: timedelta) -> list[JobRecord]:
        """Delete the finished jobs (done, failed, cancelled) created more than ``older_than``
        ago, prompts and all; returns them so their files can go too. Jobs made from them keep
        their rows (their ``parent_id`` becomes NULL)."""
        cutoff = _format_time(self._now() - older_than)
        sql = (
            "DELETE FROM jobs WHERE created_at < :cutoff"
            " AND status IN (SELECT value FROM json_each(:final)) RETURNING *"
        )
        final = json.dumps(sorted(FINAL_STATUSES))
        async with self._transaction() as db:
            rows = await db.execute_fetchall(sql, {"cutoff": cutoff, "final": final})
        return [_job_from_row(row) for row in rows]

    async def forget_interaction_tokens(self, older_than: timedelta) -> int:
        """Clear the interaction tokens of jobs created more than ``older_than`` ago (Discord
        accepts one for 15 minutes; kept longer it only gives a leaked database more to
        misuse). Returns how many were cleared."""
        sql = (
            "UPDATE jobs SET interaction_token = NULL"
            " WHERE interaction_token IS NOT NULL AND created_at < :cutoff RETURNING id"
        )
        async with self._transaction() as db:
            rows = await db.execute_fetchall(
                sql, {"cutoff": _format_time(self._now() - older_than)}
            )
        return len(list(rows))

    async def count_queued(
        self,
        user_id: int | None = None,
        guild_id: int | None = None,
        *,
        include_running: bool = False,
    ) -> int:
        """Queued jobs, optionally of one member or guild; ``include_running`` counts the job on
        the GPU too, for limits on how many jobs a member may have in flight."""
        statuses = _UNFINISHED if include_running else (JobStatus.QUEUED,)
        sql = (
            "SELECT COUNT(*) FROM jobs WHERE status IN (SELECT value FROM json_each(:statuses))"
            " AND (:user_id IS NULL OR user_id = :user_id)"
            " AND (:guild_id IS NULL OR guild_id = :guild_id)"
        )
        values = {"statuses": json.dumps(statuses), "user_id": user_id, "guild_id": guild_id}
        return await self._count(sql, values)

    async def last_job_time(self, user_id: int, guild_id: int | None) -> datetime | None:
        """When the member last asked for a job, in any state: cooldowns count requests."""
        row = await self._fetchone(_LAST_JOB_TIME, {"user_id": user_id, "guild_id": guild_id})
        return None if row is None else _parse_time(row["created_at"])

    async def last_request_time(self, user_id: int, guild_id: int | None) -> datetime | None:
        """When the member last asked for a job in exactly that place (``guild_id=None``: in
        direct messages only), in any state: per-server cooldowns count requests there."""
        sql = (
            "SELECT created_at FROM jobs WHERE user_id = :user_id AND guild_id IS :guild_id"
            " ORDER BY id DESC LIMIT 1"
        )
        row = await self._fetchone(sql, {"user_id": user_id, "guild_id": guild_id})
        return None if row is None else _parse_time(row["created_at"])

    # Guild settings ------------------------------------------------------------------------------

    async def get_guild_settings(self, guild_id: int) -> GuildSettings:
        """The guild's settings; all defaults (``None``) when it never changed any."""
        row = await self._fetchone("SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return GuildSettings(guild_id) if row is None else _settings_from_row(row)

    async def update_guild_settings(self, guild_id: int, **changes: Any) -> GuildSettings:
        """Change some of ``GUILD_SETTING_KEYS``; a value of ``None`` resets that key to default."""
        checked = _check_settings(changes)
        if not checked:
            return await self.get_guild_settings(guild_id)
        async with self._transaction() as db:
            sql = "SELECT * FROM guild_settings WHERE guild_id = ?"
            rows = list(await db.execute_fetchall(sql, (guild_id,)))
            current = _settings_from_row(rows[0]) if rows else GuildSettings(guild_id)
            new = replace(current, **checked)
            values = {
                "guild_id": guild_id,
                "default_model": new.default_model,
                "max_queued_per_user": new.max_queued_per_user,
                "cooldown_s": new.cooldown_s,
                "now": self._timestamp(),
            }
            saved = await db.execute_fetchall(_UPSERT_SETTINGS, values)
        return _settings_from_row(_single(saved))

    # Blocks --------------------------------------------------------------------------------------

    async def block(
        self, guild_id: int, user_id: int, *, moderator_id: int, reason: str | None
    ) -> BlockRecord:
        """Block a member from the bot in one guild. Blocking again replaces moderator and reason."""
        values = {
            "guild_id": guild_id,
            "user_id": user_id,
            "moderator_id": moderator_id,
            "reason": reason,
            "now": self._timestamp(),
        }
        async with self._transaction() as db:
            rows = await db.execute_fetchall(_UPSERT_BLOCK, values)
        return _block_from_row(_single(rows))

    async def unblock(self, guild_id: int, user_id: int) -> bool:
        """True when the member was blocked (and no longer is)."""
        sql = "DELETE FROM blocks WHERE guild_id = ? AND user_id = ? RETURNING user_id"
        async with self._transaction() as db:
            rows = await db.execute_fetchall(sql, (guild_id, user_id))
        return bool(list(rows))

    async def is_blocked(self, guild_id: int, user_id: int) -> bool:
        sql = "SELECT 1 FROM blocks WHERE guild_id = ? AND user_id = ?"
        return await self._fetchone(sql, (guild_id, user_id)) is not None

    async def is_blocked_anywhere(self, user_id: int) -> bool:
        """Blocked in any server: what direct messages are refused for."""
        sql = "SELECT 1 FROM blocks WHERE user_id = ? LIMIT 1"
        return await self._fetchone(sql, (user_id,)) is not None

    async def list_blocks(self, guild_id: int) -> list[BlockRecord]:
        """The guild's blocks, newest first."""
        sql = "SELECT * FROM blocks WHERE guild_id = ? ORDER BY created_at DESC, user_id"
        return [_block_from_row(row) for row in await self._fetchall(sql, (guild_id,))]

    # Presets -------------------------------------------------------------------------------------

    async def save_preset(
        self,
        guild_id: int,
        name: str,
        *,
        prompt_suffix: str,
        negative_prompt: str,
        settings: Mapping[str, Any],
        created_by: int,
    ) -> PresetRecord:
        """Add the guild's preset ``name``, or replace the one of that name."""
        values = {
            "guild_id": guild_id,
            "name": name,
            "prompt_suffix": prompt_suffix,
            "negative_prompt": negative_prompt,
            "settings": _dump_object(settings, "settings"),
            "created_by": created_by,
            "now": self._timestamp(),
        }
        async with self._transaction() as db:
            rows = await db.execute_fetchall(_UPSERT_PRESET, values)
        return _preset_from_row(_single(rows))

    async def delete_preset(self, guild_id: int, name: str) -> bool:
        """True when the guild had the preset (and no longer has)."""
        sql = "DELETE FROM presets WHERE guild_id = ? AND name = ? RETURNING name"
        async with self._transaction() as db:
            rows = await db.execute_fetchall(sql, (guild_id, name))
        return bool(list(rows))

    async def get_preset(self, guild_id: int, name: str) -> PresetRecord | None:
        """The guild's preset ``name``; another guild's of the same name is never returned."""
        sql = "SELECT * FROM presets WHERE guild_id = ? AND name = ?"
        row = await self._fetchone(sql, (guild_id, name))
        return None if row is None else _preset_from_row(row)

    async def list_presets(self, guild_id: int) -> list[PresetRecord]:
        """The guild's presets by name."""
        sql = "SELECT * FROM presets WHERE guild_id = ? ORDER BY name"
        return [_preset_from_row(row) for row in await self._fetchall(sql, (guild_id,))]

    # Audit log -----------------------------------------------------------------------------------

    async def record_audit(
        self,
        guild_id: int,
        moderator_id: int,
        action: str,
        target: str | int | None,
        details: Mapping[str, Any],
    ) -> AuditRecord:
        """Log a moderator's action; ``target`` (a member, a job, a setting) is stored as text."""
        values = {
            "guild_id": guild_id,
            "moderator_id": moderator_id,
            "action": action,
            "target": None if target is None else str(target),
            "details": _dump_object(details, "details"),
            "now": self._timestamp(),
        }
        async with self._transaction() as db:
            rows = await db.execute_fetchall(_INSERT_AUDIT, values)
        return _audit_from_row(_single(rows))

    async def audit_log(
        self, guild_id: int, *, limit: int = 20, offset: int = 0
    ) -> list[AuditRecord]:
        """The guild's audit entries, newest first."""
        _check_page(limit, offset)
        sql = "SELECT * FROM audit WHERE guild_id = ? ORDER BY id DESC LIMIT ? OFFSET ?"
        rows = await self._fetchall(sql, (guild_id, limit, offset))
        return [_audit_from_row(row) for row in rows]

    # Helpers -------------------------------------------------------------------------------------

    async def _change(
        self, job_id: int, action: str, update_sql: str, values: Mapping[str, Any]
    ) -> JobRecord:
        """Apply ``update_sql`` to the job only when its status allows ``action``; otherwise tell
        apart a missing job from one in the wrong state, and change nothing."""
        allowed = _ALLOWED_FROM[action]
        sql = update_sql + _CHANGE_WHERE
        params = {**values, "id": job_id, "allowed": json.dumps(allowed)}
        async with self._transaction() as db:
            rows = list(await db.execute_fetchall(sql, params))
            if not rows:
                found = list(
                    await db.execute_fetchall("SELECT status FROM jobs WHERE id = ?", (job_id,))
                )
                if not found:
                    raise JobNotFoundError(job_id)
                raise JobStateError(job_id, JobStatus(found[0]["status"]), action, allowed)
        return _job_from_row(rows[0])

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction; ``IMMEDIATE`` takes the write lock up front, so another process
        on the same file waits (``busy_timeout``) instead of failing half-way."""
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    async def _fetchall(
        self, sql: str, values: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[sqlite3.Row]:
        async with self._lock:
            return list(await self._db.execute_fetchall(sql, values))

    async def _fetchone(
        self, sql: str, values: Sequence[Any] | Mapping[str, Any] = ()
    ) -> sqlite3.Row | None:
        rows = await self._fetchall(sql, values)
        return rows[0] if rows else None

    async def _count(self, sql: str, values: Sequence[Any] | Mapping[str, Any]) -> int:
        row = await self._fetchone(sql, values)
        return 0 if row is None else int(row[0])

    def _timestamp(self) -> str:
        return _format_time(self._now())


# SQL ---------------------------------------------------------------------------------------------

# A member's jobs are those of one guild, or of every guild and DMs when :guild_id is NULL.
_HISTORY = """
SELECT * FROM jobs
WHERE user_id = :user_id AND (:guild_id IS NULL OR guild_id = :guild_id)
ORDER BY id DESC LIMIT :limit OFFSET :offset
"""

_COUNT_HISTORY = """
SELECT COUNT(*) FROM jobs
WHERE user_id = :user_id AND (:guild_id IS NULL OR guild_id = :guild_id)
"""

_LATEST_DONE = """
SELECT * FROM jobs
WHERE user_id = :user_id AND (:guild_id IS NULL OR guild_id = :guild_id)
    AND status = 'done' AND output_path IS NOT NULL AND output_pruned = 0
ORDER BY finished_at DESC, id DESC LIMIT 1
"""

_LAST_JOB_TIME = """
SELECT created_at FROM jobs
WHERE user_id = :user_id AND (:guild_id IS NULL OR guild_id = :guild_id)
ORDER BY id DESC LIMIT 1
"""

# Appended to each state change's UPDATE: the job, only while its status allows the change.
_CHANGE_WHERE = """
WHERE id = :id AND status IN (SELECT value FROM json_each(:allowed))
RETURNING *
"""

_INSERT_JOB = """
INSERT INTO jobs (
    created_at, user_id, user_name, guild_id, channel_id, kind, params, prompt, model,
    status, parent_id, application_id, interaction_token, queued_at
) VALUES (
    :now, :user_id, :user_name, :guild_id, :channel_id, :kind, :params, :prompt, :model,
    'queued', :parent_id, :application_id, :interaction_token, :now
) RETURNING *
"""

_UPSERT_SETTINGS = """
INSERT INTO guild_settings (guild_id, default_model, max_queued_per_user, cooldown_s, updated_at)
VALUES (:guild_id, :default_model, :max_queued_per_user, :cooldown_s, :now)
ON CONFLICT (guild_id) DO UPDATE SET
    default_model = excluded.default_model,
    max_queued_per_user = excluded.max_queued_per_user,
    cooldown_s = excluded.cooldown_s,
    updated_at = excluded.updated_at
RETURNING *
"""

_UPSERT_BLOCK = """
INSERT INTO blocks (guild_id, user_id, moderator_id, reason, created_at)
VALUES (:guild_id, :user_id, :moderator_id, :reason, :now)
ON CONFLICT (guild_id, user_id) DO UPDATE SET
    moderator_id = excluded.moderator_id,
    reason = excluded.reason,
    created_at = excluded.created_at
RETURNING *
"""

_UPSERT_PRESET = """
INSERT INTO presets (
    guild_id, name, prompt_suffix, negative_prompt, settings, created_by, created_at
) VALUES (
    :guild_id, :name, :prompt_suffix, :negative_prompt, :settings, :created_by, :now
)
ON CONFLICT (guild_id, name) DO UPDATE SET
    prompt_suffix = excluded.prompt_suffix,
    negative_prompt = excluded.negative_prompt,
    settings = excluded.settings,
    created_by = excluded.created_by,
    created_at = excluded.created_at
RETURNING *
"""

_INSERT_AUDIT = """
INSERT INTO audit (guild_id, moderator_id, action, target, details, created_at)
VALUES (:guild_id, :moderator_id, :action, :target, :details, :now)
RETURNING *
"""

_SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


# Opening and migrating ---------------------------------------------------------------------------


async def _configure(db: aiosqlite.Connection) -> None:
    """WAL lets readers (a backup, ``sqlite3`` in a shell) work while the bot writes."""
    await db.execute("PRAGMA journal_mode = WAL")
    await db.execute("PRAGMA synchronous = NORMAL")
    await db.execute("PRAGMA foreign_keys = ON")
    await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")  # PRAGMA takes no parameters
    # Rows deleted by retention (prompts, tokens) are overwritten, not left in free pages.
    await db.execute("PRAGMA secure_delete = ON")


def _is_file_fault(exc: sqlite3.DatabaseError) -> bool:
    """Whether ``exc`` is about the file (damaged, locked, its disk full) rather than the SQL."""
    if type(exc) is sqlite3.DatabaseError:
        return True  # "file is not a database", "database disk image is malformed"
    if not isinstance(exc, sqlite3.OperationalError):
        return False  # an integrity or programming error: the SQL's
    text = str(exc).lower()
    return any(word in text for word in ("full", "locked", "busy", "malformed", "disk i/o"))


async def _check_integrity(db: aiosqlite.Connection) -> None:
    """``quick_check`` reads every page once (milliseconds for a bot's database), so a damaged
    file is named at start rather than failing some later query in the middle of a job."""
    rows = list(await db.execute_fetchall("PRAGMA quick_check"))
    problems = [str(row[0]) for row in rows if str(row[0]) != "ok"]
    if problems:
        raise sqlite3.DatabaseError(f"integrity check failed: {problems[0]}")


async def _migrate(db: aiosqlite.Connection, migrations: Sequence[Migration]) -> None:
    """Apply each migration not yet recorded in ``schema_version``, each in its own transaction,
    so a failing one leaves the database at the last good version."""
    await db.execute(_SCHEMA_VERSION_TABLE)
    current = await _applied_version(db)
    known = max((migration.version for migration in migrations), default=0)
    if current > known:
        raise StoreError(
            f"the database is at schema version {current} but this bot knows only up to {known};"
            " run a newer bot or restore a backup"
        )
    for migration in migrations:
        if migration.version > current:
            await _apply(db, migration)


async def _apply(db: aiosqlite.Connection, migration: Migration) -> None:
    await db.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have applied it while we waited for the write lock.
        if migration.version > await _applied_version(db):
            for statement in migration.statements():
                await db.execute(statement)
            await db.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, _format_time(_utcnow())),
            )
    except BaseException:
        if db.in_transaction:
            await db.execute("ROLLBACK")
        raise
    await db.execute("COMMIT")


async def _applied_version(db: aiosqlite.Connection) -> int:
    rows = list(await db.execute_fetchall("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
    return int(rows[0][0])


async def _job_exists(db: aiosqlite.Connection, job_id: int) -> bool:
    return bool(list(await db.execute_fetchall("SELECT 1 FROM jobs WHERE id = ?", (job_id,))))


# Values in and out -------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _format_time(moment: datetime) -> str:
    """UTC, microseconds always written: equal-length text that sorts in time order."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _parse_optional_time(text: str | None) -> datetime | None:
    return None if text is None else _parse_time(text)


def _job_kind(kind: JobKind | str) -> JobKind:
    try:
        return JobKind(kind)
    except ValueError:
        allowed = ", ".join(JobKind)
        raise ValueError(f"kind must be one of {allowed}, not {kind!r}") from None


def _dump_object(value: Mapping[str, Any], what: str) -> str:
    """JSON text for a dict column. Refuses, rather than silently changes, what JSON cannot hold
    exactly: NaN and infinities, non-string keys, objects that are not JSON values."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a dict, not {type(value).__name__}")
    if _has_non_string_key(value):
        raise ValueError(f"{what} must use only string keys (JSON turns other keys into strings)")
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must hold only JSON values: {exc}") from exc


def _has_non_string_key(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(
            not isinstance(key, str) or _has_non_string_key(item) for key, item in value.items()
        )
    if isinstance(value, list | tuple):
        return any(_has_non_string_key(item) for item in value)
    return False


def _check_page(limit: int, offset: int) -> None:
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must be >= 0, not limit={limit}, offset={offset}")


def _check_settings(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The changes, with types checked; names the allowed keys when one is unknown."""
    unknown = sorted(set(changes) - set(GUILD_SETTING_KEYS))
    if unknown:
        raise ValueError(
            f"unknown guild setting(s) {', '.join(unknown)}; allowed: {', '.join(GUILD_SETTING_KEYS)}"
        )
    checked = dict(changes)
    if "default_model" in changes:
        checked["default_model"] = _optional_text(changes["default_model"], "default_model")
    if "max_queued_per_user" in changes:
        checked["max_queued_per_user"] = _optional_count(changes["max_queued_per_user"])
    if "cooldown_s" in changes:
        checked["cooldown_s"] = _optional_seconds(changes["cooldown_s"])
    return checked


def _optional_text(value: Any, name: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{name} must be a non-empty string or None, not {value!r}")
    return value


def _optional_count(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"max_queued_per_user must be an int >= 0 or None, not {value!r}")
    return value


def _optional_seconds(value: Any) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value < float("inf")
    ):
        raise ValueError(f"cooldown_s must be a finite number >= 0 or None, not {value!r}")
    return float(value)


def _single(rows: Iterable[sqlite3.Row]) -> sqlite3.Row:
    (row,) = rows
    return row


def _job_from_row(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        created_at=_parse_time(row["created_at"]),
        user_id=row["user_id"],
        user_name=row["user_name"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        kind=JobKind(row["kind"]),
        params=json.loads(row["params"]),
        prompt=row["prompt"],
        model=row["model"],
        seed=row["seed"],
        status=JobStatus(row["status"]),
        error=row["error"],
        output_path=None if row["output_path"] is None else Path(row["output_path"]),
        output_pruned=bool(row["output_pruned"]),
        parent_id=row["parent_id"],
        message_id=row["message_id"],
        application_id=row["application_id"],
        interaction_token=row["interaction_token"],
        queued_at=_parse_time(row["queued_at"]),
        started_at=_parse_optional_time(row["started_at"]),
        finished_at=_parse_optional_time(row["finished_at"]),
        timings={} if row["timings"] is None else json.loads(row["timings"]),
        attempts=row["attempts"],
    )


def _settings_from_row(row: sqlite3.Row) -> GuildSettings:
    return GuildSettings(
        guild_id=row["guild_id"],
        default_model=row["default_model"],
        max_queued_per_user=row["max_queued_per_user"],
        cooldown_s=row["cooldown_s"],
        updated_at=_parse_time(row["updated_at"]),
    )


def _block_from_row(row: sqlite3.Row) -> BlockRecord:
    return BlockRecord(
        guild_id=row["guild_id"],
        user_id=row["user_id"],
        moderator_id=row["moderator_id"],
        reason=row["reason"],
        created_at=_parse_time(row["created_at"]),
    )


def _preset_from_row(row: sqlite3.Row) -> PresetRecord:
    return PresetRecord(
        guild_id=row["guild_id"],
        name=row["name"],
        prompt_suffix=row["prompt_suffix"],
        negative_prompt=row["negative_prompt"],
        settings=json.loads(row["settings"]),
        created_by=row["created_by"],
        created_at=_parse_time(row["created_at"]),
    )


def _audit_from_row(row: sqlite3.Row) -> AuditRecord:
    return AuditRecord(
        id=row["id"],
        guild_id=row["guild_id"],
        moderator_id=row["moderator_id"],
        action=row["action"],
        target=row["target"],
        details=json.loads(row["details"]),
        created_at=_parse_time(row["created_at"]),
    )
