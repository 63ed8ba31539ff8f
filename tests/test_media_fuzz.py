"""A fuzz pass over the upload decoder (media.decode) with malformed and hostile files.

Every case must end in one of two ways, within CASE_SECONDS and leaving no ffmpeg process and no
open file descriptor behind: a MediaError whose message is for the member (it never shows the file's
path), or, when the bytes happen to still be a valid video, frames within the limits. Truncated
files get a stronger check, the one decode documents: refused as a whole, never partly decoded.

Cases: truncations of small mp4, mkv, webm, mov and gif files at many cut points; random bytes;
wrong magic numbers in both directions; seeded bit flips and integer-field overwrites; headers that
declare enormous sizes, durations or rates; a GIF decompression bomb; files that are not regular
files; playlists and concat scripts that point at local files. The valid samples are 8 frames of
32x32, so a case costs tens of milliseconds. Files live in tmp_path; their bytes are never printed:
a failure names the recipe (cut point, seed, offset) that rebuilds the case.
"""

from __future__ import annotations

import io
import math
import os
import resource
import socket
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from bot.core import media
from bot.core.errors import MediaError

LIMITS = media.MediaLimits(
    max_bytes=1 << 20,
    max_frames=64,
    max_pixels=64 * 64,
    max_duration_s=10.0,
    timeout_s=5.0,
)
"""Tight limits: the samples are 8 frames of 32x32 at 8 fps, 1 s long."""

CASE_SECONDS = 10.0
FRAME_COUNT = 8
MAX_ENCODABLE_FPS = 240.0
"""media.encode refuses higher rates; what decode returns must be something encode can write back."""


# ------------------------------------------------------------------------------------------------
# Running one case
# ------------------------------------------------------------------------------------------------


def _ffmpeg_children() -> list[str]:
    """ffmpeg processes descended from this test process (psutil if installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        return _ffmpeg_children_from_proc()
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "ffmpeg" in child.name() or "ffmpeg" in " ".join(child.cmdline()[:1]):
                found.append(f"{child.pid} {child.name()} ({child.status()})")
        except psutil.NoSuchProcess:
            continue
    return found


def _ffmpeg_children_from_proc() -> list[str]:
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        parents[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
        names[int(entry)] = name
    mine = {os.getpid()}
    grew = True
    while grew:
        new = {pid for pid, parent in parents.items() if parent in mine} - mine
        grew = bool(new)
        mine |= new
    return [f"{pid} {names[pid]}" for pid in mine if "ffmpeg" in names.get(pid, "")]


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()


@dataclass(frozen=True)
class Outcome:
    frames: list[Image.Image] | None
    fps: float | None
    message: str
    seconds: float

    @property
    def refused(self) -> bool:
        return self.frames is None


def decode_case(path: Path, recipe: str, limits: media.MediaLimits = LIMITS) -> Outcome:
    """decode ``path``; assert the outcome is clean and return it. ``recipe`` names the case."""
    fds = _open_fds()
    started = time.monotonic()
    frames: list[Image.Image] | None = None
    fps: float | None = None
    message = ""
    try:
        frames, fps = media.decode(path, limits)
    except MediaError as error:
        message = str(error)
    seconds = time.monotonic() - started
    assert seconds < CASE_SECONDS, f"{recipe}: took {seconds:.1f} s"
    assert _ffmpeg_children() == [], f"{recipe}: ffmpeg outlived the call"
    assert _open_fds() == fds, f"{recipe}: file descriptors leaked"
    if frames is None:
        assert message, f"{recipe}: MediaError without a message"
        assert str(path.parent) not in message and path.name not in message, (
            f"{recipe}: the message shows the file's path: {message}"
        )
    else:
        assert fps is not None
        assert len(frames) >= 1, f"{recipe}: no frames"
        assert limits.max_frames is None or len(frames) <= limits.max_frames, (
            f"{recipe}: {len(frames)} frames"
        )
        size = frames[0].size
        assert size[0] * size[1] <= limits.max_pixels, f"{recipe}: {size}"
        held = size[0] * size[1] * 3 * len(frames)
        assert held <= limits.max_decoded_bytes, f"{recipe}: {held} bytes decoded"
        assert all(f.size == size and f.mode == "RGB" for f in frames), f"{recipe}: mixed frames"
        assert math.isfinite(fps) and 0 < fps <= MAX_ENCODABLE_FPS, f"{recipe}: {fps} fps"
    return Outcome(frames, fps, message, seconds)


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------------------------
# Valid samples and byte surgery
# ------------------------------------------------------------------------------------------------


def ffmpeg(*args: str) -> None:
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *args],
        check=True,
        capture_output=True,
    )


def make_sample(path: Path, *codec: str) -> bytes:
    source = "testsrc=size=32x32:rate=8"
    ffmpeg("-f", "lavfi", "-i", source, "-frames:v", str(FRAME_COUNT), *codec, "-y", str(path))
    return path.read_bytes()


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Valid 8-frame 32x32 videos: the mp4 from media.encode, the rest from ffmpeg or Pillow."""
    folder = tmp_path_factory.mktemp("samples")
    rng = np.random.default_rng(0)
    frames = [
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "RGB")
        for _ in range(FRAME_COUNT)
    ]
    media.encode(frames, folder / "clip.mp4", 8.0)
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=125, loop=0)
    return {
        "mp4": (folder / "clip.mp4").read_bytes(),
        "mkv": make_sample(folder / "clip.mkv", "-c:v", "libx264"),
        "webm": make_sample(folder / "clip.webm", "-c:v", "libvpx", "-b:v", "50k"),
        "mov": make_sample(folder / "clip.mov", "-c:v", "rawvideo", "-pix_fmt", "rgb24"),
        "gif": gif.getvalue(),
    }


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[str, int, int]]:
    """(type, offset, size) of the ISO-BMFF boxes between ``start`` and ``end``."""
    end = len(data) if end is None else end
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        elif size == 0:
            size = end - offset
        yield kind.decode("latin-1"), offset, size
        if size < 8:
            return
        offset += size


