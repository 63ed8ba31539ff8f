"""Every ffmpeg run of the project: probing and decoding uploads, encoding and interpolating frames.

Uploads are treated as hostile. A file is opened here, checked with ``fstat`` (a regular file, not
over ``max_bytes``) before ffmpeg ever runs, and handed to ffmpeg as an inherited file descriptor
(``-fd N -i fd:``) with ``-protocol_whitelist fd`` and a demuxer whitelist: the user's file name
never reaches ffmpeg's command line (so names such as ``-i x.mp4`` or ``a:b`` are harmless), the
file ffmpeg reads is the one that was checked, and playlists (HLS), concat scripts, image
sequences and anything else that could open a second file are refused. Every run is killed after a
wall-clock limit, and its stderr is kept out of sight of the user (it is logged at debug level).

Memory is a budget, not a flat cap on frames or pixels: what a decode would hold is known from the
probe (width x height x 3 bytes per frame, times the frames held at once) and refused, with the
numbers, when it is over ``MediaLimits.max_decoded_bytes``. :func:`decode` holds every frame, so
it is charged them all; :func:`open_video` streams frames one at a time (edits pipe them from one
ffmpeg to another without keeping them), so a long video can be trimmed or sped up whatever its
length.

What ``probe`` reads from ffmpeg's log is advisory (a crafted file can lie about its size, length
or rate); the hard bounds are enforced again while decoding: ``-max_pixels`` makes the decoder
refuse pictures larger than the probed size (padded to the codec's block size: a 1080-pixel side
is decoded as 1088), the output is scaled to the probed size, ``-frames:v`` caps the count at what
the budget allows and the timeout caps the time.

Sound is never decoded in Python. A probe finds the default audio stream (:class:`AudioInfo`);
with sound, a video's length is its picture's (a longer soundtrack does not count) and its
frames are read by their timestamps, so a variable frame rate stays in sync. A result's
:class:`Sound` names where the sound is (a file's stream, a track in memory, a waveform) and the
ffmpeg audio filters an edit put on it; the one encoder path (:func:`encode_stream`) reads it as
ffmpeg's second input and writes it as AAC beside the H.264 picture, padded or cut to the
picture's length. :func:`encode_within` lowers the sound's bitrate before the picture's quality.
A video without sound gets no audio track.
"""

from __future__ import annotations

import logging
import math
import os
import re
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import IO, overload

import imageio_ffmpeg
import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image

from bot.core.errors import MediaError

log = logging.getLogger(__name__)

ALLOWED_KINDS = "mp4, mov, webm, mkv, gif"
"""What uploads may be, in the words used in error messages."""

_DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,gif"
"""ffmpeg's names of the demuxers for ALLOWED_KINDS; none of them opens a second file."""

_OWN_FRAMES_TIMEOUT_S = 600.0
"""Limit for runs on frames made here (encode, interpolate): a guard against a hung ffmpeg, not a
resource limit, since the engine bounds the size of what it generates."""

_X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
DEFAULT_PRESET = "ultrafast"
"""x264 preset of :func:`encode`. Measured with bench/encode_throughput.py on the 2-core build
machine (24 frames of 576x320): ultrafast 350-420 frames/s on a panning texture and ~300-335 on
whole-frame colour waves; veryfast 270-290 and ~160. Only ultrafast meets the 300 frames/s target;
it costs ~3x the bytes of veryfast at the same crf (119 vs 42 KiB for the panning clip)."""

_BUDGET_PRESET = "veryfast"
"""x264 preset of :func:`encode_within`, where bytes, not milliseconds, are the constraint: veryfast
gives ~1/3 of ultrafast's size at the same crf, so a budget is met at a better crf or size."""

ENCODERS = ("auto", "libx264", "h264_nvenc")
"""H.264 encoders :func:`encode` can use. ``auto``: NVENC when a CUDA device and the bundled ffmpeg
can both encode with it (probed once by encoding a tiny clip), else libx264."""

_NVENC_PRESETS = {
    "ultrafast": "p1",
    "superfast": "p2",
    "veryfast": "p3",
    "faster": "p4",
    "fast": "p4",
    "medium": "p5",
    "slow": "p6",
    "slower": "p7",
    "veryslow": "p7",
}
"""The x264 preset names callers use, mapped to NVENC's p1 (fastest) .. p7 (best)."""

_encoder_lock = threading.Lock()
_nvenc_works: bool | None = None
"""The cached answer of the NVENC probe (None: not probed yet): a fact about this machine, learned
once, not a setting."""
_nvenc_warned = threading.Event()

MAX_FPS = 240.0
"""The highest frame rate read or written: :func:`encode` refuses more, and so does a probe."""
_BUDGET_CRFS = (18, 23, 28, 33, 38)
_BUDGET_SCALES = (0.75, 0.5, 0.35)
_BUDGET_MIN_FPS = 4.0
_INTERPOLATION_FACTORS = (2, 3, 4)
_MIN_INTERPOLATE_SIDE = 32
_STDERR_CAP = 1 << 20
"""Bytes of ffmpeg's stderr kept: a file with huge metadata must not grow the log without bound."""


DEFAULT_DECODE_BYTES = 1 << 30
"""``MediaLimits.max_decoded_bytes`` when nothing else is said: 1 GiB. The bot passes its
``[limits] decode_memory_mb`` instead."""

MAX_FRAME_PIXELS = 8192 * 8192
"""One frame's size at most (67 megapixels, above 8K): a sanity bound for the decoder, so a header
declaring 65535x65535 never gets a picture allocated. The member-facing limit is the budget."""

FRAMES_IN_FLIGHT = 40
"""What a streamed edit holds at once, in frames of the video's size at 3 bytes a pixel: the
decoder's reference frames and threads, the frame passing through the bot, x264's frames in
flight. Measured with ``/usr/bin/time`` on 1080p: decoding and encoding at ultrafast peak at about
53 bytes a pixel together (~18 frames); 40 frames leaves room for other codecs."""

INTERPOLATE_BYTES_PER_PIXEL = 330
"""ffmpeg's ``minterpolate`` at its peak, per pixel of the frame (its motion vectors and block
buffers): 711 MB for 1920x1080, 54 MB for 320x240 (measured with ``/usr/bin/time``)."""

INTERPOLATE_PIXELS_PER_S = 3_300_000
"""Output pixels ``minterpolate`` makes per second, for estimating an interpolation's time before
it starts: 1.6 frames/s of 1920x1080, measured on real footage on a 2-core machine (a synthetic
pattern ran at 11-14 megapixels/s; the slower figure is the one that protects the CPU)."""

AUDIO_KBPS = 128
"""AAC bitrate of a result's sound: transparent enough for phone-clip speech and music, and 1 MB a
minute, small beside the picture."""

BUDGET_AUDIO_KBPS = (AUDIO_KBPS, 64, 48, 32)
"""The sound's bitrates when a result must fit a byte budget (:func:`encode_within`): each is
tried before the picture gives anything up; 32 kb/s AAC still carries speech clearly."""

_AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
"""Sample rates a result's sound keeps; any other (96 kHz recorders) is resampled to 48 kHz."""

SOUND_BYTES_PER_SAMPLE = 4
"""A decoded sample of one channel in ffmpeg's filters (32-bit float): what a filter that holds a
whole sound (``areverse``, ``aloop``) is charged per sample and channel."""


@dataclass(frozen=True)
class MediaLimits:
    """Hard limits checked before any decoding (hostile uploads).

    ``max_decoded_bytes`` is the memory budget of one decode: frames held at once x width x height
    x 3 bytes. ``max_frames`` is an optional flat cap on top of it (None: the budget alone decides);
    ``max_pixels`` is a sanity bound on one frame's size (see ``MAX_FRAME_PIXELS``).
    """

    max_bytes: int = 50 * 1024 * 1024
    max_frames: int | None = None
    max_pixels: int = MAX_FRAME_PIXELS  # width*height of one frame
    max_duration_s: float = 60.0
    timeout_s: float = 60.0  # wall-clock limit for any ffmpeg run on input
    max_decoded_bytes: int = DEFAULT_DECODE_BYTES


@dataclass(frozen=True)
class AudioInfo:
    """The audio stream a video's sound is taken from: the one marked default, else the first.

    ``index`` is ffmpeg's index of the stream in the file; ``channels`` is what the result keeps
    (1 for mono, 2 for anything else: surround is mixed down to stereo); ``streams`` counts the
    file's audio streams (a second language or a commentary track is left out)."""

    index: int
    codec: str
    sample_rate: int
    channels: int
    streams: int = 1

    @property
    def output_rate(self) -> int:
        """The sample rate the result's sound has: the source's where AAC carries it."""
        return aac_rate(self.sample_rate)


def aac_rate(rate: int) -> int:
    """``rate`` if an AAC result keeps it, else 48 kHz."""
    return rate if rate in _AAC_RATES else 48000


