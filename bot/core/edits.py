"""Edits: trim, speed, reverse, loop, ping-pong and interpolation.

Two forms. On frames in memory (:func:`apply_edit`, the Python API): pure functions, frames in,
frames out. On files (:func:`plan_edit` then :func:`run_edit`, what the bot and the CLI use): the
video is streamed from one ffmpeg (decoding) through this process (choosing frames) into another
(encoding), one frame at a time, so trimming or speeding up a long video holds a few frames, not
all of them. Reverse is the one edit that must hold every frame (ffmpeg's ``reverse`` filter, in
the decoding process); interpolation holds ``minterpolate``'s buffers. :func:`plan_edit` says,
before anything is decoded, how many frames the result has, at what rate, how long it lasts, what
memory the edit holds (for the process-wide budget) and, for interpolation, about how long it
takes; an edit whose result the bot could not open again, or that does not fit, is refused there
with the numbers. Arguments are validated by :func:`bot.core.params.validate_edit`.

The sound gets the same edit as ffmpeg audio filters (:func:`sound_filters`: ``atrim``, an
``atempo`` chain, ``areverse``, ``aloop``), run by the encoding ffmpeg on the source's own audio
stream, never as Python loops over samples. A speed outside ``SOUND_SPEEDS`` drops the sound, and
the plan's ``note`` says so.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core import media
from bot.core.errors import InvalidParameterError, MediaError
from bot.core.params import EditRequest, validate_edit

if TYPE_CHECKING:
    from PIL import Image

    from bot.core.enhance.base import Interpolator
    from bot.core.progress import JobControl

Frames = Sequence["Image.Image"]

_FIELD_OF = {"speed": "speed_factor", "loop": "loops", "interpolate": "factor"}

RIFE_CHUNK = 8
"""Source frames a learned interpolator is given at a time (plus the next one, for the frames in
between): the edit holds these and their in-betweens, never the whole clip."""
"""The argument named when an edit's result is refused (what the member would change)."""

SOUND_SPEEDS = (0.5, 3.0)
"""The speed factors at which a sped-up or slowed-down video keeps its sound. ``atempo`` changes
the tempo and keeps the pitch by overlapping pieces of the sound (WSOLA); past 3x speech comes
too fast to follow and music turns to a stutter, and under 0.5x every sound is smeared into an
echoing drone. Outside this range the sound is dropped and the member is told."""

ATEMPO_STEP = (0.5, 2.0)
"""The factors one ``atempo`` filter is given. ffmpeg before 5.0 refused others, and the bundled
ffmpeg (9.0, which takes 0.5..100) skips sound above 2 rather than blending it in, so a larger
change is a chain of steps within this range (3x: 2 then 1.5)."""


def apply_edit(request: EditRequest, frames: Frames, fps: float) -> tuple[list[Image.Image], float]:
    """Apply one validated edit; returns the new frames and their playback rate."""
    if request.operation == "trim":
        return trim(frames, request.start_frame, request.end_frame), fps
    if request.operation == "speed":
        return change_speed(frames, request.speed_factor), fps
    if request.operation == "reverse":
        return reverse(frames), fps
    if request.operation == "loop":
        return loop(frames, request.loops), fps
    return media.interpolate(frames, fps, request.factor)


def trim(frames: Frames, start_frame: int, end_frame: int) -> list[Image.Image]:
    """Frames ``start_frame`` up to but not including ``end_frame``."""
    return list(frames[start_frame:end_frame])


def change_speed(frames: Frames, speed_factor: float) -> list[Image.Image]:
    """Play ``speed_factor`` times faster at the same frame rate: frames are dropped (faster) or
    repeated (slower) at evenly spaced source positions, so the duration scales by 1/factor."""
    return [frames[i] for i in speed_indices(len(frames), speed_factor)]


def speed_indices(count: int, speed_factor: float) -> list[int]:
    """The source frame of each output frame of :func:`change_speed`: never decreasing."""
    out = max(1, round(count / speed_factor))
    return [min(count - 1, int(i * speed_factor)) for i in range(out)]


