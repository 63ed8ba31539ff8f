"""The SQLite store on real database files: migrations, job states, history, guild settings, blocks,
audit, and values that would break string-built SQL."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.store import (
    BUSY_TIMEOUT_MS,
    GUILD_SETTING_KEYS,
    DatabaseUnusable,
    GuildSettings,
    JobKind,
    JobNotFoundError,
    JobRecord,
    JobStateError,
    JobStatus,
    Migration,
    Store,
    StoreError,
    load_migrations,
)

GUILD = 111
OTHER_GUILD = 222
USER = 1001
OTHER_USER = 1002
MOD = 9009
SNOWFLAKE_MAX = 2**63 - 1


class Clock:
    """A controllable ``now`` for the store, so timestamps can be compared exactly."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "nested" / "videobot.sqlite3"


@pytest.fixture
async def store(db_path: Path, clock: Clock) -> AsyncIterator[Store]:
    async with await Store.open(db_path, now=clock) as opened:
        yield opened


async def new_job(
    store: Store,
    *,
    user_id: int = USER,
    guild_id: int | None = GUILD,
    kind: JobKind | str = JobKind.GENERATE,
    prompt: str = "a paper boat on a pond",
    **changes: Any,
) -> JobRecord:
    values: dict[str, Any] = {
        "user_id": user_id,
        "user_name": "alice",
        "guild_id": guild_id,
        "channel_id": 555,
        "kind": kind,
        "params": {"prompt": prompt, "num_frames": 16, "seed": None},
        "prompt": prompt,
        "model": "tiny_t2v",
    }
    values.update(changes)
    return await store.create_job(**values)


async def finished_job(store: Store, status: JobStatus, **changes: Any) -> JobRecord:
    """A job brought to ``status`` along the normal path."""
    job = await new_job(store, **changes)
    if status is JobStatus.QUEUED:
        return job
    job = await store.mark_running(job.id)
    if status is JobStatus.DONE:
        return await store.mark_done(job.id, output_path=f"/out/{job.id}.mp4", seed=7, timings={})
    if status is JobStatus.FAILED:
        return await store.mark_failed(job.id, "out of memory")
    if status is JobStatus.CANCELLED:
        return await store.mark_cancelled(job.id)
    return job


def raw_rows(path: Path, sql: str, *values: Any) -> list[tuple[Any, ...]]:
    """Read the file with the standard library, to see what is really stored."""
    with sqlite3.connect(path) as raw:
        return raw.execute(sql, values).fetchall()


# Opening and migrations -------------------------------------------------------------------------


def test_migration_files_are_numbered_from_one_without_gaps() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"
    assert all(m.statements() for m in migrations)


async def test_open_creates_folders_tables_and_records_the_version(
    store: Store, db_path: Path
) -> None:
    assert db_path.is_file()
    assert await store.schema_version() == load_migrations()[-1].version
    tables = {row[0] for row in raw_rows(db_path, "SELECT name FROM sqlite_master")}
    assert {"jobs", "guild_settings", "blocks", "audit", "schema_version"} <= tables
    assert {"jobs_user_guild_id", "jobs_status_id"} <= tables