@dataclass(frozen=True)
class VideoInfo:
    """What ffmpeg reports about an upload's first video stream, and its sound.

    ``width`` and ``height`` are the displayed size (swapped for a video rotated by 90 degrees).
    ``frame_count`` is ``round(duration_s * fps)`` unless the container has no duration, in which
    case the packets were counted. ``container`` is ``mp4``, ``mov``, ``webm``, ``mkv`` or ``gif``.
    ``audio`` is the sound's stream (None: the video is silent). With sound, ``duration_s`` is the
    video stream's own length (the end of its last frame), not the container's, which a longer
    soundtrack stretches; and the frames are read by their timestamps (a variable frame rate is
    made constant at ``fps``), so picture and sound stay in sync.
    """

    width: int
    height: int
    fps: float
    duration_s: float
    frame_count: int
    codec: str
    container: str
    size_bytes: int
    pix_fmt: str = ""
    audio: AudioInfo | None = None

    @property
    def sound_bytes(self) -> int:
        """The whole sound decoded (what ``areverse`` or ``aloop`` holds); 0 when silent."""
        if self.audio is None:
            return 0
        samples = math.ceil(self.duration_s * self.audio.output_rate)
        return samples * self.audio.channels * SOUND_BYTES_PER_SAMPLE

    @property
    def frame_bytes(self) -> int:
        """One decoded RGB frame: width x height x 3 bytes."""
        return self.width * self.height * 3

    @property
    def decoded_bytes(self) -> int:
        """Every frame decoded at once: what :func:`decode` holds."""
        return self.frame_bytes * self.frame_count

    @property
    def frames_with_slack(self) -> int:
        """The frame count to allow for when decoding: the probe's estimate is ``duration x fps``
        rounded, so an honest file can have a frame or two more; a lying one is cut off here."""
        return self.frame_count + max(2, self.frame_count // 50)


def memory_refusal(
    doing: str,
    info: VideoInfo,
    frames: int,
    need: int,
    limit: int,
    *,
    in_flight: bool = False,
    advice: str = "",
) -> MediaError:
    """The one line for a video over the memory budget, with the numbers: what it would take, for
    what size and how many frames (``in_flight``: held at once while streaming), and the limit."""
    held = f"{frames} frames in flight" if in_flight else f"{frames} frames"
    return MediaError(
        f"{doing} would take {format_size(need)} of memory ({info.width}x{info.height} x "
        f"{held}); the limit is {format_size(limit)}" + (f": {advice}" if advice else "")
    )


def check_decode(info: VideoInfo, limits: MediaLimits) -> None:
    """Refuse, with the numbers, a video whose frames would not all fit in the budget at once."""
    if info.decoded_bytes > limits.max_decoded_bytes:
        raise memory_refusal(
            "decoding this video",
            info,
            info.frame_count,
            info.decoded_bytes,
            limits.max_decoded_bytes,
        )


@dataclass(frozen=True)
class EncodedVideo:
    """An mp4 written by :func:`encode`; the numbers describe the file, not the input frames."""

    path: Path
    size_bytes: int
    width: int
    height: int
    fps: float
    frame_count: int
    crf: int
    encoder: str = "libx264"
    audio_kbps: int | None = None
    """The AAC bitrate of its sound; None: the file is silent."""


@dataclass(frozen=True, eq=False)
class Sound:
    """A result's sound, kept beside its frames (``GenerationResult.sound``) and never decoded in
    Python: the encoder reads it straight from its source, through ``filters``.

    The source is one of: ``path``, a video or audio file the bot opened (its stream ``stream``,
    ffmpeg's index in the file); ``track``, an audio-only Matroska file held in memory (a sound
    whose file goes away, such as an upscale's source on a GPU worker, see :meth:`detached`);
    ``samples``, a waveform a generator made (float32, one column per channel, -1..1), written
    once for the encoder. ``rate`` is the source's sample rate (the result keeps it where AAC
    can, see :attr:`output_rate`); ``channels`` is what the result gets (1, or 2 for anything
    more). ``until_s`` cuts the source first, on its own timestamps, where its picture ends: a
    longer soundtrack, or a timestamp far past the end in a crafted file, never reaches a filter
    (so what one holds is bounded by the picture's length). ``filters`` are ffmpeg audio filter
    graphs applied in order after that, each with one input and one output (an edit's ``atrim``,
    ``atempo``, ``areverse``, ``aloop``); a label written ``{n}`` inside one is made unique when
    they are joined. ``duration_s`` is how long the sound lasts after them; the encoder then pads
    or cuts it to the picture's length."""

    path: Path | None = None
    stream: int = 0
    track: bytes | None = field(default=None, repr=False)
    samples: NDArray[np.float32] | None = field(default=None, repr=False)
    rate: int = 48000
    channels: int = 2
    duration_s: float = 0.0
    filters: tuple[str, ...] = ()
    until_s: float | None = None

    def __post_init__(self) -> None:
        given = [x is not None for x in (self.path, self.track, self.samples)]
        if sum(given) != 1:
            raise ValueError("a Sound has exactly one source: a path, a track or samples")
        if self.channels not in (1, 2):
            raise MediaError(f"a sound has 1 or 2 channels (got {self.channels})")
        if not 1000 <= self.rate <= 384000:
            raise MediaError(f"a sound's sample rate must be 1000-384000 Hz (got {self.rate})")

    @classmethod
    def of_file(cls, path: str | Path, info: VideoInfo) -> Sound | None:
        """The sound of a probed video (its default audio stream, cut to the picture's length);
        None when it has none."""
        audio = info.audio
        if audio is None:
            return None
        return cls(
            path=Path(path),
            stream=audio.index,
            rate=audio.sample_rate,
            channels=audio.channels,
            duration_s=info.duration_s,
            until_s=info.duration_s,
        )

    @classmethod
    def waveform(cls, samples: ArrayLike, rate: int) -> Sound:
        """A generator's sound: ``samples`` (a row per sample: one value, or one per channel for
        1 or 2 channels) at ``rate`` Hz."""
        data = np.asarray(samples, dtype=np.float32)
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2 or data.shape[1] not in (1, 2) or data.shape[0] == 0:
            raise MediaError(
                f"a waveform is samples x 1 or 2 channels (got an array of shape {data.shape})"
            )
        return cls(
            samples=np.ascontiguousarray(data),
            rate=rate,
            channels=int(data.shape[1]),
            duration_s=data.shape[0] / rate,
        )

    @property
    def output_rate(self) -> int:
        """The result's sample rate: ``rate`` where AAC carries it, else 48 kHz."""
        return aac_rate(self.rate)

    def then(self, graph: str, duration_s: float) -> Sound:
        """This sound through one more filter graph, lasting ``duration_s`` after it."""
        return replace(self, filters=(*self.filters, graph), duration_s=duration_s)

    @property
    def held_bytes(self) -> int:
        """The whole sound decoded: what a filter holding all of it (``areverse``) takes."""
        samples = math.ceil(self.duration_s * self.output_rate)
        return samples * self.channels * SOUND_BYTES_PER_SAMPLE

    def detached(self, timeout_s: float = _OWN_FRAMES_TIMEOUT_S) -> Sound:
        """This sound with its source in memory, so it outlives its file and can travel between
        processes: a file's audio stream is copied (not re-encoded) into a Matroska track; a
        track or a waveform is already in memory."""
        if self.path is None:
            return self
        with tempfile.TemporaryDirectory(prefix="videobot-sound-") as folder:
            out = Path(folder) / "sound.mka"
            with _open_upload(self.path, _OWN_FILE_LIMITS) as upload:
                for codec in ("copy", "flac"):  # flac: for a codec Matroska cannot hold as it is
                    result = _run(
                        [
                            "-loglevel",
                            "error",
                            *_input_args(upload, MAX_FRAME_PIXELS),
                            "-map",
                            f"0:{self.stream}",
                            "-c:a",
                            codec,
                            "-f",
                            "matroska",
                            "-y",
                            f"file:{out}",
                        ],
                        timeout_s=timeout_s,
                        action="reading the sound",
                        pass_fds=(upload.fd,),
                    )
                    if result.returncode == 0:
                        break
                    _log_failure(f"sound copy ({codec})", result)
                else:
                    raise MediaError("the video's sound could not be read")
            track = out.read_bytes()
        return replace(self, path=None, track=track, stream=0)


_OWN_FILE_LIMITS = MediaLimits(max_bytes=1 << 62)
"""Limits for reopening a file the bot already vetted or wrote (a sound's source): the regular-file
check and the demuxer whitelist still apply; its size was checked when it was first opened."""


def _seconds(value: float) -> str:
    """A time for an ffmpeg filter option, to the microsecond."""
    return f"{value:.6f}"


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def probe(path: str | Path, limits: MediaLimits = MediaLimits()) -> VideoInfo:
    """Describe an upload, refusing anything that is not an allowed video or is over a limit."""
    with _open_upload(path, limits) as upload:
        return _probe_upload(upload, limits).info


class OpenVideo:
    """An upload opened, vetted and probed (see :func:`open_video`): its frames can be streamed,
    one at a time, as often as needed (a loop decodes it once per pass)."""

    def __init__(self, upload: _Upload, probed: _Probed, limits: MediaLimits) -> None:
        self._upload = upload
        self._probed = probed
        self._limits = limits

    @property
    def info(self) -> VideoInfo:
        return self._probed.info

    def frames(
        self,
        *,
        max_frames: int,
        filters: str = "",
        timeout_s: float | None = None,
        too_many: str | None = None,
    ) -> Generator[bytes, None, None]:
        """Raw RGB frames (``info.frame_bytes`` each) in order, decoded as they are read: the bot
        holds one at a time. ``filters`` run in the decoding ffmpeg after the scale to the probed
        size (``reverse`` holds every frame there: the caller charges it). More than
        ``max_frames`` frames is refused with ``too_many`` (or a line naming the cap); the input
        is cut at ``max_frames + 1`` before ``filters``, so a lying file cannot make a filter hold
        more. A damaged file raises when the end is reached; closing the iterator early (a trim)
        stops ffmpeg. Streams of one video must not run at the same time (they share its
        descriptor's offset)."""
        return _stream_frames(
            self._upload,
            self._probed,
            self._limits,
            max_frames=max_frames,
            filters=filters,
            timeout_s=self._limits.timeout_s if timeout_s is None else timeout_s,
            too_many=too_many,
        )


@contextmanager
def open_video(path: str | Path, limits: MediaLimits = MediaLimits()) -> Iterator[OpenVideo]:
    """Open, vet and probe an upload for streaming (:meth:`OpenVideo.frames`); the file stays
    open, and the same file is read, until the block ends. Truncated GIF and Matroska files are
    refused here; what a stream holds is the caller's to check against the budget."""
    with _open_upload(path, limits) as upload:
        probed = _probe_upload(upload, limits)
        _refuse_if_cut_short(upload, probed.info.container)
        yield OpenVideo(upload, probed, limits)


def decode(
    path: str | Path,
    limits: MediaLimits = MediaLimits(),
) -> tuple[list[Image.Image], float]:
    """RGB frames and frame rate of an upload, with every limit enforced before and during decoding.

    Every frame is held, so the probed size must fit ``limits.max_decoded_bytes`` (refused with
    the numbers), and the decoder stops at the frames the budget (or ``max_frames``) allows, should
    the file hold more than it claims. A damaged or truncated file is refused as a whole (ffmpeg
    runs with ``-xerror``) rather than returning the part that happened to decode.
    """
    frames, info = decode_video(path, limits)
    return frames, info.fps


def decode_video(
    path: str | Path, limits: MediaLimits = MediaLimits()
) -> tuple[list[Image.Image], VideoInfo]:
    """:func:`decode`, with the probe of the file that was decoded (its size, rate and sound)."""
    with open_video(path, limits) as video:
        info = video.info
        check_decode(info, limits)
        cap, too_many = _frame_cap(info, limits)
        size = (info.width, info.height)
        frames = [
            Image.frombytes("RGB", size, data)
            for data in video.frames(max_frames=cap, too_many=too_many)
        ]
    return frames, info


def _frame_cap(info: VideoInfo, limits: MediaLimits) -> tuple[int, str]:
    """How many frames :func:`decode` may hold, and the line for a file with more."""
    by_budget = max(1, limits.max_decoded_bytes // info.frame_bytes)
    if limits.max_frames is not None and limits.max_frames <= by_budget:
        cap = limits.max_frames
        return cap, f"the video has more than {cap} frames; the limit is {cap}"
    return by_budget, (
        f"the video has more than {by_budget} frames; at {info.width}x{info.height} the memory "
        f"limit of {format_size(limits.max_decoded_bytes)} holds {by_budget}"
    )


class VideoFrames(Sequence[Image.Image]):
    """The frames of a video file, decoded when they are read and one at a time, never all at
    once: what an edit's result holds instead of a list of pictures (the embed reads its length
    and first frame; an upload over Discord's limit is re-encoded from it frame by frame).

    ``indices`` selects frames of the file (a slice of this sequence is another ``VideoFrames``,
    so ``frames[::2]`` decodes nothing either). Only ascending selections are supported: the file
    is read forwards."""

    def __init__(
        self,
        path: str | Path,
        info: VideoInfo,
        limits: MediaLimits = MediaLimits(),
        indices: range | None = None,
    ) -> None:
        self.path = Path(path)
        self.info = info
        self._limits = limits
        self._indices = range(info.frame_count) if indices is None else indices
        if self._indices.step < 0:
            raise ValueError("VideoFrames reads forwards: a negative step is not supported")

    @property
    def size(self) -> tuple[int, int]:
        return self.info.width, self.info.height

    def __len__(self) -> int:
        return len(self._indices)

    @overload
    def __getitem__(self, index: int) -> Image.Image: ...

    @overload
    def __getitem__(self, index: slice) -> VideoFrames: ...

    def __getitem__(self, index: int | slice) -> Image.Image | VideoFrames:
        if isinstance(index, slice):
            return VideoFrames(self.path, self.info, self._limits, self._indices[index])
        wanted = self._indices[index]  # IndexError past the end, as a list
        for frame in VideoFrames(self.path, self.info, self._limits, range(wanted, wanted + 1)):
            return frame
        raise IndexError(f"frame {wanted} is past the end of the video")

    def __iter__(self) -> Iterator[Image.Image]:
        if not self._indices:
            return
        wanted = iter(self._indices)
        target = next(wanted)
        with open_video(self.path, self._limits) as video:
            stream = video.frames(max_frames=self.info.frames_with_slack)
            try:
                for number, data in enumerate(stream):
                    while number == target:
                        yield Image.frombytes("RGB", self.size, data)
                        target = next(wanted, -1)
                    if target < 0:
                        return
            finally:
                stream.close()
        if target >= 0:
            raise MediaError(f"the video ended before frame {target}")


def encode(
    frames: Sequence[Image.Image],
    path: str | Path,
    fps: float,
    *,
    crf: int = 18,
    preset: str = DEFAULT_PRESET,
    max_side: int | None = None,
    encoder: str = "auto",
    sound: Sound | None = None,
    audio_kbps: int = AUDIO_KBPS,
) -> EncodedVideo:
    """Write an H.264/yuv420p mp4 with the index first (``+faststart``) so it plays inline, with
    ``sound`` (if any) as AAC at ``audio_kbps``, fitted to the frames' length.

    The file appears at ``path`` only when complete: ffmpeg writes a hidden sibling that is moved
    into place on success and deleted on any failure. Odd sizes are scaled to the next even size
    (4:2:0 needs even dimensions); ``max_side`` shrinks the longer side, keeping the aspect.
    ``encoder`` is ``auto`` (NVENC where it works, see :func:`video_encoder`), ``libx264`` or
    ``h264_nvenc`` (the ``[speed] encoder`` setting); an NVENC encode that fails is redone with
    libx264, and NVENC is not tried again in this process.
    """
    width, height = _frame_size(frames)
    encoded = encode_stream(
        lambda: _rgb_bytes(frames),
        path,
        width,
        height,
        fps,
        crf=crf,
        preset=preset,
        max_side=max_side,
        encoder=encoder,
        sound=sound,
        audio_kbps=audio_kbps,
        duration_s=len(frames) / fps if fps > 0 else None,
    )
    return replace(encoded, frame_count=len(frames))


def encode_stream(
    chunks: Callable[[], Iterable[bytes]],
    path: str | Path,
    width: int,
    height: int,
    fps: float,
    *,
    crf: int = 18,
    preset: str = DEFAULT_PRESET,
    max_side: int | None = None,
    encoder: str = "auto",
    filters: str = "",
    frames: int | None = None,
    timeout_s: float = _OWN_FRAMES_TIMEOUT_S,
    sound: Sound | None = None,
    audio_kbps: int = AUDIO_KBPS,
    duration_s: float | None = None,
) -> EncodedVideo:
    """:func:`encode` for frames that are never all in memory: ``chunks()`` gives raw RGB frames
    of ``width`` x ``height`` one at a time (called again if an NVENC encode must be redone with
    libx264). ``filters`` run on them before the encoder's own scale (interpolation), and
    ``frames`` cuts the output at that many. ``frame_count`` of the result is the frames fed in
    (or ``frames`` when given).

    ``sound`` is muxed in the same ffmpeg run, as AAC at ``audio_kbps``, padded with silence or
    cut to ``duration_s`` (the picture's length; ``frames / fps`` when ``frames`` is given). A
    sound ffmpeg cannot read is logged and left out: the result is silent, and says so
    (``audio_kbps`` None), rather than lost. Without ``sound`` no audio track is written."""
    global _nvenc_works
    if width < 1 or height < 1:
        raise MediaError(f"the frames must be at least 1x1 pixels (got {width}x{height})")
    _check_encode_args(fps, crf, preset, max_side)
    if sound is not None and audio_kbps not in BUDGET_AUDIO_KBPS:
        raise MediaError(
            f"the audio bitrate must be one of {', '.join(map(str, BUDGET_AUDIO_KBPS))} kb/s "
            f"(got {audio_kbps})"
        )
    if duration_s is None and frames is not None:
        duration_s = frames / fps
    out_w, out_h = _even_size(width, height, max_side)
    target = Path(path)
    codec = video_encoder(encoder)
    fed = [0]

    def run(codec: str, tmp: Path, sound: Sound | None) -> _Completed:
        fed[0] = 0
        return _encode_run(
            _counted(chunks(), fed),
            tmp,
            width,
            height,
            fps,
            out_w,
            out_h,
            crf,
            preset,
            codec,
            filters=filters,
            frames=frames,
            timeout_s=timeout_s,
            sound=sound,
            audio_kbps=audio_kbps,
            duration_s=duration_s,
        )

    with _atomic_output(target) as tmp:
        result = run(codec, tmp, sound)
        if result.returncode != 0 and codec == "h264_nvenc":
            _log_failure("encode (h264_nvenc)", result)
            log.warning("h264_nvenc failed; encoding with libx264 from now on")
            with _encoder_lock:
                _nvenc_works = False
            codec = "libx264"
            result = run(codec, tmp, sound)
        if result.returncode != 0 and fed[0] > 0 and sound is not None:
            _log_failure("encode with sound", result)
            log.warning("the sound could not be encoded; writing the video without it")
            sound = None
            result = run(codec, tmp, sound)
        if result.returncode != 0 or fed[0] == 0:
            _log_failure("encode", result)
            if fed[0] == 0:
                raise MediaError("there are no frames to process (at least 1 is needed)")
            raise MediaError("encoding the video failed (ffmpeg could not write the mp4)")
    return EncodedVideo(
        path=target,
        size_bytes=target.stat().st_size,
        width=out_w,
        height=out_h,
        fps=fps,
        frame_count=fed[0] if frames is None else frames,
        crf=crf,
        encoder=codec,
        audio_kbps=audio_kbps if sound is not None else None,
    )


def _counted(chunks: Iterable[bytes], fed: list[int]) -> Iterator[bytes]:
    """``chunks``, counting them in ``fed[0]``; closing this closes the source (a decoder)."""
    iterator = iter(chunks)
    try:
        for chunk in iterator:
            fed[0] += 1
            yield chunk
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def _encode_run(
    chunks: Iterable[bytes],
    tmp: Path,
    width: int,
    height: int,
    fps: float,
    out_w: int,
    out_h: int,
    crf: int,
    preset: str,
    codec: str,
    *,
    filters: str = "",
    frames: int | None = None,
    timeout_s: float = _OWN_FRAMES_TIMEOUT_S,
    sound: Sound | None = None,
    audio_kbps: int = AUDIO_KBPS,
    duration_s: float | None = None,
) -> _Completed:
    codec_args = _nvenc_args(crf, preset) if codec == "h264_nvenc" else _x264_args(crf, preset)
    graph = (f"{filters}," if filters else "") + _encode_filter(out_w, out_h)
    with ExitStack() as stack:
        audio: list[str] = ["-an"]
        fds: tuple[int, ...] = ()
        if sound is not None:
            audio_input, fds, label = stack.enter_context(_sound_input(sound))
            audio = [
                *audio_input,
                "-filter_complex",
                _sound_graph(sound, label, duration_s),
                "-map",
                "0:v:0",
                "-map",
                "[sound]",
                *_aac_args(audio_kbps),
            ]
        return _run(
            [
                *_raw_input_args(width, height, fps),
                *audio,
                "-vf",
                graph,
                *(["-frames:v", str(frames)] if frames is not None else []),
                *codec_args,
                "-movflags",
                "+faststart",
                "-f",
                "mp4",
                "-y",
                f"file:{tmp}",
            ],
            timeout_s=timeout_s,
            action="encoding the video",
            feed=chunks,
            pass_fds=fds,
        )


@contextmanager
def _sound_input(sound: Sound, index: int = 1) -> Iterator[tuple[list[str], tuple[int, ...], str]]:
    """ffmpeg's input number ``index`` (the second, after the frames) for ``sound``: its options,
    the descriptor it reads and the label of the stream. A file is opened and vetted as an upload
    is (the same demuxer whitelist); a track or a waveform is written once to a private temporary
    file first."""
    with ExitStack() as stack:
        path, label, raw = sound.path, f"{index}:{sound.stream}", []
        if path is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="videobot-")))
            path = folder / "sound"
            if sound.track is not None:
                path.write_bytes(sound.track)
            else:
                assert sound.samples is not None
                path.write_bytes(np.asarray(sound.samples, "<f4").tobytes())
                layout = "mono" if sound.channels == 1 else "stereo"
                raw = ["-f", "f32le", "-ar", str(sound.rate), "-ch_layout", layout]
            label = f"{index}:a:0"
        upload = stack.enter_context(_open_upload(path, _OWN_FILE_LIMITS))
        if raw:  # our own samples: no demuxer to choose
            args = ["-protocol_whitelist", "fd", *raw, "-fd", str(upload.fd), "-i", "fd:"]
        else:
            args = _input_args(upload, MAX_FRAME_PIXELS)
        yield args, (upload.fd,), label


