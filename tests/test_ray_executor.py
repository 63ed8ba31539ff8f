"""The Ray backend on a real local cluster (two nodes on this machine, one CPU worker each, the
tiny models): jobs spread over both in fair order, model-aware routing, cancel and progress across
processes, a worker killed mid-job, detached workers outliving the bot's executor; and the default
backend never importing Ray."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import ExecutorSettings
from bot.core.manager import ManagerOptions
from bot.core.params import GenerationParams
from bot.core.result import GenerationResult
from bot.jobs import Job
from bot.jobspec import JobSpec
from bot.lifecycle import JobKind

pytest_plugins = ("ray_fixtures",)
# One Ray cluster per session: on two test workers, every Ray test runs on the same one.
pytestmark = pytest.mark.xdist_group("ray")

ROOT = Path(__file__).resolve().parents[1]


def spec_job(
    job_id: int,
    user_id: int,
    *,
    model: str = "tiny_t2v",
    steps: int = 10,
    starts: list[int] | None = None,
) -> Job:
    params = GenerationParams(
        prompt=f"job {job_id}",
        model=model,
        width=64,
        height=64,
        num_frames=8,
        num_inference_steps=steps,
        seed=job_id,
    )

    async def on_start(job: Job) -> None:
        if starts is not None:
            starts.append(job.id)

    return Job(
        id=job_id,
        kind=JobKind.GENERATE,
        user_id=user_id,
        user_name=f"u{user_id}",
        guild_id=1,
        channel_id=1,
        model=model,
        prompt=params.prompt,
        spec=JobSpec(JobKind.GENERATE, model, params.model_dump(mode="json"), params.prompt),
        on_start=on_start,
    )


def new_executor(ray_settings: dict[str, Any]) -> Any:
    from bot.executors.ray import RayExecutor

    return RayExecutor(ExecutorSettings(**ray_settings), ManagerOptions(), max_queue=20)


@pytest.fixture
async def executor(ray_settings: dict[str, Any]) -> AsyncIterator[Any]:
    executor = new_executor(ray_settings)
    await executor.start()
    await executor.wait_for_workers(2, timeout=300)
    yield executor
    await executor.stop()


async def until(check: Any, timeout: float = 120.0, what: str = "a condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_jobs_spread_over_both_nodes_in_fair_order(executor: Any) -> None:
    starts: list[int] = []
    jobs = [
        spec_job(1, 10, starts=starts),
        spec_job(2, 10, starts=starts),
        spec_job(3, 10, starts=starts),
        spec_job(4, 20, starts=starts),
    ]
    positions = [executor.submit(job) for job in jobs]
    assert positions == [1, 2, 3, 2]  # member 20's one job goes ahead of member 10's second
    results: list[GenerationResult] = [await asyncio.wait_for(j.wait(), 300) for j in jobs]
    assert all(result.ok for result in results), [r.error for r in results]
    assert starts == [1, 4, 2, 3]  # the fair order holds across the workers
    used = {result.metadata["worker"] for result in results}
    assert used == {"videobot-worker-0", "videobot-worker-1"}
    assert all(job.progress is not None and job.progress.total == 10 for job in jobs)
    states = await executor.workers()
    assert len({state.node for state in states}) == 2  # one worker on each node ("host")
    # The queue's estimate counts the workers: two jobs ahead on two workers wait one job's time.
    executor._recent_durations.clear()
    executor._recent_durations.append(10.0)
    assert executor.estimated_wait_s(position=3) == pytest.approx(10.0)


async def test_jobs_go_to_the_worker_holding_their_model_and_workers_outlive_the_bot(
    executor: Any, ray_settings: dict[str, Any]
) -> None:
    for key in ("tiny_t2v", "tiny_animatediff"):
        assert all(report.ok for report in await executor.unload_model(key))
    [t2v] = await executor.load_model("tiny_t2v", "videobot-worker-0")
    [motion] = await executor.load_model("tiny_animatediff", "videobot-worker-1")
    assert t2v.ok and t2v.changed and motion.ok and motion.worker == "videobot-worker-1"
    states = {state.name: state for state in await executor.workers()}
    assert states["videobot-worker-0"].loaded_keys & {"tiny_t2v", "tiny_animatediff"} == {
        "tiny_t2v"
    }
    assert "tiny_animatediff" in states["videobot-worker-1"].loaded_keys

    # Both idle, the first job (animatediff) would go to worker-0 by order alone.
    first = spec_job(21, 1, model="tiny_animatediff")
    second = spec_job(22, 2)
    executor.submit(first)
    executor.submit(second)
    assert (await asyncio.wait_for(first.wait(), 300)).metadata["worker"] == "videobot-worker-1"
    assert (await asyncio.wait_for(second.wait(), 300)).metadata["worker"] == "videobot-worker-0"

    # A restarted bot finds the same (detached) workers, models still loaded.
    await executor.stop()
    again = new_executor(ray_settings)
    await again.start()
    try:
        await again.wait_for_workers(2, timeout=60)
        states = {state.name: state for state in await again.workers()}
        assert "tiny_animatediff" in states["videobot-worker-1"].loaded_keys
        with pytest.raises(Exception, match="no worker 'nope'"):
            await again.load_model("tiny_t2v", "nope")
    finally:
        await again.stop()


async def test_cancel_reaches_the_running_remote_job(executor: Any) -> None:
    job = spec_job(31, 1, steps=50)
    executor.submit(job)
    await until(lambda: job.progress is not None and job.progress.step >= 2, what="progress")
    assert executor.cancel(31)
    result = await asyncio.wait_for(job.wait(), 120)
    assert result.cancelled and result.images == []
    assert job.progress is not None and job.progress.step < 50
    after = spec_job(32, 1)
    executor.submit(after)
    assert (await asyncio.wait_for(after.wait(), 300)).ok


async def test_a_worker_killed_mid_job_its_job_completes_once_on_the_other(
    executor: Any, ray_settings: dict[str, Any]
) -> None:
    import ray

    starts: list[int] = []
    finishes: list[GenerationResult] = []
    job = spec_job(41, 1, steps=50, starts=starts)
    finish = job.finish

    def counted(result: GenerationResult) -> None:
        finishes.append(result)
        finish(result)

    job.finish = counted  # type: ignore[method-assign]
    executor.submit(job)
    await until(lambda: job.progress is not None, what="the job to start")
    killed = job.worker
    assert killed is not None
    ray.kill(ray.get_actor(killed, namespace=ray_settings["namespace"]))

    result = await asyncio.wait_for(job.wait(), 300)
    assert result.ok and result.metadata["worker"] != killed
    assert len(finishes) == 1 and starts == [41, 41]  # put back once, finished once
    assert job.attempts == 2 and job.lost_runs == 1

    async def back() -> bool:
        states = {state.name: state for state in await executor.workers()}
        return states[killed].status != "down"

    await until(back, timeout=300, what=f"{killed} to come back")
    again = spec_job(42, 1)
    executor.submit(again)
    assert (await asyncio.wait_for(again.wait(), 300)).ok


def test_the_default_backend_never_imports_ray(tmp_path: Path) -> None:
    script = """