def find_box(data: bytes, *path: str) -> tuple[int, int]:
    """(offset, size) of the box at ``path``, e.g. ("moov", "trak", "tkhd")."""
    start, end = 0, len(data)
    found = (0, 0)
    for name in path:
        for kind, offset, size in boxes(data, start, end):
            if kind == name:
                found = (offset, size)
                start, end = offset + 8, offset + size
                if name == "stsd":  # a full box with an entry count before its children
                    start += 8
                break
        else:
            raise KeyError("/".join(path))
    return found


def patched(data: bytes, offset: int, fmt: str, value: float) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def all_box_offsets(data: bytes) -> list[int]:
    """Offsets of every box inside moov (recursively) and at the top level."""
    offsets: list[int] = []
    parents = {"moov", "trak", "mdia", "minf", "stbl", "dinf", "edts", "udta"}

    def walk(start: int, end: int) -> None:
        for kind, offset, size in boxes(data, start, end):
            offsets.append(offset)
            if kind in parents:
                walk(offset + 8, offset + size)

    walk(0, len(data))
    return offsets


# ------------------------------------------------------------------------------------------------
# Controls: the valid samples decode
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mp4", "mkv", "webm", "mov", "gif"])
def test_valid_samples_decode_within_limits(
    samples: dict[str, bytes], tmp_path: Path, kind: str
) -> None:
    outcome = decode_case(write(tmp_path, f"clip.{kind}", samples[kind]), f"valid {kind}")
    assert outcome.frames is not None and len(outcome.frames) == FRAME_COUNT
    assert outcome.frames[0].size == (32, 32)


# ------------------------------------------------------------------------------------------------
# Truncation
# ------------------------------------------------------------------------------------------------