def _sound_graph(sound: Sound, label: str, duration_s: float | None, prefix: str = "") -> str:
    """The filter graph from ``label`` to ``[{prefix}sound]``: cut at ``until_s``; on the source's
    timestamps from 0 (a gap or a late start filled with silence); at the result's rate and
    channels; through the sound's filters; then padded with silence and cut to ``duration_s``.
    ``prefix`` keeps the labels of several sounds in one graph apart."""
    layout = "mono" if sound.channels == 1 else "stereo"
    until = f"atrim=end={_seconds(sound.until_s)}," if sound.until_s is not None else ""
    steps = [
        f"{until}aresample={sound.output_rate}:async=1:first_pts=0,"
        f"aformat=sample_fmts=fltp:sample_rates={sound.output_rate}:channel_layouts={layout}",
        *sound.filters,
    ]
    if duration_s is not None:
        steps.append(f"apad,atrim=end={_seconds(duration_s)}")
    chains, source = [], f"[{label}]"
    for number, step in enumerate(steps):
        out = f"[{prefix}sound]" if number == len(steps) - 1 else f"[{prefix}s{number}]"
        chains.append(f"{source}{step.replace('{n}', f'{prefix}{number}')}{out}")
        source = out
    return ";".join(chains)


def joined_sound(
    parts: Sequence[tuple[Sound, float]], timeout_s: float = _OWN_FRAMES_TIMEOUT_S
) -> Sound:
    """Sounds one after another, each padded with silence or cut to its length in seconds (a
    clip's sound then a continuation's): one ffmpeg filter graph (``concat``), no sample touched
    in Python. The result is a lossless (FLAC) Matroska track in memory, at the first part's
    rate, stereo if any part is."""
    if not parts:
        raise MediaError("there is no sound to join")
    rate = parts[0][0].output_rate
    channels = max(sound.channels for sound, _ in parts)
    layout = "mono" if channels == 1 else "stereo"
    total = sum(seconds for _, seconds in parts)
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="videobot-join-")))
        args: list[str] = []
        fds: list[int] = []
        chains: list[str] = []
        for number, (sound, seconds) in enumerate(parts):
            inputs, opened, label = stack.enter_context(_sound_input(sound, number))
            args += inputs
            fds += opened
            chains.append(_sound_graph(sound, label, seconds, prefix=f"p{number}"))
            chains.append(
                f"[p{number}sound]aresample={rate},aformat=sample_fmts=fltp:sample_rates={rate}"
                f":channel_layouts={layout}[part{number}]"
            )
        joined = "".join(f"[part{n}]" for n in range(len(parts)))
        chains.append(f"{joined}concat=n={len(parts)}:v=0:a=1[sound]")
        out = folder / "joined.mka"
        result = _run(
            [
                "-loglevel",
                "error",
                *args,
                "-filter_complex",
                ";".join(chains),
                "-map",
                "[sound]",
                "-c:a",
                "flac",
                "-f",
                "matroska",
                "-y",
                f"file:{out}",
            ],
            timeout_s=timeout_s,
            action="joining the sound",
            pass_fds=tuple(fds),
        )
        if result.returncode != 0:
            _log_failure("sound join", result)
            raise MediaError("the sounds could not be joined")
        track = out.read_bytes()
    return Sound(track=track, rate=rate, channels=channels, duration_s=total)


