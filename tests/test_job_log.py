"""What the owner's console says about jobs, on the real service, store and executor (no Discord):
one line as each job starts and one as it ends (server, member, kind, model, seconds, outcome,
and a failure's reason), edits included; and a status line while the bot is busy, never while it
is idle."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from bot_helpers import ALICE, KITE, make_settings, running_service

from bot.core import GenerationParams
from bot.service import StoredVideo, VideoService, _failed

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
async def service(tmp_path: Path, manager: Any) -> AsyncIterator[VideoService]:
    settings = make_settings(tmp_path, limits={"max_queued_per_user": 5})
    async with running_service(settings, manager) as service:
        yield service


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "bot.service"]


async def test_each_job_and_edit_logs_its_start_and_its_end(
    service: VideoService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="bot")
    job = await service.submit_generation(ALICE, GenerationParams(**KITE))
    assert (await asyncio.wait_for(service.outcome(job), 120)).ok
    edited = await service.edit(ALICE, StoredVideo(job.id), "trim", {"start_s": 0.5})
    assert edited.ok

    logged = lines(caplog)
    where = "server 70, member 7, model tiny_t2v"
    assert f"job {job.id} (generate) started: {where}" in logged
    assert any(
        re.fullmatch(rf"job {job.id} \(generate\) done in \d+\.\d s: {where}", line)
        for line in logged
    ), logged
    assert f"job {edited.job_id} (edit: trim) started: {where}" in logged
    assert any(
        re.fullmatch(rf"job {edited.job_id} \(edit: trim\) done in \d+\.\d s: {where}", line)
        for line in logged
    ), logged


async def test_a_failure_logs_its_reason_on_the_end_line(
    service: VideoService, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(*args: object, **kwargs: object) -> Any:
        return _failed("The model ran out of memory\neven with the memory savers on")

    monkeypatch.setattr(service.engine, "generate_video", fails)
    caplog.set_level("INFO", logger="bot")
    job = await service.submit_generation(ALICE, GenerationParams(**KITE))
    assert not (await asyncio.wait_for(service.outcome(job), 120)).ok
    [end] = [line for line in lines(caplog) if line.startswith(f"job {job.id} (generate) failed")]
    assert re.fullmatch(
        rf"job {job.id} \(generate\) failed in \d+\.\d s: server 70, member 7, model tiny_t2v: "
        "The model ran out of memory",  # one line: the reason's first
        end,
    ), end
    assert service.ended["failed"] == 1


async def test_a_status_line_while_busy_and_none_while_idle(
    service: VideoService, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert service.status_line() is None  # idle: the console stays quiet
    release = threading.Event()
    render = service.engine.generate_video

    def held(*args: Any, **kwargs: Any) -> Any:
        release.wait(60)
        return render(*args, **kwargs)

    monkeypatch.setattr(service.engine, "generate_video", held)
    caplog.set_level("INFO", logger="bot")
    reporter = asyncio.create_task(service.report_status(every_s=0.05))
    try:
        first = await service.submit_generation(ALICE, GenerationParams(**KITE))
        second = await service.submit_generation(ALICE, GenerationParams(**{**KITE, "seed": 2}))
        busy = "status: 1 queued, 1 running, 0 edit(s) in progress"
        for _ in range(600):  # the reporter's next turn once both jobs are in
            if any(line.startswith(busy) for line in lines(caplog)):
                break
            await asyncio.sleep(0.05)
        status = [line for line in lines(caplog) if line.startswith(busy)]
        assert status, lines(caplog)
        assert f"job {first.id} (generate) running" in status[0]
        assert status[0].endswith("since start: 0 done, 0 failed, 0 cancelled")
        release.set()
        for job in (first, second):
            assert (await asyncio.wait_for(service.outcome(job), 120)).ok
        assert service.status_line() is None
        assert service.ended["done"] == 2
    finally:
        release.set()
        reporter.cancel()
