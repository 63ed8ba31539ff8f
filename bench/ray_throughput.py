"""The Ray backend on tiny models: throughput with 1 and 2 workers (their ratio), and what
dispatching a job through Ray costs against the local executor (ms per job).

Not a test: timings depend on the machine. A local Ray cluster is started in this process with
one custom resource unit per worker (``--workers``), so it runs on a CPU-only machine; the workers
are the real :class:`~bot.executors.ray.RayWorker` actors running the same
:class:`~bot.worker.Worker` as the local executor. Throughput: ``--jobs`` jobs from four members,
queued at once, timed to the last result, in interleaved rounds. Overhead: single jobs one after
another, alternating local and Ray, each job's wall time minus the engine's own time for it (the
same worker code runs the same job on both, so what remains is the queue, the dispatch, the
object store and the progress stream).

Usage: python bench/ray_throughput.py [--jobs N] [--runs N] [--steps N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time

os.environ.setdefault("VIDEOBOT_MODEL_CACHE", os.path.join(tempfile.gettempdir(), "vb-bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import ray
import torch

from bot.config import ExecutorSettings
from bot.core.engine import GenerationEngine
from bot.core.manager import ManagerOptions, ModelManager
from bot.core.params import GenerationParams
from bot.executors.ray import RayExecutor
from bot.jobs import GpuExecutor, Job, JobExecutor
from bot.jobspec import JobSpec
from bot.lifecycle import JobKind
from bot.logs import quiet_libraries

RESOURCE = "videobot_bench_worker"
NAMESPACE = "videobot-bench"
MODEL = "tiny_t2v"


def make_job(job_id: int, user_id: int, steps: int) -> Job:
    params = GenerationParams(
        prompt=f"bench {job_id}",
        model=MODEL,
        width=64,
        height=64,
        num_frames=8,
        num_inference_steps=steps,
        seed=job_id,
    )
    spec = JobSpec(JobKind.GENERATE, MODEL, params.model_dump(mode="json"), params.prompt)
    return Job(
        id=job_id,
        kind=JobKind.GENERATE,
        user_id=user_id,
        user_name=f"member{user_id}",
        guild_id=1,
        channel_id=1,
        model=MODEL,
        prompt=params.prompt,
        spec=spec,
    )


async def throughput(executor: JobExecutor, jobs: int, first_id: int, steps: int) -> float:
    """Jobs per minute for ``jobs`` queued at once by four members."""
    batch = [make_job(first_id + i, i % 4, steps) for i in range(jobs)]
    started = time.perf_counter()
    for job in batch:
        executor.submit(job)
    results = [await job.wait() for job in batch]
    elapsed = time.perf_counter() - started
    failed = [r.error for r in results if not r.ok]
    if failed:
        raise SystemExit(f"a bench job failed: {failed[0]}")
    return jobs / elapsed * 60


async def one_job_ms(executor: JobExecutor, job_id: int, steps: int) -> tuple[float, float]:
    """One job alone: its wall time from submit to result, and that minus the engine's own time
    for it (``generation_time``, measured on the worker): what getting it there and back costs."""
    job = make_job(job_id, 1, steps)
    started = time.perf_counter()
    executor.submit(job)
    result = await job.wait()
    wall = (time.perf_counter() - started) * 1000
    if not result.ok:
        raise SystemExit(f"a bench job failed: {result.error}")
    return wall, wall - result.generation_time * 1000


def ray_executor(workers: int) -> RayExecutor:
    settings = ExecutorSettings(
        backend="ray", resource=RESOURCE, namespace=NAMESPACE, workers=workers
    )
    return RayExecutor(settings, ManagerOptions(), max_queue=1000)


async def main(jobs: int, runs: int, steps: int, rounds: int) -> None:
    quiet_libraries()
    # Ray gives an actor with no CPUs reserved one torch thread (OMP_NUM_THREADS=1); the local
    # executor gets the same, so both sides run the same kernels the same way.
    torch.set_num_threads(1)
    started = time.perf_counter()
    ray.init(
        num_cpus=os.cpu_count() or 2,
        resources={RESOURCE: 2},
        namespace=NAMESPACE,
        include_dashboard=False,
        log_to_driver=False,
    )
    print(f"local Ray cluster up in {time.perf_counter() - started:.1f} s")
    local = GpuExecutor(engine=GenerationEngine(ModelManager(ManagerOptions())))
    await local.start()
    await local.load_model(MODEL)
    # The two Ray executors share worker-0; they are used one at a time.
    executors: dict[str, JobExecutor] = {"local executor": local}
    for workers in (1, 2):
        executor = ray_executor(workers)
        await executor.start()
        started = time.perf_counter()
        await executor.wait_for_workers(workers, timeout=600)
        await executor.load_model(MODEL)
        print(f"{workers} worker(s) up, {MODEL} loaded, in {time.perf_counter() - started:.1f} s")
        executors[f"ray, {workers} worker(s)"] = executor
    rates: dict[str, list[float]] = {name: [] for name in executors}
    timings: dict[str, list[tuple[float, float]]] = {"local executor": [], "ray, 1 worker(s)": []}
    job_id = 100_000
    try:
        for executor in executors.values():  # warm-up: every worker has run a job
            await throughput(executor, 2, job_id, steps)
            job_id += 1000
        for _ in range(rounds):  # interleaved, so the machine's drift touches all alike
            for name, executor in executors.items():
                rates[name].append(await throughput(executor, jobs, job_id, steps))
                job_id += 1000
        for _ in range(runs):
            for name in timings:
                timings[name].append(await one_job_ms(executors[name], job_id, steps))
                job_id += 1
    finally:
        for executor in executors.values():
            await executor.stop()
        for index in range(2):
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(f"videobot-worker-{index}", namespace=NAMESPACE))
        ray.shutdown()

    print(
        f"\nthroughput, {jobs} jobs of {MODEL} 64x64, 8 frames, {steps} steps, 4 members, "
        f"median of {rounds} rounds:"
    )
    print("| executor | jobs/min |\n|---|---|")
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, rate in medians.items():
        print(f"| {name} | {rate:.1f} |")
    ratio = medians["ray, 2 worker(s)"] / medians["ray, 1 worker(s)"]
    print(f"2 workers / 1 worker: {ratio:.2f}x")
    print(f"\none job at a time, median of {runs}:")
    print("| executor | wall | wall minus the engine's time |\n|---|---|---|")
    for name, values in timings.items():
        wall = statistics.median(v[0] for v in values)
        around = statistics.median(v[1] for v in values)
        print(f"| {name} | {wall:.0f} ms | {around:.1f} ms |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.jobs, arguments.runs, arguments.steps, arguments.rounds))