def _aac_args(kbps: int) -> list[str]:
    return ["-c:a", "aac", "-b:a", f"{kbps}k"]


def video_encoder(choice: str = "auto") -> str:
    """The encoder a ``choice`` (``auto``, ``libx264``, ``h264_nvenc``) gives on this machine:
    libx264 unless the choice allows NVENC and it works."""
    if choice not in ENCODERS:
        raise MediaError(f"unknown encoder {choice!r} (allowed: {', '.join(ENCODERS)})")
    if choice == "libx264" or (choice == "auto" and not _cuda_present()):
        return "libx264"
    if nvenc_available():
        return "h264_nvenc"
    if choice == "h264_nvenc" and not _nvenc_warned.is_set():
        _nvenc_warned.set()
        log.warning("h264_nvenc was asked for but does not work here; using libx264")
    return "libx264"


def nvenc_available() -> bool:
    """Whether the bundled ffmpeg can encode with NVENC on this machine: probed once by encoding
    a tiny clip (ffmpeg lists h264_nvenc even where no NVIDIA driver or GPU can run it)."""
    global _nvenc_works
    with _encoder_lock:
        if _nvenc_works is None:
            _nvenc_works = _probe_nvenc()
            log.info("NVENC probe: h264_nvenc %s", "works" if _nvenc_works else "does not work")
        return _nvenc_works