def cut_points(data: bytes, kind: str) -> list[int]:
    """Lengths to cut a file to: the first bytes (every one for mp4, whose header is densest),
    the start of each mp4 box and the bytes around it, evenly spaced points and the last few
    bytes; never 0 (the empty file) nor the whole file."""
    size = len(data)
    first = range(1, 33) if kind == "mp4" else (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
    points = set(first)
    steps = 24 if kind == "mp4" else 16
    points |= {round(size * i / steps) for i in range(1, steps)}
    points |= {size - n for n in (1, 2, 8, 64)}
    if kind == "mp4":
        points |= {b + d for b in all_box_offsets(data) for d in (-1, 0, 8)}
    return sorted(p for p in points if 0 < p < size)


@pytest.mark.parametrize("kind", ["mp4", "mkv", "webm", "mov", "gif"])
def test_truncated_files_are_refused_not_partly_decoded(
    samples: dict[str, bytes], tmp_path: Path, kind: str
) -> None:
    """decode's contract: "a damaged or truncated file is refused as a whole rather than
    returning the part that happened to decode". A cut that leaves every frame intact (trailing
    metadata of an mkv) may decode, but only to all of them. With the index first (+faststart)
    every byte of the mp4 that media.encode writes is needed, so no cut of it may decode at all."""
    data = samples[kind]
    partial: list[str] = []
    points = cut_points(data, kind)
    for cut in points:
        recipe = f"{kind} cut to its first {cut} of {len(data)} bytes"
        outcome = decode_case(write(tmp_path, f"cut.{kind}", data[:cut]), recipe)
        if outcome.frames is not None and (kind == "mp4" or len(outcome.frames) != FRAME_COUNT):
            partial.append(f"{cut} -> {len(outcome.frames)} frames")
    assert not partial, (
        f"{len(partial)} of {len(points)} truncated {kind} files ({len(data)} bytes) decoded "
        f"instead of being refused: {', '.join(partial)}"
    )


def test_empty_file(tmp_path: Path) -> None:
    outcome = decode_case(write(tmp_path, "empty.mp4", b""), "empty")
    assert outcome.refused and "the file is empty" in outcome.message


# ------------------------------------------------------------------------------------------------
# Random bytes and wrong magic numbers
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 8, 12, 64, 511, 4096, 65536, 1 << 20])
def test_random_bytes_are_refused(tmp_path: Path, size: int) -> None:
    data = np.random.default_rng(size).bytes(size)
    outcome = decode_case(write(tmp_path, "random.mp4", data), f"random bytes, seed {size}")
    assert outcome.refused


MAGIC = {
    "png": b"\x89PNG\r\n\x1a\n",
    "gif": b"GIF89a",
    "zip": b"PK\x03\x04",
    "elf": b"\x7fELF\x02\x01\x01\x00",
    "ebml": b"\x1a\x45\xdf\xa3",
    "riff": b"RIFF\x00\x00\x00\x00AVI ",
    "pdf": b"%PDF-1.7\n",
    "ftyp": b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2",
}


@pytest.mark.parametrize("magic", [m for m in MAGIC if m != "ftyp"])
@pytest.mark.parametrize("how", ["overwrite", "prepend"])
def test_video_body_under_a_foreign_header(
    samples: dict[str, bytes], tmp_path: Path, magic: str, how: str
) -> None:
    head = MAGIC[magic]
    for kind in ("mp4", "mkv"):
        body = samples[kind]
        data = head + body[len(head) :] if how == "overwrite" else head + body
        decode_case(write(tmp_path, f"x.{kind}", data), f"{kind} with a {magic} header ({how})")


def foreign_files(samples: dict[str, bytes]) -> dict[str, bytes]:
    png = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(png, "PNG")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("clip.mp4", samples["mp4"])
    return {
        "png": png.getvalue(),
        "zip-of-an-mp4": archive.getvalue(),
        "elf": Path(os.path.realpath(sys.executable)).read_bytes()[:65536],
        "pdf": b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n",
        "gif": samples["gif"],
        "webm": samples["webm"],
    }


