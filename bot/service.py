"""The bot's service layer: what a request means once the cogs have parsed it.

The cogs stay thin: they parse options, call one method here and render what comes back. This
module applies the guild's rules (blocks, queue caps, cooldown), writes every job to the store before
queueing it and at every state change, hands GPU work to the executor, and encodes results off the
event loop and off the GPU thread (so the next job's denoising overlaps this job's encode).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core import media
from bot.core.engine import GenerationEngine
from bot.core.errors import MediaError, VideoBotError
from bot.core.images import ImageLimits, fit_image, load_image, save_image
from bot.core.models import REGISTRY, get_spec
from bot.core.params import GenerationParams, validate_edit
from bot.core.progress import JobControl
from bot.core.result import GenerationResult
from bot.jobs import Job, JobExecutor, JobKind, QueueFull, describe_wait
from bot.store import StoreError

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.store import JobRecord, Store

log = logging.getLogger(__name__)


class RequestRefused(VideoBotError):
    """A request the guild's rules refuse (blocked, too many queued jobs, cooldown, full queue)."""


@dataclass(frozen=True)
class Requester:
    """Who asked, and where the answer goes."""

    user_id: int
    user_name: str
    guild_id: int | None
    channel_id: int
    application_id: int | None = None
    interaction_token: str | None = None