async def test_reopen_keeps_data_and_applies_nothing_again(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        job = await new_job(store)
    versions = raw_rows(db_path, "SELECT version, name, applied_at FROM schema_version")
    async with await Store.open(db_path) as store:
        assert await store.get_job(job.id) == job
    assert raw_rows(db_path, "SELECT version, name, applied_at FROM schema_version") == versions
    assert len(versions) == len(load_migrations())


async def test_wal_foreign_keys_and_busy_timeout_are_on(store: Store, db_path: Path) -> None:
    assert raw_rows(db_path, "PRAGMA journal_mode") == [("wal",)]  # WAL persists in the file
    db = store._db  # per-connection pragmas can only be read on the store's own connection
    [(foreign_keys,)] = await db.execute_fetchall("PRAGMA foreign_keys")
    [(busy_timeout,)] = await db.execute_fetchall("PRAGMA busy_timeout")
    assert (foreign_keys, busy_timeout) == (1, BUSY_TIMEOUT_MS)


async def test_new_migration_applies_once_and_a_failing_one_changes_nothing(db_path: Path) -> None:
    known = load_migrations()[-1].version  # the bot's own; the next ones are this test's
    v2 = Migration(
        known + 1,
        "notes",
        "-- a comment; with a semicolon\n"
        "CREATE TABLE notes (text TEXT);\n"
        "INSERT INTO notes VALUES ('a;b'); INSERT INTO notes VALUES ('it''s');\n"
        "CREATE TRIGGER notes_upper AFTER INSERT ON notes BEGIN\n"
        "  UPDATE notes SET text = upper(text) WHERE rowid = new.rowid;\n"
        "END;\n",
    )
    v3 = Migration(known + 2, "broken", "CREATE TABLE partial (x); INSERT INTO missing VALUES (1);")
    async with await Store.open(db_path, migrations=[*load_migrations(), v2]) as store:
        assert await store.schema_version() == known + 1
    async with await Store.open(db_path, migrations=[*load_migrations(), v2]) as store:
        assert await store.schema_version() == known + 1
    assert raw_rows(db_path, "SELECT text FROM notes") == [("a;b",), ("it's",)]

    with pytest.raises(sqlite3.OperationalError, match="missing"):
        await Store.open(db_path, migrations=[*load_migrations(), v2, v3])
    assert raw_rows(db_path, "SELECT name FROM sqlite_master WHERE name = 'partial'") == []
    assert raw_rows(db_path, "SELECT MAX(version) FROM schema_version") == [(known + 1,)]

    with pytest.raises(StoreError, match=f"schema version {known + 1}"):
        await Store.open(db_path)  # this bot knows only its own: refuse a newer schema


def test_statements_split_where_sqlite_says_a_statement_ends() -> None:
    migration = Migration(
        9,
        "split",
        "CREATE TABLE a (x TEXT DEFAULT ';');\n"
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END;\n"
        "-- trailing comment; no statement\n",
    )
    statements = migration.statements()
    assert statements[0] == "CREATE TABLE a (x TEXT DEFAULT ';');"
    assert statements[1] == "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END;"
    assert statements[2:] == ["-- trailing comment; no statement"]


async def test_memory_database_and_close_twice() -> None:
    store = await Store.open(":memory:")
    assert (await new_job(store)).id == 1
    await store.close()
    await store.close()


# Job lifecycle ----------------------------------------------------------------------------------


async def test_job_lifecycle_records_states_and_timestamps(store: Store, clock: Clock) -> None:
    created = clock.now
    job = await new_job(store, application_id=77, interaction_token="tok")
    assert job.status is JobStatus.QUEUED and not job.is_final
    assert job.created_at == job.queued_at == created
    assert job.created_at.tzinfo is UTC
    assert (job.started_at, job.finished_at, job.seed, job.error) == (None, None, None, None)
    assert job.attempts == 0 and job.timings == {} and job.output_pruned is False
    assert (job.kind, job.application_id, job.interaction_token) == (JobKind.GENERATE, 77, "tok")

    started = clock.advance(2)
    running = await store.mark_running(job.id)
    assert running.status is JobStatus.RUNNING
    assert running.started_at == started and running.attempts == 1

    finished = clock.advance(3.5)
    done = await store.mark_done(
        job.id, output_path=Path("/out/1.mp4"), seed=42, timings={"inference": 3.25, "total": 3.5}
    )
    assert done.status is JobStatus.DONE and done.is_final and done.has_output
    assert done.finished_at == finished and done.started_at == started
    assert done.output_path == Path("/out/1.mp4") and done.seed == 42
    assert done.timings == {"inference": 3.25, "total": 3.5}
    assert await store.get_job(job.id) == done


async def test_failed_and_cancelled_jobs_keep_why_and_when(store: Store, clock: Clock) -> None:
    queued = await new_job(store)
    cancelled = await store.mark_cancelled(queued.id)  # cancelled before it ever ran
    assert cancelled.status is JobStatus.CANCELLED and cancelled.finished_at == clock.now
    assert cancelled.started_at is None

    running = await store.mark_running((await new_job(store)).id)
    failed = await store.mark_failed(running.id, "CUDA out of memory")
    assert failed.status is JobStatus.FAILED and failed.error == "CUDA out of memory"
    assert not failed.has_output


FINAL = [JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED]
CHANGES = {
    "mark_running": lambda s, i: s.mark_running(i),
    "mark_done": lambda s, i: s.mark_done(i, output_path="/x.mp4", seed=1, timings={}),
    "mark_failed": lambda s, i: s.mark_failed(i, "late error"),
    "mark_cancelled": lambda s, i: s.mark_cancelled(i),
    "requeue": lambda s, i: s.requeue(i),
}


@pytest.mark.parametrize("status", FINAL)
@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_final_states_are_never_overwritten(
    store: Store, status: JobStatus, change: str
) -> None:
    job = await finished_job(store, status)
    with pytest.raises(JobStateError, match=f"job {job.id} is {status}") as info:
        await CHANGES[change](store, job.id)
    assert info.value.status is status and info.value.action == change
    assert await store.get_job(job.id) == job


async def test_done_needs_running_and_running_needs_queued(store: Store) -> None:
    job = await new_job(store)
    with pytest.raises(JobStateError, match="mark_done needs it to be running"):
        await store.mark_done(job.id, output_path="/x.mp4", seed=1, timings={})
    await store.mark_running(job.id)
    with pytest.raises(JobStateError, match="is running; mark_running"):
        await store.mark_running(job.id)
    assert (await store.get_job(job.id)).attempts == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("change", [*sorted(CHANGES), "set_message", "mark_pruned"])
async def test_changing_a_missing_job_says_so(store: Store, change: str) -> None:
    calls = {
        **CHANGES,
        "set_message": lambda s, i: s.set_message(i, 1, 2),
        "mark_pruned": lambda s, i: s.mark_pruned(i),
    }
    with pytest.raises(JobNotFoundError, match="no job with id 404"):
        await calls[change](store, 404)
    assert await store.get_job(404) is None


async def test_requeue_for_restart_recovery_keeps_place_and_attempts(store: Store) -> None:
    job = await new_job(store)
    await store.mark_running(job.id)
    requeued = await store.requeue(job.id)
    assert requeued.status is JobStatus.QUEUED and requeued.started_at is None
    assert requeued.attempts == 1 and requeued.queued_at == job.queued_at
    assert (await store.requeue(job.id)).status is JobStatus.QUEUED  # queued jobs too
    assert (await store.mark_running(job.id)).attempts == 2


async def test_set_message_works_in_any_state_and_prune_only_when_done(store: Store) -> None:
    failed = await finished_job(store, JobStatus.FAILED)
    moved = await store.set_message(failed.id, channel_id=888, message_id=SNOWFLAKE_MAX)
    assert (moved.channel_id, moved.message_id, moved.status) == (888, SNOWFLAKE_MAX, "failed")
    with pytest.raises(JobStateError, match="mark_pruned needs it to be done"):
        await store.mark_pruned(failed.id)

    done = await finished_job(store, JobStatus.DONE)
    pruned = await store.mark_pruned(done.id)
    assert pruned.output_pruned and not pruned.has_output and pruned.output_path == done.output_path
    assert (await store.mark_pruned(done.id)).output_pruned  # idempotent


async def test_parent_must_exist_and_is_kept(store: Store) -> None:
    parent = await finished_job(store, JobStatus.DONE)
    child = await new_job(store, kind="edit", parent_id=parent.id)
    assert child.parent_id == parent.id and child.kind is JobKind.EDIT
    with pytest.raises(JobNotFoundError, match="no job with id 999"):
        await new_job(store, parent_id=999)


async def test_bad_kind_and_non_json_params_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="kind must be one of generate, edit, upscale"):
        await new_job(store, kind="remix")
    bad_params: list[Any] = [
        {"x": math.nan},
        {"x": math.inf},
        {"x": {1, 2}},
        {"nested": {3: "int key"}},
        {"path": Path("/tmp")},
    ]
    for params in bad_params:
        with pytest.raises(ValueError, match="params must"):
            await new_job(store, params=params)
    with pytest.raises(TypeError, match="params must be a dict"):
        await new_job(store, params=["not", "a", "dict"])
    assert await store.count_history(USER, None) == 0