def reverse(frames: Frames) -> list[Image.Image]:
    return list(frames)[::-1]


def loop(frames: Frames, loops: int) -> list[Image.Image]:
    """The video ``loops`` times in a row."""
    return list(frames) * loops


def ping_pong(frames: Frames) -> list[Image.Image]:
    """Forward then backward without repeating the turning frames, so it loops seamlessly."""
    frames = list(frames)
    return frames + frames[-2:0:-1]


# --- sound: the same edit, as ffmpeg audio filters ------------------------------------------------


def atempo_chain(factor: float) -> str:
    """``atempo`` filters whose product is ``factor``, each within ``ATEMPO_STEP``."""
    low, high = ATEMPO_STEP
    steps: list[float] = []
    while factor > high:
        steps.append(high)
        factor /= high
    while factor < low:
        steps.append(low)
        factor /= low
    steps.append(factor)
    return ",".join(f"atempo={step:.6f}" for step in steps)


def sound_filters(request: EditRequest, count: int, fps: float) -> str | None:
    """The audio filter graph that does to a video's sound what ``request`` does to its
    ``count`` frames at ``fps`` (the sound already cut to the frames' length); "" for an edit
    that leaves the sound as it is (interpolation keeps the length); None when the sound must
    be dropped (a speed outside ``SOUND_SPEEDS``)."""
    if request.operation == "trim":
        start, end = request.start_frame / fps, request.end_frame / fps
        return f"atrim=start={start:.6f}:end={end:.6f},asetpts=PTS-STARTPTS"
    if request.operation == "speed":
        low, high = SOUND_SPEEDS
        if not low <= request.speed_factor <= high:
            return None
        return atempo_chain(request.speed_factor)
    if request.operation == "reverse":
        return "areverse"
    if request.operation == "loop":
        return loop_filter(count / fps, request.loops)
    return ""


def loop_filter(duration_s: float, loops: int) -> str:
    """The sound ``loops`` times in a row: ``aloop`` repeats all it has once the sound ends
    (its size allows a second more than the sound, whatever its rate)."""
    size = math.ceil(duration_s * 384000) + 384000
    return f"aloop=loop={loops - 1}:size={min(size, 2**31 - 1)}"


def ping_pong_filter(count: int, fps: float) -> str:
    """The sound of :func:`ping_pong`: forward, then backward from the second-to-last frame to
    the second, so a looping player hears no jump at either turn."""
    back_start, back_end = 1 / fps, (count - 1) / fps
    return (
        "asplit[forward{n}][back{n}];"
        f"[back{{n}}]atrim=start={back_start:.6f}:end={back_end:.6f},asetpts=PTS-STARTPTS,"
        "areverse[reversed{n}];"
        "[forward{n}][reversed{n}]concat=n=2:v=0:a=1"
    )


def sound_note(request: EditRequest) -> str:
    """What the member is told when the edit drops the sound; "" when it keeps it."""
    if request.operation == "speed" and sound_filters(request, 1, 1.0) is None:
        low, high = SOUND_SPEEDS
        return (
            f"The sound was left out: at {request.speed_factor:g}x it would not sound like "
            f"anything; sound is kept from {low:g}x to {high:g}x speed."
        )
    return ""


def edited_sound(
    request: EditRequest, sound: media.Sound | None, count: int, fps: float, duration_s: float
) -> media.Sound | None:
    """``sound`` through the edit (``count`` source frames at ``fps``), lasting ``duration_s``
    like the edited frames; None when there is none or the edit drops it."""
    if sound is None:
        return None
    graph = sound_filters(request, count, fps)
    if graph is None:
        return None
    return sound.then(graph, duration_s) if graph else sound


# --- edits on files, streamed --------------------------------------------------------------------