def _probe_nvenc() -> bool:
    frames = [Image.new("RGB", (256, 256), (16 * i, 128, 64)) for i in range(8)]
    with tempfile.TemporaryDirectory(prefix="videobot-nvenc-") as folder:
        out = Path(folder) / "probe.mp4"
        try:
            result = _encode_run(
                _rgb_bytes(frames), out, 256, 256, 8.0, 256, 256, 23, "ultrafast", "h264_nvenc"
            )
        except (OSError, MediaError):
            return False
        return result.returncode == 0 and out.is_file() and out.stat().st_size > 0


def _cuda_present() -> bool:
    """A CUDA device is visible: asked of torch when it is already loaded (never imported here),
    else of the NVIDIA driver's control device."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return bool(torch.cuda.is_available())
        except Exception:
            return False
    return os.path.exists("/dev/nvidiactl")


def encode_within(
    frames: Sequence[Image.Image],
    path: str | Path,
    fps: float,
    max_bytes: int,
    *,
    sound: Sound | None = None,
) -> EncodedVideo:
    """Encode under a byte budget (e.g. Discord's upload limit), giving up as little as possible.

    The sound counts in the budget, and gives way first: its bitrate goes down 128, 64, 48, 32
    kb/s (``BUDGET_AUDIO_KBPS``) before the picture gives anything up. The picture's steps, in
    order: crf 18, 23, 28, 33, 38 at full size; then 0.75, 0.5 and 0.35 of the size at crf 38;
    then every other frame dropped (half the fps, repeatedly) while the rate stays at or above
    4 fps. Each step is meant to be smaller than the one before, so the first that fits is
    returned; x264 is deterministic, so the same input always lands on the same step. A lower
    sound bitrate is encoded only where the size it would save can make the file fit. Encodes
    use the ``veryfast`` preset (see ``_BUDGET_PRESET``).
    """
    if max_bytes <= 0:
        raise MediaError(f"the size budget must be positive (got {max_bytes} bytes)")
    width, height = _frame_size(frames)
    _check_fps(fps)
    target = Path(path)
    duration = len(frames) / fps
    kbps = list(BUDGET_AUDIO_KBPS) if sound is not None else [AUDIO_KBPS]
    smallest: EncodedVideo | None = None
    with _atomic_output(target) as trial:
        for step in _budget_steps(width, height, fps):

            def attempt(audio_kbps: int, step: _BudgetStep = step) -> EncodedVideo:
                return encode(
                    frames[:: step.stride],
                    trial,
                    fps / step.stride,
                    crf=step.crf,
                    preset=_BUDGET_PRESET,
                    max_side=step.side,
                    encoder="libx264",  # bytes matter here: x264's rate control, deterministic
                    sound=sound,
                    audio_kbps=audio_kbps,
                )

            encoded = attempt(kbps[0])
            while (lower := _lower_sound_bitrate(encoded, kbps, duration, max_bytes)) is not None:
                kbps = kbps[kbps.index(lower) :]
                encoded = attempt(lower)
            if encoded.size_bytes <= max_bytes:
                return replace(encoded, path=target)
            if smallest is None or encoded.size_bytes < smallest.size_bytes:
                smallest = encoded
            if encoded.audio_kbps is not None:  # the sound gave what it could: the picture next
                kbps = kbps[-1:]
        assert smallest is not None  # the ladder always has a first step
        _discard(trial)
    sound_part = f", sound {smallest.audio_kbps} kb/s" if smallest.audio_kbps else ""
    raise MediaError(
        f"the video does not fit in {format_size(max_bytes)}: the smallest encode was "
        f"{format_size(smallest.size_bytes)} ({smallest.width}x{smallest.height} at "
        f"{smallest.fps:g} fps, crf {smallest.crf}{sound_part})"
    )


def _lower_sound_bitrate(
    encoded: EncodedVideo, kbps: list[int], duration_s: float, max_bytes: int
) -> int | None:
    """The sound bitrate to try next for ``encoded``, which is over the budget: the highest of
    the lower ones in ``kbps`` at which it would fit, judged by what the sound's bitrate costs
    over ``duration_s``. None when it fits, is silent, has no lower bitrate left, or would not
    fit even at the lowest (the picture's next step then starts from the lowest)."""
    if encoded.size_bytes <= max_bytes or encoded.audio_kbps is None or len(kbps) < 2:
        return None
    picture = encoded.size_bytes - _sound_size(encoded.audio_kbps, duration_s)
    for lower in kbps[1:]:
        if picture + _sound_size(lower, duration_s) <= max_bytes:
            return lower
    return None


def _sound_size(kbps: int, duration_s: float) -> int:
    """What an AAC track at ``kbps`` takes over ``duration_s``, its framing included."""
    return math.ceil(kbps * 1000 / 8 * duration_s * 1.02)


def interpolate(
    frames: Sequence[Image.Image], fps: float, factor: int
) -> tuple[list[Image.Image], float]:
    """Motion-compensated frame interpolation (ffmpeg ``minterpolate``) to ``fps * factor``.

    Output: exactly ``len(frames) * factor`` frames at ``fps * factor``, so the clip lasts exactly
    as long as before. Output frame ``k * factor`` is input frame ``k``; the ``factor - 1`` frames
    after it are interpolated towards input ``k + 1``, and the last input frame is held (repeated)
    for its ``factor - 1`` followers, just as it was shown for one whole input frame before.
    ``factor == 1`` returns the frames unchanged.
    """
    if factor == 1:
        return list(frames), fps
    if isinstance(factor, bool) or factor not in _INTERPOLATION_FACTORS:
        raise MediaError(f"the interpolation factor must be 1, 2, 3 or 4 (got {factor})")
    width, height = _frame_size(frames)
    _check_fps(fps)
    out_fps = fps * factor
    expected = len(frames) * factor
    out: list[Image.Image] = []
    result = _run(
        [
            *_raw_input_args(width, height, fps),
            "-vf",
            _interpolate_filter(fps, factor, width, height),
            "-frames:v",
            str(expected),
            *_raw_output_args(),
        ],
        timeout_s=_OWN_FRAMES_TIMEOUT_S,
        action="interpolating the video",
        feed=_rgb_bytes(frames),
        frame_size=width * height * 3,
        on_frame=lambda data: out.append(Image.frombytes("RGB", (width, height), data)),
    )
    if result.returncode != 0 or len(out) != expected:
        _log_failure("interpolate", result)
        raise MediaError(
            f"frame interpolation failed (got {len(out)} of {expected} frames from ffmpeg)"
        )
    return out, out_fps


# --------------------------------------------------------------------------------------------------
# Uploads: open, probe, decode
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Upload:
    """An opened upload: ffmpeg reads this descriptor, never the name."""

    fd: int
    size: int
    head: bytes


@dataclass(frozen=True)
class _Stream:
    """The parsed description of one video stream in ffmpeg's log."""

    index: int
    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: float


@dataclass(frozen=True)
class _Probed:
    info: VideoInfo
    stream_index: int


@contextmanager
def _open_upload(path: str | Path, limits: MediaLimits) -> Iterator[_Upload]:
    """Open and vet the file before ffmpeg sees it.

    ``O_NONBLOCK`` keeps a FIFO from hanging the open; ``fstat`` on the open descriptor means the
    checked file is the one ffmpeg reads, even if the name is swapped afterwards.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise MediaError("the video file does not exist") from None
    except OSError as exc:
        raise MediaError(f"the video file could not be opened ({exc.strerror})") from None
    except ValueError:  # a NUL byte in the name
        raise MediaError("the video file name is not valid") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MediaError(f"this is not a regular file (allowed: {ALLOWED_KINDS})")
        if info.st_size > limits.max_bytes:
            raise MediaError(
                f"the file is {format_size(info.st_size)}; "
                f"the limit is {format_size(limits.max_bytes)}"
            )
        if info.st_size == 0:
            raise MediaError(f"the file is empty, so not a video (allowed: {ALLOWED_KINDS})")
        os.set_blocking(fd, True)
        yield _Upload(fd=fd, size=info.st_size, head=os.pread(fd, 64, 0))
    finally:
        os.close(fd)


def _input_args(upload: _Upload, max_pixels: int) -> list[str]:
    """Options that open an upload safely; the decoder itself refuses pictures over
    ``max_pixels`` (a coded size: see :func:`_coded_pixels`)."""
    os.lseek(upload.fd, 0, os.SEEK_SET)  # the offset is shared with every ffmpeg that used the fd
    return [
        "-protocol_whitelist",
        "fd",
        "-format_whitelist",
        _DEMUXERS,
        "-max_pixels",
        str(max_pixels),
        "-fd",
        str(upload.fd),
        "-i",
        "fd:",
    ]


_CODEC_BLOCK = 128
"""Decoders allocate pictures padded to their block size (H.264: 16, VP9: 64, AV1: 128), and
``-max_pixels`` counts the padded size: a native 1080x1920 portrait clip is decoded as 1088x1920.
The decoder's guard allows for the largest block."""


def _coded_pixels(width: int, height: int) -> int:
    """The most pixels a decoder may allocate for a picture displayed at ``width x height``."""
    return _padded(width) * _padded(height)


def _padded(side: int) -> int:
    return -(-side // _CODEC_BLOCK) * _CODEC_BLOCK


def _probe_guard(limits: MediaLimits) -> int:
    """``-max_pixels`` while probing, before the size is known: the limit on one frame, with room
    for a block's padding on each side of a frame that just fits."""
    return limits.max_pixels + limits.max_pixels // 8 + _CODEC_BLOCK * _CODEC_BLOCK


def _probe_upload(upload: _Upload, limits: MediaLimits) -> _Probed:
    result = _run(
        ["-loglevel", "info", *_input_args(upload, _probe_guard(limits))],
        timeout_s=limits.timeout_s,
        action="reading the video",
        pass_fds=(upload.fd,),
    )
    demuxer = _parse_demuxer(result.stderr)
    stream = _parse_video_stream(result.stderr)
    audio = _parse_audio_stream(result.stderr)
    duration = _parse_duration(result.stderr)
    if audio is not None:  # the container's length is the longer stream's: a soundtrack's
        duration = _video_end(upload, stream.index, limits)
        frame_count = max(1, round(duration * stream.fps))
    elif duration is None:  # e.g. webm recorded by a browser: count packets instead
        frame_count = _count_packets(upload, stream.index, limits)
        duration = frame_count / stream.fps
    else:
        frame_count = round(duration * stream.fps)
    info = VideoInfo(
        width=stream.width,
        height=stream.height,
        fps=stream.fps,
        duration_s=duration,
        frame_count=frame_count,
        codec=stream.codec,
        container=_container(demuxer, upload.head),
        size_bytes=upload.size,
        pix_fmt=stream.pix_fmt,
        audio=audio,
    )
    _check_limits(info, limits)
    return _Probed(info=info, stream_index=stream.index)


def _packet_cap(limits: MediaLimits) -> int:
    """Packets counted at most: one more than the longest allowed video could have."""
    if limits.max_frames is not None:
        return limits.max_frames + 1
    return math.ceil(limits.max_duration_s * MAX_FPS) + 1


def _copy_packets(upload: _Upload, stream_index: int, limits: MediaLimits) -> list[str]:
    """The start of an ffmpeg run that copies one stream's packets (never decodes them), at
    most as many as the limits could accept: what counting frames and finding the end share."""
    return [
        "-loglevel",
        "error",
        *_input_args(upload, _probe_guard(limits)),
        "-map",
        f"0:{stream_index}",
        "-c",
        "copy",
        "-frames:v",
        str(_packet_cap(limits)),
    ]


def _count_packets(upload: _Upload, stream_index: int, limits: MediaLimits) -> int:
    """Frame count of a container without a duration; packets are copied, not decoded (cheap)."""
    result = _run(
        [
            *_copy_packets(upload, stream_index, limits),
            "-nostats",
            "-progress",
            "pipe:2",
            "-f",
            "null",
            "-",
        ],
        timeout_s=limits.timeout_s,
        action="reading the video",
        pass_fds=(upload.fd,),
    )
    counts = re.findall(r"^frame=(\d+)\s*$", result.stderr, re.MULTILINE)
    if result.returncode != 0 or not counts:
        _log_failure("count", result)
        raise MediaError("the video is damaged or truncated and could not be read")
    return int(counts[-1])


def _video_end(upload: _Upload, stream_index: int, limits: MediaLimits) -> float:
    """When the video stream's last frame ends, in seconds from the file's start: its packets
    are copied (not decoded) and the latest presentation time plus duration is taken."""
    with tempfile.TemporaryDirectory(prefix="videobot-probe-") as folder:
        listing = Path(folder) / "packets.txt"
        result = _run(
            [
                *_copy_packets(upload, stream_index, limits),
                "-f",
                "framecrc",
                "-y",
                f"file:{listing}",
            ],
            timeout_s=limits.timeout_s,
            action="reading the video",
            pass_fds=(upload.fd,),
        )
        text = listing.read_text("ascii", "replace") if listing.exists() else ""
    end = _packets_end(text)
    if result.returncode != 0 or end is None:
        _log_failure("packet times", result)
        raise MediaError("the video is damaged or truncated and could not be read")
    return end


_TIME_BASE_RE = re.compile(r"^#tb \d+: (\d+)/(\d+)$", re.MULTILINE)
_PACKET_RE = re.compile(r"^\d+, *-?\d+, *(-?\d+), *(\d+),", re.MULTILINE)


def _packets_end(listing: str) -> float | None:
    """The end of the latest packet of a one-stream ``framecrc`` listing, in seconds."""
    base = _TIME_BASE_RE.search(listing)
    ends = [int(m.group(1)) + int(m.group(2)) for m in _PACKET_RE.finditer(listing)]
    if base is None or not ends or int(base.group(2)) == 0:
        return None
    return max(ends) * int(base.group(1)) / int(base.group(2))


def _stream_frames(
    upload: _Upload,
    probed: _Probed,
    limits: MediaLimits,
    *,
    max_frames: int,
    filters: str,
    timeout_s: float,
    too_many: str | None,
) -> Generator[bytes, None, None]:
    """Decode to RGB at the probed size, yielding each frame as it comes: the scale keeps each
    frame's memory bounded even if later frames claim another size, ``-max_pixels`` (the probed
    size, padded) stops a decoder from allocating more, and ``-frames:v max+1`` lets an over-long
    file be detected. See :meth:`OpenVideo.frames`."""
    info = probed.info
    frame_size = info.frame_bytes
    graph = f"scale={info.width}:{info.height}:flags=bicubic,setsar=1"
    if info.audio is not None:  # frames by their timestamps, so the sound stays in sync
        graph = f"fps={_rate(info.fps)}:start_time=0," + graph
    if filters:  # a filter that holds frames (reverse) never sees more than the cap allows
        graph += f",trim=end_frame={max_frames + 1},{filters}"
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-xerror",
        *_input_args(upload, _coded_pixels(info.width, info.height)),
        "-map",
        f"0:{probed.stream_index}",
        "-frames:v",
        str(max_frames + 1),
        "-vf",
        graph,
        *_raw_output_args(),
    ]
    killed = threading.Event()
    count = 0
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            pass_fds=(upload.fd,),
        )
        timer = threading.Timer(timeout_s, _kill, (process, killed))
        timer.start()
        try:
            assert process.stdout is not None
            while True:
                data = process.stdout.read(frame_size)
                if len(data) < frame_size:  # end of output; a partial last frame is dropped
                    break
                count += 1
                if count > max_frames:
                    raise MediaError(
                        too_many
                        or f"the video has more than {max_frames} frames; the limit is {max_frames}"
                    )
                yield data
            process.wait()
        finally:  # also when the reader stops early (a trim) or fails: ffmpeg never outlives it
            timer.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if killed.is_set():
            raise MediaError(f"reading the video took longer than {timeout_s:g} s")
        if process.returncode != 0 or count == 0:
            errors.seek(0)
            stderr = errors.read(_STDERR_CAP).decode("utf-8", "replace")
            _log_failure("decode", _Completed(process.returncode, stderr))
            raise MediaError("the video is damaged or truncated and could not be decoded")


def _refuse_if_cut_short(upload: _Upload, container: str) -> None:
    """Formats whose demuxers stop quietly at a cut: a GIF must end with its trailer byte, and a
    Matroska/WebM segment of known size must fit in the file. (MP4 and MOV cuts make ffmpeg fail.)"""
    truncated = False
    if container == "gif":
        truncated = os.pread(upload.fd, 1, upload.size - 1) != b"\x3b"
    elif container in ("mkv", "webm"):
        end = _matroska_segment_end(os.pread(upload.fd, 4096, 0))
        truncated = end is not None and end > upload.size
    if truncated:
        raise MediaError("the video is truncated: the file ends before its last frame")


_EBML_ID = b"\x1a\x45\xdf\xa3"
_SEGMENT_ID = b"\x18\x53\x80\x67"


def _matroska_segment_end(head: bytes) -> int | None:
    """Byte offset where the Segment element claims to end; None when unknown (live recordings
    write an 'unknown' size) or unparseable."""
    if not head.startswith(_EBML_ID):
        return None
    size = _ebml_vint(head, len(_EBML_ID))
    if size is None:
        return None
    header_size, length = size
    offset = len(_EBML_ID) + length + header_size
    if head[offset : offset + 4] != _SEGMENT_ID:
        return None
    segment = _ebml_vint(head, offset + 4)
    if segment is None:
        return None
    value, length = segment
    if value == (1 << (7 * length)) - 1:  # all ones: unknown size
        return None
    return offset + 4 + length + value


def _ebml_vint(data: bytes, at: int) -> tuple[int, int] | None:
    """An EBML variable-length integer at ``at``: (value, bytes used)."""
    if at >= len(data) or data[at] == 0:
        return None
    length = 8 - data[at].bit_length() + 1
    if at + length > len(data):
        return None
    value = data[at] & (0xFF >> length)
    for byte in data[at + 1 : at + length]:
        value = (value << 8) | byte
    return value, length


def _check_limits(info: VideoInfo, limits: MediaLimits) -> None:
    if not 0 < info.fps <= MAX_FPS:
        raise MediaError(
            f"the video's frame rate ({info.fps:g} fps) is not plausible; at most {MAX_FPS:g} fps"
        )
    pixels = info.width * info.height
    if pixels > limits.max_pixels:
        raise MediaError(
            f"the video is {info.width}x{info.height} ({pixels} pixels per frame); "
            f"the limit is {limits.max_pixels} pixels per frame"
        )
    if info.duration_s > limits.max_duration_s:
        raise MediaError(
            f"the video is {info.duration_s:.1f} s long; the limit is {limits.max_duration_s:g} s"
        )
    if limits.max_frames is not None and info.frame_count > limits.max_frames:
        raise MediaError(
            f"the video has about {info.frame_count} frames; the limit is {limits.max_frames}"
        )
    if info.frame_bytes > limits.max_decoded_bytes:
        raise memory_refusal(
            "one frame of this video", info, 1, info.frame_bytes, limits.max_decoded_bytes
        )


# --------------------------------------------------------------------------------------------------
# Parsing ffmpeg's log. Lines are matched at their start only: ffmpeg prints metadata values that
# contain newlines as continuation lines beginning with "<spaces>: ", so a tag cannot pose as a
# Stream or Duration line.
# --------------------------------------------------------------------------------------------------

_INPUT_RE = re.compile(r"^Input #0, (.+), from '", re.MULTILINE)
_DURATION_RE = re.compile(r"^ +Duration: (?:N/A|(\d+):(\d\d):(\d\d(?:\.\d+)?))", re.MULTILINE)
_STREAM_RE = re.compile(r"^ +Stream #0:(\d+)\S*: (\w+): (.*)$", re.MULTILINE)
_ROTATION_RE = re.compile(r"^ +display ?matrix: rotation of (-?[\d.]+) degrees", re.I | re.M)
_SIZE_RE = re.compile(r"^(\d+)x(\d+)(?:\s|$)")
_RATE_RE = re.compile(r"^(\d+(?:\.\d+)?)(k?) (fps|tbr)$")
_HZ_RE = re.compile(r"^(\d+) Hz$")


def _not_a_video() -> MediaError:
    return MediaError(f"this file is not a video (allowed: {ALLOWED_KINDS})")


def _parse_demuxer(log_text: str) -> str:
    match = _INPUT_RE.search(log_text)
    if match is None:  # unknown format, or one refused by the whitelist
        raise _not_a_video()
    return match.group(1)


def _parse_duration(log_text: str) -> float | None:
    match = _DURATION_RE.search(log_text)
    if match is None or match.group(1) is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _parse_video_stream(log_text: str) -> _Stream:
    """The first video stream that is not cover art, with its displayed size."""
    streams = list(_STREAM_RE.finditer(log_text))
    for position, match in enumerate(streams):
        if match.group(2) != "Video" or match.group(3).endswith("(attached pic)"):
            continue
        block_end = streams[position + 1].start() if position + 1 < len(streams) else None
        stream = _parse_stream_fields(int(match.group(1)), match.group(3))
        if _is_quarter_turn(log_text[match.end() : block_end]):
            stream = replace(stream, width=stream.height, height=stream.width)
        return stream
    raise MediaError(f"the file has no video stream (allowed: {ALLOWED_KINDS})")


def _parse_audio_stream(log_text: str) -> AudioInfo | None:
    """The audio stream marked default, else the first; None when there is no audio stream
    ffmpeg can decode (with a rate and a channel layout)."""
    found: list[tuple[bool, AudioInfo]] = []
    for match in _STREAM_RE.finditer(log_text):
        if match.group(2) != "Audio":
            continue
        fields = _split_top_level(match.group(3))
        codec = fields[0].split()[0] if fields and fields[0] else ""
        rates = [int(m.group(1)) for f in fields if (m := _HZ_RE.match(f))]
        if codec in ("", "none") or not rates or rates[0] <= 0 or len(fields) < 3:
            continue
        layout = fields[2]
        mono = layout in ("mono", "1 channels")
        audio = AudioInfo(
            index=int(match.group(1)), codec=codec, sample_rate=rates[0], channels=1 if mono else 2
        )
        found.append(("(default)" in match.group(3), audio))
    if not found:
        return None
    chosen = next((audio for default, audio in found if default), found[0][1])
    return replace(chosen, streams=len(found))


def _parse_stream_fields(index: int, text: str) -> _Stream:
    """Fields such as ``h264 (High) (avc1 / 0x31637661), yuv420p(tv), 64x64 [SAR 1:1], 24 fps``."""
    fields = _split_top_level(text)
    codec = fields[0].split()[0] if fields and fields[0] else ""
    pix_fmt = fields[1].split("(")[0].strip() if len(fields) > 1 else ""
    sizes = [m for f in fields if (m := _SIZE_RE.match(f))]
    rates = {m.group(3): _rate_value(m) for f in fields if (m := _RATE_RE.match(f))}
    fps = rates.get("fps") or rates.get("tbr")
    if not codec or pix_fmt in ("", "none") or not sizes or not fps:
        raise MediaError("the video is damaged or truncated and could not be read")
    width, height = int(sizes[0].group(1)), int(sizes[0].group(2))
    if width <= 0 or height <= 0:
        raise MediaError("the video is damaged or truncated and could not be read")
    return _Stream(index=index, codec=codec, pix_fmt=pix_fmt, width=width, height=height, fps=fps)


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside (...) or [...]."""
    fields: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    fields.append("".join(current).strip())
    return fields


def _rate_value(match: re.Match[str]) -> float:
    """ffmpeg prints 24000/1001 as "23.98"; snap such rounded NTSC rates back to the exact value."""
    value = float(match.group(1)) * (1000 if match.group(2) else 1)
    ntsc = round(value * 1.001) / 1.001
    if "." in match.group(1) and abs(ntsc - value) < 0.006:
        return ntsc
    return value


def _is_quarter_turn(stream_block: str) -> bool:
    match = _ROTATION_RE.search(stream_block)
    return match is not None and round(abs(float(match.group(1)))) % 180 == 90


def _container(demuxer: str, head: bytes) -> str:
    """Short container name; ffmpeg's demuxer names do not tell mp4 from mov or webm from mkv, the
    file's first bytes do (the ftyp brand, the EBML DocType)."""
    if demuxer.startswith("mov"):
        return "mov" if head[4:12] == b"ftypqt  " else "mp4"
    if demuxer.startswith("matroska"):
        return "webm" if b"\x42\x82\x84webm" in head else "mkv"
    return demuxer


# --------------------------------------------------------------------------------------------------
# Encoding helpers
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _BudgetStep:
    crf: int
    side: int | None
    stride: int


def _budget_steps(width: int, height: int, fps: float) -> Iterator[_BudgetStep]:
    for crf in _BUDGET_CRFS:
        yield _BudgetStep(crf=crf, side=None, stride=1)
    longest = max(width, height)
    for scale in _BUDGET_SCALES:
        yield _BudgetStep(crf=_BUDGET_CRFS[-1], side=max(2, round(longest * scale)), stride=1)
    smallest_side = max(2, round(longest * _BUDGET_SCALES[-1]))
    stride = 2
    while fps / stride >= _BUDGET_MIN_FPS:
        yield _BudgetStep(crf=_BUDGET_CRFS[-1], side=smallest_side, stride=stride)
        stride *= 2


def _frame_size(frames: Sequence[Image.Image]) -> tuple[int, int]:
    if len(frames) == 0:
        raise MediaError("there are no frames to process (at least 1 is needed)")
    if isinstance(frames, VideoFrames):  # one size by construction: no need to decode them all
        return frames.size
    width, height = frames[0].size
    for number, frame in enumerate(frames):
        if frame.size != (width, height):
            raise MediaError(
                f"frame {number} is {frame.size[0]}x{frame.size[1]} but frame 0 is "
                f"{width}x{height}; all frames must have the same size"
            )
    return width, height


def _check_fps(fps: float) -> None:
    if not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise MediaError(f"the frame rate must be above 0 and at most {MAX_FPS:g} fps (got {fps})")


def _check_encode_args(fps: float, crf: int, preset: str, max_side: int | None) -> None:
    _check_fps(fps)
    if not 0 <= crf <= 51:
        raise MediaError(f"crf must be between 0 and 51 (got {crf})")
    if preset not in _X264_PRESETS:
        raise MediaError(f"unknown x264 preset {preset!r} (allowed: {', '.join(_X264_PRESETS)})")
    if max_side is not None and max_side < 2:
        raise MediaError(f"max_side must be at least 2 pixels (got {max_side})")


def _even_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """Output size: scaled so the longer side is at most ``max_side``, then rounded to even."""
    scale = 1.0
    if max_side is not None and max(width, height) > max_side:
        scale = max_side / max(width, height)
    return _even(width * scale), _even(height * scale)


def _even(value: float) -> int:
    return max(2, 2 * math.ceil(round(value, 6) / 2))


def _rate(fps: float) -> str:
    """An exact rational for ffmpeg, so 24000/1001 stays 24000/1001 rather than 23.976."""
    fraction = Fraction(fps).limit_denominator(1001)
    return f"{fraction.numerator}/{fraction.denominator}"


def _raw_input_args(width: int, height: int, fps: float) -> list[str]:
    return [
        "-loglevel",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-r",
        _rate(fps),
        "-i",
        "pipe:0",
    ]


def _raw_output_args() -> list[str]:
    return ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]


