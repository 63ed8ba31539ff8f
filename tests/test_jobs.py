"""The fair queue and the GPU executor, with real threads and a real event loop."""

from __future__ import annotations

import asyncio
import threading
import time

from bot.core.progress import JobControl
from bot.core.result import GenerationResult
from bot.jobs import FairQueue, GpuExecutor, GpuUnavailable, Job, JobKind, JobStatus, QueueFull


def ok_result(tag: str = "") -> GenerationResult:
    return GenerationResult(
        images=[], metadata={"tag": tag}, generation_time=0, seed_used=0, params=None
    )


def job(job_id: int, user_id: int, work=None) -> Job:  # type: ignore[no-untyped-def]
    return Job(
        id=job_id,
        kind=JobKind.GENERATE,
        user_id=user_id,
        user_name=f"u{user_id}",
        guild_id=1,
        channel_id=1,
        model="tiny_t2v",
        prompt="p",
        work=work or (lambda control: ok_result(str(job_id))),
    )


def test_fair_queue_round_robin_across_members_fifo_within() -> None:
    queue = FairQueue()
    for job_id, user in [(1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "a"), (6, "c"), (7, "b")]:
        queue.push(job(job_id, ord(user)))
    assert [j.id for j in queue.ordered()] == [1, 4, 6, 2, 7, 3, 5]
    assert [queue.pop().id for _ in range(3)] == [1, 4, 6]  # type: ignore[union-attr]
    assert queue.remove(7) is not None and queue.remove(7) is None
    assert [j.id for j in queue.ordered()] == [2, 3, 5]


async def test_executor_runs_one_job_at_a_time_in_fair_order() -> None:
    executor = GpuExecutor(max_queue=10)
    await executor.start()
    started: list[int] = []
    gate = threading.Event()
    threads: set[str] = set()

    def work_for(job_id: int):  # type: ignore[no-untyped-def]
        def work(control: JobControl) -> GenerationResult:
            started.append(job_id)
            threads.add(threading.current_thread().name)
            if job_id == 1:
                gate.wait(5)
            return ok_result(str(job_id))

        return work

    jobs = [
        job(1, 10, work_for(1)),
        job(2, 10, work_for(2)),
        job(3, 10, work_for(3)),
        job(4, 20, work_for(4)),
    ]
    positions = [executor.submit(j) for j in jobs]
    assert positions == [1, 2, 3, 2]  # member 20's one job goes ahead of member 10's second
    await asyncio.sleep(0.1)
    assert jobs[0].state == JobStatus.RUNNING and [j.position for j in jobs[1:]] == [2, 3, 1]
    gate.set()
    results = [await asyncio.wait_for(j.wait(), 10) for j in jobs]
    assert started == [1, 4, 2, 3]
    assert [r.metadata["tag"] for r in results] == ["1", "2", "3", "4"]
    assert len(threads) == 1 and next(iter(threads)).startswith("videobot-gpu")
    await executor.stop()


async def test_executor_survives_a_job_that_raises_and_cancels_queued_jobs() -> None:
    executor = GpuExecutor(max_queue=2)
    await executor.start()
    gate = threading.Event()

    def boom(control: JobControl) -> GenerationResult:
        gate.wait(5)
        raise RuntimeError("kaboom")

    first = job(1, 1, boom)
    queued = job(2, 2)
    executor.submit(first)
    await asyncio.sleep(0.05)  # running: no longer counts against the queue's size
    executor.submit(queued)
    executor.submit(job(3, 3))
    try:
        executor.submit(job(5, 5))
        raise AssertionError("the queue accepted more than max_queue jobs")
    except QueueFull as exc:
        assert "queue is full" in str(exc) and "try again in ~" in str(exc)
    assert executor.cancel(2) is True
    assert (await queued.wait()).cancelled
    gate.set()
    failed = await asyncio.wait_for(first.wait(), 5)
    assert failed.error == "The job failed: RuntimeError: kaboom"
    after = job(4, 1)
    executor.submit(after)
    assert (await asyncio.wait_for(after.wait(), 5)).metadata["tag"] == "4"
    await executor.stop()


async def test_cancel_reaches_the_running_job_and_progress_crosses_threads() -> None:
    executor = GpuExecutor()
    await executor.start()

    def steps(control: JobControl) -> GenerationResult:
        for step in range(1, 1000):
            control.step("denoise", step, 999)  # raises GenerationCancelled once cancelled
            time.sleep(0.005)
        return ok_result()

    running = job(1, 1, steps)
    executor.submit(running)
    await asyncio.wait_for(running.changed.wait(), 5)
    while running.progress is None:
        await asyncio.sleep(0.01)
    assert running.progress.stage == "denoise"
    assert executor.cancel(1)
    stopped = await asyncio.wait_for(running.wait(), 5)
    assert stopped.cancelled and stopped.images == []
    await executor.stop()


async def test_model_loads_wait_for_the_running_job() -> None:
    executor = GpuExecutor()
    await executor.start()
    order: list[str] = []
    gate = threading.Event()

    def slow(control: JobControl) -> GenerationResult:
        gate.wait(5)
        order.append("job")
        return ok_result()

    executor.submit(job(1, 1, slow))
    await asyncio.sleep(0.05)
    load = asyncio.ensure_future(
        executor.run_on_gpu_thread(lambda: order.append("load") or "loaded")
    )
    await asyncio.sleep(0.05)
    assert order == []
    gate.set()
    assert await asyncio.wait_for(load, 5) == "loaded"
    assert order == ["job", "load"]
    await executor.stop()


