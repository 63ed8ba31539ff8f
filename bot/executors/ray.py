"""The Ray backend: the same bot, its GPU jobs spread over the workers of a Ray cluster.

One actor per GPU (:class:`RayWorker`, one unit of ``[executor] resource`` each: ``GPU``, or a
custom resource on CPU-only hosts) wraps the same :class:`~bot.worker.Worker` the local executor
runs, with its own model manager, so models stay loaded between jobs. The actors are named and
detached: a restarted bot finds them, models still loaded, and Ray restarts one that dies.

The bot keeps the queue (:class:`~bot.jobs.FairQueue`, so fairness stays ours), the database and
the dispatch: a job goes to an actor only when that actor is idle (nothing queues inside Ray),
preferring one that already holds the job's model. A job's media (picture, source video) goes
through Ray's object store; progress (with live previews) streams back from a generator method
while the job runs; a cancel reaches the actor through a second method (threaded actors:
``max_concurrency`` > 1) and stops the job at its next step. An actor that dies mid-job puts the job
back at the front of the queue per :class:`~bot.lifecycle.RetryPolicy`; the cluster going away
leaves jobs queued, with a log line saying so, until it answers again.

Every cluster the bot uses runs with Ray's token authentication (:mod:`bot.executors.ray_auth`).
An actor found under a worker's name is used only if it answers with this bot's
:func:`worker_fingerprint` (its code version and model options): an upgraded or reconfigured bot
replaces the old actors, and an actor of someone else squatting the name is replaced too, never
sent a job.

Imported only when ``[executor] backend = "ray"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray.exceptions import ActorDiedError, RayError, RayTaskError

from bot.core.errors import VideoBotError
from bot.core.progress import JobControl, Progress
from bot.core.result import GenerationResult
from bot.executors import ray_auth
from bot.jobs import WATCHDOG_GRACE_S, Job, QueueingExecutor, hung_result
from bot.jobspec import JobSpec, ModelReport, WorkerState
from bot.lifecycle import DEFAULT_RETRY_POLICY, JobStatus, RetryPolicy
from bot.worker import Worker, cancelled_result, failed_result

if TYPE_CHECKING:
    from bot.config import ExecutorSettings
    from bot.core.manager import ManagerOptions

log = logging.getLogger(__name__)

ACTOR_PREFIX = "videobot-worker-"
RETRY_S = 5.0
"""How often the bot tries a cluster that does not answer, a worker that is down, and whether the
cluster has more GPUs (a host joined)."""
CALL_TIMEOUT_S = 30.0
"""A worker that does not answer a state query in this long is shown as down."""
MAX_CONCURRENCY = 4
"""Threads per actor: the running job's stream, a cancel, a state query and a load can overlap."""