@pytest.mark.parametrize("head", ["ftyp", "ebml", "gif"])
@pytest.mark.parametrize("how", ["overwrite", "prepend"])
def test_foreign_body_under_a_video_header(
    samples: dict[str, bytes], tmp_path: Path, head: str, how: str
) -> None:
    magic = MAGIC[head]
    for name, body in foreign_files(samples).items():
        if body.startswith(magic):
            continue
        data = magic + body[len(magic) :] if how == "overwrite" else magic + body
        outcome = decode_case(write(tmp_path, "x.mp4", data), f"{name} with a {head} header")
        assert outcome.refused, f"{name} under a {head} header ({how}) decoded"


# ------------------------------------------------------------------------------------------------
# Bit flips and integer-field overwrites (seeded: the id is the seed)
# ------------------------------------------------------------------------------------------------


def header_span(data: bytes, kind: str) -> tuple[int, int]:
    if kind == "mp4":
        offset, size = find_box(data, "moov")
        return offset, offset + size
    if kind == "mkv":
        return 0, data.find(b"\x1f\x43\xb6\x75")  # everything before the first Cluster
    return 0, min(len(data), 800)  # gif: header, palette and the first image descriptor


FLIP_CASES = (
    [("mp4", "anywhere", seed) for seed in range(20)]
    + [("mp4", "header", seed) for seed in range(20)]
    + [("mkv", "header", seed) for seed in range(10)]
    + [("gif", "header", seed) for seed in range(10)]
)


@pytest.mark.parametrize(
    ("kind", "where", "seed"), FLIP_CASES, ids=[f"{k}-{w}-{s}" for k, w, s in FLIP_CASES]
)
def test_bit_flip(
    samples: dict[str, bytes], tmp_path: Path, kind: str, where: str, seed: int
) -> None:
    data = bytearray(samples[kind])
    rng = np.random.default_rng(seed)
    low, high = (0, len(data)) if where == "anywhere" else header_span(bytes(data), kind)
    position, bit = int(rng.integers(low, high)), int(rng.integers(0, 8))
    data[position] ^= 1 << bit
    decode_case(
        write(tmp_path, f"flip.{kind}", bytes(data)), f"{kind}: bit {bit} of byte {position}"
    )