async def test_a_spec_job_builds_previews_at_the_cadence_its_spec_carries() -> None:
    """The spec is the one place a job's preview setting travels: the local executor's control
    and a Ray worker's are both built from it."""
    from bot.jobspec import JobSpec

    executor = GpuExecutor()
    wanted = job(1, 10)
    wanted.spec = JobSpec(
        kind=JobKind.GENERATE, model="tiny_t2v", params={}, previews=True, previews_every_s=0.7
    )
    plain = job(2, 10)
    plain.spec = JobSpec(kind=JobKind.GENERATE, model="tiny_t2v", params={})
    executor.submit(wanted)
    executor.submit(plain)
    assert (wanted.control.previews, wanted.control.previews_every_s) == (True, 0.7)
    assert plain.control.previews is False


# --- the watchdog and GPU health ------------------------------------------------------------------


async def test_a_job_hanging_outside_the_steps_is_failed_by_the_watchdog_and_the_next_runs() -> (
    None
):
    """A hang where no step check comes (a download, the VAE decode, a CUDA call): past its limit
    and the grace the job fails with a message, its slot is freed, and the next job runs on a new
    thread, since the stuck one cannot be killed."""
    executor = GpuExecutor(watchdog_grace_s=0.05)
    await executor.start()
    stuck = threading.Event()
    threads: list[str] = []

    def hang(control: JobControl) -> GenerationResult:
        threads.append(threading.current_thread().name)
        stuck.wait(30)  # never calls control.step: the time limit alone cannot stop it
        return ok_result("late")

    def after_work(control: JobControl) -> GenerationResult:
        threads.append(threading.current_thread().name)
        return ok_result("after")

    hung = job(1, 1, hang)
    hung.time_limit_s = 0.1
    after = job(2, 2, after_work)
    executor.submit(hung)
    executor.submit(after)
    try:
        failed = await asyncio.wait_for(hung.wait(), 10)
        assert not failed.ok and not failed.cancelled
        assert "time limit of 0.1 s" in str(failed.error) and "did not stop" in str(failed.error)
        assert hung.state is JobStatus.FAILED and hung.control.cancelled
        assert (await asyncio.wait_for(after.wait(), 10)).metadata["tag"] == "after"
        assert len(threads) == 2 and threads[0] != threads[1]  # the stuck thread was replaced
        assert executor.healthy
    finally:
        stuck.set()
        await executor.stop()


async def test_a_cuda_error_restarts_the_worker_and_refuses_jobs_until_it_is_healthy() -> None:
    probing = threading.Event()
    release = threading.Event()

    def probe() -> None:
        probing.set()
        release.wait(10)

    executor = GpuExecutor(probe=probe)
    await executor.start()
    threads: list[str] = []

    def fault(control: JobControl) -> GenerationResult:
        threads.append(threading.current_thread().name)
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    def fine(control: JobControl) -> GenerationResult:
        threads.append(threading.current_thread().name)
        return ok_result("fine")

    broken = job(1, 1, fault)
    executor.submit(broken)
    failed = await asyncio.wait_for(broken.wait(), 5)
    assert "The GPU failed during this job" in str(failed.error)
    assert "illegal memory access" in failed.metadata["gpu_fault"]
    await asyncio.wait_for(asyncio.to_thread(probing.wait, 5), 6)
    try:  # while the new worker is probed, new jobs are refused with a line saying why
        executor.submit(job(2, 2, fine))
        raise AssertionError("a job was accepted while the GPU worker restarted")
    except GpuUnavailable as exc:
        assert "restarting after a GPU fault in job 1" in str(exc) and "try again" in str(exc)
    release.set()
    while not executor.healthy:
        await asyncio.sleep(0.01)
    later = job(3, 2, fine)
    executor.submit(later)
    assert (await asyncio.wait_for(later.wait(), 5)).metadata["tag"] == "fine"
    assert len(threads) == 2 and threads[0] != threads[1]  # a new worker thread ran it
    await executor.stop()


async def test_a_gpu_that_stays_broken_fails_the_queue_with_a_message_and_refuses_jobs() -> None:
    def broken_probe() -> None:
        raise RuntimeError("CUDA error: device-side assert triggered")

    executor = GpuExecutor(probe=broken_probe)
    gate = threading.Event()

    def fault(control: JobControl) -> GenerationResult:
        gate.wait(5)
        return GenerationResult(
            images=[],
            metadata={},
            generation_time=0,
            seed_used=0,
            params=None,
            error="Generation failed on tiny_t2v: RuntimeError: CUDA error: device-side assert",
        )

    first, waiting = job(1, 1, fault), job(2, 2)
    executor.submit(first)
    executor.submit(waiting)
    await executor.start()
    gate.set()
    assert "The GPU failed" in str((await asyncio.wait_for(first.wait(), 5)).error)
    lost = await asyncio.wait_for(waiting.wait(), 5)
    assert "GPU is out of order" in str(lost.error) and "restart the bot" in str(lost.error)
    try:
        executor.submit(job(3, 3))
        raise AssertionError("a job was accepted on a broken GPU")
    except GpuUnavailable as exc:
        assert "out of order" in str(exc) and "device-side assert" in str(exc)
    await executor.stop()


def test_out_of_memory_is_not_a_gpu_fault() -> None:
    from bot.worker import is_gpu_fault

    assert is_gpu_fault("RuntimeError: CUDA error: an illegal memory access was encountered")
    assert not is_gpu_fault("RuntimeError: CUDA error: out of memory")
    assert not is_gpu_fault("the prompt is too long")