async def test_large_snowflakes_and_dm_jobs_round_trip(store: Store) -> None:
    job = await new_job(store, user_id=SNOWFLAKE_MAX, guild_id=None, channel_id=SNOWFLAKE_MAX - 1)
    again = await store.get_job(job.id)
    assert again is not None
    assert (again.user_id, again.guild_id, again.channel_id) == (
        SNOWFLAKE_MAX,
        None,
        SNOWFLAKE_MAX - 1,
    )


# Queries ----------------------------------------------------------------------------------------


async def test_history_is_newest_first_paged_and_filtered_by_guild(store: Store) -> None:
    in_guild = [(await new_job(store, prompt=f"guild {n}")).id for n in range(5)]
    elsewhere = (await new_job(store, guild_id=OTHER_GUILD)).id
    in_dm = (await new_job(store, guild_id=None)).id
    await new_job(store, user_id=OTHER_USER)

    page1 = await store.history(USER, GUILD, limit=3)
    page2 = await store.history(USER, GUILD, limit=3, offset=3)
    assert [j.id for j in page1 + page2] == in_guild[::-1]
    assert await store.count_history(USER, GUILD) == 5
    everywhere = await store.history(USER, None, limit=100)
    assert [j.id for j in everywhere] == [in_dm, elsewhere, *in_guild[::-1]]
    assert await store.count_history(USER, None) == 7
    assert await store.history(USER, GUILD, offset=5) == []
    with pytest.raises(ValueError, match="limit and offset"):
        await store.history(USER, GUILD, limit=-1)