@pytest.mark.parametrize("seed", range(20))
def test_integer_field_overwrite_in_the_mp4_index(
    samples: dict[str, bytes], tmp_path: Path, seed: int
) -> None:
    """Four aligned bytes of the moov box set to an extreme: sizes, counts, durations, scales."""
    data = samples["mp4"]
    low, high = header_span(data, "mp4")
    rng = np.random.default_rng(1000 + seed)
    position = low + 4 * int(rng.integers(0, (high - low) // 4))
    value = int(rng.choice([0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]))
    recipe = f"mp4: bytes {position}..{position + 3} set to {value:#x}"
    decode_case(write(tmp_path, "field.mp4", patched(data, position, ">I", value)), recipe)


# ------------------------------------------------------------------------------------------------
# Headers declaring enormous sizes, lengths and rates
# ------------------------------------------------------------------------------------------------


def mp4_header_lies(data: bytes) -> dict[str, bytes]:
    tkhd, tkhd_size = find_box(data, "moov", "trak", "tkhd")
    mvhd, _ = find_box(data, "moov", "mvhd")
    mdhd, _ = find_box(data, "moov", "trak", "mdia", "mdhd")
    stbl = ("moov", "trak", "mdia", "minf", "stbl")
    entry = find_box(data, *stbl, "stsd")[0] + 16  # the avc1 sample entry
    stts, _ = find_box(data, *stbl, "stts")
    stsz, _ = find_box(data, *stbl, "stsz")
    moov, _ = find_box(data, "moov")
    mdat, _ = find_box(data, "mdat")
    width_at = tkhd + tkhd_size - 8  # 16.16 fixed point width then height, last in tkhd
    return {
        "tkhd 65535x65535": patched(
            patched(data, width_at, ">I", 0xFFFF0000), width_at + 4, ">I", 0xFFFF0000
        ),
        "avc1 65535x65535": patched(
            patched(data, entry + 32, ">H", 0xFFFF), entry + 34, ">H", 0xFFFF
        ),
        "mvhd duration 2^32-1": patched(data, mvhd + 24, ">I", 0xFFFFFFFF),
        "mvhd timescale 1": patched(data, mvhd + 20, ">I", 1),
        "mvhd timescale 0": patched(data, mvhd + 20, ">I", 0),
        "mdhd duration 2^32-1": patched(data, mdhd + 24, ">I", 0xFFFFFFFF),
        "mdhd timescale 1": patched(data, mdhd + 20, ">I", 1),
        "mdhd timescale 0": patched(data, mdhd + 20, ">I", 0),
        "stts entry count 2^32-1": patched(data, stts + 12, ">I", 0xFFFFFFFF),
        "stts sample count 2^32-1": patched(data, stts + 16, ">I", 0xFFFFFFFF),
        "stts sample delta 2^32-1": patched(data, stts + 20, ">I", 0xFFFFFFFF),
        "stts sample delta 0": patched(data, stts + 20, ">I", 0),
        "stsz uniform size 2^31-1": patched(data, stsz + 12, ">I", 0x7FFFFFFF),
        "stsz sample count 2^32-1": patched(data, stsz + 16, ">I", 0xFFFFFFFF),
        "stsz first size 2^32-1": patched(data, stsz + 20, ">I", 0xFFFFFFFF),
        "moov size 2^32-1": patched(data, moov, ">I", 0xFFFFFFFF),
        "moov size 8": patched(data, moov, ">I", 8),
        "mdat size 2^32-1": patched(data, mdat, ">I", 0xFFFFFFFF),
        "mdat size 0 (to the end)": patched(data, mdat, ">I", 0),
        "mdat 64-bit size 2^63": data[:mdat]
        + struct.pack(">I4sQ", 1, b"mdat", 1 << 63)
        + data[mdat + 8 :],
    }


def raw_mov_sizes(data: bytes) -> dict[str, bytes]:
    """rawvideo in mov: the sample entry's size is the only size, so a lie reaches the decoder."""
    entry = find_box(data, "moov", "trak", "mdia", "minf", "stbl", "stsd")[0] + 16
    lies = {}
    for width, height in [(65535, 65535), (4096, 4096), (65535, 1), (1, 65535), (0, 0), (16, 16)]:
        lies[f"raw mov {width}x{height}"] = patched(
            patched(data, entry + 32, ">H", width), entry + 34, ">H", height
        )
    return lies


def mkv_header_lies(data: bytes) -> dict[str, bytes]:
    duration = data.find(b"\x44\x89\x88") + 3  # Segment Info Duration: an 8-byte float in ms
    segment = data.find(b"\x18\x53\x80\x67") + 4  # Segment size: 8 bytes, 0x01 marker first
    default_duration = data.find(b"\x23\xe3\x83\x84") + 4  # ns per frame, 4 bytes
    pixels = data.find(b"\xb0\x81\x20\xba\x81\x20")  # PixelWidth 32, PixelHeight 32
    assert min(duration, segment, default_duration, pixels) > 4, "unexpected mkv layout"
    lies = {
        f"mkv duration {value}": patched(data, duration, ">d", value)
        for value in (1e300, -1.0, math.nan, math.inf, 3.6e9)
    }
    lies["mkv segment size 2^56-2"] = (
        data[:segment] + b"\x01" + b"\xff" * 6 + b"\xfe" + data[segment + 8 :]
    )
    lies["mkv default duration 1 ns"] = patched(data, default_duration, ">I", 1)
    lies["mkv default duration 2^32-1 ns"] = patched(data, default_duration, ">I", 0xFFFFFFFF)
    lies["mkv 255x255 pixels"] = data[:pixels] + b"\xb0\x81\xff\xba\x81\xff" + data[pixels + 6 :]
    return lies


def gif(width: int, height: int, image: tuple[int, int] | None = None) -> bytes:
    """A GIF of a few dozen bytes whose screen (and one image) declare any size."""
    image_width, image_height = image or (width, height)
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", width, height, 0x80, 0, 0)
        + b"\x00\x00\x00\xff\xff\xff"
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, image_width, image_height, 0)
        + b"\x02\x02\x44\x01\x00\x3b"
    )


