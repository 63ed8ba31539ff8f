"""The one worker: what runs a :class:`~bot.jobspec.JobSpec` on a GPU, in the bot's own process
(the local executor's thread) or in a Ray actor on any host of a cluster.

A :class:`Worker` owns an engine and its model manager, so models loaded for one job stay loaded
for the next. Jobs, loads and unloads take turns on its GPU (``gpu_lock``): a model is never loaded
beside a running job that might need the memory. Every exception a job raises becomes a failed
result here, so no executor's thread or actor dies of one job's bug.
"""

from __future__ import annotations

import logging
import socket
import tempfile
from pathlib import Path
from threading import Lock

from bot.core import media
from bot.core.engine import CANCELLED_MESSAGE, GenerationEngine
from bot.core.errors import GenerationCancelled, VideoBotError
from bot.core.params import GenerationParams
from bot.core.progress import JobControl
from bot.core.result import GenerationResult
from bot.jobspec import JobSpec, LoadedModelState, ModelReport, WorkerState
from bot.lifecycle import DEFAULT_RETRY_POLICY, MEMORY_SAVERS, JobKind, RetryPolicy

log = logging.getLogger(__name__)


class Worker:
    """One GPU's worth of work: the engine, its loaded models and the job specs it runs."""

    def __init__(
        self,
        name: str,
        engine: GenerationEngine,
        *,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        node: str | None = None,
    ) -> None:
        self.name = name
        self.engine = engine
        self.retry = retry
        self.node = node or socket.gethostname()
        self.gpu_lock = Lock()

    # --- jobs ----------------------------------------------------------------------------------

    def run(self, spec: JobSpec, control: JobControl) -> GenerationResult:
        """Run one job to its end: a result, a cancelled result or a failed one, never a raise."""
        with self.gpu_lock:
            control.restart_clock()  # the time limit counts from the start, not from the queue
            try:
                result = self._run(spec, control)
            except GenerationCancelled:
                result = cancelled_result()
            except Exception as exc:  # one job's bug must not kill the worker
                log.exception("a %s job on %s failed", spec.kind.value, self.name)
                result = failed_result(f"The job failed: {type(exc).__name__}: {exc}")
        result = mark_gpu_fault(result)
        result.metadata["worker"] = self.name
        return result

    def probe(self) -> None:
        """Raise if this worker's GPU cannot run a kernel any more (see :func:`probe_gpu`)."""
        probe_gpu()

    def _run(self, spec: JobSpec, control: JobControl) -> GenerationResult:
        with tempfile.TemporaryDirectory(prefix="videobot-job-") as folder:
            if spec.kind is JobKind.GENERATE:
                params = GenerationParams(**spec.params)
                if spec.media is not None:  # the member's picture, sent as bytes
                    picture = Path(folder) / "picture.png"
                    picture.write_bytes(spec.media)
                    params = params.model_copy(update={"image": str(picture)})
                if spec.end_media is not None:  # the last frame's picture, sent as bytes too
                    end_picture = Path(folder) / "end_picture.png"
                    end_picture.write_bytes(spec.end_media)
                    params = params.model_copy(update={"end_image": str(end_picture)})
                return generate_with_oom_retry(self.engine, params, control, self.retry)
            if spec.kind is JobKind.UPSCALE:
                source = source_video(spec, Path(folder))
                upscaler = str(spec.params.get("upscaler") or spec.model)
                # ``model``: for ``ltx2``, the LTX-2 model that made the video (its VAE runs it).
                return self.engine.upscale(
                    source, upscaler=upscaler, model=spec.model, prompt=spec.prompt, control=control
                )
            if spec.kind is JobKind.RESTYLE:
                return self.engine.restyle(
                    source_video(spec, Path(folder)),
                    prompt=spec.prompt,
                    model=spec.model,
                    strength=float(spec.params["strength"]),
                    seed=spec.params.get("seed"),
                    control=control,
                )
            if spec.kind is JobKind.EXTEND:
                budget = spec.media_budget
                return self.engine.extend(
                    source_video(spec, Path(folder)),
                    prompt=spec.prompt,
                    model=spec.model,
                    new_frames=spec.params.get("new_frames"),
                    seed=spec.params.get("seed"),
                    # the result's length and memory, checked again against what was decoded
                    limits=(
                        media.MediaLimits(
                            max_duration_s=budget.max_duration_s,
                            max_decoded_bytes=budget.max_decoded_bytes,
                        )
                        if budget is not None
                        else None
                    ),
                    control=control,
                )
        raise VideoBotError(f"a {spec.kind.value} job does not run on a GPU worker")

    # --- models --------------------------------------------------------------------------------

    def load(self, key: str) -> ModelReport:
        """Load ``key`` (after the running job) and compile it where that applies."""
        with self.gpu_lock:
            manager = self.engine.manager
            try:
                already = manager.is_loaded(key)
                loaded = manager.load_model(key)
                warmed = self.engine.warm_up(key)
            except Exception as exc:
                return ModelReport(self.name, key, ok=False, error=_one_line(exc))
            return ModelReport(
                self.name,
                key,
                ok=True,
                changed=not already,
                load_time_s=loaded.load_time_s,
                device=loaded.device,
                dtype=loaded.dtype,
                warmed=len(warmed),
            )

    def unload(self, key: str) -> ModelReport:
        """Free ``key``'s memory (after the running job)."""
        with self.gpu_lock:
            try:
                was_loaded = self.engine.manager.unload_model(key)
            except Exception as exc:
                return ModelReport(self.name, key, ok=False, error=_one_line(exc))
            return ModelReport(self.name, key, ok=True, changed=was_loaded)

    def state(self, status: str = "idle", job_id: int | None = None) -> WorkerState:
        """What this worker holds; safe while a job runs (the manager has its own lock)."""
        loaded = tuple(
            LoadedModelState(row.key, row.memory_mb)
            for row in self.engine.manager.list_models()
            if row.loaded
        )
        return WorkerState(
            name=self.name,
            node=self.node,
            device=self.device(),
            loaded=loaded,
            status=status,
            job_id=job_id,
        )

    def device(self) -> str:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name()
        return "cpu"


