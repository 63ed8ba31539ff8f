"""Jobs, the fair queue and the local executor (the default: one GPU thread in this process).

The executor sits behind a small interface (:class:`JobExecutor`: submit, cancel, positions, a
snapshot, the workers and their models) so that the Ray backend (:mod:`bot.executors.ray`),
spreading jobs over the GPUs of a cluster, replaces :class:`GpuExecutor` without touching the cogs.
A job carries a :class:`~bot.jobspec.JobSpec` (data), run by the one :class:`~bot.worker.Worker`
both backends share.

Threads: the event loop owns the queue and every ``Job`` field; the GPU thread only runs the
job's spec (or, for tests and tools, ``job.work``). Progress crosses back with
``loop.call_soon_threadsafe``; cancel crosses in through the job's
:class:`~bot.core.progress.JobControl`, which the pipelines check at every step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Protocol, TypeVar

from bot.core.errors import GenerationCancelled, VideoBotError
from bot.core.progress import DEFAULT_PREVIEWS_EVERY_S, JobControl, Progress
from bot.core.result import GenerationResult
from bot.jobspec import JobSpec, ModelReport, WorkerState
from bot.lifecycle import DEFAULT_RETRY_POLICY, JobKind, JobStatus, RetryPolicy
from bot.worker import Worker, cancelled_result, failed_result

if TYPE_CHECKING:
    from bot.core.engine import GenerationEngine

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[JobControl], GenerationResult]


class QueueFull(Exception):
    """The queue holds ``max_queue`` jobs; the message says roughly when to try again."""


@dataclass(eq=False)
class Job:
    """One unit of GPU work and what its watchers need to know about it."""

    id: int
    kind: JobKind
    user_id: int
    user_name: str
    guild_id: int | None
    channel_id: int
    model: str | None
    prompt: str
    work: Work | None = None
    """A function to run instead of a spec: tests and tools on the local executor only."""
    spec: JobSpec | None = None
    """The job as data: what every backend runs (see :mod:`bot.jobspec`)."""
    time_limit_s: float | None = None
    on_start: Callable[[Job], Awaitable[None]] | None = None
    """Awaited on the event loop just before the job runs (the service records it as running)."""
    control: JobControl = field(init=False)
    state: JobStatus = JobStatus.QUEUED
    position: int | None = None
    progress: Progress | None = None
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    result: GenerationResult | None = None
    attempts: int = 0
    """Starts so far, counting those before a restart (the store's count) and those lost with a
    worker: :class:`~bot.lifecycle.RetryPolicy` caps them."""
    lost_runs: int = 0
    """Starts lost with a worker that died mid-job (Ray backend); the store is told it is queued
    again before the next start."""
    worker: str | None = None
    """The worker running (or last running) the job."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.control = JobControl()

    def touch(self) -> None:
        """Wake whoever renders this job's status."""
        self.changed.set()

    def finish(self, result: GenerationResult) -> None:
        """The job's end as the executor saw it; the service then records it (encode, store)."""
        self.state = (
            JobStatus.CANCELLED
            if result.cancelled
            else JobStatus.DONE
            if result.ok
            else JobStatus.FAILED
        )
        self.position = None
        self.result = result
        self.touch()
        self.done.set()

    async def wait(self) -> GenerationResult:
        await self.done.wait()
        assert self.result is not None
        return self.result


class FairQueue:
    """Round-robin across members, first-in first-out within a member: a member with five jobs
    waits behind a member with one, not the other way round."""

    def __init__(self) -> None:
        self._by_user: OrderedDict[int, deque[Job]] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self._by_user.values())

    def push(self, job: Job) -> None:
        self._by_user.setdefault(job.user_id, deque()).append(job)

    def push_front(self, job: Job) -> None:
        """Put back a job whose worker was lost: first in its member's lane, its member first in
        the rotation, so it runs next as it would have."""
        self._by_user.setdefault(job.user_id, deque()).appendleft(job)
        self._by_user.move_to_end(job.user_id, last=False)

    def pop(self) -> Job | None:
        if not self._by_user:
            return None
        user_id, jobs = next(iter(self._by_user.items()))
        job = jobs.popleft()
        del self._by_user[user_id]
        if jobs:  # the member goes to the back of the rotation
            self._by_user[user_id] = jobs
        return job

    def remove(self, job_id: int) -> Job | None:
        for user_id, jobs in self._by_user.items():
            for job in jobs:
                if job.id == job_id:
                    jobs.remove(job)
                    if not jobs:
                        del self._by_user[user_id]
                    return job
        return None

    def ordered(self) -> list[Job]:
        """The order jobs will run in."""
        lanes = [list(jobs) for jobs in self._by_user.values()]
        order: list[Job] = []
        for depth in range(max((len(lane) for lane in lanes), default=0)):
            order.extend(lane[depth] for lane in lanes if depth < len(lane))
        return order