GIF_LIES = {
    "gif 65535x65535": gif(65535, 65535),
    "gif 65535x65535 screen, 1x1 image": gif(65535, 65535, (1, 1)),
    "gif 1x1 screen, 65535x65535 image": gif(1, 1, (65535, 65535)),
    "gif 0x0": gif(0, 0),
    "gif 65535x1": gif(65535, 1),
}


def header_lies(samples: dict[str, bytes]) -> dict[str, tuple[str, bytes]]:
    lies: dict[str, tuple[str, bytes]] = {}
    for name, data in mp4_header_lies(samples["mp4"]).items():
        lies[name] = ("mp4", data)
    for name, data in raw_mov_sizes(samples["mov"]).items():
        lies[name] = ("mov", data)
    for name, data in mkv_header_lies(samples["mkv"]).items():
        lies[name] = ("mkv", data)
    for name, data in GIF_LIES.items():
        lies[name] = ("gif", data)
    return lies


MUST_REFUSE = {
    "raw mov 65535x65535",
    "raw mov 4096x4096",
    "raw mov 65535x1",
    "raw mov 1x65535",
    "gif 65535x65535",
    "gif 65535x65535 screen, 1x1 image",
    "gif 65535x1",
}
"""Lies where the header is the only source of the size: over max_pixels, so they are refused."""


def test_headers_declaring_enormous_sizes_and_lengths(
    samples: dict[str, bytes], tmp_path: Path
) -> None:
    problems = []
    for name, (kind, data) in header_lies(samples).items():
        try:
            outcome = decode_case(write(tmp_path, f"lie.{kind}", data), name)
        except AssertionError as failure:
            problems.append(str(failure).splitlines()[0])
            continue
        if name in MUST_REFUSE and outcome.frames is not None:
            problems.append(f"{name}: decoded to {outcome.frames[0].size}")
    assert not problems, "; ".join(problems)