async def test_latest_done_skips_failed_pruned_unfinished_and_other_guilds(
    store: Store, clock: Clock
) -> None:
    assert await store.latest_done(USER, GUILD) is None
    older = await finished_job(store, JobStatus.DONE)
    clock.advance()
    pruned = await finished_job(store, JobStatus.DONE)
    await store.mark_pruned(pruned.id)
    await finished_job(store, JobStatus.FAILED)
    await finished_job(store, JobStatus.CANCELLED)
    await finished_job(store, JobStatus.RUNNING)
    other_guild = await finished_job(store, JobStatus.DONE, guild_id=OTHER_GUILD)
    await finished_job(store, JobStatus.DONE, user_id=OTHER_USER)

    latest = await store.latest_done(USER, GUILD)
    assert latest is not None and latest.id == older.id
    anywhere = await store.latest_done(USER, None)
    assert anywhere is not None and anywhere.id == other_guild.id


async def test_unfinished_jobs_are_queued_and_running_oldest_first(store: Store) -> None:
    first = await finished_job(store, JobStatus.RUNNING)
    await finished_job(store, JobStatus.DONE)
    second = await new_job(store, user_id=OTHER_USER, guild_id=None)
    await finished_job(store, JobStatus.CANCELLED)
    third = await new_job(store)
    unfinished = await store.unfinished_jobs()
    assert [(j.id, j.status) for j in unfinished] == [
        (first.id, JobStatus.RUNNING),
        (second.id, JobStatus.QUEUED),
        (third.id, JobStatus.QUEUED),
    ]


async def test_count_queued_and_last_job_time(store: Store, clock: Clock) -> None:
    assert await store.last_job_time(USER, GUILD) is None
    await new_job(store)
    await finished_job(store, JobStatus.RUNNING)
    await new_job(store, user_id=OTHER_USER)
    clock.advance(10)
    await new_job(store, guild_id=OTHER_GUILD)
    last_here = clock.advance(5)
    await finished_job(store, JobStatus.FAILED)  # a failed request still starts a cooldown

    assert await store.count_queued() == 3
    assert await store.count_queued(USER) == 2
    assert await store.count_queued(USER, GUILD) == 1
    assert await store.count_queued(USER, GUILD, include_running=True) == 2
    assert await store.count_queued(guild_id=GUILD) == 2
    assert await store.last_job_time(USER, GUILD) == last_here
    assert await store.last_job_time(USER, OTHER_GUILD) == last_here - timedelta(seconds=5)
    assert await store.last_job_time(OTHER_USER, None) == last_here - timedelta(seconds=15)


async def test_concurrent_writers_do_not_interleave(store: Store) -> None:
    jobs = await asyncio.gather(*(new_job(store, prompt=str(n)) for n in range(40)))
    assert len({j.id for j in jobs}) == 40
    results = await asyncio.gather(
        *(store.mark_running(j.id) for j in jobs),
        *(store.mark_cancelled(j.id) for j in jobs),
        return_exceptions=True,
    )
    assert all(isinstance(r, JobRecord | JobStateError) for r in results)
    final = [await store.get_job(j.id) for j in jobs]
    assert all(j is not None and j.status in {"running", "cancelled"} for j in final)


# Guild settings, blocks, audit ------------------------------------------------------------------


