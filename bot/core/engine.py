"""The generation engine: the seed's ``generate_video``, ``edit_video``, ``upscale_video`` and
``save_result_as_video`` on top of the model manager and the pipeline adapters.

Bad input raises (:class:`InvalidParameterError`, :class:`UnknownModelError`) before any work starts.
Anything that goes wrong while running (out of GPU memory, a model that cannot be loaded, a cancel)
comes back as ``result.error`` with advice, never as an exception: one job's failure must not take a
caller, such as the bot's executor thread, down with it.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bot.core import edits, media, smoothing, soundtrack
from bot.core import extend as extending
from bot.core import restyle as restyling
from bot.core.caches import CachePlan, cache_applied, plan_cache
from bot.core.drafts import (
    DraftRecipe,
    denoiser_calls,
    draft_recipe,
    draft_steps,
    estimate_refine_seconds,
    estimate_steps,
)
from bot.core.errors import (
    GenerationCancelled,
    GenerationTimedOut,
    InvalidParameterError,
    ModelLoadError,
    VideoBotError,
    is_out_of_memory,
    load_failure_message,
)
from bot.core.images import fit_image, load_end_image, load_image
from bot.core.manager import LoadedModel, ModelManager, free_memory, get_model_manager
from bot.core.params import GenerationParams, check_upscale_strength, validate_edit
from bot.core.pipelines.base import DenoiseRequest
from bot.core.progress import JobControl
from bot.core.registry import ModelSpec, get_spec
from bot.core.result import GenerationResult

log = logging.getLogger(__name__)
_T = TypeVar("_T")

__all__ = [
    "DraftRecipe",
    "GenerationEngine",
    "denoiser_calls",
    "draft_recipe",
    "draft_steps",
    "estimate_refine_seconds",
    "estimate_steps",
    "get_generation_engine",
]

CANCELLED_MESSAGE = "Cancelled."
DEFAULT_UPSCALE_STRENGTH = 0.6


class GenerationFailed(VideoBotError):
    """Raised by the path-returning helpers (``upscale_video``) when the job itself failed."""


class GenerationEngine:
    """Runs jobs on the models of a :class:`ModelManager`. Not re-entrant: the bot gives it one
    executor thread, which is also what a single GPU wants."""

    def __init__(
        self, manager: ModelManager | None = None, *, enhance_device: str = "auto"
    ) -> None:
        self._manager = manager or get_model_manager()
        self.enhance_device = enhance_device
        """``[enhance] device``: where a generation's ``smooth`` runs (``auto``: the GPU the clip
        was made on, else ``minterpolate``; :func:`bot.core.smoothing.device_for`)."""

    @property
    def manager(self) -> ModelManager:
        return self._manager

    # --- generation ----------------------------------------------------------------------------

    def generate_video(
        self, params: GenerationParams, control: JobControl | None = None
    ) -> GenerationResult:
        """Generate a video on ``params.model``, or on the model loaded last (options left out
        then take that model's defaults). With ``params.image`` set, animate that picture."""
        control = control or JobControl()
        started = time.perf_counter()
        spec = self._generator_spec(params)
        if params.model is None:
            params = params.for_model(spec.key)
        spec.check_params(params)
        # A draft runs its recipe's params (the partner model, or fewer steps); the result keeps
        # the member's params, so Refine re-renders them at full quality with the draft's seed.
        recipe = draft_recipe(params)
        run = recipe.params if recipe is not None else params
        run_spec = get_spec(run.model) if run.model else spec
        cache = plan_cache(
            recipe.cache if recipe is not None else self._manager.options.speed.cache, run_spec
        )
        picture = load_image(params.image) if params.image is not None else None
        end_picture = load_end_image(params.end_image) if params.end_image is not None else None
        seed = _seed_or_random(params.seed)
        timings: dict[str, float] = {}
        cached_modules: list[str] = []
        try:
            loaded = self._timed(timings, "load", lambda: self._load(run_spec))
            frames, sound = self._timed(
                timings,
                "denoise",
                lambda: self._denoise(
                    loaded, run, seed, control, picture, cache, cached_modules, end_picture
                ),
            )
            images, fps = self._timed(
                timings, "postprocess", lambda: self._postprocess(frames, run, control)
            )
        except Exception as exc:
            return self._failure(exc, params, seed, started, run_spec, timings)
        if sound is not None and run.loop:  # the ping-pong of the frames, heard too
            forward = (len(images) + 2) // 2  # ping_pong: n frames forward, n - 2 back
            sound = sound.then(edits.ping_pong_filter(forward, fps), len(images) / fps)
        smoothed = ""  # what smoothed the clip; a draft is a quick look and is not smoothed
        if params.smooth is not None and recipe is None:
            target, device = params.smooth, smoothing.device_for(self.enhance_device, loaded.device)
            try:  # after the frames (and their sound: the length is kept), before the encode
                images, fps, smoothed = self._timed(
                    timings,
                    smoothing.STAGE,
                    lambda: smoothing.smooth(images, fps, target, device=device, control=control),
                )
            except Exception as exc:
                return self._failure(exc, params, seed, started, run_spec, timings)
        note = None
        if params.soundtrack is not None and soundtrack.wanted(run_spec, params.soundtrack):
            key, seconds = params.soundtrack, len(images) / fps
            try:  # after the frames, in the same GPU job: a cancel still stops it here
                sound, note = self._timed(
                    timings,
                    soundtrack.STAGE,
                    lambda: soundtrack.score(
                        self._load, key, params.prompt, seconds, seed, control
                    ),
                )
            except Exception as exc:
                return self._failure(exc, params, seed, started, run_spec, timings)
        metadata = self._metadata(loaded, run, len(frames))
        metadata["sound"] = sound is not None
        if note is not None:
            metadata["note"] = note
        elif sound is not None and params.soundtrack is not None and not run_spec.sound:
            metadata["soundtrack"] = params.soundtrack
        if smoothed:
            metadata["interpolator"] = smoothed
            metadata["note"] = " ".join(
                filter(None, [smoothing.note(smoothed, fps), metadata.get("note")])
            )
        metadata["quality"] = params.quality
        metadata["cache"] = cache.as_metadata()
        if cache.name is not None and not cached_modules:
            metadata["cache"]["note"] = f"off: {cache.name} could not be applied (see the log)"
        if recipe is not None:
            metadata["draft"] = recipe.as_metadata()
            if params.smooth is not None:
                skipped = "A draft is not smoothed; Refine makes the smoothed video."
                metadata["note"] = " ".join(filter(None, [metadata.get("note"), skipped]))
        return GenerationResult(
            images=images,
            metadata=metadata,
            generation_time=time.perf_counter() - started,
            seed_used=seed,
            params=params,
            fps=fps,
            timings=timings,
            sound=sound,
        )

    def _generator_spec(self, params: GenerationParams) -> ModelSpec:
        if params.model is not None:
            return get_spec(params.model)
        key = self._manager.active_key
        if key is None:
            raise VideoBotError(
                "no model is loaded and the params name none: load one first with "
                "get_model_manager().load_model(key) or set params.model"
            )
        return get_spec(key)

    def _load(self, spec: ModelSpec) -> LoadedModel:
        try:
            return self._manager.load_model(spec.key)
        except Exception as exc:
            if is_out_of_memory(exc):
                raise
            raise ModelLoadError(
                load_failure_message(spec.key, self._manager.source_of(spec), exc)
            ) from exc

    def _denoise(
        self,
        loaded: LoadedModel,
        params: GenerationParams,
        seed: int,
        control: JobControl,
        picture: Any = None,
        cache: CachePlan | None = None,
        cached_modules: list[str] | None = None,
        end_picture: Any = None,
    ) -> tuple[Any, media.Sound | None]:
        """The frames and, from a model that makes sound (``run_with_sound``) and a job that
        wants it (``params.sound``), the waveform made with them."""
        import torch

        request = DenoiseRequest(
            prompt=params.prompt,
            negative_prompt=params.negative_prompt,
            width=params.width,
            height=params.height,
            num_frames=params.num_frames,
            num_inference_steps=params.num_inference_steps,
            guidance_scale=params.guidance_scale,
            # A CPU generator gives the same noise on every device, so a seed reproduces anywhere.
            generator=torch.Generator(device="cpu").manual_seed(seed),
            image=fit_image(picture, params.width, params.height) if picture else None,
            end_image=(
                fit_image(end_picture, params.width, params.height) if end_picture else None
            ),
            fps=params.fps,
            call_options=loaded.spec.call_options_for(params.scheduler),
        )
        with loaded.lock, torch.inference_mode():
            pipe = self._manager.image_pipeline(loaded) if picture else loaded.pipeline
            pipe.scheduler = self._scheduler(
                loaded,
                params.scheduler,
                loaded.spec.scheduler_config_for(params.width, params.height),
            )
            plan = cache or plan_cache("off", loaded.spec)
            with cache_applied(pipe, plan, request.num_inference_steps) as applied:
                if cached_modules is not None:
                    cached_modules.extend(applied)
                return _run_adapter(loaded.adapter, pipe, request, control, sound=params.sound)

    def _postprocess(
        self, frames: Any, params: GenerationParams, control: JobControl
    ) -> tuple[list[Any], float]:
        from PIL import Image

        images = [Image.fromarray(frame) for frame in frames]
        fps: float = params.fps
        if params.interpolate > 1:
            control.check()
            images, fps = media.interpolate(images, fps, params.interpolate)
        if params.loop:
            images = edits.ping_pong(images)
        return images, fps

    @staticmethod
    def _scheduler(loaded: LoadedModel, name: str, config: dict[str, Any]) -> Any:
        """One scheduler instance per model, name and settings (``config``: the model's settings
        for the job's size), built from the model's own scheduler config."""
        import diffusers

        from bot.core.rules import SCHEDULERS

        key = f"{name}:{sorted(config.items())}"
        if key not in loaded.schedulers:
            if not loaded.schedulers:
                loaded.schedulers["_base"] = loaded.pipeline.scheduler
            base = loaded.schedulers["_base"].config
            class_name, extra = SCHEDULERS[name]
            scheduler_cls = getattr(diffusers, class_name)
            loaded.schedulers[key] = scheduler_cls.from_config(base, **{**config, **extra})
        return loaded.schedulers[key]

    def warm_up(self, key: str) -> list[tuple[int, int, int]]:
        """Compile a model's denoiser for each of its shape buckets now, at load, so no member's
        first job of a size waits for the compiler. Returns the (frames, height, width) buckets
        rendered; none where compile is off (the CPU, the memory savers, ``[speed] compile``)."""
        from bot.core.speed import compile_buckets, speed_report

        loaded = self._load(get_spec(key))
        report = speed_report(loaded.pipeline)
        if not isinstance(report.get("compile"), dict) or loaded.spec.role != "generator":
            return []
        warmed = []
        for frames, height, width in sorted(
            compile_buckets(loaded.spec, report["resolved"].compile_frames)
        ):
            params = GenerationParams(
                prompt="warm-up",
                model=loaded.spec.key,
                num_frames=frames,
                width=width,
                height=height,
                num_inference_steps=int(loaded.spec.steps.low),
                seed=0,
            )
            result = self.generate_video(params)
            if result.error:
                log.warning("warm-up of %s at %s failed: %s", key, params, result.error)
                break
            warmed.append((frames, height, width))
        return warmed

    # --- edits ---------------------------------------------------------------------------------

    def edit_video(
        self, result: GenerationResult, operation: str, **kwargs: Any
    ) -> GenerationResult:
        """Apply one edit (trim, speed, reverse, loop, interpolate) and return a new result. The
        sound gets the same edit, as ffmpeg filters applied when the result is encoded; an edit
        that drops it says why in ``metadata["note"]``."""
        if not result.images:
            raise VideoBotError(
                f"this result has no frames to edit ({result.error or 'it is empty'})"
            )
        request = validate_edit(operation, len(result.images), **kwargs)
        started = time.perf_counter()
        images, fps = edits.apply_edit(request, result.images, result.frame_rate)
        history = [*result.metadata.get("edits", []), {"operation": request.operation, **kwargs}]
        sound = edits.edited_sound(
            request, result.sound, len(result.images), result.frame_rate, len(images) / fps
        )
        metadata = {**result.metadata, "edits": history, "num_frames": len(images)}
        metadata.pop("note", None)
        if result.sound is not None and sound is None:
            metadata["note"] = edits.sound_note(request)
        return GenerationResult(
            images=images,
            metadata=metadata,
            generation_time=time.perf_counter() - started,
            seed_used=result.seed_used,
            params=result.params,
            fps=fps,
            sound=sound,
        )

    def edit_file(
        self,
        plan: edits.EditPlan,
        source: str | Path,
        output: str | Path,
        *,
        limits: media.MediaLimits,
        encoder: str = "auto",
        timeout_s: float = 600.0,
        metadata: dict[str, Any] | None = None,
        control: JobControl | None = None,
        enhance_device: str = "auto",
    ) -> GenerationResult:
        """Run an edit planned by :func:`bot.core.edits.plan_edit` from one video file to another,
        streaming (no list of frames is ever held). The result's ``images`` read ``output`` frame
        by frame when asked for (:class:`bot.core.media.VideoFrames`), and its ``sound`` is
        ``output``'s own. ``metadata["note"]`` says when the source's sound was left out, and for
        an interpolation which interpolator ran (``metadata["interpolator"]``: RIFE on
        ``enhance_device`` when it and its weights are there, else ``minterpolate``).
        ``control`` hears of each frame (stage ``"edit"``)."""
        from bot.core import enhance

        started = time.perf_counter()
        interpolator, how = None, ""
        if plan.request.operation == "interpolate":
            interpolator, how = enhance.interpolator_for(plan.source.fps, enhance_device)
        info = edits.run_edit(
            plan,
            source,
            output,
            limits,
            encoder=encoder,
            timeout_s=timeout_s,
            control=control,
            interpolator=interpolator,
        )
        own = dataclasses.replace(limits, max_bytes=max(limits.max_bytes, info.size_bytes))
        meta = dict(metadata or {})
        meta.pop("note", None)
        step = {"operation": plan.request.operation, **plan.arguments}
        if how:
            step["interpolator"] = how
            meta["interpolator"] = how
        history = [*meta.get("edits", []), step]
        note = plan.note
        if plan.keeps_sound and info.audio is None:
            note = "The sound could not be read, so the result is silent."
        if how:
            smoothed = smoothing.note(how, info.fps)
            note = f"{smoothed} {note}" if note else smoothed
        return GenerationResult(
            images=media.VideoFrames(output, info, own),
            metadata={
                **meta,
                "edits": history,
                "num_frames": info.frame_count,
                **({"note": note} if note else {}),
            },
            generation_time=time.perf_counter() - started,
            seed_used=0,
            params=None,
            fps=info.fps,
            sound=media.Sound.of_file(output, info),
        )

    # --- upscaling -----------------------------------------------------------------------------

    def upscale(
        self,
        result: GenerationResult,
        *,
        upscaler: str | None = None,
        model: str | None = None,
        prompt: str | None = None,
        strength: float = DEFAULT_UPSCALE_STRENGTH,
        num_inference_steps: int | None = None,
        seed: int | None = None,
        control: JobControl | None = None,
    ) -> GenerationResult:
        """Upscale through the model's upscaler (video-to-video on the resized frames), or
        through Real-ESRGAN when ``upscaler`` is ``realesrgan`` / ``realesrgan_x2`` /
        ``realesrgan_x4`` (:mod:`bot.core.enhance.names`; any size, no prompt, on the manager's
        device), or through LTX-2's x2 latent upsampler when it is ``ltx2`` (``model``, else the
        result's own, is the LTX-2 model that made the video); the frames keep their count and
        rate, so the sound is carried over as it is."""
        from bot.core.enhance.names import is_ltx2_upscaler, learned_scale

        _require_frames(result, "upscale")
        control = control or JobControl()
        scale = learned_scale(upscaler)
        if scale is not None:
            return self._learned_upscale(result, scale, control)
        if is_ltx2_upscaler(upscaler):
            return self._ltx2_upscale(result, model or result.metadata.get("model"), seed, control)
        spec = self._upscaler_for(result, upscaler)
        strength = check_upscale_strength(strength)
        width, height = upscale_size(spec, *result.size)
        if len(result.images) > spec.max_frames:
            raise InvalidParameterError(
                "video",
                f"has {len(result.images)} frames; {spec.key} upscales at most {spec.max_frames}: "
                "trim it first",
            )
        params = result.params
        # The upscaler's own recipe, not the generator's steps (Lightning's 4 would run 2).
        steps = num_inference_steps or spec.default_steps
        seed_used = _seed_or_random(seed)
        started = time.perf_counter()
        timings: dict[str, float] = {}
        try:
            loaded = self._timed(timings, "load", lambda: self._load(spec))
            frames = self._timed(
                timings,
                "upscale",
                lambda: self._run_upscaler(
                    loaded, result, prompt, width, height, steps, strength, seed_used, control
                ),
            )
        except Exception as exc:
            return self._failure(
                exc, params, seed_used, started, spec, timings, size=(width, height)
            )
        from PIL import Image

        return GenerationResult(
            images=[Image.fromarray(frame) for frame in frames],
            metadata={
                **result.metadata,
                "upscaler": spec.key,
                "prompt": prompt if prompt is not None else (params.prompt if params else ""),
                "width": width,
                "height": height,
                "upscale_strength": strength,
                "upscale_steps": steps,
            },
            generation_time=time.perf_counter() - started,
            seed_used=seed_used,
            params=params,
            fps=result.frame_rate,
            timings=timings,
            sound=result.sound,  # the frames keep their count and rate: the sound fits as it is
        )

    def _learned_upscale(
        self, result: GenerationResult, scale: int, control: JobControl
    ) -> GenerationResult:
        """Real-ESRGAN ``scale`` times wider and taller, batched on the manager's device (the
        worker's GPU). A bad scale or size raises before any weights load; weights that cannot
        be had, a cancel, a time limit or running out of memory come back as ``result.error``."""
        from bot.core import enhance
        from bot.core.enhance.names import learned_key, learned_label

        width, height = result.size
        enhance.check_upscale(width, height, scale)
        key = learned_key(scale)
        started = time.perf_counter()
        timings: dict[str, float] = {}
        try:
            frames = self._timed(
                timings,
                "upscale",
                lambda: enhance.upscale(
                    result.images,
                    scale,
                    device=self._manager.resolved_device(),
                    control=control,
                ),
            )
        except Exception as exc:
            return self._learned_failure(exc, key, result, started, timings)
        return GenerationResult(
            images=frames,
            metadata={
                **result.metadata,
                "upscaler": learned_label(scale),
                "width": width * scale,
                "height": height * scale,
                "upscale_scale": scale,
            },
            generation_time=time.perf_counter() - started,
            seed_used=result.seed_used,
            params=result.params,
            fps=result.frame_rate,
            timings=timings,
            sound=result.sound,  # the frames keep their count and rate: the sound fits as it is
        )

    def _ltx2_upscale(
        self, result: GenerationResult, model: str | None, seed: int | None, control: JobControl
    ) -> GenerationResult:
        """LTX-2's x2 latent upsampler on a video an LTX-2 model made: that model is loaded
        through the manager as for a generation (its memory plan), and its own VAE encodes and
        decodes (:func:`bot.core.pipelines.ltx2.upscale_frames`). The model, the size and the
        frame count are refused before anything loads; a failure comes back as the error."""
        import torch

        from bot.core.enhance.names import LTX2_LABEL, check_ltx2_upscale, ltx2_upscale_spec
        from bot.core.pipelines.ltx2 import upscale_frames

        spec = ltx2_upscale_spec(model)
        width, height = check_ltx2_upscale(spec, *result.size, len(result.images))
        seed_used = _seed_or_random(seed)
        started = time.perf_counter()
        timings: dict[str, float] = {}
        try:
            loaded = self._timed(timings, "load", lambda: self._load(spec))
            request = loaded.load_request

            def run() -> Any:
                with loaded.lock, torch.inference_mode():
                    return upscale_frames(
                        loaded.pipeline,
                        result.images,
                        request.source if request is not None else spec.source,
                        request.torch_dtype if request is not None else None,
                        torch.Generator(device="cpu").manual_seed(seed_used),
                        control,
                    )

            frames = self._timed(timings, "upscale", run)
        except Exception as exc:
            return self._failure(
                exc, result.params, seed_used, started, spec, timings, size=(width, height)
            )
        from PIL import Image

        return GenerationResult(
            images=[Image.fromarray(frame) for frame in frames],
            metadata={
                **result.metadata,
                "model": spec.key,
                "upscaler": LTX2_LABEL,
                "width": width,
                "height": height,
                "upscale_scale": 2,
            },
            generation_time=time.perf_counter() - started,
            seed_used=seed_used,
            params=result.params,
            fps=result.frame_rate,
            timings=timings,
            sound=result.sound,  # the frames keep their count and rate: the sound fits as it is
        )

    @staticmethod
    def _learned_failure(
        exc: BaseException,
        key: str,
        result: GenerationResult,
        started: float,
        timings: dict[str, float],
    ) -> GenerationResult:
        cancelled = isinstance(exc, GenerationCancelled) and not isinstance(exc, GenerationTimedOut)
        if cancelled:
            message = CANCELLED_MESSAGE
        elif isinstance(exc, GenerationTimedOut):
            message = f"Stopped: {exc}. Trim the video or use 2x."
        elif is_out_of_memory(exc):
            free_memory()
            message = f"Out of memory upscaling with {key}: trim the video or use 2x."
        elif isinstance(exc, ModelLoadError):
            log.warning("%s", exc)
            message = str(exc)
        else:
            log.exception("upscale with %s failed", key)
            message = f"Upscaling failed on {key}: {type(exc).__name__}: {exc}"
        return GenerationResult(
            images=[],
            metadata={"upscaler": key},
            generation_time=time.perf_counter() - started,
            seed_used=result.seed_used,
            params=result.params,
            error=message,
            cancelled=cancelled,
            timings=timings,
        )

    def upscale_video(
        self, result: GenerationResult, output_path: str | Path, **kwargs: Any
    ) -> str:
        """The seed's upscale: upscale and save as mp4; returns the path."""
        upscaled = self.upscale(result, **kwargs)
        if upscaled.error:
            raise GenerationFailed(upscaled.error)
        return upscaled.save_as_video(output_path)

    def _upscaler_for(self, result: GenerationResult, key: str | None) -> ModelSpec:
        if key is None:
            source = result.metadata.get("model") or self._manager.active_key
            key = get_spec(source).upscaler if source else None
            if key is None:
                raise InvalidParameterError(
                    "upscaler",
                    "no upscaler is known for this video; name one: "
                    + ", ".join(k for k, s in _upscalers().items()),
                )
        spec = get_spec(key)
        if spec.role != "upscaler":
            raise InvalidParameterError(
                "upscaler", f"{spec.key} is not an upscaler; upscalers: {', '.join(_upscalers())}"
            )
        return spec

    def _run_upscaler(
        self,
        loaded: LoadedModel,
        result: GenerationResult,
        prompt: str | None,
        width: int,
        height: int,
        steps: int,
        strength: float,
        seed: int,
        control: JobControl,
    ) -> Any:
        import torch
        from PIL import Image

        params = result.params
        resized = [
            frame.resize((width, height), Image.Resampling.LANCZOS) for frame in result.images
        ]
        request = DenoiseRequest(
            prompt=prompt if prompt is not None else (params.prompt if params else ""),
            negative_prompt=params.negative_prompt if params else "",
            width=width,
            height=height,
            num_frames=len(resized),
            num_inference_steps=steps,
            guidance_scale=loaded.spec.default_guidance,
            generator=torch.Generator(device="cpu").manual_seed(seed),
            video=resized,
            strength=strength,
            # Only the live previews read it: they play at the video's own pace.
            fps=max(1, round(result.frame_rate)),
        )
        with loaded.lock, torch.inference_mode():
            return loaded.adapter.run(loaded.pipeline, request, control)

    # --- restyling (video-to-video) ------------------------------------------------------------

    def restyle(
        self,
        result: GenerationResult,
        *,
        prompt: str,
        model: str | None = None,
        strength: float = restyling.DEFAULT_STRENGTH,
        num_inference_steps: int | None = None,
        seed: int | None = None,
        control: JobControl | None = None,
    ) -> GenerationResult:
        """Redraw a video after ``prompt`` on a model that restyles (``bot.core.restyle`` fits
        its size and frames to the model's rules); the sound is carried over, cut to the
        result's length. Bad input raises before any work; a failure comes back as the error."""
        _require_frames(result, "restyle")
        if not prompt.strip():
            raise InvalidParameterError("prompt", "say what the video should look like")
        control = control or JobControl()
        spec = restyling.restyler_spec(model or restyling.DEFAULT_RESTYLER)
        strength = restyling.check_strength(strength)
        steps = _checked_steps(spec, num_inference_steps)
        steps = restyling.run_steps(steps, strength)
        plan = restyling.plan_restyle(spec, *result.size, len(result.images), result.frame_rate)
        seed_used = _seed_or_random(seed)
        started = time.perf_counter()
        timings: dict[str, float] = {}
        ran = self._load_and_run(
            spec,
            "restyle",
            lambda loaded: self._run_restyle(
                loaded, result, plan, prompt, steps, strength, seed_used, control
            ),
            seed_used,
            started,
            timings,
            (plan.width, plan.height),
        )
        if isinstance(ran, GenerationResult):
            return ran
        frames, pipeline = ran
        from PIL import Image

        return GenerationResult(
            images=[Image.fromarray(frame) for frame in frames],
            metadata={
                **result.metadata,
                **plan.as_metadata(),
                "family": spec.family,
                "prompt": prompt,
                "restyle": {"strength": strength, "steps": steps, "pipeline": pipeline},
                "sound": result.sound is not None,
            },
            generation_time=time.perf_counter() - started,
            seed_used=seed_used,
            params=None,
            fps=plan.fps,
            timings=timings,
            sound=restyling.restyled_sound(result.sound, plan),
        )

    def _run_restyle(
        self,
        loaded: LoadedModel,
        result: GenerationResult,
        plan: restyling.RestylePlan,
        prompt: str,
        steps: int,
        strength: float,
        seed: int,
        control: JobControl,
    ) -> tuple[Any, str]:
        """The restyled frames and the class of the pipeline that made them."""
        import torch

        from bot.core.pipelines.restyle import restyle_adapter_for

        adapter = restyle_adapter_for(loaded.spec.family)
        request = self._remake_request(
            loaded.spec,
            prompt,
            (plan.width, plan.height),
            plan.num_frames,
            steps,
            seed,
            plan.fps,
            video=restyling.fitted_frames(result.images, plan),
            strength=strength,
        )
        with loaded.lock, torch.inference_mode():
            pipe = adapter.pipeline(loaded.pipeline)
            pipe.scheduler = self._scheduler(
                loaded,
                loaded.spec.default_scheduler,
                loaded.spec.scheduler_config_for(plan.width, plan.height),
            )
            return adapter.run(pipe, request, control), type(pipe).__name__

    # --- extending ----------------------------------------------------------------------------

    def extend(
        self,
        result: GenerationResult,
        *,
        prompt: str,
        model: str,
        new_frames: int | None = None,
        num_inference_steps: int | None = None,
        seed: int | None = None,
        limits: media.MediaLimits | None = None,
        control: JobControl | None = None,
    ) -> GenerationResult:
        """Continue a clip after ``prompt`` on an extender (``bot.core.extend``): the original
        followed by the continuation, at the original's size and rate, colour-matched to its
        tail, with its sound then silence. The seam's ratio is logged and kept in
        ``metadata["extend"]``. Bad input raises before any work; a failure comes back as the
        error."""
        _require_frames(result, "extend")
        if not prompt.strip():
            raise InvalidParameterError("prompt", "say how the clip should go on")
        control = control or JobControl()
        spec = extending.extender_spec(model)
        width, height = result.size
        plan = extending.plan_within_limits(
            spec, width, height, len(result.images), result.frame_rate, new_frames, limits
        )
        steps = _checked_steps(spec, num_inference_steps)
        seed_used = _seed_or_random(seed)
        started = time.perf_counter()
        timings: dict[str, float] = {}

        def run(loaded: LoadedModel) -> tuple[Any, media.Sound | None]:
            frames, made = self._run_extend(loaded, result, plan, prompt, steps, seed_used, control)
            rate = float(max(1, round(plan.fps)))
            return frames, extending.continued_sound(result.sound, made, plan, rate)

        ran = self._load_and_run(
            spec, "extend", run, seed_used, started, timings, (plan.width, plan.height)
        )
        if isinstance(ran, GenerationResult):
            return ran
        frames, sound = ran
        images, seam = self._timed(
            timings, "join", lambda: self._join(result, plan, frames[plan.overlap :])
        )
        log.info(
            "extended a %d-frame clip by %d frames on %s: seam ratio %.2f (%.2f before the "
            "colour match)",
            plan.source_frames,
            plan.new_frames,
            spec.key,
            seam["seam_ratio"],
            seam["seam_ratio_uncorrected"],
        )
        return GenerationResult(
            images=images,
            metadata={
                **result.metadata,
                "model": spec.key,
                "family": spec.family,
                "prompt": prompt,
                "num_frames": len(images),
                "width": width,
                "height": height,
                "extend": {**plan.as_metadata(), "steps": steps, **seam},
                "sound": result.sound is not None,
            },
            generation_time=time.perf_counter() - started,
            seed_used=seed_used,
            params=None,
            fps=result.frame_rate,
            timings=timings,
            sound=sound,
        )

    def _run_extend(
        self,
        loaded: LoadedModel,
        result: GenerationResult,
        plan: extending.ExtendPlan,
        prompt: str,
        steps: int,
        seed: int,
        control: JobControl,
    ) -> tuple[Any, media.Sound | None]:
        """The model's frames, context first: the family's conditioning
        (``bot.core.pipelines.continuation``) run through its own adapter; and the sound made
        with them by a model that makes sound (LTX-2), else ``None``."""
        import torch

        from bot.core.pipelines import continuation

        tail = extending.tail_frames(result.images, plan)
        spec = loaded.spec
        options = spec.call_options_for(spec.default_scheduler)
        config = spec.scheduler_config_for(plan.width, plan.height)
        with loaded.lock, torch.inference_mode():
            if plan.method == "tail":
                pipe = continuation.condition_pipeline(loaded.pipeline, spec.family)
                options = {**options, **continuation.tail_condition(tail, family=spec.family)}
                config = {**config, **continuation.condition_scheduler(spec.family)}
            elif plan.method == "vace":  # the loaded WanVACEPipeline, the tail as its context
                pipe = loaded.pipeline
                options = {**options, **continuation.vace_context(tail, plan.render_frames)}
            else:  # last_frame: the family's image-to-video pipeline
                pipe = self._manager.image_pipeline(loaded)
            pipe.scheduler = self._scheduler(loaded, spec.default_scheduler, config)
            request = self._remake_request(
                spec,
                prompt,
                (plan.width, plan.height),
                plan.render_frames,
                steps,
                seed,
                plan.fps,
                image=tail[-1] if plan.method == "last_frame" else None,
                call_options=options,
            )
            return _run_adapter(loaded.adapter, pipe, request, control, sound=spec.sound)

    @staticmethod
    def _join(
        result: GenerationResult, plan: extending.ExtendPlan, continuation: Any
    ) -> tuple[list[Any], dict[str, float]]:
        """The original's frames then the continuation's, colour-matched to the tail and resized
        back to the original's size, and the seam measured with and without the colour match."""
        import numpy as np
        from PIL import Image

        size = result.size
        reference = extending.stats_frames(result.images, plan)
        corrected = extending.match_colour(np.asarray(continuation), reference)

        def back(frames: Any) -> list[Any]:
            return [
                Image.fromarray(frame).resize(size, Image.Resampling.LANCZOS) for frame in frames
            ]

        original = list(result.images)
        joined = original + back(corrected)
        join = len(original)
        raw = extending.seam_ratio(original + back(continuation), join)
        return joined, {
            "seam_ratio": round(extending.seam_ratio(joined, join), 3),
            "seam_ratio_uncorrected": round(raw, 3),
        }

    # --- remaking a video (restyle, extend) ------------------------------------------------------

    def _load_and_run(
        self,
        spec: ModelSpec,
        step: str,
        work: Callable[[LoadedModel], _T],
        seed: int,
        started: float,
        timings: dict[str, float],
        size: tuple[int, int],
    ) -> _T | GenerationResult:
        """``spec`` loaded, then ``work`` on it, each timed in ``timings`` (``load``, ``step``):
        the one run of a job remade from a video. Whatever goes wrong comes back as the failed
        result (:meth:`_failure`, its advice for a render of ``size``) for the caller to return,
        never as an exception."""
        try:
            loaded = self._timed(timings, "load", lambda: self._load(spec))
            done: _T = self._timed(timings, step, lambda: work(loaded))
        except Exception as exc:
            return self._failure(exc, None, seed, started, spec, timings, size=size)
        return done

    @staticmethod
    def _remake_request(
        spec: ModelSpec,
        prompt: str,
        size: tuple[int, int],
        num_frames: int,
        steps: int,
        seed: int,
        fps: float,
        **inputs: Any,
    ) -> DenoiseRequest:
        """The request of a job remade from a video: the member's prompt alone (no negative),
        the model's own guidance, ``seed``'s noise drawn on the CPU (the same on every device),
        the previews played at the clip's ``fps``; ``inputs``: what the job gives the model
        (the fitted video and its strength; the tail's last frame and its conditioning)."""
        import torch

        return DenoiseRequest(
            prompt=prompt,
            negative_prompt="",
            width=size[0],
            height=size[1],
            num_frames=num_frames,
            num_inference_steps=steps,
            guidance_scale=spec.default_guidance,
            generator=torch.Generator(device="cpu").manual_seed(seed),
            fps=max(1, round(fps)),
            **inputs,
        )

    # --- saving --------------------------------------------------------------------------------

    def save_result_as_video(
        self, result: GenerationResult, output_path: str | Path, fps: float | None = None
    ) -> str:
        return result.save_as_video(output_path, fps)

    # --- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _timed(timings: dict[str, float], name: str, work: Any) -> Any:
        started = time.perf_counter()
        try:
            return work()
        finally:
            timings[name] = time.perf_counter() - started

    def _metadata(
        self, loaded: LoadedModel, params: GenerationParams, generated: int
    ) -> dict[str, Any]:
        return {
            "model": loaded.spec.key,
            "model_name": loaded.spec.name,
            "family": loaded.spec.family,
            "device": loaded.device,
            "dtype": loaded.dtype,
            "prompt": params.prompt,
            "negative_prompt": params.negative_prompt,
            "width": params.width,
            "height": params.height,
            "num_frames": generated,
            "fps": params.fps,
            "num_inference_steps": params.num_inference_steps,
            "guidance_scale": params.guidance_scale,
            "scheduler": params.scheduler,
            "interpolate": params.interpolate,
            "smooth": params.smooth,
            "loop": params.loop,
            "image_to_video": params.image is not None,
            "first_last_frame": params.end_image is not None,
            "memory": dataclasses.asdict(loaded.switches),
        }

    def _failure(
        self,
        exc: BaseException,
        params: GenerationParams | None,
        seed: int,
        started: float,
        spec: ModelSpec,
        timings: dict[str, float],
        size: tuple[int, int] | None = None,
    ) -> GenerationResult:
        cancelled = isinstance(exc, GenerationCancelled) and not isinstance(exc, GenerationTimedOut)
        out_of_memory = False
        if cancelled:
            message = CANCELLED_MESSAGE
        elif isinstance(exc, GenerationTimedOut):
            message = f"Stopped: {exc}. Try fewer frames, fewer steps or a smaller size."
        elif is_out_of_memory(exc):
            free_memory()
            out_of_memory = True
            message = out_of_memory_advice(spec, params, size)
        elif isinstance(exc, ModelLoadError):
            log.warning("%s", exc)
            message = str(exc)
        else:
            log.exception("job on %s failed", spec.key)
            message = f"Generation failed on {spec.key}: {type(exc).__name__}: {exc}"
        return GenerationResult(
            images=[],
            metadata={"model": spec.key, "out_of_memory": out_of_memory},
            generation_time=time.perf_counter() - started,
            seed_used=seed,
            params=params,
            error=message,
            cancelled=cancelled,
            timings=timings,
        )


def _upscalers() -> dict[str, ModelSpec]:
    from bot.core.registry import REGISTRY

    return {k: s for k, s in REGISTRY.items() if s.role == "upscaler"}


def upscale_size(spec: ModelSpec, width: int, height: int) -> tuple[int, int]:
    """The size an upscaler renders a ``width`` x ``height`` video at.

    A fixed factor (the tiny upscaler's 2x) scales both sides; otherwise the upscaler's native size
    is used when the aspect ratio is within 3% of it (576x320 -> 1024x576, as the Zeroscope card
    does), else the video is fitted inside the native size keeping its aspect ratio. Sides are
    multiples of 8, the VAE's downsampling.
    """
    if spec.upscale_factor:
        target = (_round8(width * spec.upscale_factor), _round8(height * spec.upscale_factor))
    else:
        native_aspect = spec.native_width / spec.native_height
        if abs(width / height - native_aspect) / native_aspect <= 0.03:
            target = (spec.native_width, spec.native_height)
        else:
            scale = min(spec.native_width / width, spec.native_height / height)
            target = (_round8(width * scale), _round8(height * scale))
    if max(target) > spec.max_size:
        raise InvalidParameterError(
            "video",
            f"is {width}x{height}; {spec.key} can upscale up to {spec.max_size} pixels a side "
            f"and this would give {target[0]}x{target[1]}",
        )
    if target[0] <= width and target[1] <= height:
        raise InvalidParameterError(
            "video", f"is already {width}x{height}; {spec.key} would not make it larger"
        )
    return target


def _require_frames(result: GenerationResult, doing: str) -> None:
    """A job on a made video needs its frames: a failed or empty result is refused, with why,
    before any model is loaded."""
    if not result.images:
        raise VideoBotError(f"this result has no frames to {doing} ({result.error or 'empty'})")


def _checked_steps(spec: ModelSpec, requested: int | None) -> int:
    """The denoising steps a job asked for, else the model's default, within the model's
    range (a one-line refusal naming it otherwise)."""
    steps = requested or spec.default_steps
    spec.steps.check("num_inference_steps", steps)
    return steps


def _run_adapter(
    adapter: Any, pipe: Any, request: DenoiseRequest, control: JobControl, *, sound: bool
) -> tuple[Any, media.Sound | None]:
    """The adapter's frames, and the sound made with them where the job wants it (``sound``) and
    the adapter makes some (``run_with_sound``: LTX-2), else ``None``: the one place a denoise
    run asks for sound, for a generation and an extend alike."""
    with_sound = getattr(adapter, "run_with_sound", None)
    if with_sound is not None and sound:
        frames, made = with_sound(pipe, request, control)
        return frames, made
    return adapter.run(pipe, request, control), None


def _seed_or_random(seed: int | None) -> int:
    """The seed asked for, else a fresh random one: either way the result records it, so a
    member can make the same video again."""
    return seed if seed is not None else secrets.randbelow(2**32)


def _round8(value: float) -> int:
    return max(8, round(value / 8) * 8)


def out_of_memory_advice(
    spec: ModelSpec, params: GenerationParams | None, size: tuple[int, int] | None = None
) -> str:
    """The seed's troubleshooting advice for out-of-memory, made specific to the job."""
    what = ""
    if params is not None:
        width, height = size or (params.width, params.height)
        what = f" for {params.num_frames} frames at {width}x{height}"
    return (
        f"Out of GPU memory on {spec.key}{what} (it needs about {spec.total_vram_gb:g} GB). "
        "Reduce the frame count or the resolution, or turn on the memory savers: CPU offload, "
        "VAE slicing, VAE tiling and forward chunking (group offload and fp8 layerwise casting "
        "go further)."
    )


_ENGINE: GenerationEngine | None = None
_ENGINE_LOCK = threading.Lock()


def get_generation_engine() -> GenerationEngine:
    """The process-wide engine (the seed's singleton), on the process-wide model manager."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = GenerationEngine(get_model_manager())
        return _ENGINE