def source_video(spec: JobSpec, folder: Path) -> GenerationResult:
    """The video an upscale or a restyle works on: the spec's mp4 bytes written into ``folder``
    and decoded under the spec's media budget, its sound copied into memory (the folder goes
    before the result is encoded)."""
    if spec.media is None:
        raise VideoBotError(f"the video to {spec.kind.value} did not arrive")
    source_path = folder / "source.mp4"
    source_path.write_bytes(spec.media)
    budget = spec.media_budget
    limits = (
        media.MediaLimits(
            max_bytes=budget.max_bytes,
            max_frames=budget.max_frames,
            max_duration_s=budget.max_duration_s,
            max_decoded_bytes=budget.max_decoded_bytes,
        )
        if budget is not None
        else None
    )
    source = GenerationResult.from_video_file(source_path, limits)
    if source.sound is not None:
        source.sound = source.sound.detached()
    return source


def generate_with_oom_retry(
    engine: GenerationEngine,
    params: GenerationParams,
    control: JobControl,
    policy: RetryPolicy = DEFAULT_RETRY_POLICY,
) -> GenerationResult:
    """Out of GPU memory: retry once on a smaller plan. A model placed by a memory plan
    (``bot.core.plans``) is loaded again with the next plan that needs less GPU memory, and keeps
    it for later jobs; any other model is retried with the memory savers on for this job only
    (the engine has already freed the cache; the manager's options never change). Runs on the GPU
    thread."""
    result = engine.generate_video(params, control)
    if not result.metadata.get("out_of_memory") or not policy.retry_out_of_memory:
        return result
    model = params.model or result.metadata.get("model")
    if not model:
        return result
    loaded = engine.manager.get_loaded(str(model))
    before = loaded.plan.chosen.key if loaded and loaded.plan and loaded.plan.chosen else None
    lower = engine.manager.step_down(str(model)) if before else None
    if lower is not None:
        log.warning(
            "%s ran out of memory on plan %s; stepping down to plan %s", model, before, lower
        )
        retried = engine.generate_video(params, control)
        retried.metadata["stepped_down_to_plan"] = lower
        return retried
    with engine.manager.memory_savers_for(str(model), MEMORY_SAVERS) as switched:
        if not switched:
            return result  # not loaded, or the savers were already on: nothing left to try
        log.warning("job ran out of memory; retrying with the memory savers on")
        retried = engine.generate_video(params, control)
    retried.metadata["retried_with_memory_savers"] = True
    return retried


GPU_FAULT_MARKERS = (
    "cuda error",
    "device-side assert",
    "illegal memory access",
    "illegal instruction",
    "unspecified launch failure",
    "cublas_status_execution_failed",
    "cudnn_status_execution_failed",
    "cudaerrorlaunchfailure",
    "nccl error",
)
"""Words of the errors after which a CUDA context is broken for good ("sticky" errors): every
later kernel in the process fails the same way, so the job's worker must be restarted."""


def is_gpu_fault(text: str | None) -> bool:
    """Whether an error message is a GPU fault rather than one job's problem. Out of memory is
    not one (the engine frees the cache and the next job runs), even when CUDA words it as an
    error."""
    if not text:
        return False
    lowered = text.lower()
    return "out of memory" not in lowered and any(m in lowered for m in GPU_FAULT_MARKERS)


def mark_gpu_fault(result: GenerationResult) -> GenerationResult:
    """A failed result whose error is a GPU fault gets ``metadata["gpu_fault"]`` (the error, for
    the log) and an error its member can act on; executors restart their worker on it."""
    if result.ok or result.cancelled or "gpu_fault" in result.metadata:
        return result
    if not is_gpu_fault(result.error):
        return result
    detail = str(result.error).strip().splitlines()[0]
    result.metadata["gpu_fault"] = detail
    result.error = (
        "The GPU failed during this job (a CUDA error, not a problem with your request); the bot "
        "is restarting its GPU worker: try again in a minute."
    )
    return result


def probe_gpu() -> None:
    """A tiny kernel and a synchronize on the current CUDA device: raises when the context is
    broken. Without CUDA there is nothing to probe."""
    import torch

    if not torch.cuda.is_available():
        return
    value = torch.ones(1, device="cuda") + 1
    torch.cuda.synchronize()
    if float(value.item()) != 2.0:
        raise RuntimeError("CUDA error: the GPU returned a wrong result")


def cancelled_result() -> GenerationResult:
    return GenerationResult(
        images=[],
        metadata={},
        generation_time=0.0,
        seed_used=0,
        params=None,
        error=CANCELLED_MESSAGE,
        cancelled=True,
    )


def failed_result(message: str) -> GenerationResult:
    return GenerationResult(
        images=[], metadata={}, generation_time=0.0, seed_used=0, params=None, error=message
    )


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, VideoBotError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


__all__ = [
    "GPU_FAULT_MARKERS",
    "Worker",
    "cancelled_result",
    "failed_result",
    "generate_with_oom_retry",
    "is_gpu_fault",
    "mark_gpu_fault",
    "probe_gpu",
    "source_video",
]