async def test_guild_settings_default_then_update_and_reset(store: Store, clock: Clock) -> None:
    assert await store.get_guild_settings(GUILD) == GuildSettings(GUILD)
    updated = await store.update_guild_settings(GUILD, cooldown_s=30, max_queued_per_user=2)
    assert (updated.cooldown_s, updated.max_queued_per_user) == (30.0, 2)
    assert updated.default_model is None and updated.updated_at == clock.now
    clock.advance()
    updated = await store.update_guild_settings(GUILD, default_model="zeroscope", cooldown_s=None)
    assert updated == GuildSettings(GUILD, "zeroscope", 2, None, clock.now)
    assert await store.get_guild_settings(GUILD) == updated
    assert await store.get_guild_settings(OTHER_GUILD) == GuildSettings(OTHER_GUILD)
    clock.advance()
    assert await store.update_guild_settings(GUILD) == updated  # nothing asked, nothing written
    assert await store.update_guild_settings(OTHER_GUILD) == GuildSettings(OTHER_GUILD)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"colour": "red"},
            "unknown guild setting.*colour.*allowed: " + ", ".join(GUILD_SETTING_KEYS),
        ),
        ({"max_queued_per_user": -1}, "max_queued_per_user must be an int >= 0"),
        ({"max_queued_per_user": True}, "max_queued_per_user"),
        ({"max_queued_per_user": 2.5}, "max_queued_per_user"),
        ({"cooldown_s": -0.5}, "cooldown_s must be a finite number >= 0"),
        ({"cooldown_s": math.inf}, "cooldown_s"),
        ({"default_model": ""}, "default_model must be a non-empty string"),
        ({"default_model": 3}, "default_model"),
    ],
)
async def test_guild_settings_refuse_unknown_keys_and_bad_values(
    store: Store, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await store.update_guild_settings(GUILD, **{"max_queued_per_user": 1, **changes})
    assert await store.get_guild_settings(GUILD) == GuildSettings(GUILD)


async def test_blocks_per_guild(store: Store, clock: Clock) -> None:
    assert not await store.is_blocked(GUILD, USER)
    first = await store.block(GUILD, USER, moderator_id=MOD, reason="spam")
    assert (first.moderator_id, first.reason, first.created_at) == (MOD, "spam", clock.now)
    clock.advance()
    await store.block(GUILD, OTHER_USER, moderator_id=MOD, reason=None)
    clock.advance()
    again = await store.block(GUILD, USER, moderator_id=MOD + 1, reason="still spam")
    assert await store.is_blocked(GUILD, USER) and not await store.is_blocked(OTHER_GUILD, USER)
    assert await store.list_blocks(GUILD) == [again, (await store.list_blocks(GUILD))[1]]
    assert [b.user_id for b in await store.list_blocks(GUILD)] == [USER, OTHER_USER]
    assert await store.unblock(GUILD, USER) is True
    assert await store.unblock(GUILD, USER) is False
    assert not await store.is_blocked(GUILD, USER)
    assert await store.list_blocks(OTHER_GUILD) == []


async def test_audit_log_newest_first_and_paged(store: Store) -> None:
    entries = [
        await store.record_audit(GUILD, MOD, "block", USER, {"reason": "spam", "n": n})
        for n in range(4)
    ]
    await store.record_audit(OTHER_GUILD, MOD, "settings", None, {})
    assert entries[0].target == str(USER) and entries[0].details == {"reason": "spam", "n": 0}
    assert await store.audit_log(GUILD) == entries[::-1]
    assert await store.audit_log(GUILD, limit=2, offset=1) == entries[2:0:-1]
    other = await store.audit_log(OTHER_GUILD)
    assert len(other) == 1 and other[0].target is None


# Parameterisation -------------------------------------------------------------------------------

HOSTILE = [
    "'; DROP TABLE jobs; --",
    "Robert'); DROP TABLE jobs;--",
    'O\'Brien said "hi" `back` \\ slash',
    "unicode: ünïcödé 🎬 日本語 \u202eright-to-left\u200b",
    "control: \t\r\n\x01\x1b[31m\x1f\x7f end",
    "placeholders: ? ?1 :id @x $y %s {0} {}",
    "",
]


@pytest.mark.parametrize("text", HOSTILE)
async def test_hostile_strings_are_stored_verbatim(store: Store, db_path: Path, text: str) -> None:
    job = await new_job(
        store,
        prompt=text,
        user_name=text,
        model=text,
        params={text: text, "list": [text]},
        interaction_token=text,
    )
    job = await store.mark_failed(job.id, text)
    assert (job.prompt, job.user_name, job.model, job.error, job.interaction_token) == (text,) * 5
    assert job.params == {text: text, "list": [text]}
    block = await store.block(GUILD, USER, moderator_id=MOD, reason=text)
    audit = await store.record_audit(GUILD, MOD, text, text, {text: text})
    settings_ = await store.update_guild_settings(GUILD, default_model=text or None)

    assert block.reason == text and (audit.action, audit.target, audit.details) == (
        text,
        text,
        {text: text},
    )
    assert settings_.default_model == (text or None)
    assert raw_rows(db_path, "SELECT prompt, error FROM jobs WHERE id = ?", job.id) == [
        (text, text)
    ]
    assert raw_rows(db_path, "SELECT COUNT(*) FROM jobs") == [(1,)]  # the table is still there
    assert await store.history(USER, GUILD) == [job]


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def test_any_json_params_round_trip(tmp_path: Path) -> None:
    """One store for all examples: hypothesis drives a plain function, the store runs on a Runner."""
    with asyncio.Runner() as runner:
        store = runner.run(Store.open(tmp_path / "prop.sqlite3"))

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(params=st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=6))
        def round_trip(params: dict[str, Any]) -> None:
            job = runner.run(new_job(store, params=params))
            stored = runner.run(store.get_job(job.id))
            assert job.params == params
            assert stored is not None and stored.params == params
            assert repr(stored.params) == repr(params)  # 1 stays 1, 1.0 stays 1.0, -0.0 stays -0.0

        try:
            round_trip()
        finally:
            runner.run(store.close())