@functools.cache
def code_version() -> str:
    """videobot's version and a hash of its source files (``bot/``), which the workers run: a
    change of code between releases counts as a new version too."""
    import bot

    root = Path(bot.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return f"{bot.__version__}+{digest.hexdigest()[:12]}"


def worker_fingerprint(options: ManagerOptions, retry: RetryPolicy) -> str:
    """What a worker actor must answer to be used: a hash of the code version and of everything
    its constructor got. A detached actor outlives the bot; one made by another version or
    configuration would run old code or the wrong model options, so it is replaced instead."""
    text = f"{code_version()}\n{options!r}\n{retry!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunEnd:
    """The last item a job's stream yields: its result and the worker's state after it."""

    result: GenerationResult
    state: WorkerState


_DONE = object()


class RayWorker:
    """The actor: one :class:`~bot.worker.Worker` (its engine and model manager) on one GPU."""

    def __init__(
        self, name: str, options: ManagerOptions, retry: RetryPolicy, fingerprint: str
    ) -> None:
        from bot.core.engine import GenerationEngine
        from bot.core.manager import ModelManager

        self._fingerprint = fingerprint
        context = ray.get_runtime_context()
        node = f"{ray.util.get_node_ip_address()}/{context.get_node_id()[:8]}"
        self._worker = Worker(name, GenerationEngine(ModelManager(options)), retry=retry, node=node)
        self._controls: dict[int, JobControl] = {}
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()

    def fingerprint(self) -> str:
        """The :func:`worker_fingerprint` of the bot that made this actor."""
        return self._fingerprint

    def state(self) -> WorkerState:
        with self._lock:
            running = next(iter(self._controls), None)
        return self._worker.state("busy" if running is not None else "idle", running)

    def run(self, job_id: int, spec: JobSpec, media: bytes | None) -> Iterator[Progress | RunEnd]:
        """Run one job, yielding its progress as it comes (the newest only, when several queued
        up while the bot was reading) and then a :class:`RunEnd`."""
        updates: queue.SimpleQueue[Any] = queue.SimpleQueue()
        control = JobControl(
            updates.put,
            time_limit_s=spec.time_limit_s,
            previews=spec.previews,
            previews_every_s=spec.previews_every_s,
        )
        with self._lock:
            self._controls[job_id] = control
            if job_id in self._cancelled:  # the cancel came before the job did
                control.cancel()
        ended: list[GenerationResult] = []

        def target() -> None:
            try:
                ended.append(self._worker.run(spec.with_media(media), control))
            finally:
                updates.put(_DONE)

        thread = threading.Thread(target=target, name=f"videobot-job-{job_id}", daemon=True)
        thread.start()
        try:
            finished = False
            while not finished:
                latest: Progress | None = None
                item = updates.get()
                while True:
                    if item is _DONE:
                        finished = True
                    else:
                        latest = item
                    try:
                        item = updates.get_nowait()
                    except queue.Empty:
                        break
                if latest is not None:
                    yield latest
            thread.join()
        finally:
            with self._lock:
                self._controls.pop(job_id, None)
                self._cancelled.discard(job_id)
        yield RunEnd(ended[0] if ended else failed_result("The job failed"), self.state())

    def cancel(self, job_id: int) -> bool:
        """Stop the job at its next step (or before it starts, if it has not yet)."""
        with self._lock:
            control = self._controls.get(job_id)
            if control is None:
                self._cancelled.add(job_id)
                return False
        control.cancel()
        return True

    def load(self, key: str) -> ModelReport:
        return self._worker.load(key)

    def unload(self, key: str) -> ModelReport:
        return self._worker.unload(key)


@dataclass(eq=False)
class _Remote:
    """The bot's view of one actor."""

    name: str
    handle: Any
    state: WorkerState
    running: Job | None = None
    alive: bool = True
    reviving: asyncio.Task[None] | None = None


class RayExecutor(QueueingExecutor):
    """A :class:`~bot.jobs.JobExecutor` whose jobs run on the actors of a Ray cluster."""

    def __init__(
        self,
        settings: ExecutorSettings,
        options: ManagerOptions,
        *,
        max_queue: int = 100,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
    ) -> None:
        self.settings = settings
        self._options = options
        super().__init__(max_queue)
        self._retry = retry
        self.fingerprint = worker_fingerprint(options, retry)
        self._auth: ray_auth.ClusterAuth | None = None
        self._workers: list[_Remote] = []
        self._running: dict[int, Job] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._said_no_worker = False
        self.connected = asyncio.Event()
        """Set once the cluster answered and the workers were asked for: tests and the CLI wait
        on it."""

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start dispatching; the cluster is reached in the background, so a cluster that is down
        does not stop the bot: jobs wait in the queue until it answers.

        Raises :class:`~bot.executors.ray_auth.RayAuthError` (one line: what to do) when it would
        have to join a cluster with no token here; warns at every start when
        ``allow_unauthenticated`` lets it join without one."""
        if self._auth is None:
            self._auth = ray_auth.check_bot_auth(self.settings)
            if self._auth.warning:
                log.warning("%s", self._auth.warning)
            elif self.settings.address:
                log.info("Ray token authentication on (the token: %s)", self._auth.source)
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="videobot-ray-dispatch")
            self._watcher = asyncio.create_task(self._watch(), name="videobot-ray-watch")

    async def stop(self) -> None:
        """Drain: take no new jobs, let the running ones finish. Queued jobs stay queued in the
        store for the next start. The actors live on (detached), models loaded, for the next
        start to find."""
        self._stop_accepting()
        running = list(self._running.values())
        if running:
            await asyncio.gather(*(job.done.wait() for job in running))
        for task in (self._dispatcher, self._watcher, *self._tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for worker in self._workers:
            if worker.reviving is not None:
                worker.reviving.cancel()
        self._dispatcher = self._watcher = None

    async def shutdown_workers(self) -> None:
        """Kill this bot's actors (their models go with them): for tests, benchmarks and an
        owner retiring a cluster; a normal stop leaves them running."""
        for worker in self._workers:
            with contextlib.suppress(Exception):
                ray.kill(worker.handle, no_restart=True)
        self._workers = []

    # --- the JobExecutor interface -------------------------------------------------------------

    def submit(self, job: Job) -> int:
        if job.spec is None:
            raise TypeError("the Ray backend runs job specs only, not functions")
        self._check_room()
        job.control = JobControl(time_limit_s=job.time_limit_s)
        return self._enqueue(job)

    def cancel(self, job_id: int) -> bool:
        if self._cancel_queued(job_id):
            return True
        running = self._running.get(job_id)
        if running is None:
            return False
        running.control.cancel()
        worker = next((w for w in self._workers if w.running is running), None)
        if worker is not None:
            self._spawn(self._send_cancel(worker, job_id))
        return True

    def get(self, job_id: int) -> Job | None:
        if job_id in self._running:
            return self._running[job_id]
        return self._queued(job_id)

    def snapshot(self) -> list[Job]:
        running = sorted(self._running.values(), key=lambda job: job.started_at or 0.0)
        return running + self._queue.ordered()

    def estimated_wait_s(self, position: int | None = None) -> float:
        """Jobs ahead (and running) times the recent average duration, over the live workers."""
        alive = sum(1 for w in self._workers if w.alive)
        return self._wait_s(position, running=len(self._running), workers=alive)

    async def workers(self) -> list[WorkerState]:
        async def ask(worker: _Remote) -> WorkerState:
            if worker.alive:
                try:
                    worker.state = await asyncio.wait_for(
                        _result(worker.handle.state.remote()), CALL_TIMEOUT_S
                    )
                    return worker.state
                except (RayError, TimeoutError):
                    pass
            return replace(worker.state, status="down", job_id=None)

        return list(await asyncio.gather(*(ask(worker) for worker in self._workers)))

    async def load_model(self, key: str, worker: str | None = None) -> list[ModelReport]:
        return await self._on_workers("load", key, worker)

    async def unload_model(self, key: str, worker: str | None = None) -> list[ModelReport]:
        return await self._on_workers("unload", key, worker)

    async def wait_for_workers(self, count: int, timeout: float) -> None:
        """Until ``count`` workers are up (tests, the benchmark)."""
        deadline = time.monotonic() + timeout
        while sum(1 for w in self._workers if w.alive) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} Ray worker(s) did not start in {timeout:g} s")
            await asyncio.sleep(0.1)

    # --- the cluster ---------------------------------------------------------------------------

    def _connect(self) -> None:
        """Join (or, with no address, start) the cluster with the token authentication
        :meth:`start` chose (:mod:`bot.executors.ray_auth`: the host's token to join, a fresh one
        for the in-process cluster); a no-op when this process already has (a test session's
        cluster, a second bot in the same process)."""
        if ray.is_initialized():
            return
        settings = self.settings
        if self._auth is None:
            self._auth = ray_auth.check_bot_auth(settings)
        ray_auth.apply(self._auth)
        node: dict[str, Any] = {"_node_ip_address": settings.node_ip} if settings.node_ip else {}
        if settings.address:
            ray.init(address=settings.address, namespace=settings.namespace, **node)
            return
        units = settings.workers_per_host or None
        if settings.resource == "GPU":
            ray.init(namespace=settings.namespace, include_dashboard=False, num_gpus=units, **node)
        else:
            ray.init(
                namespace=settings.namespace,
                include_dashboard=False,
                resources={settings.resource: units or 1},
                **node,
            )

    def _wanted(self) -> int:
        if self.settings.workers:
            return self.settings.workers
        return int(ray.cluster_resources().get(self.settings.resource, 0))

    def _actor(self, name: str) -> Any:
        """The named, detached actor: the existing one (models loaded) if it lives."""
        resource = self.settings.resource
        options: dict[str, Any] = {
            "name": name,
            "namespace": self.settings.namespace,
            "lifetime": "detached",
            "get_if_exists": True,
            "max_restarts": -1,
            "max_task_retries": 0,  # a lost job is put back by the bot's own retry policy
            "max_concurrency": MAX_CONCURRENCY,
            "num_cpus": 0,
        }
        if resource == "GPU":
            options["num_gpus"] = 1
        else:
            options["resources"] = {resource: 1}
        return (
            ray.remote(RayWorker)
            .options(**options)
            .remote(name, self._options, self._retry, self.fingerprint)
        )

    async def _watch(self) -> None:
        """Reach the cluster, start the workers it has room for, and keep checking: a cluster
        that went away is tried again; a host that joined gets workers."""
        said_unreachable = False
        while True:
            try:
                await asyncio.to_thread(self._connect)
                wanted = await asyncio.to_thread(self._wanted)
            except Exception as exc:
                if not said_unreachable:
                    reason = str(exc)
                    if ray_auth.refused_for_token(exc):
                        reason = (
                            "it refused this host's Ray token; the token here must be the head's "
                            "(copy ~/.ray/auth_token from the head, or set RAY_AUTH_TOKEN)"
                        )
                    log.error(
                        "the Ray cluster (%s) does not answer: %s; %d queued job(s) stay queued, "
                        "trying again every %g s",
                        self.settings.address or "in-process",
                        reason,
                        len(self._queue),
                        RETRY_S,
                    )
                    said_unreachable = True
                await asyncio.sleep(RETRY_S)
                continue
            if said_unreachable:
                log.info("the Ray cluster answers again")
                said_unreachable = False
            if wanted == 0 and not self._workers:
                log.error(
                    "the Ray cluster has no %r resource, so no worker can start; jobs stay "
                    "queued until a host offers one (see `videobot worker`)",
                    self.settings.resource,
                )
            for index in range(len(self._workers), wanted):
                await self._add_worker(f"{ACTOR_PREFIX}{index}")
            self.connected.set()
            await asyncio.sleep(RETRY_S)

    async def _add_worker(self, name: str) -> None:
        handle = await asyncio.to_thread(self._actor, name)
        placeholder = WorkerState(name=name, node="?", device="?", status="down")
        worker = _Remote(name, handle, placeholder, alive=False)
        self._workers.append(worker)
        worker.reviving = asyncio.create_task(self._revive(worker, first=True))

    async def _revive(self, worker: _Remote, *, first: bool = False) -> None:
        """Wait until the actor answers (Ray restarts it after a crash; a new one is made when
        it is gone for good) and proves to be this bot's, then hand it jobs again."""
        while True:
            try:
                if await self._vetted(worker):
                    worker.state = await _result(worker.handle.state.remote())
                    break
            except ActorDiedError:
                # Gone for good (killed, its restarts used up): make it again under its name.
                with contextlib.suppress(Exception):
                    worker.handle = await asyncio.to_thread(self._actor, worker.name)
            except RayError as exc:  # restarting, or the cluster is away
                log.debug("worker %s does not answer yet: %s", worker.name, exc)
            await asyncio.sleep(0.5 if first else 1.0)
        worker.alive = True
        worker.reviving = None
        verb = "is up" if first else "is back"
        log.info(
            "Ray worker %s %s on %s (%s)", worker.name, verb, worker.state.node, worker.state.device
        )
        self._said_no_worker = False
        self._wakeup.set()

    async def _vetted(self, worker: _Remote) -> bool:
        """Whether the actor under the worker's name is this bot's: it answers this bot's
        :attr:`fingerprint`. If not (an older or differently configured bot made it, or it is not a
        videobot worker at all), it is killed and ours is made under the name; False until then.
        Raises what the call raises when the actor is down or restarting."""
        try:
            ask = worker.handle.fingerprint
        except AttributeError:  # no such method: another class (or a videobot before fingerprints)
            theirs = None
        else:
            try:
                theirs = await _result(ask.remote())
            except RayTaskError:  # it has the method, and it broke: not ours either
                theirs = None
        if theirs == self.fingerprint:
            return True
        log.warning(
            "the Ray actor named %s is %s; replacing it with this bot's worker",
            worker.name,
            "not a videobot worker"
            if not isinstance(theirs, str)
            else f"from another version or configuration of the bot (fingerprint {theirs}, "
            f"this bot's {self.fingerprint})",
        )
        worker.handle = await asyncio.to_thread(self._replace, worker.handle, worker.name)
        return False

    def _replace(self, handle: Any, name: str) -> Any:
        """Kill the actor and make this bot's under its name, once Ray has let the name go."""
        with contextlib.suppress(Exception):
            ray.kill(handle, no_restart=True)
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                named = ray.get_actor(name, namespace=self.settings.namespace)
            except ValueError:  # the name is free
                break
            if named._actor_id != handle._actor_id:  # someone made a new one meanwhile
                break
            time.sleep(0.1)
        return self._actor(name)

    # --- dispatch ------------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            idle = [w for w in self._workers if w.alive and w.running is None]
            if not idle or not len(self._queue):
                nobody = len(self._queue) and not any(w.alive for w in self._workers)
                if nobody and not self._said_no_worker and self.connected.is_set():
                    log.warning(
                        "no Ray worker is reachable: %d job(s) stay queued until one is back",
                        len(self._queue),
                    )
                    self._said_no_worker = True
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            job = self._queue.pop()
            assert job is not None
            worker = choose_worker(idle, job.model)
            worker.running = job
            self._running[job.id] = job
            self._renumber()
            self._spawn(self._run(worker, job))

    async def _run(self, worker: _Remote, job: Job) -> None:
        started = await self._start(job, worker.name)
        end: RunEnd | None = None
        lost: BaseException | None = None
        try:
            assert job.spec is not None
            spec = job.spec
            if job.control.cancelled:  # cancelled between the queue and the worker
                end = RunEnd(cancelled_result(), worker.state)
            else:
                # A source video can be tens of MB: copying it into the object store happens off
                # the event loop, which keeps serving every other member meanwhile.
                media = (
                    await asyncio.to_thread(ray.put, spec.media) if spec.media is not None else None
                )
                stream = worker.handle.run.options(num_returns="streaming").remote(
                    job.id, spec.without_media(), media
                )
                # The watchdog: a job still streaming past its limit (plus the grace the local
                # executor gives) hangs somewhere no step callback sees; the actor is restarted.
                limit = job.time_limit_s
                deadline = limit + WATCHDOG_GRACE_S if limit else None
                try:
                    async with asyncio.timeout(deadline):
                        async for ref in stream:
                            item = await ref
                            if isinstance(item, RunEnd):
                                end = item
                            else:
                                job.progress = item
                                job.touch()
                except TimeoutError:
                    assert limit is not None
                    log.error(
                        "job %s on %s ran %g s past its limit; restarting the worker",
                        job.id,
                        worker.name,
                        WATCHDOG_GRACE_S,
                    )
                    end = RunEnd(hung_result(limit), worker.state)
                    self._restart(worker)
        except RayTaskError as exc:  # the job's own code broke, not the worker
            log.error("job %s failed on %s: %s", job.id, worker.name, exc)
            end = RunEnd(failed_result(f"The job failed: {type(exc.cause).__name__}"), worker.state)
        except RayError as exc:
            lost = exc
        finally:
            self._running.pop(job.id, None)
            worker.running = None
        if end is None:
            self._lost(worker, job, lost)
        else:
            if end.result.metadata.get("gpu_fault") and worker.alive:
                log.error("job %s broke the GPU of %s; restarting the worker", job.id, worker.name)
                self._restart(worker)
            worker.state = end.state
            self._recent_durations.append(time.monotonic() - started)
            job.finish(end.result)
        self._renumber()
        self._wakeup.set()

    def _restart(self, worker: _Remote) -> None:
        """A worker whose GPU broke or that hangs: no job goes to it until a fresh actor under its
        name answers (a CUDA context is broken for good once a kernel faulted)."""
        worker.alive = False

        async def fresh() -> None:
            worker.handle = await asyncio.to_thread(self._replace, worker.handle, worker.name)
            await self._revive(worker)

        worker.reviving = asyncio.create_task(fresh())

    def _lost(self, worker: _Remote, job: Job, error: BaseException | None) -> None:
        """The actor died (or the cluster went away) mid-job: the job goes back to the front of
        the queue unless the retry policy says otherwise; the worker is revived."""
        worker.alive = False
        log.warning(
            "Ray worker %s was lost while running job %s (%s); restarting it",
            worker.name,
            job.id,
            type(error).__name__ if error is not None else "no result",
        )
        if worker.reviving is None:
            worker.reviving = asyncio.create_task(self._revive(worker))
        reason = self._retry.retry_after_worker_lost(job.attempts)
        if job.control.cancelled:
            job.finish(cancelled_result())
        elif reason is not None or not self._accepting:
            job.finish(failed_result(reason or "the bot stopped while its worker was lost"))
        else:
            job.lost_runs += 1
            job.state = JobStatus.QUEUED
            job.progress = None
            job.started_at = None
            self._queue.push_front(job)
            job.touch()

    async def _send_cancel(self, worker: _Remote, job_id: int) -> None:
        with contextlib.suppress(RayError):
            await _result(worker.handle.cancel.remote(job_id))

    async def _on_workers(self, action: str, key: str, name: str | None) -> list[ModelReport]:
        targets = self._workers
        if name is not None:
            targets = [w for w in self._workers if w.name == name]
            if not targets:
                known = ", ".join(w.name for w in self._workers) or "none is up"
                raise VideoBotError(f"there is no worker {name!r}; workers: {known}")

        async def one(worker: _Remote) -> ModelReport:
            if not worker.alive:
                return ModelReport(worker.name, key, ok=False, error="the worker is down")
            try:
                report: ModelReport = await _result(getattr(worker.handle, action).remote(key))
                worker.state = await _result(worker.handle.state.remote())
                return report
            except RayError as exc:
                return ModelReport(
                    worker.name, key, ok=False, error=f"the worker failed: {type(exc).__name__}"
                )

        return list(await asyncio.gather(*(one(worker) for worker in targets)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def choose_worker(idle: list[_Remote], model: str | None) -> _Remote:
    """An idle worker for a job: one that holds the job's model, else the one holding the fewest
    models (so models spread over the workers rather than piling up on one)."""
    holding = [w for w in idle if model is not None and model in w.state.loaded_keys]
    if holding:
        return holding[0]
    return min(idle, key=lambda w: len(w.state.loaded))


async def _result(ref: Any) -> Any:
    return await ref


__all__ = [
    "RayExecutor",
    "RayWorker",
    "RunEnd",
    "choose_worker",
    "code_version",
    "worker_fingerprint",
]