@pytest.mark.parametrize("name", list(GIF_LIES))
def test_gif_bombs_under_the_default_limits(tmp_path: Path, name: str) -> None:
    """A GIF of a few bytes declaring 65535x65535 (4 billion pixels): refused or decoded small,
    fast, and ffmpeg never grows large (the decoder itself refuses pictures over max_pixels)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, largest child so far
    limits = media.MediaLimits(timeout_s=5.0)
    decode_case(write(tmp_path, "bomb.gif", GIF_LIES[name]), name, limits)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if before < 512 * 1024:
        assert after < 512 * 1024, f"{name}: an ffmpeg child reached {after // 1024} MiB"


# ------------------------------------------------------------------------------------------------
# Paths that are not regular files
# ------------------------------------------------------------------------------------------------


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _symlink(path: Path, target: str | Path) -> Path:
    path.symlink_to(target)
    return path


def _socket(path: Path) -> Path:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the socket file stays
    return path


def _sparse(path: Path) -> Path:
    with path.open("wb") as sparse:
        sparse.truncate(LIMITS.max_bytes + 1)
    return path


SPECIAL_PATHS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "directory": (lambda p: _directory(p / "dir.mp4"), "not a regular file"),
    "symlink to a directory": (lambda p: _symlink(p / "d.mp4", p), "not a regular file"),
    "/dev/zero": (lambda p: Path("/dev/zero"), "not a regular file"),
    "symlink to /dev/zero": (lambda p: _symlink(p / "z.mp4", "/dev/zero"), "not a regular file"),
    "symlink to /dev/urandom": (
        lambda p: _symlink(p / "u.mp4", "/dev/urandom"),
        "not a regular file",
    ),
    "fifo": (lambda p: _fifo(p / "pipe.mp4"), "not a regular file"),
    "symlink to a fifo": (
        lambda p: _symlink(p / "l.mp4", _fifo(p / "pipe")),
        "not a regular file",
    ),
    "unix socket": (lambda p: _socket(p / "s.mp4"), "could not be opened"),
    "dangling symlink": (lambda p: _symlink(p / "gone.mp4", p / "missing"), "does not exist"),
    "symlink loop": (lambda p: _symlink(p / "loop.mp4", p / "loop.mp4"), "could not be opened"),
    "/proc file (size 0)": (lambda p: Path("/proc/self/status"), "the file is empty"),
    "NUL in the name": (lambda p: Path(str(p / "a\0b.mp4")), "name is not valid"),
    "sparse file over max_bytes": (lambda p: _sparse(p / "huge.mp4"), "the limit is 1 MiB"),
}


@pytest.mark.parametrize("name", list(SPECIAL_PATHS))
def test_paths_that_are_not_regular_files_are_refused(tmp_path: Path, name: str) -> None:
    make, message = SPECIAL_PATHS[name]
    path = make(tmp_path)
    fds = _open_fds()
    started = time.monotonic()
    with pytest.raises(MediaError, match=message) as info:
        media.decode(path, LIMITS)
    assert time.monotonic() - started < 2.0, f"{name}: slow to refuse"
    assert _ffmpeg_children() == [] and _open_fds() == fds
    assert str(tmp_path) not in str(info.value)


# ------------------------------------------------------------------------------------------------
# Playlists and scripts that point at local files
# ------------------------------------------------------------------------------------------------


def pointer_files(target: Path, fifo: Path) -> dict[str, tuple[str, str]]:
    """(file name, text) of formats that make ffmpeg open another file. ``target`` is a valid
    video; ``fifo`` has no writer, so an ffmpeg that opened it would hang until the time limit."""
    hls = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{}\n#EXT-X-ENDLIST\n"
    return {
        "hls relative": ("list.m3u8", hls.format(target.name)),
        "hls absolute": ("list.m3u8", hls.format(target)),
        "hls file url": ("list.m3u8", hls.format(f"file://{target}")),
        "hls named .mp4": ("list.mp4", hls.format(target)),
        "hls to a fifo": ("list.m3u8", hls.format(fifo)),
        "hls master": (
            "master.m3u8",
            f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n{target}\n",
        ),
        "ffconcat absolute": ("c.ffconcat", f"ffconcat version 1.0\nfile '{target}'\n"),
        "ffconcat file url": ("c.mp4", f"ffconcat version 1.0\nfile 'file:{target}'\n"),
        "ffconcat to a fifo": ("c.ffconcat", f"ffconcat version 1.0\nfile '{fifo}'\n"),
        "ffconcat subfile": (
            "c.txt",
            f"ffconcat version 1.0\nfile 'subfile,,start,0,end,0,,:{target}'\n",
        ),
        "dash manifest": (
            "m.mpd",
            '<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">'
            f'<Period><AdaptationSet><Representation id="1" bandwidth="1"><BaseURL>{target}'
            "</BaseURL></Representation></AdaptationSet></Period></MPD>\n",
        ),
        "sdp": (
            "s.sdp",
            "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\n"
            "t=0 0\nm=video 5004 RTP/AVP 96\na=rtpmap:96 H264/90000\n",
        ),
        "image sequence pattern": ("img%03d.png", "not an image"),
    }


def test_playlists_and_scripts_pointing_at_local_files_are_refused(
    samples: dict[str, bytes], tmp_path: Path
) -> None:
    target = write(tmp_path, "target.mp4", samples["mp4"])
    fifo = _fifo(tmp_path / "never-written.mp4")
    cases = pointer_files(target, fifo)
    for case, (name, text) in cases.items():
        folder = tmp_path / case.replace(" ", "-")
        folder.mkdir()
        outcome = decode_case(write(folder, name, text.encode()), case)
        assert outcome.refused, f"{case}: decoded {len(outcome.frames or [])} frames"
        assert "not a video" in outcome.message, f"{case}: {outcome.message}"
        assert outcome.seconds < LIMITS.timeout_s / 2, f"{case}: {outcome.seconds:.1f} s"