# A damaged database, and retention ---------------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "a damaged page"])
async def test_a_damaged_database_is_named_with_what_to_do(db_path: Path, damage: str) -> None:
    if damage == "garbage":
        db_path.parent.mkdir(parents=True)
        db_path.write_bytes(b"not a database at all " * 200)
    else:
        async with await Store.open(db_path) as store:
            for _ in range(100):
                await new_job(store, prompt="a long prompt " * 20)
        with db_path.open("r+b") as raw:
            raw.seek(4096 * 3)
            raw.write(b"\xff" * 4096)
    with pytest.raises(DatabaseUnusable) as caught:
        await Store.open(db_path)
    message = str(caught.value)
    assert str(db_path) in message and "restore it from a backup" in message
    assert "\n" not in message


async def test_retention_deletes_old_finished_jobs_and_keeps_unfinished_ones(
    store: Store, clock: Clock, db_path: Path
) -> None:
    old_done = await finished_job(store, JobStatus.DONE, prompt="secret one")
    old_failed = await finished_job(store, JobStatus.FAILED)
    old_queued = await new_job(store)
    clock.advance(10 * 86400)
    child = await new_job(store, parent_id=old_done.id)  # a rerun of the old job, made later
    clock.advance(85 * 86400)

    deleted = await store.delete_finished_jobs(timedelta(days=90))
    assert sorted(r.id for r in deleted) == [old_done.id, old_failed.id]
    assert deleted[0].output_path is not None  # the caller deletes the files
    assert await store.get_job(old_done.id) is None
    assert (await store.get_job(old_queued.id)) is not None  # never a job still to run
    assert (await store.get_job(child.id)).parent_id is None  # type: ignore[union-attr]
    assert raw_rows(db_path, "SELECT COUNT(*) FROM jobs WHERE prompt = 'secret one'") == [(0,)]


async def test_interaction_tokens_are_forgotten_once_discord_refuses_them(
    store: Store, clock: Clock
) -> None:
    old = await new_job(store, application_id=1, interaction_token="old-token")
    clock.advance(16 * 60)
    fresh = await new_job(store, application_id=1, interaction_token="fresh-token")
    assert await store.forget_interaction_tokens(timedelta(minutes=15)) == 1
    assert (await store.get_job(old.id)).interaction_token is None  # type: ignore[union-attr]
    assert (await store.get_job(fresh.id)).interaction_token == "fresh-token"  # type: ignore[union-attr]


async def test_pictures_of_all_jobs_or_of_unfinished_ones(store: Store) -> None:
    done = await finished_job(store, JobStatus.DONE, params={"prompt": "x", "image": "/in/a.png"})
    await new_job(store, params={"prompt": "y", "image": "/in/b.png"})
    await new_job(store)
    assert done.params["image"] == "/in/a.png"
    assert await store.pictures() == {"/in/a.png", "/in/b.png"}
    assert await store.pictures(unfinished_only=True) == {"/in/b.png"}