@dataclass(frozen=True)
class SourceVideo:
    """A video to edit or upscale: a previous job's output or a member's upload, decoded."""

    result: GenerationResult
    job_id: int | None
    prompt: str
    model: str | None


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
        self, settings: Settings, store: Store, executor: JobExecutor, engine: GenerationEngine
    ) -> None:
        self.settings = settings
        self.store = store
        self.executor = executor
        self.engine = engine
        self._outcomes: dict[int, asyncio.Future[Finished]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._completions: dict[int, tuple[Job, asyncio.Task[None]]] = {}
        self._reserved: Counter[int] = Counter()
        self.presenting: set[asyncio.Task[Any]] = set()
        settings.storage.output_dir.mkdir(parents=True, exist_ok=True)

    # --- rules ---------------------------------------------------------------------------------

    async def check_allowed(self, who: Requester) -> None:
        """Blocks, cooldown and per-member queue cap, per guild; raises RequestRefused.

        On success a queue slot is reserved for the member until ``release`` (the caller queues
        the job in between): the count and the reservation happen with no ``await`` between them,
        so simultaneous requests cannot all see the same count and slip past the cap.
        """
        if who.guild_id is None:
            self._reserved[who.user_id] += 1
            return
        if await self.store.is_blocked(who.guild_id, who.user_id):
            raise RequestRefused("a moderator has blocked you from using the video bot here")
        guild = await self.store.get_guild_settings(who.guild_id)
        cooldown = (
            guild.cooldown_s if guild.cooldown_s is not None else self.settings.limits.cooldown_s
        )
        if cooldown:
            last = await self.store.last_job_time(who.user_id, who.guild_id)
            if last is not None:
                wait = cooldown - (time.time() - _as_timestamp(last))
                if wait > 0:
                    raise RequestRefused(f"slow down: you can start another job in {wait:.0f} s")
        cap = guild.max_queued_per_user or self.settings.limits.max_queued_per_user
        queued = sum(1 for job in self.executor.snapshot() if job.user_id == who.user_id)
        mine = queued + self._reserved[who.user_id]
        if mine >= cap:
            raise RequestRefused(
                f"you already have {mine} job(s) queued or running; the limit is {cap}. "
                "Wait for one to finish or cancel one."
            )
        self._reserved[who.user_id] += 1

    def release(self, who: Requester) -> None:
        self._reserved[who.user_id] -= 1
        if self._reserved[who.user_id] <= 0:
            del self._reserved[who.user_id]

    def check_words(self, params: GenerationParams) -> None:
        blocked = {w.lower() for w in self.settings.moderation.blocked_words}
        if not blocked:
            return
        for field_name, text in (
            ("prompt", params.prompt),
            ("negative_prompt", params.negative_prompt),
        ):
            for word in re.findall(r"\w+", text.lower()):
                if word in blocked:
                    raise RequestRefused(
                        f"{field_name}: the word '{word}' is not allowed on this server"
                    )

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
        self.check_words(params)
        await self.check_allowed(who)
        try:
            record = await self._record_request(
                who,
                JobKind.GENERATE,
                params.model_dump(mode="json"),
                params.prompt,
                model,
                parent_id,
            )
            engine = self.engine

            def work(control: JobControl) -> GenerationResult:
                return generate_with_oom_retry(engine, params, control)

            return await self._queue(record, who, JobKind.GENERATE, model, params.prompt, work)
        finally:
            self.release(who)

    async def submit_upscale(self, who: Requester, source: SourceVideo) -> Job:
        upscaler = get_spec(source.model).upscaler if source.model else None
        upscaler = upscaler or self._default_upscaler()
        self.check_enabled(upscaler)
        await self.check_allowed(who)
        try:
            record = await self._record_request(
                who, JobKind.UPSCALE, {"upscaler": upscaler}, source.prompt, upscaler, source.job_id
            )
            engine = self.engine

            def work(control: JobControl) -> GenerationResult:
                return engine.upscale(
                    source.result, upscaler=upscaler, prompt=source.prompt, control=control
                )

            return await self._queue(record, who, JobKind.UPSCALE, upscaler, source.prompt, work)
        finally:
            self.release(who)

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
        work: Any,
    ) -> Job:
        job = Job(
            id=record.id,
            kind=kind,
            user_id=who.user_id,
            user_name=who.user_name,
            guild_id=who.guild_id,
            channel_id=who.channel_id,
            model=model,
            prompt=prompt,
            work=work,
            on_start=self._on_start,
            time_limit_s=self.settings.limits.job_time_limit_s,
        )
        try:
            self.executor.submit(job)
        except QueueFull as exc:
            await self.store.mark_failed(record.id, str(exc))
            raise RequestRefused(str(exc)) from None
        future: asyncio.Future[Finished] = asyncio.get_running_loop().create_future()
        self._outcomes[job.id] = future
        task = asyncio.create_task(self._complete(job, future))
        self._completions[job.id] = (job, task)
        task.add_done_callback(lambda _: self._completions.pop(job.id, None))
        return job

    async def _on_start(self, job: Job) -> None:
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

    async def drain(self) -> None:
        """At shutdown, after the executor stopped: finish recording the jobs that ended (their
        encode and store update), and forget the queued ones (they stay queued in the store)."""
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
            reason = None
            if record.kind == JobKind.EDIT.value:
                reason = "the bot restarted during this edit; please run it again"
            elif record.status == "running" and record.attempts >= 2:
                reason = "the bot stopped twice while this job ran, so it was not tried again"
            if reason is not None:
                failed.append(await self.store.mark_failed(record.id, reason))
                continue
            if record.status == "running":
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
        engine = self.engine
        if record.kind == JobKind.GENERATE.value:
            params = GenerationParams(**record.params)

            def generate(control: JobControl) -> GenerationResult:
                return generate_with_oom_retry(engine, params, control)

            model = params.model or self.settings.models.default_model
            return await self._queue(record, who, JobKind.GENERATE, model, params.prompt, generate)
        if record.parent_id is None:
            raise VideoBotError("the video to upscale is gone")
        source = await self.source_from_job(record.parent_id)
        upscaler = str(record.params.get("upscaler") or record.model)

        def upscale(control: JobControl) -> GenerationResult:
            return engine.upscale(
                source.result, upscaler=upscaler, prompt=source.prompt, control=control
            )

        return await self._queue(record, who, JobKind.UPSCALE, upscaler, source.prompt, upscale)

    # --- edits (CPU, no GPU queue) -------------------------------------------------------------

    async def edit(
        self, who: Requester, source: SourceVideo, operation: str, arguments: dict[str, Any]
    ) -> Finished:
        """Edits are quick ffmpeg/frame work, so they skip the GPU queue but are recorded like
        any job (with the source as parent) so they can be edited again and listed in history."""
        request = validate_edit(operation, len(source.result.images), **arguments)
        if who.guild_id is not None and await self.store.is_blocked(who.guild_id, who.user_id):
            raise RequestRefused("a moderator has blocked you from using the video bot here")
        record = await self._record_request(
            who,
            JobKind.EDIT,
            {"operation": request.operation, **arguments},
            source.prompt,
            source.model,
            source.job_id,
        )
        await self.store.mark_running(record.id)
        try:
            result = await asyncio.to_thread(
                self.engine.edit_video, source.result, operation, **arguments
            )
        except Exception as exc:
            await self.store.mark_failed(record.id, str(exc))
            if isinstance(exc, VideoBotError):
                raise
            log.exception("edit %s failed", record.id)
            raise VideoBotError(f"the edit failed: {type(exc).__name__}") from exc
        return await self._record(record.id, JobKind.EDIT, result)

    # --- sources -------------------------------------------------------------------------------

    async def source_from_job(self, job_id: int) -> SourceVideo:
        record = await self.store.get_job(job_id)
        if record is None:
            raise RequestRefused(f"there is no job #{job_id}")
        return await self._source_from_record(record)

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
        return SourceVideo(result, record.id, record.prompt or "", record.model)

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
        return SourceVideo(result, None, "", None)

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

    async def upload_copy(self, finished: Finished, max_bytes: int) -> Path:
        """The finished mp4, or a smaller re-encode of it when it exceeds ``max_bytes``."""
        assert finished.path is not None
        if finished.path.stat().st_size <= max_bytes:
            return finished.path
        smaller = finished.path.with_suffix(".upload.mp4")
        result = finished.result
        await asyncio.to_thread(
            media.encode_within, result.images, smaller, result.frame_rate, max_bytes
        )
        return smaller

    def wait_text(self, job: Job) -> str:
        return describe_wait(self.executor.estimated_wait_s(job.position))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


MEMORY_SAVERS = {
    "cpu_offload": True,
    "vae_slicing": True,
    "vae_tiling": True,
    "forward_chunking": True,
}


def generate_with_oom_retry(
    engine: GenerationEngine, params: GenerationParams, control: JobControl
) -> GenerationResult:
    """Out of GPU memory: retry once with the memory savers on (the engine has already freed the
    cache), then put the owner's settings back. Runs on the GPU thread."""
    result = engine.generate_video(params, control)
    if not result.metadata.get("out_of_memory"):
        return result
    manager = engine.manager
    before = {name: getattr(manager.options, name) for name in MEMORY_SAVERS}
    if all(before.values()):
        return result  # the savers were already on: nothing left to try
    log.warning("job ran out of memory; retrying with the memory savers on")
    manager.configure(**MEMORY_SAVERS)
    try:
        retried = engine.generate_video(params, control)
    finally:
        manager.configure(**before)
    retried.metadata["retried_with_memory_savers"] = True
    return retried


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


def _failed(message: str) -> GenerationResult:
    return GenerationResult(
        images=[], metadata={}, generation_time=0.0, seed_used=0, params=None, error=message
    )


def _as_timestamp(value: Any) -> float:
    return value.timestamp() if hasattr(value, "timestamp") else float(value)