import asyncio, sys
from bot.client import VideoBot  # noqa: F401  (the bot as `videobot run` imports it)
from bot.config import Settings
from bot.core.engine import GenerationEngine
from bot.core.manager import ModelManager, ManagerOptions
from bot.core.params import GenerationParams
from bot.executors import make_executor
from bot.jobs import Job
from bot.jobspec import JobSpec
from bot.lifecycle import JobKind

async def main():
    settings = Settings(models={"enabled": ["tiny_t2v"], "default": "tiny_t2v"})
    executor = make_executor(settings, GenerationEngine(ModelManager(ManagerOptions())))
    await executor.start()
    params = GenerationParams(prompt="a", model="tiny_t2v", width=64, height=64,
                              num_frames=8, num_inference_steps=10, seed=1)
    spec = JobSpec(JobKind.GENERATE, "tiny_t2v", params.model_dump(mode="json"), "a")
    job = Job(id=1, kind=JobKind.GENERATE, user_id=1, user_name="a", guild_id=None,
              channel_id=1, model="tiny_t2v", prompt="a", spec=spec)
    executor.submit(job)
    result = await job.wait()
    await executor.stop()
    print("ok" if result.ok else result.error, type(executor).__name__)
    print("ray imported" if any(m == "ray" or m.startswith("ray.") for m in sys.modules)
          else "no ray")