@dataclass(frozen=True)
class EditPlan:
    """An edit checked against a probed video before anything is decoded."""

    request: EditRequest
    source: media.VideoInfo
    frames: int
    """The result's frame count."""
    fps: float
    """The result's frame rate."""
    memory_bytes: int
    """What the edit holds at once, in this process and its ffmpeg children together: what it
    is charged against the process-wide decode budget."""
    seconds: float = 0.0
    """About how long the slow part takes (interpolation); 0 for the quick edits."""
    arguments: dict[str, Any] = field(default_factory=dict)
    """The arguments as given, for the result's edit history."""
    keeps_sound: bool = False
    """Whether the result has sound: the source has some and the edit keeps it."""
    note: str = ""
    """What the member is told about the result (the sound left out); "" when nothing."""

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


def plan_edit(
    operation: str,
    info: media.VideoInfo,
    limits: media.MediaLimits,
    *,
    time_limit_s: float | None = None,
    **arguments: Any,
) -> EditPlan:
    """Validate an edit of the video ``info`` describes and decide whether it may run.

    Refused, with the numbers: a result the bot would not open again (longer than
    ``limits.max_duration_s``, or over the frame-rate limit), so every result the bot made can be
    edited again; an edit holding more than ``limits.max_decoded_bytes`` (reverse holds every
    frame; any edit holds ``FRAMES_IN_FLIGHT``; interpolation also ``minterpolate``'s buffers);
    an interpolation estimated to take longer than ``time_limit_s``."""
    request = validate_edit(operation, info.frame_count, fps=info.fps, **arguments)
    count = info.frame_count
    frames, fps = count, info.fps
    if request.operation == "trim":
        frames = request.end_frame - request.start_frame
    elif request.operation == "speed":
        frames = len(speed_indices(count, request.speed_factor))
    elif request.operation == "loop":
        frames = count * request.loops
    elif request.operation == "interpolate":
        frames, fps = count * request.factor, info.fps * request.factor
    field_name = _FIELD_OF.get(request.operation, "operation")
    if request.target_fps is not None:
        field_name = "fps"
    if fps > media.MAX_FPS:
        raise InvalidParameterError(
            field_name,
            f"the result would play at {fps:g} fps; the limit is {media.MAX_FPS:g} fps",
        )
    duration = frames / fps
    if duration > limits.max_duration_s + 1e-6:
        raise InvalidParameterError(
            field_name,
            f"the result would last {duration:.1f} s ({frames} frames at {fps:g} fps); the "
            f"limit is {limits.max_duration_s:g} s, so it could not be edited again",
        )
    keeps_sound = info.audio is not None and sound_filters(request, count, info.fps) is not None
    plan = EditPlan(
        request=request,
        source=info,
        frames=frames,
        fps=fps,
        memory_bytes=_memory(request, info, keeps_sound),
        seconds=_seconds(request, info, frames),
        arguments=dict(arguments),
        keeps_sound=keeps_sound,
        note=sound_note(request) if info.audio is not None else "",
    )
    _check_memory(plan, limits.max_decoded_bytes)
    if time_limit_s is not None and plan.seconds > time_limit_s:
        raise MediaError(
            f"interpolating this video would take about {_duration(plan.seconds)} "
            f"({info.width}x{info.height} x {frames} frames at about "
            f"{media.INTERPOLATE_PIXELS_PER_S / 1e6:.1f} megapixels/s); the limit is "
            f"{_duration(time_limit_s)}: trim it, or use a smaller factor"
        )
    return plan


def _memory(request: EditRequest, info: media.VideoInfo, keeps_sound: bool) -> int:
    """The frames in flight, plus what the edit holds whole: every frame and the whole sound
    for reverse (``reverse``, ``areverse``), the sound for a loop (``aloop``), the buffers of
    ``minterpolate``. The other sound filters hold a fraction of a second."""
    held = media.FRAMES_IN_FLIGHT * info.frame_bytes
    if request.operation == "reverse":
        held += info.frames_with_slack * info.frame_bytes
    elif request.operation == "interpolate":
        # Whichever interpolator runs: minterpolate's buffers, or a learned one's chunk of
        # source frames with their in-betweens (its working tensors are the device's).
        held += max(
            media.INTERPOLATE_BYTES_PER_PIXEL * info.width * info.height,
            (RIFE_CHUNK + 1) * (request.factor + 1) * info.frame_bytes,
        )
    if keeps_sound and request.operation in ("reverse", "loop"):
        held += info.sound_bytes
    return held


