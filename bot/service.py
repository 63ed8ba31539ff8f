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
import sqlite3
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import retention
from bot.admission import Admission, Requester, RequestRefused, Ticket
from bot.budget import DecodeBudget, EditQueue
from bot.core import edits, enhance, media
from bot.core import extend as extending
from bot.core import restyle as restyling
from bot.core.engine import GenerationEngine
from bot.core.enhance.names import (
    DIFFUSION_UPSCALER,
    LEARNED_UPSCALER,
    LTX2_SCALE,
    LTX2_UPSCALER,
    check_ltx2_upscale,
    is_ltx2_upscaler,
    learned_key,
    learned_scale,
    ltx2_upscale_spec,
)
from bot.core.errors import InvalidParameterError, MediaError, VideoBotError
from bot.core.images import ImageLimits, fit_image, load_end_image, load_image, save_image
from bot.core.params import GenerationParams
from bot.core.registry import REGISTRY, ModelSpec, get_spec, restyle_models
from bot.core.result import GenerationResult
from bot.core.rules import MAX_EDIT_FRAMES
from bot.jobs import Job, JobExecutor, QueueFull, describe_wait
from bot.jobspec import JobSpec, MediaBudget
from bot.lifecycle import (
    DEFAULT_RETRY_POLICY,
    INTERACTION_TOKEN_LIFETIME,
    JobKind,
    JobStatus,
    RetryPolicy,
)
from bot.store import StoreError
from bot.visibility import can_reach, may_cancel, not_found
from bot.worker import generate_with_oom_retry

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.store import JobRecord, Store

log = logging.getLogger(__name__)

STATUS_EVERY_S = 300.0
"""How often the console gets a status line while the bot is busy (queue, running, jobs done)."""


@dataclass(frozen=True)
class UploadedVideo:
    """A member's attachment, not fetched yet: ``size`` is what Discord says it is, checked
    before the download; ``read`` fetches it, and is called only once the request was admitted
    and, for an edit, has its turn."""

    filename: str
    size: int
    read: Callable[[], Awaitable[bytes]] = field(repr=False, compare=False)


@dataclass(frozen=True)
class StoredVideo:
    """One of the bot's results: job ``job_id``, or the member's latest finished video (None)."""

    job_id: int | None = None


VideoRef = UploadedVideo | StoredVideo
"""Where the video of an edit or upscale is, as the cogs found it: nothing is read yet."""


@dataclass(frozen=True)
class SourceVideo:
    """A video to edit or upscale, probed but not decoded: a previous job's stored output, or a
    member's upload written to a private temporary folder for the length of the request."""

    path: Path
    info: media.VideoInfo
    job_id: int | None
    prompt: str
    model: str | None
    limits: media.MediaLimits
    """What it is opened under: the upload limits (for the bot's own results, any file size)."""
    name: str = ""
    """What the result's metadata names as its source: the upload's file name, or the mp4's."""
    data: bytes | None = field(default=None, repr=False)
    """The upload's bytes, when it is one: what an upscale job sends to its worker."""


