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

The watchdog: a job still running :data:`WATCHDOG_GRACE_S` past its time limit hangs outside the
steps (a download, the VAE decode, a CUDA call) where the step check never comes. It is failed with
a message, its slot is freed, and the GPU thread, which cannot be killed, is abandoned for a new
one with a new :class:`~bot.worker.Worker`. The same restart follows a job that ends in a GPU fault
(a CUDA error that breaks the context for every later job): new jobs are refused with a line saying
why until a probe on the new thread shows the GPU works again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from bot.core.errors import GenerationCancelled, VideoBotError
from bot.core.progress import DEFAULT_PREVIEWS_EVERY_S, JobControl, Progress
from bot.core.result import GenerationResult
from bot.jobspec import JobSpec, ModelReport, WorkerState
from bot.lifecycle import DEFAULT_RETRY_POLICY, JobKind, JobStatus, RetryPolicy
from bot.worker import Worker, cancelled_result, failed_result, mark_gpu_fault, probe_gpu

if TYPE_CHECKING:
    from bot.core.engine import GenerationEngine

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")
Work = Callable[[JobControl], GenerationResult]

WATCHDOG_GRACE_S = 60.0
"""How long past its time limit a job may still run before the watchdog gives up on it. The step
check stops a job within a step of its limit; only a hang outside the steps gets this far."""
PROBE_TIMEOUT_S = 60.0
"""How long the health probe of a restarted GPU worker may take before the GPU counts as down."""


class QueueFull(Exception):
    """The queue holds ``max_queue`` jobs; the message says roughly when to try again."""


class GpuUnavailable(QueueFull):
    """The GPU worker is restarting after a fault, or is out of order: new jobs are refused with a
    line saying which, and the service refuses the request like a full queue."""


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


class GpuThread(Executor):
    """One daemon thread running what it is given, in order: the GPU thread.

    Not a ``ThreadPoolExecutor``: the interpreter joins those at exit, so one the watchdog gave up
    on (stuck in a CUDA call) would hold the process forever. A daemon thread does not."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._calls: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        if self._closed:
            raise RuntimeError(f"{self.name} was shut down")
        future: Future[T] = Future()
        self._calls.put((future, partial(fn, *args, **kwargs)))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more calls; those queued still run (the thread ends after them). ``wait`` joins the
        thread: never for one that is stuck."""
        if not self._closed:
            self._closed = True
            self._calls.put(None)
        if wait:
            self._thread.join()

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                value = call()
            except BaseException as exc:  # handed to whoever awaits it
                future.set_exception(exc)
            else:
                future.set_result(value)


