"""Every ffmpeg run of the project: probing and decoding uploads, encoding and interpolating frames.

Uploads are treated as hostile. A file is opened here, checked with ``fstat`` (a regular file, not
over ``max_bytes``) before ffmpeg ever runs, and handed to ffmpeg as an inherited file descriptor
(``-fd N -i fd:``) with ``-protocol_whitelist fd`` and a demuxer whitelist: the user's file name
never reaches ffmpeg's command line (so names such as ``-i x.mp4`` or ``a:b`` are harmless), the
file ffmpeg reads is the one that was checked, and playlists (HLS), concat scripts, image
sequences and anything else that could open a second file are refused. Every run is killed after a
wall-clock limit, and its stderr is kept out of sight of the user (it is logged at debug level).

What ``probe`` reads from ffmpeg's log is advisory (a crafted file can lie about its size, length
or rate); the hard bounds are enforced again while decoding: ``-max_pixels`` makes the decoder
refuse larger pictures, the output is scaled to the probed size, ``-frames:v`` caps the count and
the timeout caps the time.
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import IO

import imageio_ffmpeg
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

_MAX_FPS = 240.0
_BUDGET_CRFS = (18, 23, 28, 33, 38)
_BUDGET_SCALES = (0.75, 0.5, 0.35)
_BUDGET_MIN_FPS = 4.0
_INTERPOLATION_FACTORS = (2, 3, 4)
_MIN_INTERPOLATE_SIDE = 32
_STDERR_CAP = 1 << 20
"""Bytes of ffmpeg's stderr kept: a file with huge metadata must not grow the log without bound."""


@dataclass(frozen=True)
class MediaLimits:
    """Hard limits checked before any decoding (hostile uploads)."""

    max_bytes: int = 50 * 1024 * 1024
    max_frames: int = 600
    max_pixels: int = 1920 * 1080  # width*height of one frame
    max_duration_s: float = 60.0
    timeout_s: float = 60.0  # wall-clock limit for any ffmpeg run on input