asyncio.run(main())
"""
    environment = {k: v for k, v in os.environ.items() if k != "VIDEOBOT_CONFIG"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,  # no config.toml there: the defaults, backend "local"
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ok", "GpuExecutor", "no", "ray"]


async def test_with_no_worker_in_reach_jobs_stay_queued_and_the_log_says_why(
    ray_settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    from bot.executors.ray import RayExecutor

    # A resource no host of the cluster offers: no worker can start (as when the GPU hosts left).
    settings = ExecutorSettings(**{**ray_settings, "resource": "videobot_absent", "workers": 0})
    executor = RayExecutor(settings, ManagerOptions())
    await executor.start()
    try:
        job = spec_job(51, 1)
        assert executor.submit(job) == 1
        await asyncio.wait_for(executor.connected.wait(), 60)
        await asyncio.sleep(0.5)
        assert job.state.value == "queued" and job.position == 1 and not job.done.is_set()
        assert executor.snapshot() == [job]
        assert any(
            "no 'videobot_absent' resource" in r.getMessage()
            and "jobs stay queued" in r.getMessage()
            for r in caplog.records
        )
        assert await executor.workers() == []
    finally:
        executor.cancel(51)
        await executor.stop()


async def test_a_squatter_or_a_reconfigured_bots_worker_is_replaced_never_used(
    ray_settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The actor under a worker's name is used only if it answers this bot's fingerprint (code
    version and model options): someone else's actor there, or the worker of a bot with other
    options, is killed and replaced."""
    import logging

    import ray
    from ray.exceptions import RayActorError
    from ray_fixtures import SPARE

    from bot.executors.ray import ACTOR_PREFIX, RayExecutor

    namespace, name = "videobot-fingerprint", f"{ACTOR_PREFIX}0"

    class Squatter:
        def state(self) -> str:
            return "not a worker"

    squatter = (
        ray.remote(Squatter)
        .options(name=name, namespace=namespace, lifetime="detached", num_cpus=0)
        .remote()
    )
    assert ray.get(squatter.state.remote(), timeout=60) == "not a worker"
    section = ExecutorSettings(
        **{**ray_settings, "resource": SPARE, "workers": 1, "namespace": namespace}
    )
    first = RayExecutor(section, ManagerOptions())
    second = RayExecutor(section, ManagerOptions(vram_gb=3.0))  # the owner changed [models]
    assert first.fingerprint != second.fingerprint
    try:
        with caplog.at_level(logging.WARNING, logger="bot.executors.ray"):
            await first.start()
            await first.wait_for_workers(1, timeout=300)
            await first.stop()
            replaced = ray.get_actor(name, namespace=namespace)
            assert replaced._actor_id != squatter._actor_id
            with pytest.raises(RayActorError):  # the squatter is gone
                ray.get(squatter.state.remote(), timeout=60)
            assert "not a videobot worker" in caplog.text

            await second.start()
            await second.wait_for_workers(1, timeout=300)
            now = ray.get_actor(name, namespace=namespace)
            assert now._actor_id != replaced._actor_id
            assert ray.get(now.fingerprint.remote(), timeout=60) == second.fingerprint
            with pytest.raises(RayActorError):  # the old worker, old options and all, is gone
                ray.get(replaced.state.remote(), timeout=60)
            assert "from another version or configuration" in caplog.text
            assert (await second.workers())[0].status == "idle"
    finally:
        await first.stop()
        await second.stop()
        await second.shutdown_workers()
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(name, namespace=namespace))


# --- the watchdog on Ray: a hung or GPU-broken actor is restarted (no cluster needed) ------------


class _Stream:
    """A stand-in for an actor's ``run`` stream: ``items`` then, with ``hang``, nothing forever."""

    def __init__(self, items: list[Any], hang: bool) -> None:
        self.items, self.hang = items, hang

    def options(self, **_: Any) -> _Stream:
        return self

    def remote(self, *_: Any) -> AsyncIterator[Any]:
        async def stream() -> AsyncIterator[Any]:
            for item in self.items:
                future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                future.set_result(item)
                yield future
            if self.hang:
                await asyncio.sleep(3600)

        return stream()


async def _run_on_fake_actor(
    monkeypatch: pytest.MonkeyPatch, items: list[Any], *, hang: bool
) -> tuple[Job, list[str]]:
    from bot.executors import ray as ray_backend
    from bot.jobspec import WorkerState

    monkeypatch.setattr(ray_backend, "WATCHDOG_GRACE_S", 0.2)
    executor = ray_backend.RayExecutor(
        ExecutorSettings(backend="ray", allow_unauthenticated=True), ManagerOptions()
    )
    restarted: list[str] = []
    monkeypatch.setattr(executor, "_restart", lambda worker: restarted.append(worker.name))
    state = WorkerState("videobot-worker-0", "node", "cpu")
    handle = type("Handle", (), {"run": _Stream(items, hang)})()
    worker = ray_backend._Remote("videobot-worker-0", handle, state)
    job = spec_job(1, 1)
    job.time_limit_s = 0.1
    await asyncio.wait_for(executor._run(worker, job), timeout=30)
    return job, restarted


async def test_a_job_hanging_on_a_ray_actor_past_its_limit_is_failed_and_the_actor_restarted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job, restarted = await _run_on_fake_actor(monkeypatch, [], hang=True)
    result = await job.wait()
    assert not result.ok and "time limit of 0.1 s" in (result.error or "")
    assert restarted == ["videobot-worker-0"]


async def test_a_gpu_fault_on_a_ray_actor_restarts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.executors.ray import RunEnd
    from bot.jobspec import WorkerState
    from bot.worker import failed_result

    broken = failed_result("CUDA error: an illegal memory access was encountered")
    broken.metadata["gpu_fault"] = True
    end = RunEnd(broken, WorkerState("videobot-worker-0", "node", "cuda"))
    job, restarted = await _run_on_fake_actor(monkeypatch, [end], hang=False)
    assert (await job.wait()).error == broken.error
    assert restarted == ["videobot-worker-0"]