class JobExecutor(Protocol):
    """What the cogs and the service may ask of an executor."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def submit(self, job: Job) -> int: ...
    def cancel(self, job_id: int) -> bool: ...
    def get(self, job_id: int) -> Job | None: ...
    def snapshot(self) -> list[Job]: ...
    def estimated_wait_s(self, position: int | None = None) -> float: ...
    async def workers(self) -> list[WorkerState]:
        """Each worker: where it runs, what it holds, whether it is idle, busy or down."""
        ...

    async def load_model(self, key: str, worker: str | None = None) -> list[ModelReport]:
        """Load ``key`` on every worker, or on the one named ``worker``, after its running job."""
        ...

    async def unload_model(self, key: str, worker: str | None = None) -> list[ModelReport]: ...


class QueueingExecutor:
    """What every executor keeps on the bot's side, whatever runs the jobs: the fair queue with
    its cap, the drain switch, queue positions, and the recent durations the wait estimate uses.
    :class:`GpuExecutor` and the Ray backend differ only in where a popped job runs."""

    def __init__(self, max_queue: int) -> None:
        self._queue = FairQueue()
        self._max_queue = max_queue
        self._wakeup = asyncio.Event()
        self._recent_durations: deque[float] = deque(maxlen=20)
        self._accepting = True

    def _check_room(self) -> None:
        """Refuse a job while draining or when the queue is full, saying when to try again."""
        if not self._accepting:
            raise QueueFull("the bot is shutting down; try again in a minute")
        if len(self._queue) >= self._max_queue:
            minutes = max(1, round(self.estimated_wait_s() / 60))
            raise QueueFull(
                f"the queue is full ({self._max_queue} jobs); try again in ~{minutes} min"
            )

    def _enqueue(self, job: Job) -> int:
        """Queue ``job`` (its control already made); returns its 1-based position."""
        self._queue.push(job)
        self._renumber()
        self._wakeup.set()
        return job.position or 1

    def _stop_accepting(self) -> None:
        """Take no new jobs and forget the queued ones: the store keeps them queued, and the next
        start resumes them."""
        self._accepting = False
        self._queue = FairQueue()

    def _cancel_queued(self, job_id: int) -> bool:
        job = self._queue.remove(job_id)
        if job is None:
            return False
        job.finish(cancelled_result())
        self._renumber()
        return True

    def _queued(self, job_id: int) -> Job | None:
        return next((job for job in self._queue.ordered() if job.id == job_id), None)

    def _wait_s(self, position: int | None, running: int, workers: int = 1) -> float:
        """Jobs ahead (and running) times the recent average duration, over ``workers``."""
        average = (
            sum(self._recent_durations) / len(self._recent_durations)
            if self._recent_durations
            else 30.0
        )
        ahead = len(self._queue) if position is None else position - 1
        return (ahead + running) * average / max(1, workers)

    def estimated_wait_s(self, position: int | None = None) -> float:
        raise NotImplementedError

    async def _start(self, job: Job, worker: str | None) -> float:
        """A popped job begins: one more attempt, on ``worker``; the caller's ``on_start`` (the
        store marks it running), whose failure is logged and never stops the job; then running.
        Returns when it started, for the durations the wait estimate uses."""
        job.attempts += 1
        job.worker = worker
        if job.on_start is not None:
            try:
                await job.on_start(job)
            except Exception:
                log.exception("on_start of job %s failed", job.id)
        job.state = JobStatus.RUNNING
        job.started_at = started = time.monotonic()
        job.touch()
        return started

    def _renumber(self) -> None:
        for index, job in enumerate(self._queue.ordered(), start=1):
            if job.position != index:
                job.position = index
                job.touch()


class GpuExecutor(QueueingExecutor):
    """A dispatcher task feeding one worker thread, so the GPU runs one job at a time and the event
    loop never blocks on it. Specs run on one :class:`~bot.worker.Worker` named ``local``."""

    def __init__(
        self,
        *,
        max_queue: int = 100,
        engine: GenerationEngine | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
    ) -> None:
        super().__init__(max_queue)
        self._worker = Worker("local", engine, retry=retry) if engine is not None else None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="videobot-gpu")
        self._running: Job | None = None
        self._dispatcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="videobot-dispatcher")

    async def stop(self) -> None:
        """Drain: take no new jobs and let the running one finish. Queued jobs are dropped from
        memory only: the store still has them queued, and the next start resumes them."""
        self._stop_accepting()
        if self._running is not None:
            await self._running.done.wait()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None
        self._thread.shutdown(wait=True)

    def submit(self, job: Job) -> int:
        """Queue a job; returns its 1-based position (1: next to run)."""
        self._check_room()
        loop = asyncio.get_running_loop()

        def report(progress: Progress) -> None:  # on the GPU thread
            loop.call_soon_threadsafe(self._progress, job, progress)

        spec = job.spec
        job.control = JobControl(
            on_progress=report,
            time_limit_s=job.time_limit_s,
            previews=spec is not None and spec.previews,
            previews_every_s=spec.previews_every_s
            if spec is not None
            else DEFAULT_PREVIEWS_EVERY_S,
        )
        return self._enqueue(job)

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued job at once, or ask the running one to stop at its next step."""
        if self._cancel_queued(job_id):
            return True
        if self._running is not None and self._running.id == job_id:
            self._running.control.cancel()
            return True
        return False

    def get(self, job_id: int) -> Job | None:
        if self._running is not None and self._running.id == job_id:
            return self._running
        return self._queued(job_id)

    def snapshot(self) -> list[Job]:
        """The running job (if any) then the queued ones in the order they will run."""
        running = [self._running] if self._running is not None else []
        return running + self._queue.ordered()

    def estimated_wait_s(self, position: int | None = None) -> float:
        """Jobs ahead times the recent average duration; a rough guide for members."""
        return self._wait_s(position, running=1 if self._running else 0)

    async def run_on_gpu_thread(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the GPU thread (model loads): it waits for the running job."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def workers(self) -> list[WorkerState]:
        if self._worker is None:
            return []
        running = self._running
        return [
            self._worker.state(
                "busy" if running else "idle", running.id if running is not None else None
            )
        ]

    async def load_model(self, key: str, worker: str | None = None) -> list[ModelReport]:
        target = self._local_worker(worker)
        return [await self.run_on_gpu_thread(partial(target.load, key))]

    async def unload_model(self, key: str, worker: str | None = None) -> list[ModelReport]:
        target = self._local_worker(worker)
        return [await self.run_on_gpu_thread(partial(target.unload, key))]

    def _local_worker(self, name: str | None) -> Worker:
        if self._worker is None:
            raise VideoBotError("this executor has no engine to load models on")
        if name not in (None, self._worker.name):
            raise VideoBotError(f"there is no worker {name!r}; this bot has one: local")
        return self._worker

    # --- internals -----------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = self._queue.pop()
            if job is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._renumber()
            self._running = job
            started = await self._start(
                job, self._worker.name if self._worker is not None else None
            )
            try:
                result = await loop.run_in_executor(self._thread, self._run_safely, job)
            finally:
                self._running = None
            self._recent_durations.append(time.monotonic() - started)
            job.finish(result)
            self._renumber()

    def _progress(self, job: Job, progress: Progress) -> None:
        job.progress = progress
        job.touch()

    def _run_safely(self, job: Job) -> GenerationResult:
        """The GPU thread's loop body: whatever a job raises, the thread lives on. A spec runs on
        the worker (which catches its own failures); ``job.work`` is caught here."""
        if job.spec is not None:
            if self._worker is None:
                return failed_result("The job failed: this executor has no engine")
            return self._worker.run(job.spec, job.control)
        if job.work is None:
            return failed_result("The job failed: it has nothing to run")
        job.control.restart_clock()
        try:
            return job.work(job.control)
        except GenerationCancelled:
            return cancelled_result()
        except Exception as exc:  # one job's bug must not kill the executor
            log.exception("job %s failed", job.id)
            return failed_result(f"The job failed: {type(exc).__name__}: {exc}")


def describe_wait(seconds: float) -> str:
    if seconds < 60:
        return f"~{max(1, round(seconds))} s"
    return f"~{round(seconds / 60)} min"


__all__ = [
    "FairQueue",
    "GpuExecutor",
    "Job",
    "JobExecutor",
    "JobKind",
    "JobStatus",
    "QueueFull",
    "cancelled_result",
    "describe_wait",
]