@dataclass(frozen=True)
class VideoInfo:
    """What ffmpeg reports about an upload's first video stream.

    ``width`` and ``height`` are the displayed size (swapped for a video rotated by 90 degrees).
    ``frame_count`` is ``round(duration_s * fps)`` unless the container has no duration, in which
    case the packets were counted. ``container`` is ``mp4``, ``mov``, ``webm``, ``mkv`` or ``gif``.
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


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def probe(path: str | Path, limits: MediaLimits = MediaLimits()) -> VideoInfo:
    """Describe an upload, refusing anything that is not an allowed video or is over a limit."""
    with _open_upload(path, limits) as upload:
        return _probe_upload(upload, limits).info


def decode(
    path: str | Path,
    limits: MediaLimits = MediaLimits(),
) -> tuple[list[Image.Image], float]:
    """RGB frames and frame rate of an upload, with every limit enforced before and during decoding.

    A damaged or truncated file is refused as a whole (ffmpeg runs with ``-xerror``) rather than
    returning the part that happened to decode.
    """
    with _open_upload(path, limits) as upload:
        probed = _probe_upload(upload, limits)
        _refuse_if_cut_short(upload, probed.info.container)
        frames = _decode_upload(upload, probed, limits)
    return frames, probed.info.fps


def encode(
    frames: Sequence[Image.Image],
    path: str | Path,
    fps: float,
    *,
    crf: int = 18,
    preset: str = DEFAULT_PRESET,
    max_side: int | None = None,
    encoder: str = "auto",
) -> EncodedVideo:
    """Write an H.264/yuv420p mp4 with the index first (``+faststart``) so it plays inline.

    The file appears at ``path`` only when complete: ffmpeg writes a hidden sibling that is moved
    into place on success and deleted on any failure. Odd sizes are scaled to the next even size
    (4:2:0 needs even dimensions); ``max_side`` shrinks the longer side, keeping the aspect.
    ``encoder`` is ``auto`` (NVENC where it works, see :func:`video_encoder`), ``libx264`` or
    ``h264_nvenc`` (the ``[speed] encoder`` setting); an NVENC encode that fails is redone with
    libx264, and NVENC is not tried again in this process.
    """
    global _nvenc_works
    width, height = _frame_size(frames)
    _check_encode_args(fps, crf, preset, max_side)
    out_w, out_h = _even_size(width, height, max_side)
    target = Path(path)
    codec = video_encoder(encoder)
    with _atomic_output(target) as tmp:
        result = _encode_run(frames, tmp, width, height, fps, out_w, out_h, crf, preset, codec)
        if result.returncode != 0 and codec == "h264_nvenc":
            _log_failure("encode (h264_nvenc)", result)
            log.warning("h264_nvenc failed; encoding with libx264 from now on")
            with _encoder_lock:
                _nvenc_works = False
            codec = "libx264"
            result = _encode_run(frames, tmp, width, height, fps, out_w, out_h, crf, preset, codec)
        if result.returncode != 0:
            _log_failure("encode", result)
            raise MediaError("encoding the video failed (ffmpeg could not write the mp4)")
    return EncodedVideo(
        path=target,
        size_bytes=target.stat().st_size,
        width=out_w,
        height=out_h,
        fps=fps,
        frame_count=len(frames),
        crf=crf,
        encoder=codec,
    )


def _encode_run(
    frames: Sequence[Image.Image],
    tmp: Path,
    width: int,
    height: int,
    fps: float,
    out_w: int,
    out_h: int,
    crf: int,
    preset: str,
    codec: str,
) -> _Completed:
    codec_args = _nvenc_args(crf, preset) if codec == "h264_nvenc" else _x264_args(crf, preset)
    return _run(
        [
            *_raw_input_args(width, height, fps),
            "-vf",
            _encode_filter(out_w, out_h),
            *codec_args,
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            "-y",
            f"file:{tmp}",
        ],
        timeout_s=_OWN_FRAMES_TIMEOUT_S,
        action="encoding the video",
        feed=_rgb_bytes(frames),
    )


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
                frames, out, 256, 256, 8.0, 256, 256, 23, "ultrafast", "h264_nvenc"
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
    frames: Sequence[Image.Image], path: str | Path, fps: float, max_bytes: int
) -> EncodedVideo:
    """Encode under a byte budget (e.g. Discord's upload limit), giving up as little as possible.

    Steps, in order of what is given up first: crf 18, 23, 28, 33, 38 at full size; then 0.75, 0.5
    and 0.35 of the size at crf 38; then every other frame dropped (half the fps, repeatedly) while
    the rate stays at or above 4 fps. Each step is meant to be smaller than the one before, so the
    first that fits is returned; x264 is deterministic, so the same input always lands on the same
    step. Encodes use the ``veryfast`` preset (see ``_BUDGET_PRESET``).
    """
    if max_bytes <= 0:
        raise MediaError(f"the size budget must be positive (got {max_bytes} bytes)")
    width, height = _frame_size(frames)
    _check_fps(fps)
    target = Path(path)
    smallest: EncodedVideo | None = None
    with _atomic_output(target) as trial:
        for step in _budget_steps(width, height, fps):
            encoded = encode(
                frames[:: step.stride],
                trial,
                fps / step.stride,
                crf=step.crf,
                preset=_BUDGET_PRESET,
                max_side=step.side,
                encoder="libx264",  # bytes matter here: x264's rate control, deterministic steps
            )
            if encoded.size_bytes <= max_bytes:
                return replace(encoded, path=target)
            if smallest is None or encoded.size_bytes < smallest.size_bytes:
                smallest = encoded
        assert smallest is not None  # the ladder always has a first step
        _discard(trial)
    raise MediaError(
        f"the video does not fit in {_format_bytes(max_bytes)}: the smallest encode was "
        f"{_format_bytes(smallest.size_bytes)} ({smallest.width}x{smallest.height} at "
        f"{smallest.fps:g} fps, crf {smallest.crf})"
    )


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
                f"the file is {_format_bytes(info.st_size)}; "
                f"the limit is {_format_bytes(limits.max_bytes)}"
            )
        if info.st_size == 0:
            raise MediaError(f"the file is empty, so not a video (allowed: {ALLOWED_KINDS})")
        os.set_blocking(fd, True)
        yield _Upload(fd=fd, size=info.st_size, head=os.pread(fd, 64, 0))
    finally:
        os.close(fd)


def _input_args(upload: _Upload, limits: MediaLimits) -> list[str]:
    """Options that open an upload safely; the decoder itself refuses pictures over max_pixels."""
    os.lseek(upload.fd, 0, os.SEEK_SET)  # the offset is shared with every ffmpeg that used the fd
    return [
        "-protocol_whitelist",
        "fd",
        "-format_whitelist",
        _DEMUXERS,
        "-max_pixels",
        str(limits.max_pixels),
        "-fd",
        str(upload.fd),
        "-i",
        "fd:",
    ]


def _probe_upload(upload: _Upload, limits: MediaLimits) -> _Probed:
    result = _run(
        ["-loglevel", "info", *_input_args(upload, limits)],
        timeout_s=limits.timeout_s,
        action="reading the video",
        pass_fds=(upload.fd,),
    )
    demuxer = _parse_demuxer(result.stderr)
    stream = _parse_video_stream(result.stderr)
    duration = _parse_duration(result.stderr)
    if duration is None:  # e.g. webm recorded by a browser: count packets instead
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
    )
    _check_limits(info, limits)
    return _Probed(info=info, stream_index=stream.index)


def _count_packets(upload: _Upload, stream_index: int, limits: MediaLimits) -> int:
    """Frame count of a container without a duration; packets are copied, not decoded (cheap)."""
    result = _run(
        [
            "-loglevel",
            "error",
            *_input_args(upload, limits),
            "-map",
            f"0:{stream_index}",
            "-c",
            "copy",
            "-frames:v",
            str(limits.max_frames + 1),
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


def _decode_upload(upload: _Upload, probed: _Probed, limits: MediaLimits) -> list[Image.Image]:
    """Decode to RGB at the probed size; the scale keeps each frame's memory bounded even if later
    frames claim another size, and ``-frames:v max+1`` lets an over-long file be detected."""
    info = probed.info
    frames: list[Image.Image] = []

    def keep(data: bytes) -> None:
        if len(frames) >= limits.max_frames:
            raise MediaError(
                f"the video has more than {limits.max_frames} frames; "
                f"the limit is {limits.max_frames}"
            )
        frames.append(Image.frombytes("RGB", (info.width, info.height), data))

    result = _run(
        [
            "-loglevel",
            "error",
            "-xerror",
            *_input_args(upload, limits),
            "-map",
            f"0:{probed.stream_index}",
            "-frames:v",
            str(limits.max_frames + 1),
            "-vf",
            f"scale={info.width}:{info.height}:flags=bicubic,setsar=1",
            *_raw_output_args(),
        ],
        timeout_s=limits.timeout_s,
        action="reading the video",
        frame_size=info.width * info.height * 3,
        on_frame=keep,
        pass_fds=(upload.fd,),
    )
    if result.returncode != 0 or not frames:
        _log_failure("decode", result)
        raise MediaError("the video is damaged or truncated and could not be decoded")
    return frames


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
    if not 0 < info.fps <= _MAX_FPS:
        raise MediaError(
            f"the video's frame rate ({info.fps:g} fps) is not plausible; at most {_MAX_FPS:g} fps"
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
    if info.frame_count > limits.max_frames:
        raise MediaError(
            f"the video has about {info.frame_count} frames; the limit is {limits.max_frames}"
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
    width, height = frames[0].size
    for number, frame in enumerate(frames):
        if frame.size != (width, height):
            raise MediaError(
                f"frame {number} is {frame.size[0]}x{frame.size[1]} but frame 0 is "
                f"{width}x{height}; all frames must have the same size"
            )
    return width, height


def _check_fps(fps: float) -> None:
    if not (math.isfinite(fps) and 0 < fps <= _MAX_FPS):
        raise MediaError(f"the frame rate must be above 0 and at most {_MAX_FPS:g} fps (got {fps})")


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
        "-an",
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
        "-an",
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


def _format_bytes(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if count < 1024 or unit == "MiB":
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