def _encode_filter(width: int, height: int) -> str:
    """Scale (a no-op at the same size) with BT.709 conversion to 4:2:0, the matrix the file is
    tagged with and browsers assume; setsar=1 undoes the aspect fix-up scale makes for odd sizes."""
    return (
        f"scale={width}:{height}:flags=bicubic:out_color_matrix=bt709:out_range=tv,"
        "setsar=1,format=yuv420p"
    )


_OUTPUT_FORMAT = (
    "-pix_fmt",
    "yuv420p",
    "-colorspace",
    "bt709",
    "-color_primaries",
    "bt709",
    "-color_trc",
    "bt709",
    "-color_range",
    "tv",
)
"""What every encoder writes, so players show the same colours whichever encoded it: 4:2:0, and
BT.709 tags with TV range."""


def _x264_args(crf: int, preset: str) -> list[str]:
    return [
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-crf",
        str(crf),
        "-threads",
        str(_usable_cores()),
        *_OUTPUT_FORMAT,
    ]


def _nvenc_args(crf: int, preset: str) -> list[str]:
    """NVENC in constant-quality mode: ``-cq`` is NVENC's counterpart of x264's crf (0 would mean
    "automatic", so at least 1); same 4:2:0 output and BT.709 tags as libx264."""
    return [
        "-c:v",
        "h264_nvenc",
        "-preset",
        _NVENC_PRESETS[preset],
        "-rc",
        "vbr",
        "-cq",
        str(max(crf, 1)),
        "-b:v",
        "0",
        "-profile:v",
        "high",
        *_OUTPUT_FORMAT,
    ]