@dataclass(frozen=True)
class _SourceJob:
    """What a job made from a source video runs, as its checks decided: the model, the prompt
    and the parameters it is recorded, queued and sent with."""

    model: str
    prompt: str
    params: dict[str, Any]
    frame_limit: int | None = None
    """The model's own cap on the source's frames (a diffusion upscaler's), tighter than the
    upload limits; None: the upload limits' (or ``MAX_EDIT_FRAMES``)."""


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
        self.decode_budget = DecodeBudget(settings.limits.decode_memory_bytes)
        """The one memory budget for decoded video of the whole process (``decode_memory_mb``)."""
        self.edit_queue = EditQueue(settings.limits.edit_workers, settings.limits.max_waiting_edits)
        self.presenting: set[asyncio.Task[Any]] = set()
        self.ended: Counter[str] = Counter()
        """Jobs ended since the bot started, by outcome (done, failed, cancelled): the status
        line's count."""
        settings.storage.output_dir.mkdir(parents=True, exist_ok=True)

    # --- models ---------------------------------------------------------------------------------

    async def default_model(self, guild_id: int | None) -> str:
        if guild_id is not None:
            guild = await self.store.get_guild_settings(guild_id)
            if guild.default_model and guild.default_model in self.settings.models.enabled:
                return guild.default_model
        return self.settings.models.default_model

    async def image_model(
        self, guild_id: int | None, requested: str | None, *, last_frame: bool = False
    ) -> str:
        """The model that animates a member's picture (with ``last_frame``: from a first to a
        last picture): the one asked for if it can, else the server's default if it can, else
        the first enabled model that can. Without a last frame, a model that needs one is
        never picked for the member."""

        def able(spec: ModelSpec) -> bool:
            if spec.role != "generator" or not spec.image_to_video:
                return False
            return spec.first_last_frame if last_frame else not spec.first_last_only

        enabled = [key for key in self.settings.models.enabled if able(REGISTRY[key])]
        what = "pin a first and a last frame" if last_frame else "animate a picture"
        if requested is not None:
            key = get_spec(requested).key
            if not REGISTRY[key].image_to_video or (
                last_frame and not REGISTRY[key].first_last_frame
            ):
                can = ", ".join(enabled) or "none is enabled on this bot"
                raise RequestRefused(f"{key} cannot {what}; models that can: {can}")
            return key
        default = await self.default_model(guild_id)
        if default in enabled:
            return default
        if enabled:
            return enabled[0]
        others = ", ".join(k for k, s in REGISTRY.items() if able(s) and not s.tiny)
        raise RequestRefused(
            f"no model on this bot can {what}; a moderator can enable one of: {others}"
        )

    async def picture_from_upload(
        self, data: bytes, size: tuple[int, int], *, which: str = "image"
    ) -> Path:
        """A member's picture, checked before decoding, fitted to the job's ``size`` and kept as
        a clean PNG for the job (and for its reruns and a restart): a few hundred KB whatever was
        uploaded. The member's filename never reaches the disk. ``which``: ``end_image`` for a
        last frame's picture, which its refusals then name."""
        path, _ = await self.fitted_picture(data, lambda width, height: size, which=which)
        return path

    async def fitted_picture(
        self,
        data: bytes,
        size_for: Callable[[int, int], tuple[int, int]],
        *,
        which: str = "image",
    ) -> tuple[Path, tuple[int, int]]:
        """As :meth:`picture_from_upload`, the size chosen from the upright picture's own width
        and height (``size_for``): a job whose shape follows its picture's. Returns the size."""
        limits = ImageLimits(max_bytes=self.picture_limit_bytes())
        load = load_end_image if which == "end_image" else load_image

        def prepare() -> tuple[Path, tuple[int, int]]:
            picture = load(data, limits)
            size = size_for(*picture.size)
            path = self.settings.storage.output_dir / "inputs" / f"{uuid.uuid4().hex}.png"
            return save_image(fit_image(picture, *size), path), size

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
        record: JobRecord | None = None
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
        except BaseException as exc:
            ticket.release()
            if record is not None and isinstance(exc, Exception):
                await self._unqueued(record.id, exc)
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
        ``who``'s server.

        A member's picture stays where it was shared: the new job carries the picture of the job
        it reruns, so rerunning someone's public image job (which makes a job of one's own) and
        then rerunning that from another server or a DM would carry the picture out. The job that
        first held the picture decides: its owner may animate it anywhere, anyone else only in its
        server. Where that job is gone (deleted with old history), nobody but the owner of
        ``job_id`` can be told apart, and only in its server."""
        record = await self.reachable_job(who, job_id)
        if record.kind is not JobKind.GENERATE:
            raise RequestRefused(
                f"job #{job_id} is an {record.kind.value}, not a video: only videos can be made again"
            )
        if record.params.get("image") is not None:
            origin = await self._picture_origin(record)
            owner, home = (origin.user_id, origin.guild_id) if origin else (None, record.guild_id)
            if owner != who.user_id and (home is None or home != who.guild_id):
                raise RequestRefused(
                    f"job #{job_id} animates a picture another member shared in another server; "
                    "it can only be made again in that server"
                )
        seed = (
            (record.seed if record.seed is not None else record.params.get("seed"))
            if same_seed
            else None
        )
        params = GenerationParams(**{**record.params, "seed": seed, **(changes or {})})
        if not _pictures_present(params):
            raise RequestRefused(
                f"the picture of job #{job_id} is gone, so it cannot be animated again"
            )
        return await self.submit_generation(who, params, parent_id=record.id)

    async def _picture_origin(self, record: JobRecord) -> JobRecord | None:
        """The job that first held ``record``'s picture: up its reruns while the parent is a video
        job with the same picture (a rerun copies it; only an upload makes a new one). None when
        the chain is broken (a parent deleted), so the origin cannot be known."""
        picture = record.params.get("image")
        seen = {record.id}
        while record.parent_id is not None:
            if record.parent_id in seen:
                return None
            parent = await self.store.get_job(record.parent_id)
            if parent is None:
                return None
            if parent.kind is not JobKind.GENERATE or parent.params.get("image") != picture:
                break
            seen.add(parent.id)
            record = parent
        return record

    async def _generation_spec(self, params: GenerationParams, model: str) -> JobSpec:
        """The generation as data: its parameters as JSON and its picture as bytes, so any
        worker on any host can run it."""
        picture = (
            await asyncio.to_thread(Path(params.image).read_bytes)
            if params.image is not None
            else None
        )
        end_picture = (
            await asyncio.to_thread(Path(params.end_image).read_bytes)
            if params.end_image is not None
            else None
        )
        return JobSpec(
            kind=JobKind.GENERATE,
            model=model,
            params=params.model_dump(mode="json"),
            prompt=params.prompt,
            media=picture,
            end_media=end_picture,
            previews=self.settings.discord.live_previews,
            previews_every_s=self.settings.limits.progress_interval_s,
            time_limit_s=self.settings.limits.job_time_limit_s,
        )

    async def submit_upscale(
        self,
        who: Requester,
        where: VideoRef,
        *,
        upscaler: str | None = None,
        scale: int | None = None,
    ) -> Job:
        """Admission first, then the video (an upload is fetched only now), then its probe against
        the upscaler's frame limit, its size rules and the memory budget (the worker holds every
        frame), all refused with the numbers before anything is recorded or queued.

        ``upscaler``: ``realesrgan`` (any size, ``scale`` 2 or 4), ``zeroscope_xl`` (the source
        model's diffusion upscaler, at its own size), ``ltx2`` (LTX-2's x2 latent upsampler, for
        LTX-2 results) or a diffusion upscaler's key; None: the configured default
        (:meth:`_choose_upscaler`)."""

        def plan(source: SourceVideo) -> _SourceJob:
            key = self._choose_upscaler(source.model, upscaler, scale)
            self._check_upscale_source(source.info, key, source.model)
            return self._upscale_job(source, key)

        return await self._submit_on_source(who, where, JobKind.UPSCALE, (), plan)

    def _choose_upscaler(self, model: str | None, requested: str | None, scale: int | None) -> str:
        """The job's upscaler: Real-ESRGAN as ``realesrgan_x2``/``realesrgan_x4``, or an enabled
        diffusion upscaler's registry key. Unnamed, ``[models] upscaler``; unset, Real-ESRGAN,
        which takes any model's video at any size (a diffusion upscaler is asked for by name)."""
        name = requested or self.settings.models.upscaler or LEARNED_UPSCALER
        learned = learned_scale(name)
        if learned is not None:
            chosen = learned if scale is None else scale
            if isinstance(chosen, bool) or chosen not in enhance.UPSCALE_FACTORS:
                raise InvalidParameterError("scale", f"must be 2 or 4 (got {chosen!r})")
            return learned_key(chosen)
        if is_ltx2_upscaler(name):
            if scale is not None and scale != LTX2_SCALE:
                raise InvalidParameterError(
                    "scale", f"LTX-2's latent upsampler upscales 2x only (got {scale!r})"
                )
            # The LTX-2 model that made the video runs it: it must be enabled here.
            self.check_enabled(ltx2_upscale_spec(model).key)
            return LTX2_UPSCALER
        if name.strip().lower() == DIFFUSION_UPSCALER:
            key = (get_spec(model).upscaler if model else None) or self._default_upscaler()
        else:
            key = get_spec(name).key
            if get_spec(key).role != "upscaler":
                raise InvalidParameterError(
                    "upscaler", f"{key} is not an upscaler; pick one of: realesrgan, zeroscope_xl"
                )
        if scale is not None:
            raise InvalidParameterError(
                "scale",
                f"only Real-ESRGAN takes a scale; {key} upscales to its own size "
                f"({get_spec(key).native_width}x{get_spec(key).native_height})",
            )
        self.check_enabled(key)
        return key

    def _check_upscale_source(
        self, info: media.VideoInfo, upscaler: str, model: str | None = None
    ) -> None:
        scale = learned_scale(upscaler)
        if scale is not None:
            self._check_learned_upscale(info, scale)
            return
        if is_ltx2_upscaler(upscaler):
            self._check_ltx2_upscale(info, model)
            return
        spec = get_spec(upscaler)
        if info.frame_count > spec.max_frames:
            raise MediaError(
                f"the video has {info.frame_count} frames; {spec.key} upscales at most "
                f"{spec.max_frames}: trim it first"
            )
        self._check_held("upscaling this video", info, info.decoded_bytes)

    def _check_held(
        self, doing: str, info: media.VideoInfo, held: int, advice: str = "trim it first"
    ) -> None:
        """Refuse, with the numbers, a job on ``info`` whose worker would hold ``held`` bytes of
        decoded video at once: more than the whole process-wide memory budget."""
        if not self.decode_budget.fits(held):
            raise media.memory_refusal(
                doing, info, info.frame_count, held, self.decode_budget.total, advice=advice
            )

    def _check_learned_upscale(self, info: media.VideoInfo, scale: int) -> None:
        """Real-ESRGAN takes any size up to a 4K result; the worker holds the source frames
        and the upscaled ones, ``scale``² times larger, at once."""
        enhance.check_upscale(info.width, info.height, scale)
        held = info.decoded_bytes * (1 + scale * scale)
        advice = "trim it first" + (", or use 2x" if scale > 2 else "")
        self._check_held(f"upscaling this video {scale}x", info, held, advice)

    def _check_ltx2_upscale(self, info: media.VideoInfo, model: str | None) -> None:
        """LTX-2's size and frame rules (sides in 32s, 8k+1 frames, the result within the
        model's sizes); the worker holds the source frames and the upscaled ones, 4 times
        larger, at once."""
        check_ltx2_upscale(ltx2_upscale_spec(model), info.width, info.height, info.frame_count)
        held = info.decoded_bytes * (1 + LTX2_SCALE * LTX2_SCALE)
        self._check_held("upscaling this video with ltx2", info, held)

    @staticmethod
    def _upscale_job(source: SourceVideo, upscaler: str) -> _SourceJob:
        """The upscale of ``source``: under the source's prompt, and a diffusion upscaler's own
        frame limit (which a file lying about its length cannot get past); Real-ESRGAN has none.
        LTX-2's latent upsampler runs on the LTX-2 model that made the video: that is the job's
        model (loaded as for a generation), under its frame limit."""
        if is_ltx2_upscaler(upscaler):
            spec = ltx2_upscale_spec(source.model)
            return _SourceJob(
                model=spec.key,
                prompt=source.prompt,
                params={"upscaler": LTX2_UPSCALER},
                frame_limit=spec.max_frames,
            )
        learned = learned_scale(upscaler) is not None
        return _SourceJob(
            model=upscaler,
            prompt=source.prompt,
            params={"upscaler": upscaler},
            frame_limit=None if learned else get_spec(upscaler).max_frames,
        )

    async def _submit_on_source(
        self,
        who: Requester,
        where: VideoRef,
        kind: JobKind,
        texts: Iterable[tuple[str, str]],
        plan: Callable[[SourceVideo], _SourceJob],
    ) -> Job:
        """The one path of every GPU job made from a video (upscale, restyle, extend): admission
        (``texts`` checked for blocked words), then the video (an upload is fetched only now),
        then ``plan`` checks it against its probe and says what runs: every refusal before
        anything is recorded or queued. A job recorded but never queued is failed in the store,
        and the ticket is released unless the job was queued (its end releases it then)."""
        ticket = await self.admission.admit(who, kind, texts)
        record: JobRecord | None = None
        try:
            async with self._open_source(who, where) as source:
                job = plan(source)
                record = await self._record_request(
                    who, kind, job.params, job.prompt, job.model, source.job_id
                )
                ticket.recorded = True
                spec = await self._source_spec(source, kind, job)
            return await self._queue(record, who, kind, job.model, job.prompt, spec, ticket)
        except BaseException as exc:
            ticket.release()
            if record is not None and isinstance(exc, Exception):
                await self._unqueued(record.id, exc)
            raise

    async def _source_spec(self, source: SourceVideo, kind: JobKind, job: _SourceJob) -> JobSpec:
        """A job on a source video as data: the video travels as its mp4 bytes and is decoded on
        the worker under the bot's upload limits, its memory budget and ``job.frame_limit``."""
        data = source.data
        if data is None:
            data = await asyncio.to_thread(source.path.read_bytes)
        limits = self.upload_limits()
        own_frames = (
            job.frame_limit
            if job.frame_limit is not None
            else (limits.max_frames or MAX_EDIT_FRAMES)
        )
        return JobSpec(
            kind=kind,
            model=job.model,
            params=job.params,
            prompt=job.prompt,
            media=data,
            media_budget=MediaBudget(
                max_bytes=max(limits.max_bytes, len(data)),
                max_frames=min(own_frames, limits.max_frames or own_frames),
                max_duration_s=limits.max_duration_s,
                max_decoded_bytes=limits.max_decoded_bytes,
            ),
            previews=self.settings.discord.live_previews,
            previews_every_s=self.settings.limits.progress_interval_s,
            time_limit_s=self.settings.limits.job_time_limit_s,
        )

    async def submit_restyle(
        self,
        who: Requester,
        where: VideoRef,
        *,
        prompt: str,
        strength: float | None = None,
        model: str | None = None,
        seed: int | None = None,
    ) -> Job:
        """Redraw a video after ``prompt`` (video-to-video, ``bot.core.restyle``). The prompt and
        strength first, then admission (the prompt's words too), then the video (an upload is
        fetched only now), fitted to the restyler's rules from its probe and held to the memory
        budget: every refusal, with the numbers, before anything is recorded or queued."""
        strength = restyling.check_strength(
            restyling.DEFAULT_STRENGTH if strength is None else strength
        )
        prompt = prompt.strip()
        if not prompt:
            raise InvalidParameterError(
                "prompt", "say what the video should look like, e.g. `an oil painting`"
            )
        key = self._choose_restyler(model)

        def plan(source: SourceVideo) -> _SourceJob:
            self._check_restyle_source(source.info, key)
            return _SourceJob(key, prompt, {"strength": strength, "seed": seed})

        return await self._submit_on_source(who, where, JobKind.RESTYLE, [("prompt", prompt)], plan)

    def _choose_restyler(self, requested: str | None) -> str:
        """The model asked for if it restyles and is enabled, else the first enabled restyler."""
        if requested is not None:
            key = restyling.restyler_spec(requested).key
            self.check_enabled(key)
            return key
        for key in self.settings.models.enabled:
            if get_spec(key).restyles:
                return key
        raise RequestRefused(
            "no model on this bot can restyle videos; a moderator can enable one of: "
            + ", ".join(restyle_models())
        )

    def _check_restyle_source(self, info: media.VideoInfo, key: str) -> None:
        """The restyler's size and frame rules (a too-long video is refused with the numbers),
        and the memory budget: the worker decodes every frame of the source."""
        restyling.plan_restyle(get_spec(key), info.width, info.height, info.frame_count, info.fps)
        self._check_held("restyling this video", info, info.decoded_bytes)

    async def submit_extend(
        self,
        who: Requester,
        where: VideoRef,
        *,
        prompt: str,
        model: str | None = None,
        new_frames: int | None = None,
        seed: int | None = None,
    ) -> Job:
        """Continue a clip after ``prompt`` (``bot.core.extend``) on the extender asked for, the
        owner's ``[models] extender`` or the best enabled one for this clip (one that makes sound
        first when it has sound, so its sound goes on). The prompt and the model first, then
        admission (its words too), then the video (an upload is fetched only now), planned from
        its probe and held to the upload and memory limits: every refusal, with the numbers,
        before anything is recorded or queued."""
        prompt = prompt.strip()
        if not prompt:
            raise InvalidParameterError(
                "prompt", "say how the clip should go on, e.g. `the boat sails into the sunset`"
            )
        self.extender(model)  # a model that cannot extend, or none enabled: refused at once

        def plan(source: SourceVideo) -> _SourceJob:
            key = self.extender(model, sound=source.info.audio is not None)
            self._check_extend_source(source.info, key, new_frames)
            return _SourceJob(key, prompt, {"new_frames": new_frames, "seed": seed})

        return await self._submit_on_source(who, where, JobKind.EXTEND, [("prompt", prompt)], plan)

    def extender(self, requested: str | None = None, sound: bool = False) -> str:
        """The model an extension runs on (``bot.core.extend.choose_extender``): the one asked
        for, else ``[models] extender``, else the best enabled (for a clip with ``sound``, one
        that makes sound first); a one-line refusal naming the extenders when none is enabled."""
        return extending.choose_extender(
            self.settings.models.enabled, self.settings.models.extender, requested, sound
        )

    def _check_extend_source(self, info: media.VideoInfo, key: str, new_frames: int | None) -> None:
        """The result's length against the upload limits and its frames against the memory
        budget (the worker holds the original, the continuation and the render at once)."""
        extending.plan_within_limits(
            get_spec(key),
            info.width,
            info.height,
            info.frame_count,
            info.fps,
            new_frames,
            self.upload_limits(),
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

    async def _unqueued(self, job_id: int, exc: Exception) -> None:
        """A recorded job that never reached the queue (its picture unreadable, the executor
        refusing it): failed in the store too, or the next start would run a job its member was
        told had failed. Already failed (a full queue marks it): left as it is."""
        if not isinstance(exc, VideoBotError | RequestRefused):
            log.error("job %s failed before it was queued: %s: %s", job_id, type(exc).__name__, exc)
        error = str(exc) if isinstance(exc, VideoBotError | RequestRefused) else "not queued"
        await self._fail_quietly(job_id, error)

    async def _fail_quietly(self, job_id: int, error: str) -> None:
        """Mark a job failed where the store allows it; a store that cannot (its disk full, the
        job already final) is logged, never raised: the member is told either way."""
        try:
            await self.store.mark_failed(job_id, error)
        except StoreError:
            pass  # already final: a full queue marked it, or it ended meanwhile
        except Exception as exc:
            log.error("could not record job %s as failed: %s: %s", job_id, type(exc).__name__, exc)

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
        where = _job_where(job.guild_id, job.user_id, job.model)
        log.info("%s started: %s", _job_name(job.id, job.kind), where)
        if job.lost_runs:  # its worker died mid-job: the store saw it running, not queued
            await self.store.requeue(job.id)
        await self.store.mark_running(job.id)

    async def _complete(self, job: Job, future: asyncio.Future[Finished]) -> None:
        """Runs for every queued job, whoever watches it: encode, record, resolve. Whatever
        recording raises (a full disk, a damaged database), the future is resolved, so the
        member's message always ends, and the job's end is logged."""
        finished: Finished | None = None
        try:
            result = await job.wait()
            try:
                finished = await self._record(job.id, job.kind, result)
            except Exception as exc:
                log.exception("finishing job %s failed", job.id)
                if not result.ok:  # only its record failed: the member still learns why it ended
                    finished = Finished(job.id, job.kind, result)
                else:
                    finished = Finished(job.id, job.kind, _failed(_saving_failed(exc)))
                    # not recorded as done: no file for the budget to count or a rerun to find
                    await asyncio.to_thread(self.output_path(job.id).unlink, missing_ok=True)
                if not result.cancelled:
                    await self._fail_quietly(job.id, finished.error or "failed")
        finally:
            ticket = self._tickets.pop(job.id, None)
            if ticket is not None:
                ticket.release()
            if finished is not None:
                self._log_end(finished, job.guild_id, job.user_id, job.model, job.started_at)
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
            if reason is None:
                try:
                    if record.status is JobStatus.RUNNING:
                        record = await self.store.requeue(record.id)
                    resumed.append(await self._resubmit(record))
                    continue
                except Exception as exc:  # one job that cannot resume must not stop the start
                    if isinstance(exc, VideoBotError | RequestRefused):
                        reason = str(exc)
                    else:
                        log.error(
                            "job %s could not be resumed: %s: %s",
                            record.id,
                            type(exc).__name__,
                            exc,
                        )
                        reason = (
                            f"the job could not be resumed after a restart ({type(exc).__name__})"
                        )
            await self._fail_quietly(record.id, reason)
            failed.append(replace(record, status=JobStatus.FAILED, error=reason))
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
                if not _pictures_present(params):
                    raise VideoBotError(
                        "the picture to animate was deleted from the bot's disk, so the job "
                        "could not be resumed; send the picture again"
                    )
                spec = await self._generation_spec(params, model)
                return await self._queue(
                    record, who, JobKind.GENERATE, model, params.prompt, spec, ticket
                )
            parent = await self.store.get_job(record.parent_id) if record.parent_id else None
            if parent is None:
                raise VideoBotError(f"the video to {record.kind.value} is gone")
            source = await self._source_from_record(parent)
            kind: JobKind
            if record.kind in (JobKind.RESTYLE, JobKind.EXTEND):
                kind = record.kind
                job = _SourceJob(str(record.model), record.prompt or "", dict(record.params))
            else:
                kind = JobKind.UPSCALE
                job = self._upscale_job(source, str(record.params.get("upscaler") or record.model))
            spec = await self._source_spec(source, kind, job)
            return await self._queue(record, who, kind, job.model, job.prompt, spec, ticket)
        except BaseException:
            ticket.release()
            raise

    # --- edits (CPU, no GPU queue) -------------------------------------------------------------

    async def edit(
        self,
        who: Requester,
        where: VideoRef,
        operation: str,
        arguments: dict[str, Any],
        *,
        on_start: Callable[[], Awaitable[Any]] | None = None,
    ) -> Finished:
        """Edits are ffmpeg work on the CPU, so they skip the GPU queue but are recorded like any
        job (with the source as parent) so they can be edited again and listed in history.

        In this order, each step only once the one before passed: admission (blocks, direct
        messages, cooldown, caps); a place in the bounded edit queue, then a worker; the video (an
        upload is fetched only now); the edit checked against its probe (a result the bot could
        not open again, or memory over the budget, refused with the numbers); that memory reserved
        from the process-wide budget (waiting while other edits hold it); the edit, streamed from
        file to file. The ticket, the place and the memory are given back whatever happens.
        ``on_start`` is awaited once the edit passed every check, just before it runs (the cog
        shows "Editing…" then, so a refusal is the first thing the member sees)."""
        ticket = await self.admission.admit(who, JobKind.EDIT)
        try:
            async with self.edit_queue.place(), self._open_source(who, where) as source:
                limits = self.settings.limits
                plan = edits.plan_edit(
                    operation,
                    source.info,
                    source.limits,
                    time_limit_s=limits.edit_time_limit_s,
                    **arguments,
                )
                record = await self._record_request(
                    who,
                    JobKind.EDIT,
                    {"operation": plan.request.operation, **arguments},
                    source.prompt,
                    source.model,
                    source.job_id,
                )
                ticket.recorded = True
                started: float | None = None
                ended = partial(
                    self._log_end,
                    guild_id=who.guild_id,
                    user_id=who.user_id,
                    model=source.model,
                    operation=plan.request.operation,
                )
                try:
                    if on_start is not None:
                        await on_start()
                    async with self.decode_budget.reserve(plan.memory_bytes):
                        await self.store.mark_running(record.id)
                        started = time.monotonic()
                        log.info(
                            "%s started: %s",
                            _job_name(record.id, JobKind.EDIT, plan.request.operation),
                            _job_where(who.guild_id, who.user_id, source.model),
                        )
                        result = await self._edit_turn(
                            plan, partial(self._run_edit, plan, source, record.id)
                        )
                except Exception as exc:
                    await self._fail_quietly(record.id, str(exc))
                    reason = str(exc) if isinstance(exc, VideoBotError) else type(exc).__name__
                    ended(Finished(record.id, JobKind.EDIT, _failed(reason)), started_at=started)
                    if isinstance(exc, VideoBotError):
                        raise
                    log.exception("edit %s failed", record.id)
                    raise VideoBotError(f"the edit failed: {type(exc).__name__}") from exc
            finished = await self._finish_edit(record.id, result)
            ended(finished, started_at=started)
            return finished
        finally:
            ticket.release()

    async def _edit_turn(
        self, plan: edits.EditPlan, work: Callable[[], GenerationResult]
    ) -> GenerationResult:
        """Run an edit on the CPU edit pool; but an interpolation whose RIFE would use the GPU
        (``[enhance] device``) takes the GPU thread's next turn (after the running job, before
        the next queued one) where the executor has one, so it never shares the GPU with a
        generation. With Ray, whose GPUs are the workers', it stays on the edit pool."""
        on_gpu = getattr(self.executor, "run_on_gpu_thread", None)
        if (
            plan.request.operation == "interpolate"
            and on_gpu is not None
            and await asyncio.to_thread(enhance.runs_on_gpu, self.settings.enhance.device)
        ):
            result: GenerationResult = await on_gpu(work)
            return result
        return await asyncio.get_running_loop().run_in_executor(self._edit_pool, work)

    def _run_edit(self, plan: edits.EditPlan, source: SourceVideo, job_id: int) -> GenerationResult:
        """On an edit worker: stream the edit straight into the job's mp4."""
        return self.engine.edit_file(
            plan,
            source.path,
            self.output_path(job_id),
            limits=source.limits,
            encoder=self.settings.speed.encoder,
            timeout_s=self.settings.limits.edit_time_limit_s,
            metadata={"source": source.name},
            enhance_device=self.settings.enhance.device,
        )

    async def _finish_edit(self, job_id: int, result: GenerationResult) -> Finished:
        """The edit wrote its mp4 where the job's video goes: record it as done."""
        return await self._mark_done(job_id, JobKind.EDIT, result)

    async def _mark_done(self, job_id: int, kind: JobKind, result: GenerationResult) -> Finished:
        """A job's mp4 is at its output path: record it as done, then tidy the disk."""
        path = self.output_path(job_id)
        await self.store.mark_done(
            job_id,
            output_path=str(path),
            seed=result.seed_used,
            timings={**result.timings, "total": result.generation_time},
        )
        try:  # the job is done: tidying the disk must not turn it into a failure
            await self.enforce_disk_budget(keep=path)
        except Exception:
            log.exception("the disk budget check after job %s failed", job_id)
        return Finished(job_id, kind, result, path)

    # --- sources -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _open_source(self, who: Requester, where: VideoRef) -> AsyncIterator[SourceVideo]:
        """The video ``where`` names, probed: an upload is fetched now (into a private folder,
        removed when the block ends), a stored result is looked up through visibility."""
        if isinstance(where, UploadedVideo):
            with tempfile.TemporaryDirectory(prefix="videobot-upload-") as folder:
                data = await self.download(where)
                yield await self.source_from_upload(where.filename, data, Path(folder))
        elif where.job_id is None:
            yield await self.latest_source(who)
        else:
            yield await self.source_from_job(who, where.job_id)

    async def download(self, upload: UploadedVideo) -> bytes:
        """The attachment's bytes, its declared size checked before it is fetched."""
        limit = self.upload_limits().max_bytes
        if upload.size > limit:
            raise _too_large(upload.size, limit)
        data = await upload.read()
        if len(data) > limit:  # the CDN sent more than was declared
            raise _too_large(len(data), limit)
        return data

    async def reachable_job(self, who: Requester, job_id: int) -> JobRecord:
        """The job, if ``who`` may reach it (:func:`bot.visibility.can_reach`); otherwise the same
        refusal as for a job that does not exist."""
        record = await self.store.get_job(job_id)
        if record is None or not await can_reach(who.viewer, record):
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
        """A stored result, probed under the upload limits but whatever its file size (the bot
        wrote it), so every result the bot made can be opened again."""
        if record.status != "done" or not record.output_path:
            raise RequestRefused(f"job #{record.id} has no video ({record.status})")
        path = Path(record.output_path)
        if record.output_pruned or not path.is_file():
            raise RequestRefused(
                f"the video of job #{record.id} was deleted to free disk space; "
                f"use /rerun {record.id} to make it again"
            )
        limits = self.upload_limits()
        with contextlib.suppress(OSError):
            limits = replace(limits, max_bytes=max(limits.max_bytes, path.stat().st_size))
        info = await asyncio.to_thread(media.probe, path, limits)
        return SourceVideo(
            path, info, record.id, record.prompt or "", record.model, limits, name=path.name
        )

    async def source_from_upload(self, filename: str, data: bytes, folder: Path) -> SourceVideo:
        """A member's upload, written into ``folder`` under a fixed name (the member's file name
        never reaches the disk) and probed; nothing is decoded."""
        limits = self.upload_limits()
        if len(data) > limits.max_bytes:
            raise _too_large(len(data), limits.max_bytes)
        path = folder / "upload"
        await asyncio.to_thread(path.write_bytes, data)
        info = await asyncio.to_thread(media.probe, path, limits)
        return SourceVideo(path, info, None, "", None, limits, name=filename[:100], data=data)

    def upload_limits(self) -> media.MediaLimits:
        """``[limits]`` as media limits, with the process-wide budget's size as one decode's."""
        return replace(
            self.settings.limits.media_limits(), max_decoded_bytes=self.decode_budget.total
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
        return await self._mark_done(job_id, kind, result)

    async def enforce_disk_budget(self, keep: Path | None = None) -> list[int]:
        """Delete the oldest videos (and pictures no queued or running job needs) while the
        output folder is over its budget; everything in it counts, pictures and leftover partial
        files included. The videos' history rows stay, marked as pruned, so /history still lists
        them and /edit says what happened. Returns the jobs whose videos went."""
        budget = int(self.settings.storage.max_output_mb * 2**20)
        needed = {Path(p) for p in await self.store.pictures(unfinished_only=True)}
        victims = await asyncio.to_thread(
            _oldest_over_budget, self.settings.storage.output_dir, budget, keep, needed
        )
        removed = await asyncio.to_thread(retention.remove, victims)
        pruned = []
        for item in removed:
            if item.job_id is not None:
                with contextlib.suppress(StoreError):
                    await self.store.mark_pruned(item.job_id)
                    pruned.append(item.job_id)
        if pruned:
            log.info("disk budget: deleted the videos of jobs %s", pruned)
        if len(removed) > len(pruned):
            log.info("disk budget: deleted %d picture(s)", len(removed) - len(pruned))
        return pruned

    async def apply_retention(self, *, at_start: bool = False) -> RetentionReport:
        """Forget what the bot no longer needs: interaction tokens past Discord's 15 minutes;
        finished jobs older than ``[storage] retention_days`` (rows, videos, pictures); pictures
        no job names; partial files a crash left (all of them at start, when nothing can be
        writing one); then the disk budget. Each step is logged and none stops the others."""
        storage = self.settings.storage
        report = RetentionReport()
        try:
            report.tokens = await self.store.forget_interaction_tokens(INTERACTION_TOKEN_LIFETIME)
            if storage.retention_days > 0:
                age = timedelta(days=storage.retention_days)
                deleted = await self.store.delete_finished_jobs(age)
                report.jobs = [record.id for record in deleted]
                videos = [Path(r.output_path) for r in deleted if r.output_path is not None]
                report.files += await asyncio.to_thread(retention.remove_paths, videos)
            referenced = {Path(p) for p in await self.store.pictures()}
        except Exception:
            log.exception("retention: the database could not be tidied")
            return report
        files = await asyncio.to_thread(retention.scan, storage.output_dir)
        stale = retention.leftovers(
            files, older_than_s=0.0 if at_start else retention.LEFTOVER_AGE_S
        )
        unused = retention.unused_pictures(files, referenced)
        report.files += len(await asyncio.to_thread(retention.remove, [*stale, *unused]))
        try:
            report.pruned = await self.enforce_disk_budget()
        except Exception:
            log.exception("retention: the disk budget check failed")
        if report.jobs:
            log.info(
                "retention: deleted %d finished job(s) older than %g days",
                len(report.jobs),
                storage.retention_days,
            )
        if report.files:
            log.info("retention: deleted %d file(s) no job needs any more", report.files)
        return report

    def wait_text(self, job: Job) -> str:
        return describe_wait(self.executor.estimated_wait_s(job.position))

    # --- the owner's console -------------------------------------------------------------------

    def _log_end(
        self,
        finished: Finished,
        guild_id: int | None,
        user_id: int,
        model: str | None,
        started_at: float | None,
        operation: str | None = None,
    ) -> None:
        """One line per job's end, whatever watches it: who, where, what, how long, how it ended
        and, for a failure, why. ``started_at`` is ``time.monotonic()`` at its start (None: it
        never ran, cancelled while queued)."""
        outcome = "done" if finished.ok else "cancelled" if finished.result.cancelled else "failed"
        self.ended[outcome] += 1
        seconds = time.monotonic() - started_at if started_at is not None else 0.0
        line = (
            f"{_job_name(finished.job_id, finished.kind, operation)} {outcome} in "
            f"{seconds:.1f} s: {_job_where(guild_id, user_id, model)}"
        )
        if outcome == "failed":
            line += f": {_first_line(finished.error)}"
        log.info("%s", line)

    def status_line(self) -> str | None:
        """What the bot is doing, for the console; None while it is idle (nothing queued, running
        or editing), so an idle bot's log stays quiet."""
        jobs = self.executor.snapshot()
        running = [job for job in jobs if job.state is JobStatus.RUNNING]
        edits = self.edit_queue.inside
        if not jobs and not edits:
            return None
        ended = ", ".join(f"{self.ended[k]} {k}" for k in ("done", "failed", "cancelled"))
        doing = "".join(
            f"; job {job.id} ({job.kind.value}) running"
            + (f" at {job.progress.fraction:.0%}" if job.progress is not None else "")
            for job in running
        )
        return (
            f"status: {len(jobs) - len(running)} queued, {len(running)} running, {edits} "
            f"edit(s) in progress{doing}; since start: {ended}"
        )

    async def report_status(self, every_s: float = STATUS_EVERY_S) -> None:
        """Log :meth:`status_line` every ``every_s`` while the bot is busy (runs until
        cancelled)."""
        while True:
            await asyncio.sleep(every_s)
            line = self.status_line()
            if line is not None:
                log.info("%s", line)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _oldest_over_budget(
    folder: Path, budget: int, keep: Path | None, needed: set[Path] | None = None
) -> list[retention.StoredFile]:
    """What to delete to bring ``folder`` within ``budget`` (see
    :func:`bot.retention.over_budget`); files that vanish while it looks are not counted."""
    return retention.over_budget(retention.scan(folder), budget, keep=keep, needed=needed or ())


@dataclass
class RetentionReport:
    """What one retention pass removed."""

    tokens: int = 0
    jobs: list[int] = field(default_factory=list)
    files: int = 0
    pruned: list[int] = field(default_factory=list)


def _saving_failed(exc: Exception) -> str:
    """The member's line for a job whose result could not be recorded."""
    text = str(exc).lower()
    if "disk is full" in text or "no space left" in text or getattr(exc, "errno", None) == 28:
        return (
            "the video was made but could not be saved: the bot's disk is full. The owner has "
            "been told (in the log); try again later"
        )
    if isinstance(exc, sqlite3.DatabaseError):
        return "the video was made but could not be recorded: the bot's database failed"
    return f"saving the video failed: {exc}"


def _job_name(job_id: int, kind: JobKind, operation: str | None = None) -> str:
    """``job 12 (generate)``, ``job 13 (edit: trim)``: how every line about a job starts."""
    return f"job {job_id} ({kind.value}{f': {operation}' if operation else ''})"


def _job_where(guild_id: int | None, user_id: int, model: str | None) -> str:
    """Where a job came from and what runs it, for the owner's console."""
    server = f"server {guild_id}" if guild_id is not None else "direct messages"
    return f"{server}, member {user_id}, model {model or '-'}"


def _first_line(text: str | None) -> str:
    """A failure's reason on one line: the console gets one line per job's end."""
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else "no reason given"


def _too_large(size: int, limit: int) -> MediaError:
    return MediaError(
        f"the file is {media.format_size(size)}; the limit is {media.format_size(limit)}"
    )


def _pictures_present(params: GenerationParams) -> bool:
    """Whether the pictures a generation animates (its first and any last frame) are still on
    the bot's disk."""
    return all(path is None or Path(path).is_file() for path in (params.image, params.end_image))


def _failed(message: str) -> GenerationResult:
    return GenerationResult(
        images=[], metadata={}, generation_time=0.0, seed_used=0, params=None, error=message
    )


__all__ = [
    "Finished",
    "RequestRefused",
    "Requester",
    "RetentionReport",
    "SourceVideo",
    "StoredVideo",
    "UploadedVideo",
    "VideoRef",
    "VideoService",
    "generate_with_oom_retry",
]