def _seconds(request: EditRequest, info: media.VideoInfo, frames: int) -> float:
    if request.operation != "interpolate":
        return 0.0
    return info.width * info.height * frames / media.INTERPOLATE_PIXELS_PER_S


def _check_memory(plan: EditPlan, limit: int) -> None:
    if plan.memory_bytes <= limit:
        return
    info = plan.source
    if plan.request.operation == "reverse":
        raise media.memory_refusal(
            "reversing this video",
            info,
            info.frame_count,
            plan.memory_bytes,
            limit,
            advice="trim it first",
        )
    doing = "interpolating" if plan.request.operation == "interpolate" else "editing"
    raise media.memory_refusal(
        f"{doing} this video",
        info,
        media.FRAMES_IN_FLIGHT,
        plan.memory_bytes,
        limit,
        in_flight=True,
    )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def run_edit(
    plan: EditPlan,
    source: str | Path,
    output: str | Path,
    limits: media.MediaLimits,
    *,
    encoder: str = "auto",
    timeout_s: float = 600.0,
    control: JobControl | None = None,
    interpolator: Interpolator | None = None,
) -> media.VideoInfo:
    """Stream the planned edit from ``source`` into the mp4 ``output`` (written whole or not at
    all) and describe the result, probed as the bot would probe it to edit it again. The sound,
    when the plan keeps it, goes through the same edit as ffmpeg audio filters
    (:func:`sound_filters`) in the encoding ffmpeg, read from ``source`` by that ffmpeg itself.
    Every ffmpeg run is stopped after ``timeout_s``. ``control`` hears of each frame passed to
    the encoder (stage ``"edit"``), and a cancel stops the edit at the next frame.

    An interpolation runs ffmpeg's ``minterpolate`` in the encoding ffmpeg, unless a learned
    ``interpolator`` (RIFE, :mod:`bot.core.enhance`) is given: then the source frames go through
    it :data:`RIFE_CHUNK` at a time and the encoder takes its frames at the new rate."""
    request = plan.request
    learned = request.operation == "interpolate" and interpolator is not None
    if learned and interpolator is not None and interpolator.name == "minterpolate":
        learned = False
    with media.open_video(source, limits) as video:
        info = video.info
        if (info.width, info.height, info.frame_count, info.audio) != (
            plan.source.width,
            plan.source.height,
            plan.source.frame_count,
            plan.source.audio,
        ):
            raise MediaError("the video changed since it was checked; try the edit again")
        filters, cut, rate = "", None, info.fps
        if learned:
            cut, rate = plan.frames, plan.fps
        elif request.operation == "interpolate":
            filters = media.interpolation_filters(info.fps, request.factor, info.width, info.height)
            cut = plan.frames
        sound = edited_sound(
            request,
            media.Sound.of_file(source, info) if plan.keeps_sound else None,
            info.frame_count,
            info.fps,
            plan.duration_s,
        )

        def fed() -> Iterator[bytes]:
            frames = _edited_frames(request, video, timeout_s)
            if learned and interpolator is not None:
                learned_frames = _learned(frames, interpolator, request.factor, info)
                return _reported(learned_frames, control, plan.frames)
            return _reported(frames, control, _fed(plan))

        media.encode_stream(
            fed,
            output,
            info.width,
            info.height,
            rate,
            encoder=encoder,
            filters=filters,
            frames=cut,
            timeout_s=timeout_s,
            sound=sound,
            duration_s=plan.duration_s,
        )
    written = Path(output).stat().st_size
    return media.probe(output, replace(limits, max_bytes=max(limits.max_bytes, written)))