def _usable_cores() -> int:
    """x264 threads: one per usable core. On the 2-core build machine this measured faster than
    x264's default of 1.5 per core (24 frames of 576x320: 430 vs 356 frames/s), which oversubscribes
    the cores that ffmpeg's own reading and scaling threads also need."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def interpolation_filters(fps: float, factor: int, width: int, height: int) -> str:
    """The filters :func:`interpolate` runs, for RGB frames at ``fps`` going into an encode
    (:func:`encode_stream`): minterpolate, then back to RGB the way :func:`interpolate` returns
    them, so a streamed interpolation encodes the same frames. Cut the output at ``n * factor``."""
    if isinstance(factor, bool) or factor not in _INTERPOLATION_FACTORS:
        raise MediaError(f"the interpolation factor must be 1, 2, 3 or 4 (got {factor})")
    _check_fps(fps)
    return _interpolate_filter(fps, factor, width, height) + ",format=rgb24"


def _interpolate_filter(fps: float, factor: int, width: int, height: int) -> str:
    """Two clones of the last frame because minterpolate only emits up to the second-to-last frame
    it has seen; ``-frames:v`` then cuts the output at exactly ``n * factor``. minterpolate wants
    YUV; 4:4:4 with swscale's default matrix measured the least lossy round trip (99.7% of values
    within 1, at most 2). It refuses frames under 32x32, so smaller ones are padded and cropped."""
    out_rate = Fraction(_rate(fps)) * factor
    padded_w, padded_h = max(width, _MIN_INTERPOLATE_SIDE), max(height, _MIN_INTERPOLATE_SIDE)
    needs_pad = (padded_w, padded_h) != (width, height)
    return (
        "tpad=stop=2:stop_mode=clone,"
        + (f"pad={padded_w}:{padded_h}:0:0," if needs_pad else "")
        + "format=yuv444p,"
        f"minterpolate=fps={out_rate.numerator}/{out_rate.denominator}"
        ":mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1"
        + (f",crop={width}:{height}:0:0" if needs_pad else "")
    )


def _rgb_bytes(frames: Sequence[Image.Image]) -> Iterator[bytes]:
    for frame in frames:
        yield (frame if frame.mode == "RGB" else frame.convert("RGB")).tobytes()


@contextmanager
def _atomic_output(target: Path) -> Iterator[Path]:
    """A reserved hidden sibling of ``target``, moved onto it if the block succeeds, and removed in
    every case, so a reader of ``target`` never sees a partial file. The caller may also call
    :func:`_discard` on it to give up without raising."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the video from a web server
            os.replace(tmp, target)
    finally:
        _discard(tmp)


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def format_size(count: float) -> str:
    """A byte count as members read it: ``900 bytes``, ``48.6 KiB``, ``50 MiB``, ``3.5 GiB``."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            break
        count /= 1024
    if unit == "bytes":
        return f"{int(count)} bytes"
    return f"{count:g} {unit}" if count == int(count) else f"{count:.1f} {unit}"


# --------------------------------------------------------------------------------------------------
# Running ffmpeg
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Completed:
    returncode: int
    stderr: str


class _Feeder(threading.Thread):
    """Writes frames to ffmpeg's stdin while the caller reads its stdout, so neither pipe can fill
    up and deadlock; an error other than ffmpeg going away is kept for the caller to re-raise."""

    def __init__(self, pipe: IO[bytes], chunks: Iterable[bytes]) -> None:
        super().__init__(daemon=True)
        self._pipe = pipe
        self._chunks = chunks
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for chunk in self._chunks:
                try:
                    self._pipe.write(chunk)
                except OSError:  # ffmpeg exited or was killed; its return code tells the story
                    return
        except BaseException as exc:  # the frame source failed: re-raised in the caller's thread
            self.error = exc
        finally:
            close = getattr(self._chunks, "close", None)
            if close is not None:  # a source that is a decoder: stopped when ffmpeg stops taking
                with suppress(Exception):
                    close()
            with suppress(OSError):
                self._pipe.close()


def _run(
    args: Sequence[str],
    *,
    timeout_s: float,
    action: str,
    feed: Iterable[bytes] | None = None,
    frame_size: int = 0,
    on_frame: Callable[[bytes], None] | None = None,
    pass_fds: Sequence[int] = (),
) -> _Completed:
    """Run ffmpeg with stderr in a temporary file (never a pipe that could fill, never the user's
    terminal), killed after ``timeout_s``. Raw frames of ``frame_size`` bytes read from stdout go to
    ``on_frame`` one at a time, so decoded video is never held twice in memory."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", *args]
    killed = threading.Event()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if feed is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if on_frame is not None else subprocess.DEVNULL,
            stderr=errors,
            pass_fds=tuple(pass_fds),
        )
        timer = threading.Timer(timeout_s, _kill, (process, killed))
        timer.start()
        feeder = None
        if feed is not None:
            assert process.stdin is not None
            feeder = _Feeder(process.stdin, feed)
            feeder.start()
        try:
            if on_frame is not None:
                assert process.stdout is not None
                _read_frames(process.stdout, frame_size, on_frame)
            process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
            if feeder is not None:
                feeder.join()
            if process.stdout is not None:
                process.stdout.close()
        if killed.is_set():
            raise MediaError(f"{action} took longer than {timeout_s:g} s")
        if feeder is not None and feeder.error is not None:
            raise feeder.error
        errors.seek(0)
        stderr = errors.read(_STDERR_CAP).decode("utf-8", "replace")
    return _Completed(returncode=process.returncode, stderr=stderr)


def _read_frames(stream: IO[bytes], frame_size: int, on_frame: Callable[[bytes], None]) -> None:
    while True:
        data = stream.read(frame_size)
        if len(data) < frame_size:  # end of output; a partial last frame is dropped
            return
        on_frame(data)


def _kill(process: subprocess.Popen[bytes], killed: threading.Event) -> None:
    if process.poll() is None:  # not when the timer fires just as ffmpeg finishes
        killed.set()
        process.kill()


def _log_failure(what: str, result: _Completed) -> None:
    log.debug("ffmpeg %s exited with %s: %s", what, result.returncode, result.stderr[-2000:])
