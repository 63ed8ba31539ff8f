"""The bot's service layer: what a request means once the cogs have parsed it.

The cogs stay thin: they parse options, call one method here and render what comes back. This
module asks :mod:`bot.admission` whether a job may start, looks jobs up only through
:mod:`bot.visibility`, writes every job to the store before queueing it and at every state change,
hands GPU work to the executor and edits to a bounded CPU pool, and encodes results off the event
loop and off the GPU thread (so the next job's denoising overlaps this job's encode).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.admission import Admission, Requester, RequestRefused, Ticket
from bot.core import media
from bot.core.engine import GenerationEngine
from bot.core.errors import MediaError, VideoBotError
from bot.core.images import ImageLimits, fit_image, load_image, save_image
from bot.core.params import GenerationParams, validate_edit
from bot.core.registry import REGISTRY, get_spec
from bot.core.result import GenerationResult
from bot.jobs import Job, JobExecutor, QueueFull, describe_wait
from bot.jobspec import JobSpec, MediaBudget
from bot.lifecycle import DEFAULT_RETRY_POLICY, JobKind, JobStatus, RetryPolicy
from bot.store import StoreError
from bot.visibility import can_reach, may_cancel, not_found
from bot.worker import generate_with_oom_retry

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.store import JobRecord, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceVideo:
    """A video to edit or upscale: a previous job's output or a member's upload, decoded."""

    result: GenerationResult
    job_id: int | None
    prompt: str
    model: str | None
    data: bytes | None = field(default=None, repr=False)
    """The video as its mp4 bytes (the stored output or the upload): what an upscale job sends to
    its worker, wherever the worker runs."""


@dataclass
class Finished:
    """A job's end: the result and, when it succeeded, the mp4 on disk."""

    job_id: int
    kind: JobKind
    result: GenerationResult
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.path is not None

    @property
    def error(self) -> str | None:
        return self.result.error if self.path is None else None