def _learned(
    frames: Iterator[bytes], interpolator: Interpolator, factor: int, info: media.VideoInfo
) -> Generator[bytes, None, None]:
    """The interpolated frames, raw: the source goes through ``interpolator`` in chunks of
    :data:`RIFE_CHUNK` frames plus the next chunk's first (so the frames between two chunks are
    made too), each chunk's held last frame dropped but for the clip's end. ``len(source) *
    factor`` frames come out, source frame ``k`` at ``k * factor``, as :func:`media.interpolate`
    puts them, so the duration and the sound's timing hold."""
    import numpy as np

    shape = (info.height, info.width, 3)
    chunk: list[np.ndarray] = []
    try:
        for raw in frames:
            chunk.append(np.frombuffer(raw, dtype=np.uint8).reshape(shape))
            if len(chunk) == RIFE_CHUNK + 1:
                made = interpolator.interpolate(np.stack(chunk), factor)
                for image in made[: RIFE_CHUNK * factor]:
                    yield image.tobytes()
                chunk = chunk[-1:]
        if chunk:
            for image in interpolator.interpolate(np.stack(chunk), factor):
                yield image.tobytes()
    finally:
        close = getattr(frames, "close", None)
        if close is not None:  # stop the decoder when the encoder stops early
            close()


def _fed(plan: EditPlan) -> int:
    """How many frames the edit hands the encoder: the result's, but the source's for an
    interpolation (ffmpeg makes the frames in between)."""
    if plan.request.operation == "interpolate":
        return plan.source.frame_count
    return plan.frames


def _reported(frames: Iterator[bytes], control: JobControl | None, total: int) -> Iterator[bytes]:
    """``frames``, each one reported to ``control`` as it goes to the encoder."""
    if control is None:
        return frames

    def counted() -> Generator[bytes, None, None]:
        try:
            for number, frame in enumerate(frames, start=1):
                yield frame
                control.step("edit", min(number, total), total)
        finally:
            close = getattr(frames, "close", None)
            if close is not None:  # stop the decoder when the encoder stops early
                close()

    return counted()


def _edited_frames(
    request: EditRequest, video: media.OpenVideo, timeout_s: float
) -> Iterator[bytes]:
    """The result's frames, raw, in order: each source frame is decoded once per pass and
    dropped as soon as it was passed on (or repeated)."""
    count = video.info.frame_count

    def stream(filters: str = "") -> Generator[bytes, None, None]:
        return video.frames(
            max_frames=video.info.frames_with_slack, filters=filters, timeout_s=timeout_s
        )

    if request.operation == "trim":
        return _between(stream(), request.start_frame, request.end_frame)
    if request.operation == "speed":
        return _at(stream(), speed_indices(count, request.speed_factor))
    if request.operation == "reverse":
        return stream("reverse")
    if request.operation == "loop":
        return _passes(stream, request.loops)
    return _at(stream(), range(count))  # interpolate: exactly the planned frames go in


def _between(
    frames: Generator[bytes, None, None], start: int, end: int
) -> Generator[bytes, None, None]:
    """Frames ``start`` to ``end`` (not included); the decoder is stopped after the last."""
    with contextlib.closing(frames):
        for number, frame in enumerate(frames):
            if number >= end:
                return
            if number >= start:
                yield frame


def _at(
    frames: Generator[bytes, None, None], indices: Sequence[int]
) -> Generator[bytes, None, None]:
    """The source frame at each of ``indices`` (never decreasing), holding one frame at a time.
    A source shorter than its probe said repeats its last frame, as the clamp of
    :func:`speed_indices` does at the end."""
    with contextlib.closing(frames):
        current, frame = -1, None
        for wanted in indices:
            while current < wanted:
                following = next(frames, None)
                if following is None:
                    break
                current, frame = current + 1, following
            if frame is None:  # pragma: no cover - an empty video raises in the decoder
                return
            yield frame


def _passes(
    stream: Callable[[], Generator[bytes, None, None]], loops: int
) -> Generator[bytes, None, None]:
    """The whole video ``loops`` times: decoded again for each pass rather than held."""
    for _ in range(loops):
        with contextlib.closing(stream()) as frames:
            yield from frames
