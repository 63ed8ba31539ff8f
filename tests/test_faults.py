"""Faults that used to leave a job hanging or stop the bot, on the real service, store and executor
(no Discord): a full disk when a job ends, a picture deleted under a queued job, a failure after a
job's row is written, files that come and go during the disk-budget check; and retention."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bot_helpers import ALICE, KITE, TINY_MODELS, make_settings, running_service

from bot import retention
from bot.core import GenerationParams
from bot.lifecycle import JobStatus
from bot.service import VideoService
from bot.store import Store

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def service(tmp_path: Path, manager: Any, clock: Clock) -> AsyncIterator[VideoService]:
    settings = make_settings(
        tmp_path,
        models={"enabled": [*TINY_MODELS, "tiny_ltx"]},
        limits={"max_queued_per_user": 5},
    )
    async with running_service(settings, manager, now=clock) as service:
        yield service


IMAGE = {"model": "tiny_ltx", "num_frames": 9}


async def queued_row(store: Store, **params: Any) -> int:
    record = await store.create_job(
        user_id=ALICE.user_id,
        user_name=ALICE.user_name,
        guild_id=ALICE.guild_id,
        channel_id=ALICE.channel_id,
        kind="generate",
        params={**KITE, **params},
        prompt=KITE["prompt"],
        model=params.get("model", KITE["model"]),
    )
    return record.id


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


# --- a job's end always reaches its member ---------------------------------------------------


async def test_a_full_disk_when_a_job_ends_still_ends_its_message(
    service: VideoService, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(service.store, "mark_done", full)
    monkeypatch.setattr(service.store, "mark_failed", full)  # the disk is full for this too
    job = await service.submit_generation(ALICE, GenerationParams(**KITE))
    with caplog.at_level("INFO", logger="bot"):
        finished = await asyncio.wait_for(service.outcome(job), 120)
    assert not finished.ok and "the bot's disk is full" in str(finished.error)
    assert not service.output_path(job.id).exists()  # no file the store does not know
    assert f"job {job.id} (generate) failed" in caplog.text  # and a line for the owner
    assert not service._tickets  # the member's slot was given back


async def test_a_failing_disk_budget_check_leaves_a_done_job_done(
    service: VideoService, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def vanished(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("outputs/3.upload.mp4")

    monkeypatch.setattr(service, "enforce_disk_budget", vanished)
    job = await service.submit_generation(ALICE, GenerationParams(**KITE))
    finished = await asyncio.wait_for(service.outcome(job), 120)
    assert finished.ok and finished.path is not None and finished.path.is_file()
    assert (await service.store.get_job(job.id)).status is JobStatus.DONE  # type: ignore[union-attr]


# --- restart recovery and the rows of jobs that never ran ------------------------------------


async def test_a_queued_image_job_whose_picture_was_deleted_does_not_stop_the_start(
    service: VideoService, tmp_path: Path
) -> None:
    gone = await queued_row(service.store, **IMAGE, image=str(tmp_path / "gone.png"))
    fine = await queued_row(service.store)
    resumed, failed = await service.recover()
    assert [job.id for job in resumed] == [fine]
    [record] = failed
    assert record.id == gone and record.status is JobStatus.FAILED
    assert "picture to animate was deleted" in str(record.error)
    assert (await asyncio.wait_for(service.outcome(resumed[0]), 120)).ok


async def test_a_job_that_fails_after_its_row_is_written_is_not_run_by_the_next_start(
    service: VideoService, tmp_path: Path
) -> None:
    params = GenerationParams(**{**KITE, **IMAGE, "image": str(tmp_path / "x.png")})
    with pytest.raises(FileNotFoundError):  # the picture vanished between upload and queue
        await service.submit_generation(ALICE, params)
    [record] = await service.store.history(ALICE.user_id, ALICE.guild_id)
    assert record.status is JobStatus.FAILED
    assert await service.store.unfinished_jobs() == []
    assert await service.recover() == ([], [])


# --- the disk budget ------------------------------------------------------------------------


def write(path: Path, size: int, seconds_ago: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    age(path, seconds_ago)
    return path


async def test_the_disk_budget_never_deletes_an_upload_copy_and_survives_one_vanishing(
    service: VideoService, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = service.settings.storage.output_dir
    service.settings.storage.max_output_mb = 300 / 2**20  # 300 bytes
    for job_id in (await queued_row(service.store), await queued_row(service.store)):
        await service.store.mark_running(job_id)
        await service.store.mark_done(
            job_id, output_path=folder / f"{job_id}.mp4", seed=1, timings={}
        )
    oldest = write(folder / "1.mp4", 200, 300)
    upload = write(folder / "2.upload.mp4", 200, 200)  # being uploaded right now
    newest = write(folder / "2.mp4", 200, 100)
    assert await service.enforce_disk_budget(keep=newest) == [1]
    assert upload.exists() and newest.exists() and not oldest.exists()

    # An upload copy deleted between the listing and its stat (its upload ended) is not counted.
    write(folder / "1.mp4", 10, 300)
    listed = os.scandir

    def then_vanish(directory: Any) -> Any:
        entries = list(listed(directory))
        upload.unlink(missing_ok=True)
        return iter(entries)

    monkeypatch.setattr(retention.os, "scandir", then_vanish)
    assert await service.enforce_disk_budget(keep=newest) == []
    assert (folder / "1.mp4").exists()  # 210 bytes now: within the budget


def test_pictures_and_leftovers_count_toward_the_budget(tmp_path: Path) -> None:
    folder = tmp_path / "outputs"
    video = write(folder / "1.mp4", 100, 500)
    needed = write(folder / "inputs" / "needed.png", 100, 7200)
    unused = write(folder / "inputs" / "unused.png", 100, 7000)
    fresh = write(folder / "inputs" / "fresh.png", 100, 10)  # its job may be being recorded
    write(folder / ".3.mp4.abc.part", 100, 10)  # an encode in progress: counted, not deleted
    files = retention.scan(folder)
    assert {f.kind for f in files} == {
        retention.FileKind.VIDEO,
        retention.FileKind.PICTURE,
        retention.FileKind.TEMPORARY,
    }
    victims = retention.over_budget(files, 150, needed=[needed])
    assert [v.path for v in victims] == [unused, video]  # oldest first; never needed or fresh
    assert fresh not in [v.path for v in victims]


# --- retention ------------------------------------------------------------------------------


async def test_retention_deletes_old_jobs_their_files_tokens_and_crash_leftovers(
    service: VideoService, clock: Clock
) -> None:
    store, folder = service.store, service.settings.storage.output_dir
    old_picture = write(folder / "inputs" / "old.png", 10, 100 * 86400)
    kept_picture = write(folder / "inputs" / "kept.png", 10, 100 * 86400)
    orphan = write(folder / "inputs" / "orphan.png", 10, 7200)
    clock.now -= timedelta(days=100)
    old = await queued_row(store, **IMAGE, image=str(old_picture))
    await store.mark_running(old)
    old_video = write(folder / f"{old}.mp4", 10, 100 * 86400)
    await store.mark_done(old, output_path=old_video, seed=1, timings={})
    waiting = await queued_row(store, **IMAGE, image=str(kept_picture))
    clock.now += timedelta(days=100)
    leftover = write(folder / ".9.mp4.x1y2.part", 10, 5)  # a crash's half-written encode

    report = await service.apply_retention(at_start=True)
    assert report.jobs == [old]
    assert await store.get_job(old) is None
    assert not old_video.exists() and not old_picture.exists() and not orphan.exists()
    assert not leftover.exists()
    assert kept_picture.exists()  # the queued job still needs it
    assert (await store.get_job(waiting)) is not None


async def test_retention_of_zero_days_keeps_every_job(service: VideoService, clock: Clock) -> None:
    service.settings.storage.retention_days = 0
    clock.now -= timedelta(days=1000)
    job = await queued_row(service.store)
    await service.store.mark_running(job)
    await service.store.mark_failed(job, "x")
    clock.now += timedelta(days=1000)
    assert (await service.apply_retention()).jobs == []
    assert await service.store.get_job(job) is not None