class VideoService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        executor: JobExecutor,
        engine: GenerationEngine,
        *,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
    ) -> None:
        self.settings = settings
        self.store = store
        self.executor = executor
        self.engine = engine
        self._outcomes: dict[int, asyncio.Future[Finished]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._completions: dict[int, tuple[Job, asyncio.Task[None]]] = {}
        self._tickets: dict[int, Ticket] = {}
        self.admission = Admission(settings, store)
        self.retry = retry
        self._edit_pool = ThreadPoolExecutor(
            max_workers=settings.limits.edit_workers, thread_name_prefix="videobot-edit"
        )
        self.presenting: set[asyncio.Task[Any]] = set()
        settings.storage.output_dir.mkdir(parents=True, exist_ok=True)

    # --- models ---------------------------------------------------------------------------------

    async def default_model(self, guild_id: int | None) -> str:
        if guild_id is not None:
            guild = await self.store.get_guild_settings(guild_id)
            if guild.default_model and guild.default_model in self.settings.models.enabled:
                return guild.default_model
        return self.settings.models.default_model

    async def image_model(self, guild_id: int | None, requested: str | None) -> str:
        """The model that animates a member's picture: the one asked for if it can, else the
        server's default if it can, else the first enabled model that can."""
        enabled = [
            key
            for key in self.settings.models.enabled
            if REGISTRY[key].image_to_video and REGISTRY[key].role == "generator"
        ]
        if requested is not None:
            key = get_spec(requested).key
            if not REGISTRY[key].image_to_video:
                can = ", ".join(enabled) or "none is enabled on this bot"
                raise RequestRefused(f"{key} cannot animate a picture; models that can: {can}")
            return key
        default = await self.default_model(guild_id)
        if default in enabled:
            return default
        if enabled:
            return enabled[0]
        able = ", ".join(k for k, s in REGISTRY.items() if s.image_to_video and not s.tiny)
        raise RequestRefused(
            "no model on this bot can animate pictures; a moderator can enable one of: " + able
        )

    async def picture_from_upload(self, data: bytes, size: tuple[int, int]) -> Path:
        """A member's picture, checked before decoding, fitted to the job's ``size`` and kept as
        a clean PNG for the job (and for its reruns and a restart): a few hundred KB whatever was
        uploaded. The member's filename never reaches the disk."""
        limits = ImageLimits(max_bytes=self.picture_limit_bytes())

        def prepare() -> Path:
            picture = fit_image(load_image(data, limits), *size)
            path = self.settings.storage.output_dir / "inputs" / f"{uuid.uuid4().hex}.png"
            return save_image(picture, path)

        return await asyncio.to_thread(prepare)

    def picture_limit_bytes(self) -> int:
        """Pictures are held to the image limit (20 MB), or the upload limit where lower."""
        return min(ImageLimits().max_bytes, int(self.settings.limits.max_upload_mb * 2**20))

    def check_enabled(self, model: str) -> None:
        key = get_spec(model).key
        if key not in self.settings.models.enabled:
            raise RequestRefused(
                f"model {key} is not enabled on this bot; enabled: "
                + ", ".join(self.settings.models.enabled)
            )

    # --- generation and upscaling (GPU queue) --------------------------------------------------

    async def submit_generation(
        self, who: Requester, params: GenerationParams, *, parent_id: int | None = None
    ) -> Job:
        """Validate against the chosen model, record, queue. The returned job is watchable."""
        model = params.model or await self.default_model(who.guild_id)
        self.check_enabled(model)
        params = params.for_model(model) if params.model is None else params
        texts = [("prompt", params.prompt), ("negative_prompt", params.negative_prompt)]
        ticket = await self.admission.admit(who, JobKind.GENERATE, texts)
        try:
            record = await self._record_request(
                who,
                JobKind.GENERATE,
                params.model_dump(mode="json"),
                params.prompt,
                model,
                parent_id,
            )
            ticket.recorded = True
            spec = await self._generation_spec(params, model)
            return await self._queue(
                record, who, JobKind.GENERATE, model, params.prompt, spec, ticket
            )
        except BaseException:
            ticket.release()
            raise

    async def rerun(
        self,
        who: Requester,
        job_id: int,
        *,
        same_seed: bool,
        changes: dict[str, Any] | None = None,
    ) -> Job:
        """``/rerun`` (same seed), the Reroll button (a new seed) and Refine (same seed, with
        ``changes``: full quality) of a video job ``who`` may reach; the new job is ``who``'s, in
        ``who``'s server."""
        record = await self.reachable_job(who, job_id)
        if record.kind is not JobKind.GENERATE:
            raise RequestRefused(
                f"job #{job_id} is an {record.kind.value}, not a video: only videos can be made again"
            )
        seed = (
            (record.seed if record.seed is not None else record.params.get("seed"))
            if same_seed
            else None
        )
        params = GenerationParams(**{**record.params, "seed": seed, **(changes or {})})
        if params.image is not None and not Path(params.image).is_file():
            raise RequestRefused(
                f"the picture of job #{job_id} is gone, so it cannot be animated again"
            )
        return await self.submit_generation(who, params, parent_id=record.id)

    async def _generation_spec(self, params: GenerationParams, model: str) -> JobSpec:
        """The generation as data: its parameters as JSON and its picture as bytes, so any
        worker on any host can run it."""
        picture = (
            await asyncio.to_thread(Path(params.image).read_bytes)
            if params.image is not None
            else None
        )
        return JobSpec(
            kind=JobKind.GENERATE,
            model=model,
            params=params.model_dump(mode="json"),
            prompt=params.prompt,
            media=picture,
            previews=self.settings.discord.live_previews,
            previews_every_s=self.settings.limits.progress_interval_s,
            time_limit_s=self.settings.limits.job_time_limit_s,
        )

    async def submit_upscale(self, who: Requester, source: SourceVideo) -> Job:
        upscaler = get_spec(source.model).upscaler if source.model else None
        upscaler = upscaler or self._default_upscaler()
        self.check_enabled(upscaler)
        ticket = await self.admission.admit(who, JobKind.UPSCALE)
        try:
            record = await self._record_request(
                who, JobKind.UPSCALE, {"upscaler": upscaler}, source.prompt, upscaler, source.job_id
            )
            ticket.recorded = True
            spec = await self._upscale_spec(source, upscaler)
            return await self._queue(
                record, who, JobKind.UPSCALE, upscaler, source.prompt, spec, ticket
            )
        except BaseException:
            ticket.release()
            raise

    async def _upscale_spec(self, source: SourceVideo, upscaler: str) -> JobSpec:
        """The upscale as data: the source video travels as its mp4 bytes (encoded here when the
        source has none) and is decoded on the worker under the bot's upload limits."""
        data = source.data
        if data is None:
            data = await asyncio.to_thread(_encoded, source.result, self.settings.speed.encoder)
        limits = self.upload_limits()
        return JobSpec(
            kind=JobKind.UPSCALE,
            model=upscaler,
            params={"upscaler": upscaler},
            prompt=source.prompt,
            media=data,
            media_budget=MediaBudget(
                max_bytes=max(limits.max_bytes, len(data)),
                max_frames=limits.max_frames,
                max_duration_s=limits.max_duration_s,
            ),
            previews=self.settings.discord.live_previews,
            previews_every_s=self.settings.limits.progress_interval_s,
            time_limit_s=self.settings.limits.job_time_limit_s,
        )

    async def _record_request(
        self,
        who: Requester,
        kind: JobKind,
        params: dict[str, Any],
        prompt: str,
        model: str | None,
        parent_id: int | None,
    ) -> JobRecord:
        """The job's row, written before anything is queued or run."""
        return await self.store.create_job(
            user_id=who.user_id,
            user_name=who.user_name,
            guild_id=who.guild_id,
            channel_id=who.channel_id,
            kind=kind.value,
            params=params,
            prompt=prompt,
            model=model,
            parent_id=parent_id,
            application_id=who.application_id,
            interaction_token=who.interaction_token,
        )

    def _default_upscaler(self) -> str:
        for key in self.settings.models.enabled:
            if get_spec(key).role == "upscaler":
                return key
        return get_spec(self.settings.models.default_model).upscaler or "zeroscope_v2_xl"

    async def _queue(
        self,
        record: JobRecord,
        who: Requester,
        kind: JobKind,
        model: str,
        prompt: str,
        spec: JobSpec,
        ticket: Ticket,
    ) -> Job:
        """Hand a recorded job to the executor; ``ticket`` is released when the job ends."""
        job = Job(
            id=record.id,
            kind=kind,
            user_id=who.user_id,
            user_name=who.user_name,
            guild_id=who.guild_id,
            channel_id=who.channel_id,
            model=model,
            prompt=prompt,
            spec=spec,
            attempts=record.attempts,
            on_start=self._on_start,
            time_limit_s=self.settings.limits.job_time_limit_s,
        )
        try:
            self.executor.submit(job)
        except QueueFull as exc:
            await self.store.mark_failed(record.id, str(exc))
            raise RequestRefused(str(exc)) from None
        self._tickets[job.id] = ticket
        future: asyncio.Future[Finished] = asyncio.get_running_loop().create_future()
        self._outcomes[job.id] = future
        task = asyncio.create_task(self._complete(job, future))
        self._completions[job.id] = (job, task)
        task.add_done_callback(lambda _: self._completions.pop(job.id, None))
        return job

    async def _on_start(self, job: Job) -> None:
        if job.lost_runs:  # its worker died mid-job: the store saw it running, not queued
            await self.store.requeue(job.id)
        await self.store.mark_running(job.id)

    async def _complete(self, job: Job, future: asyncio.Future[Finished]) -> None:
        """Runs for every queued job, whoever watches it: encode, record, resolve."""
        result = await job.wait()
        try:
            finished = await self._record(job.id, job.kind, result)
        except Exception as exc:
            log.exception("finishing job %s failed", job.id)
            finished = Finished(job.id, job.kind, _failed(f"saving the video failed: {exc}"))
            with contextlib.suppress(StoreError):
                await self.store.mark_failed(job.id, finished.result.error or "failed")
        finally:
            ticket = self._tickets.pop(job.id, None)
            if ticket is not None:
                ticket.release()
        if not future.done():
            future.set_result(finished)
        self._outcomes.pop(job.id, None)

    async def outcome(self, job: Job) -> Finished:
        future = self._outcomes.get(job.id)
        if future is None:  # already completed and collected
            result = await job.wait()
            return Finished(
                job.id, job.kind, result, self.output_path(job.id) if result.ok else None
            )
        return await asyncio.shield(future)

    def cancel(self, job_id: int) -> bool:
        return self.executor.cancel(job_id)

    def cancel_for(self, who: Requester, job_id: int, *, moderator: bool) -> Job:
        """Cancel a queued or running job ``who`` may cancel: their own, or, for a moderator, one
        of their server's. Refuses with the same words whether the job is missing or not theirs."""
        job = self.executor.get(job_id)
        if job is None or not may_cancel(
            who.viewer, job.user_id, job.guild_id, moderator=moderator
        ):
            raise RequestRefused(
                f"job #{job_id} is not one of your queued or running jobs"
                + (" in this server" if moderator else "")
            )
        self.executor.cancel(job_id)
        return job

    def queue_for(self, who: Requester) -> list[Job]:
        """The jobs ``who`` may see in the queue, in the order they run: in a server, that
        server's; in direct messages, their own."""
        jobs = self.executor.snapshot()
        if who.guild_id is None:
            return [job for job in jobs if job.user_id == who.user_id]
        return [job for job in jobs if job.guild_id == who.guild_id]

    async def drain(self) -> None:
        """At shutdown, after the executor stopped: finish recording the jobs that ended (their
        encode and store update), and forget the queued ones (they stay queued in the store)."""
        self._edit_pool.shutdown(wait=False, cancel_futures=True)
        for job, task in list(self._completions.values()):
            if job.done.is_set():
                with contextlib.suppress(Exception):
                    await task
            else:
                task.cancel()
                future = self._outcomes.pop(job.id, None)
                if future is not None and not future.done():
                    future.cancel()  # its watcher stops; the next start resumes the job
        for task in list(self._tasks):
            task.cancel()

    # --- restart recovery ----------------------------------------------------------------------

    async def recover(self) -> tuple[list[Job], list[JobRecord]]:
        """Requeue what a previous run left unfinished, in the order it was queued.

        A job that was running when the process died is retried once; if it was already retried
        it is failed instead, so a job that crashes the bot cannot do so forever. Edits are quick
        CPU work and are simply failed with a message to run them again. Returns the resumed jobs
        and the failed records, so the client can tell the members in their channels.
        """
        resumed: list[Job] = []
        failed: list[JobRecord] = []
        for record in await self.store.unfinished_jobs():
            reason = self.retry.resume_after_restart(record.kind, record.status, record.attempts)
            if reason is not None:
                failed.append(await self.store.mark_failed(record.id, reason))
                continue
            if record.status is JobStatus.RUNNING:
                record = await self.store.requeue(record.id)
            try:
                resumed.append(await self._resubmit(record))
            except VideoBotError as exc:
                with contextlib.suppress(StoreError):
                    failed.append(await self.store.mark_failed(record.id, str(exc)))
        return resumed, failed

    async def _resubmit(self, record: JobRecord) -> Job:
        who = Requester(
            user_id=record.user_id,
            user_name=record.user_name,
            guild_id=record.guild_id,
            channel_id=record.channel_id or 0,
        )
        ticket = self.admission.track(who, record.kind)
        try:
            if record.kind is JobKind.GENERATE:
                params = GenerationParams(**record.params)
                model = params.model or self.settings.models.default_model
                spec = await self._generation_spec(params, model)
                return await self._queue(
                    record, who, JobKind.GENERATE, model, params.prompt, spec, ticket
                )
            parent = await self.store.get_job(record.parent_id) if record.parent_id else None
            if parent is None:
                raise VideoBotError("the video to upscale is gone")
            source = await self._source_from_record(parent)
            upscaler = str(record.params.get("upscaler") or record.model)
            spec = await self._upscale_spec(source, upscaler)
            return await self._queue(
                record, who, JobKind.UPSCALE, upscaler, source.prompt, spec, ticket
            )
        except BaseException:
            ticket.release()
            raise

    # --- edits (CPU, no GPU queue) -------------------------------------------------------------

    async def edit(
        self, who: Requester, source: SourceVideo, operation: str, arguments: dict[str, Any]
    ) -> Finished:
        """Edits are quick ffmpeg/frame work, so they skip the GPU queue but are recorded like
        any job (with the source as parent) so they can be edited again and listed in history."""
        request = validate_edit(operation, len(source.result.images), **arguments)
        ticket = await self.admission.admit(who, JobKind.EDIT)
        try:
            record = await self._record_request(
                who,
                JobKind.EDIT,
                {"operation": request.operation, **arguments},
                source.prompt,
                source.model,
                source.job_id,
            )
            ticket.recorded = True
            await self.store.mark_running(record.id)
            try:
                result = await asyncio.get_running_loop().run_in_executor(
                    self._edit_pool,
                    partial(self.engine.edit_video, source.result, operation, **arguments),
                )
            except Exception as exc:
                await self.store.mark_failed(record.id, str(exc))
                if isinstance(exc, VideoBotError):
                    raise
                log.exception("edit %s failed", record.id)
                raise VideoBotError(f"the edit failed: {type(exc).__name__}") from exc
            return await self._record(record.id, JobKind.EDIT, result)
        finally:
            ticket.release()

    # --- sources -------------------------------------------------------------------------------

    async def reachable_job(self, who: Requester, job_id: int) -> JobRecord:
        """The job, if ``who`` may reach it (:func:`bot.visibility.can_reach`); otherwise the same
        refusal as for a job that does not exist."""
        record = await self.store.get_job(job_id)
        if record is None or not can_reach(who.viewer, record):
            raise RequestRefused(not_found(job_id))
        return record

    async def source_from_job(self, who: Requester, job_id: int) -> SourceVideo:
        return await self._source_from_record(await self.reachable_job(who, job_id))

    async def latest_source(self, who: Requester) -> SourceVideo:
        record = await self.store.latest_done(who.user_id, who.guild_id)
        if record is None:
            raise RequestRefused("you have no finished video yet: make one with /video")
        return await self._source_from_record(record)

    async def _source_from_record(self, record: JobRecord) -> SourceVideo:
        if record.status != "done" or not record.output_path:
            raise RequestRefused(f"job #{record.id} has no video ({record.status})")
        if record.output_pruned or not Path(record.output_path).is_file():
            raise RequestRefused(
                f"the video of job #{record.id} was deleted to free disk space; "
                f"use /rerun {record.id} to make it again"
            )
        result = await asyncio.to_thread(
            GenerationResult.from_video_file, record.output_path, self.upload_limits()
        )
        data = await asyncio.to_thread(Path(record.output_path).read_bytes)
        return SourceVideo(result, record.id, record.prompt or "", record.model, data)

    async def source_from_upload(self, filename: str, data: bytes) -> SourceVideo:
        """A member's upload: size checked before writing, limits checked before decoding."""
        limits = self.upload_limits()
        if len(data) > limits.max_bytes:
            raise MediaError(
                f"the file is {len(data) / 2**20:.1f} MiB; the limit is "
                f"{limits.max_bytes / 2**20:.0f} MiB"
            )
        with tempfile.TemporaryDirectory(prefix="videobot-upload-") as folder:
            path = Path(folder) / "upload"  # the member's filename never reaches the disk
            path.write_bytes(data)
            result = await asyncio.to_thread(GenerationResult.from_video_file, path, limits)
        result.metadata["source"] = filename[:100]
        return SourceVideo(result, None, "", None, data)

    def upload_limits(self) -> media.MediaLimits:
        limits = self.settings.limits
        return media.MediaLimits(
            max_bytes=int(limits.max_upload_mb * 2**20),
            max_frames=limits.max_upload_frames,
            max_duration_s=limits.max_upload_seconds,
        )

    # --- output --------------------------------------------------------------------------------

    def output_path(self, job_id: int) -> Path:
        return self.settings.storage.output_dir / f"{job_id}.mp4"

    async def _record(self, job_id: int, kind: JobKind, result: GenerationResult) -> Finished:
        if result.cancelled:
            await self.store.mark_cancelled(job_id)
            return Finished(job_id, kind, result)
        if not result.ok:
            await self.store.mark_failed(job_id, result.error or "no frames")
            return Finished(job_id, kind, result)
        path = self.output_path(job_id)
        await asyncio.to_thread(
            partial(result.save_as_video, path, encoder=self.settings.speed.encoder)
        )
        await self.store.mark_done(
            job_id,
            output_path=str(path),
            seed=result.seed_used,
            timings={**result.timings, "total": result.generation_time},
        )
        await self.enforce_disk_budget(keep=path)
        return Finished(job_id, kind, result, path)

    async def enforce_disk_budget(self, keep: Path | None = None) -> list[int]:
        """Delete the oldest videos while the output folder is over its budget. Their history rows
        stay, marked as pruned, so /history still lists them and /edit says what happened."""
        budget = int(self.settings.storage.max_output_mb * 2**20)
        victims = await asyncio.to_thread(
            _oldest_over_budget, self.settings.storage.output_dir, budget, keep
        )
        pruned = []
        for path in victims:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(path.unlink)
            if path.stem.isdigit():
                with contextlib.suppress(StoreError):
                    await self.store.mark_pruned(int(path.stem))
                    pruned.append(int(path.stem))
        if pruned:
            log.info("disk budget: deleted the videos of jobs %s", pruned)
        return pruned

    def wait_text(self, job: Job) -> str:
        return describe_wait(self.executor.estimated_wait_s(job.position))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _oldest_over_budget(folder: Path, budget: int, keep: Path | None) -> list[Path]:
    files = sorted(
        (p for p in folder.glob("*.mp4") if p.is_file()), key=lambda p: p.stat().st_mtime
    )
    total = sum(p.stat().st_size for p in files)
    victims = []
    for path in files:
        if total <= budget:
            break
        if keep is not None and path == keep:
            continue
        victims.append(path)
        total -= path.stat().st_size
    return victims


def _encoded(result: GenerationResult, encoder: str) -> bytes:
    """A decoded source as mp4 bytes, for a worker that only takes data."""
    with tempfile.TemporaryDirectory(prefix="videobot-source-") as folder:
        path = Path(folder) / "source.mp4"
        result.save_as_video(path, encoder=encoder)
        return path.read_bytes()


def _failed(message: str) -> GenerationResult:
    return GenerationResult(
        images=[], metadata={}, generation_time=0.0, seed_used=0, params=None, error=message
    )


__all__ = [
    "Finished",
    "RequestRefused",
    "Requester",
    "SourceVideo",
    "VideoService",
    "generate_with_oom_retry",
]