class GpuExecutor(QueueingExecutor):
    """A dispatcher task feeding one worker thread, so the GPU runs one job at a time and the event
    loop never blocks on it. Specs run on one :class:`~bot.worker.Worker` named ``local``.

    A watchdog fails a job still running ``watchdog_grace_s`` past its time limit; that, or a job
    ending in a GPU fault, restarts the worker: a new thread and a new ``Worker`` (the old thread
    cannot be killed and may hold the old worker's lock), then ``probe`` (default: a tiny CUDA
    kernel) on the new thread. Until the probe passes new jobs are refused; if it fails, the GPU
    is down until the bot restarts, and the jobs still queued fail with a message saying so."""

    def __init__(
        self,
        *,
        max_queue: int = 100,
        engine: GenerationEngine | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        watchdog_grace_s: float = WATCHDOG_GRACE_S,
        probe: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(max_queue)
        self._retry = retry
        self._worker = Worker("local", engine, retry=retry) if engine is not None else None
        self._restarts = 0
        self._thread = GpuThread("videobot-gpu")
        self._running: Job | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._watchdog_grace_s = watchdog_grace_s
        self._probe = probe
        self._fault: str | None = None
        """Why the GPU is not taking jobs (restarting or down); None while healthy."""
        self._down = False
        """The restarted worker failed its probe: refused until the bot restarts."""

    async def start(self) -> None:
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="videobot-dispatcher")

    async def stop(self) -> None:
        """Drain: take no new jobs and let the running one finish. Queued jobs are dropped from
        memory only: the store still has them queued, and the next start resumes them."""
        self._stop_accepting()
        if self._running is not None:
            await self._running.done.wait()  # at most its time limit and the watchdog's grace
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None
        self._thread.shutdown(wait=self._fault is None)

    @property
    def healthy(self) -> bool:
        """False while the GPU worker restarts after a fault, and for good once it is down."""
        return self._fault is None

    def submit(self, job: Job) -> int:
        """Queue a job; returns its 1-based position (1: next to run)."""
        if self._fault is not None:
            raise GpuUnavailable(self._unavailable())
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
        status = "down" if self._fault is not None else "busy" if running else "idle"
        return [self._worker.state(status, running.id if running is not None else None)]

    async def load_model(self, key: str, worker: str | None = None) -> list[ModelReport]:
        target = self._local_worker(worker)
        return [await self.run_on_gpu_thread(partial(target.load, key))]

    async def unload_model(self, key: str, worker: str | None = None) -> list[ModelReport]:
        target = self._local_worker(worker)
        return [await self.run_on_gpu_thread(partial(target.unload, key))]

    def _local_worker(self, name: str | None) -> Worker:
        if self._worker is None:
            raise VideoBotError("this executor has no engine to load models on")
        if self._fault is not None:
            raise VideoBotError(self._unavailable())
        if name not in (None, self._worker.name):
            raise VideoBotError(f"there is no worker {name!r}; this bot has one: local")
        return self._worker

    # --- internals -----------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            job = self._queue.pop()
            if job is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._renumber()
            if self._down:  # every job would fail the same way: say so, and run none
                job.finish(failed_result(self._unavailable()))
                continue
            self._running = job
            started = await self._start(
                job, self._worker.name if self._worker is not None else None
            )
            try:
                result, hung = await self._run_watched(job)
            finally:
                self._running = None
            self._recent_durations.append(time.monotonic() - started)
            job.finish(result)
            self._renumber()
            fault = result.metadata.get("gpu_fault")
            if hung:
                await self._restart_worker(f"job {job.id} hung past its time limit")
            elif fault:
                log.error("job %s hit a GPU fault: %s", job.id, fault)
                await self._restart_worker(f"a GPU fault in job {job.id}")

    async def _run_watched(self, job: Job) -> tuple[GenerationResult, bool]:
        """Run ``job`` on the GPU thread under the watchdog: its result, or a failed result and
        True when it is still running ``watchdog_grace_s`` past its time limit. The limit
        counts from when the thread starts it, not while it waits behind a model load."""
        began: list[float] = []  # the thread appends when the job starts there
        future = asyncio.get_running_loop().run_in_executor(
            self._thread, self._run_safely, job, began
        )
        limit = job.time_limit_s
        if limit is None:
            return await future, False
        while True:
            left = began[0] + limit + self._watchdog_grace_s - time.monotonic() if began else 0.5
            done, _ = await asyncio.wait({future}, timeout=max(left, 0.0))
            if done:
                return future.result(), False
            if began and time.monotonic() - began[0] > limit + self._watchdog_grace_s:
                break
        job.control.cancel()  # should it ever come back to a step, it stops there
        log.error(
            "job %s ran %g s past its time limit of %g s without stopping (a hang outside the "
            "denoising steps: a download, the VAE decode, a CUDA call); the watchdog failed it",
            job.id,
            self._watchdog_grace_s,
            limit,
        )
        return hung_result(limit), True

    async def _restart_worker(self, reason: str) -> None:
        """A new GPU thread and worker, then the probe on it; new jobs are refused meanwhile,
        and for good if the probe fails (the queued ones then fail with that message)."""
        self._fault = f"the GPU worker is restarting after {reason}"
        old, self._restarts = self._thread, self._restarts + 1
        self._thread = GpuThread(f"videobot-gpu-{self._restarts + 1}")
        old.shutdown(wait=False)  # if it ever comes back, it ends after its call
        if self._worker is not None:
            old_worker = self._worker
            self._worker = Worker(
                old_worker.name, old_worker.engine, retry=self._retry, node=old_worker.node
            )
        probe = self._probe or (self._worker.probe if self._worker is not None else probe_gpu)
        try:
            await asyncio.wait_for(self.run_on_gpu_thread(probe), timeout=PROBE_TIMEOUT_S)
        except Exception as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._down = True
            self._fault = (
                f"the GPU is out of order ({detail}) since {reason}; the bot's owner must restart "
                "the bot"
            )
            log.error("%s; until then every job is refused", self._fault)
            return
        self._fault = None
        log.warning("the GPU worker was restarted after %s; the GPU works again", reason)

    def _unavailable(self) -> str:
        if self._down:
            return f"{self._fault}; no job can run until then"
        return f"{self._fault}; try again in a minute"

    def _progress(self, job: Job, progress: Progress) -> None:
        if job.done.is_set():  # a job the watchdog gave up on, still reporting from its thread
            return
        job.progress = progress
        job.touch()

    def _run_safely(self, job: Job, began: list[float] | None = None) -> GenerationResult:
        """The GPU thread's loop body: whatever a job raises, the thread lives on. A spec runs on
        the worker (which catches its own failures); ``job.work`` is caught here. A GPU fault is
        marked on the result (``metadata["gpu_fault"]``) for the dispatcher to restart on."""
        if began is not None:
            began.append(time.monotonic())
        if job.spec is not None:
            if self._worker is None:
                return failed_result("The job failed: this executor has no engine")
            return self._worker.run(job.spec, job.control)
        if job.work is None:
            return failed_result("The job failed: it has nothing to run")
        job.control.restart_clock()
        try:
            return mark_gpu_fault(job.work(job.control))
        except GenerationCancelled:
            return cancelled_result()
        except Exception as exc:  # one job's bug must not kill the executor
            log.exception("job %s failed", job.id)
            return mark_gpu_fault(failed_result(f"The job failed: {type(exc).__name__}: {exc}"))


def hung_result(limit_s: float) -> GenerationResult:
    """What the member of a job the watchdog gave up on is told (both executors)."""
    return failed_result(
        f"The job went past its time limit of {limit_s:g} s and did not stop, so it was ended "
        "and the GPU worker restarted. Try fewer frames, fewer steps or a smaller size; if it "
        "happens again, tell the bot's owner."
    )


def describe_wait(seconds: float) -> str:
    if seconds < 60:
        return f"~{max(1, round(seconds))} s"
    return f"~{round(seconds / 60)} min"


__all__ = [
    "PROBE_TIMEOUT_S",
    "WATCHDOG_GRACE_S",
    "FairQueue",
    "GpuExecutor",
    "GpuThread",
    "GpuUnavailable",
    "Job",
    "JobExecutor",
    "JobKind",
    "JobStatus",
    "QueueFull",
    "cancelled_result",
    "describe_wait",
    "hung_result",
]
