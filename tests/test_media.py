"""bot.core.media against the real bundled ffmpeg: encoding, decoding, budgets, interpolation and
the refusal of hostile uploads. Frames are small (64x64) so the whole file runs in seconds; fixture
files that media.py must never produce itself (gif, webm, playlists, rotated or tagged files) are
made by running ffmpeg directly."""

from __future__ import annotations

import io
import itertools
import os
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from bot.core import media
from bot.core.errors import MediaError

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 120, 40), (16, 16, 16), (240, 240, 240)]


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def solid_frames(size: tuple[int, int] = (64, 64), per_colour: int = 4) -> list[Image.Image]:
    return [Image.new("RGB", size, colour) for colour in COLOURS for _ in range(per_colour)]


def gradient_frames(count: int = 12, size: tuple[int, int] = (64, 64)) -> list[Image.Image]:
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    frames = []
    for index in range(count):
        rgb = np.stack(
            [x * 255 // (width - 1), y * 255 // (height - 1), np.full_like(x, 10 * index)], axis=-1
        )
        frames.append(Image.fromarray(rgb.astype(np.uint8), "RGB"))
    return frames


def busy_frames(count: int, size: tuple[int, int], seed: int = 0) -> list[Image.Image]:
    """Random black and white 2x2 blocks, new every frame: expensive at every crf, size and rate
    (plain noise is not: at crf 38 or scaled down it averages out to flat grey)."""
    rng = np.random.default_rng(seed)
    width, height = size
    frames = []
    for _ in range(count):
        bits = rng.integers(0, 2, (height // 2, width // 2, 3), dtype=np.uint8) * 255
        frames.append(Image.fromarray(bits.repeat(2, axis=0).repeat(2, axis=1), "RGB"))
    return frames


def square_frames(count: int, step: int) -> list[Image.Image]:
    """A white square moving right by ``step`` pixels per frame on black."""
    frames = []
    for index in range(count):
        pixels = np.zeros((64, 128, 3), np.uint8)
        pixels[22:42, 8 + step * index : 28 + step * index] = 255
        frames.append(Image.fromarray(pixels, "RGB"))
    return frames


def square_x(frame: Image.Image) -> float:
    columns = np.nonzero(np.asarray(frame)[..., 0].max(axis=0) > 128)[0]
    return float(columns.mean())


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean())


def ffmpeg(*args: str) -> None:
    """Make a fixture file with the bundled ffmpeg (what media.py is tested against)."""
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *args],
        check=True,
        capture_output=True,
    )


def make_testsrc(
    path: Path, *extra: str, size: str = "64x64", rate: int = 24, frames: int = 24
) -> Path:
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size={size}:rate={rate}",
        "-frames:v",
        str(frames),
        *extra,
        "-y",
        str(path),
    )
    return path


def top_level_boxes(path: Path) -> Iterator[tuple[str, int]]:
    """(type, offset) of each top-level ISO-BMFF box."""
    data = path.read_bytes()
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        elif size == 0:
            size = len(data) - offset
        yield kind.decode("latin-1"), offset
        assert size >= 8, "corrupt box size"
        offset += size


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 solid-colour frames, 64x64 at 12 fps, encoded by media.encode."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    media.encode(solid_frames(), path, 12.0)
    return path


# ------------------------------------------------------------------------------------------------
# encode / decode
# ------------------------------------------------------------------------------------------------


def test_round_trip_keeps_count_size_rate_and_colour(clip: Path) -> None:
    frames, fps = media.decode(clip)
    assert len(frames) == 24
    assert fps == 12.0
    assert {frame.size for frame in frames} == {(64, 64)}
    assert {frame.mode for frame in frames} == {"RGB"}
    for index, colour in enumerate(COLOURS):
        decoded = np.asarray(frames[index * 4 + 2]).reshape(-1, 3).mean(axis=0)
        assert np.abs(decoded - colour).max() <= 3, (colour, decoded)


def test_round_trip_of_gradient(tmp_path: Path) -> None:
    source = gradient_frames()
    media.encode(source, tmp_path / "g.mp4", 8.0)
    frames, fps = media.decode(tmp_path / "g.mp4")
    assert (len(frames), fps) == (12, 8.0)
    assert max(mean_abs_diff(a, b) for a, b in zip(source, frames, strict=True)) < 2.0


def test_encoded_file_is_h264_yuv420p_mp4(clip: Path) -> None:
    info = media.probe(clip)
    assert (info.codec, info.pix_fmt, info.container) == ("h264", "yuv420p", "mp4")
    assert (info.width, info.height, info.fps, info.frame_count) == (64, 64, 12.0, 24)
    assert info.duration_s == pytest.approx(2.0)
    assert info.size_bytes == clip.stat().st_size


def test_encode_result_describes_the_file(clip: Path, tmp_path: Path) -> None:
    encoded = media.encode(solid_frames(), tmp_path / "x.mp4", 12.0, crf=23)
    assert encoded.path == tmp_path / "x.mp4"
    assert encoded.size_bytes == encoded.path.stat().st_size > 0
    assert (encoded.width, encoded.height, encoded.fps, encoded.frame_count, encoded.crf) == (
        64,
        64,
        12.0,
        24,
        23,
    )


def test_faststart_puts_moov_before_mdat(clip: Path) -> None:
    offsets = dict(top_level_boxes(clip))
    assert next(iter(offsets)) == "ftyp"
    assert offsets["moov"] < offsets["mdat"]
    assert "moof" not in offsets  # one index for the whole file, not a fragmented stream


def test_odd_size_becomes_even(tmp_path: Path) -> None:
    encoded = media.encode(gradient_frames(4, (63, 35)), tmp_path / "odd.mp4", 8.0)
    assert (encoded.width, encoded.height) == (64, 36)
    info = media.probe(encoded.path)
    assert (info.width, info.height) == (64, 36)
    frames, _ = media.decode(encoded.path)
    assert frames[0].size == (64, 36)


def test_max_side_keeps_aspect_and_even_size(tmp_path: Path) -> None:
    encoded = media.encode(gradient_frames(4, (200, 100)), tmp_path / "s.mp4", 8.0, max_side=100)
    assert (encoded.width, encoded.height) == (100, 50)
    assert (media.probe(encoded.path).width, media.probe(encoded.path).height) == (100, 50)
    encoded = media.encode(gradient_frames(4, (90, 170)), tmp_path / "t.mp4", 8.0, max_side=85)
    assert encoded.height == 86 and encoded.width % 2 == 0 and encoded.width == 46


def test_ntsc_rate_survives(tmp_path: Path) -> None:
    encoded = media.encode(solid_frames(per_colour=2), tmp_path / "ntsc.mp4", 24000 / 1001)
    info = media.probe(encoded.path)
    assert info.fps == pytest.approx(24000 / 1001, abs=1e-3)
    assert info.frame_count == 12


def test_encode_rejects_empty_and_mixed_sizes(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no frames"):
        media.encode([], tmp_path / "e.mp4", 8.0)
    frames = [Image.new("RGB", (64, 64)), Image.new("RGB", (64, 48))]
    with pytest.raises(MediaError, match=r"frame 1 is 64x48 but frame 0 is 64x64"):
        media.encode(frames, tmp_path / "m.mp4", 8.0)
    with pytest.raises(MediaError, match="frame rate"):
        media.encode(frames[:1], tmp_path / "f.mp4", 0.0)
    assert listing(tmp_path) == []


def test_encode_converts_other_modes(tmp_path: Path) -> None:
    frames = [Image.new("RGBA", (32, 32), (0, 0, 255, 128)), Image.new("L", (32, 32), 200)]
    media.encode(frames, tmp_path / "modes.mp4", 8.0)
    decoded, _ = media.decode(tmp_path / "modes.mp4")
    assert np.asarray(decoded[0]).reshape(-1, 3).mean(axis=0) == pytest.approx((0, 0, 255), abs=4)
    assert np.asarray(decoded[1]).reshape(-1, 3).mean(axis=0) == pytest.approx((200,) * 3, abs=4)


def test_failed_encode_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    target.write_bytes(b"previous video")
    # x264 refuses a 40000-pixel-wide picture: a real ffmpeg failure after the pipe has started.
    with pytest.raises(MediaError, match="encoding the video failed"):
        media.encode([Image.new("RGB", (40000, 2))] * 2, target, 8.0)
    assert listing(tmp_path) == ["out.mp4"]
    assert target.read_bytes() == b"previous video"


class BreaksOnSecondPass(Sequence[Image.Image]):
    """A lazy frame source (frames made on demand, e.g. read from disk) that fails part-way through
    the second pass over it: encode's size check reads it once, streaming to ffmpeg is the second.
    """

    def __init__(self, count: int, fail_at: int) -> None:
        self._count, self._fail_at, self._passes = count, fail_at, 0

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if not 0 <= index < self._count:
            raise IndexError(index)
        return Image.new("RGB", (64, 64), (9, 9, 9))

    def __iter__(self) -> Iterator[Image.Image]:
        self._passes += 1
        for index in range(self._count):
            if self._passes > 1 and index == self._fail_at:
                raise OSError("disk went away")
            yield self[index]


def test_frame_source_error_mid_stream_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    with pytest.raises(OSError, match="disk went away"):
        media.encode(BreaksOnSecondPass(30, fail_at=10), target, 8.0)
    assert listing(tmp_path) == []
    media.encode(BreaksOnSecondPass(30, fail_at=99), target, 8.0)  # the same source, unbroken
    assert listing(tmp_path) == ["out.mp4"]


# ------------------------------------------------------------------------------------------------
# encode_within
# ------------------------------------------------------------------------------------------------

BUDGET_FPS = 16.0


@pytest.fixture(scope="module")
def busy() -> list[Image.Image]:
    return busy_frames(16, (160, 96))


def budget_size(
    frames: list[Image.Image], tmp: Path, crf: int, max_side: int | None = None, stride: int = 1
) -> int:
    """The byte size of one of encode_within's steps, encoded directly (x264 is deterministic)."""
    encoded = media.encode(
        frames[::stride],
        tmp / "step.mp4",
        BUDGET_FPS / stride,
        crf=crf,
        preset="veryfast",
        max_side=max_side,
    )
    (tmp / "step.mp4").unlink()
    return encoded.size_bytes


def test_budget_first_lowers_quality(busy: list[Image.Image], tmp_path: Path) -> None:
    budget = budget_size(busy, tmp_path, crf=28)
    assert budget_size(busy, tmp_path, crf=23) > budget
    result = media.encode_within(busy, tmp_path / "q.mp4", BUDGET_FPS, budget)
    assert (result.crf, result.width, result.height, result.fps) == (28, 160, 96, BUDGET_FPS)
    assert result.size_bytes == (tmp_path / "q.mp4").stat().st_size <= budget
    assert result.path == tmp_path / "q.mp4"


def test_budget_then_shrinks_the_picture(busy: list[Image.Image], tmp_path: Path) -> None:
    budget = budget_size(busy, tmp_path, crf=38, max_side=80)
    assert budget < budget_size(busy, tmp_path, crf=38, max_side=120)
    result = media.encode_within(busy, tmp_path / "s.mp4", BUDGET_FPS, budget)
    assert (result.crf, result.width, result.height, result.fps) == (38, 80, 48, BUDGET_FPS)
    assert result.frame_count == 16
    assert result.size_bytes <= budget


def test_budget_then_drops_frames(busy: list[Image.Image], tmp_path: Path) -> None:
    budget = budget_size(busy, tmp_path, crf=38, max_side=56, stride=2)
    assert budget < budget_size(busy, tmp_path, crf=38, max_side=56)
    result = media.encode_within(busy, tmp_path / "f.mp4", BUDGET_FPS, budget)
    assert (result.width, result.height, result.fps, result.frame_count) == (56, 34, 8.0, 8)
    info = media.probe(result.path)
    assert (info.fps, info.frame_count) == (8.0, 8)


def test_budget_impossible_raises_and_leaves_nothing(
    busy: list[Image.Image], tmp_path: Path
) -> None:
    with pytest.raises(MediaError) as caught:
        media.encode_within(busy, tmp_path / "x.mp4", BUDGET_FPS, 2000)
    message = str(caught.value)
    assert message.startswith("the video does not fit in 2.0 KiB: the smallest encode was ")
    assert "at 4 fps" in message  # went all the way down to the fps floor
    assert listing(tmp_path) == []


def test_budget_fits_at_best_quality_when_it_can(tmp_path: Path) -> None:
    result = media.encode_within(solid_frames(), tmp_path / "b.mp4", 12.0, 10 * 1024 * 1024)
    assert (result.crf, result.width, result.fps, result.frame_count) == (18, 64, 12.0, 24)


# ------------------------------------------------------------------------------------------------
# interpolate
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [2, 3])
def test_interpolate_count_rate_and_alignment(factor: int) -> None:
    source = square_frames(6, step=12)
    frames, fps = media.interpolate(source, 10.0, factor)
    assert len(frames) == len(source) * factor
    assert fps == 10.0 * factor
    assert {frame.size for frame in frames} == {(128, 64)}
    for index, original in enumerate(source):  # every factor-th output is an input frame
        assert mean_abs_diff(frames[index * factor], original) < 2.0
    positions = [square_x(frame) for frame in frames[: (len(source) - 1) * factor + 1]]
    assert all(b > a for a, b in itertools.pairwise(positions))  # real in-betweens
    assert positions[1] == pytest.approx(positions[0] + 12 / factor, abs=2.0)
    for held in frames[-factor:]:  # the last frame is held for its original duration
        assert mean_abs_diff(held, source[-1]) < 2.0


def test_interpolate_factor_one_and_tiny_frames() -> None:
    source = solid_frames((16, 12), per_colour=1)
    same, fps = media.interpolate(source, 8.0, 1)
    assert same == source and fps == 8.0
    frames, fps = media.interpolate(source[:2], 8.0, 4)  # under minterpolate's 32x32 minimum
    assert (len(frames), fps, frames[0].size) == (8, 32.0, (16, 12))


@pytest.mark.parametrize("factor", [0, 5, -2])
def test_interpolate_rejects_factor(factor: int) -> None:
    with pytest.raises(MediaError, match=r"1, 2, 3 or 4"):
        media.interpolate(solid_frames(per_colour=1), 8.0, factor)


# ------------------------------------------------------------------------------------------------
# Accepted uploads
# ------------------------------------------------------------------------------------------------


def test_accepts_gif(tmp_path: Path) -> None:
    path = make_testsrc(tmp_path / "a.gif", rate=10, frames=10)
    info = media.probe(path)
    assert (info.container, info.codec, info.fps, info.frame_count) == ("gif", "gif", 10.0, 10)
    frames, fps = media.decode(path)
    assert (len(frames), fps, frames[0].size) == (10, 10.0, (64, 64))


def test_accepts_mov(tmp_path: Path) -> None:
    path = make_testsrc(tmp_path / "a.mov", "-c:v", "libx264", "-pix_fmt", "yuv420p")
    assert media.probe(path).container == "mov"
    assert len(media.decode(path)[0]) == 24


@pytest.mark.parametrize("suffix", ["webm", "mkv"])
def test_accepts_webm_and_mkv(tmp_path: Path, suffix: str) -> None:
    try:
        path = make_testsrc(tmp_path / f"a.{suffix}", "-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p")
    except subprocess.CalledProcessError:
        pytest.skip("the bundled ffmpeg has no libvpx-vp9 encoder")
    info = media.probe(path)
    assert (info.container, info.codec, info.frame_count) == (suffix, "vp9", 24)
    assert len(media.decode(path)[0]) == 24


def test_webm_without_duration_is_counted(tmp_path: Path) -> None:
    """Browsers' MediaRecorder writes webm with no duration; frames are counted instead."""
    path = tmp_path / "live.webm"
    with path.open("wb") as out:
        subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                *("-hide_banner", "-loglevel", "error", "-f", "lavfi"),
                *("-i", "testsrc=size=64x64:rate=24", "-frames:v", "30"),
                *("-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-f", "webm", "pipe:1"),
            ],
            stdout=out,
            check=True,
        )
    info = media.probe(path)
    assert (info.frame_count, info.duration_s) == (30, pytest.approx(1.25))
    with pytest.raises(MediaError, match="about 30 frames; the limit is 29"):
        media.probe(path, media.MediaLimits(max_frames=29))


def test_rotated_video_is_upright(tmp_path: Path) -> None:
    left_red = np.zeros((48, 64, 3), np.uint8)
    left_red[:, :32] = (255, 0, 0)
    left_red[:, 32:] = (0, 0, 255)
    media.encode([Image.fromarray(left_red)] * 4, tmp_path / "flat.mp4", 8.0)
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(tmp_path / "flat.mp4"), "-c", "copy", str(rotated))
    info = media.probe(rotated)
    assert (info.width, info.height) == (48, 64)
    frame = np.asarray(media.decode(rotated)[0][0], np.int16)
    assert frame.shape == (64, 48, 3)
    top, bottom = frame[:28].reshape(-1, 3).mean(0), frame[36:].reshape(-1, 3).mean(0)
    assert min(top.max(), bottom.max()) > 200  # each half one pure colour: turned, not squashed
    assert {int(top.argmax()), int(bottom.argmax())} == {0, 2}


def test_metadata_cannot_forge_stream_lines(clip: Path, tmp_path: Path) -> None:
    forged = tmp_path / "forged.mp4"
    fake = "x\n  Duration: 00:00:00.01\n  Stream #0:0: Video: h264, yuv420p, 16x16, 1 fps"
    ffmpeg("-i", str(clip), "-c", "copy", "-metadata", f"title={fake}", str(forged))
    info = media.probe(forged)
    assert (info.width, info.height, info.fps, info.duration_s) == (64, 64, 12.0, 2.0)


@pytest.mark.parametrize(
    "name",
    ["-i evil name.mp4", "--help.mp4", "file:x.mp4", "a\n  Stream #0:0: Video: h264, 2x2.mp4"],
)
def test_hostile_file_names_are_only_file_names(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    (tmp_path / name).write_bytes(clip.read_bytes())
    monkeypatch.chdir(tmp_path)  # a relative name, so the argument itself starts with "-"
    assert media.probe(name).frame_count == 24
    assert len(media.decode(Path(name))[0]) == 24
    assert listing(tmp_path) == [name]


# ------------------------------------------------------------------------------------------------
# Refused uploads
# ------------------------------------------------------------------------------------------------


def upload_bytes(kind: str, clip: Path) -> bytes:
    if kind == "text":
        return b"hello, I am a text file\n" * 50
    if kind == "png-renamed":
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, format="PNG")
        return buffer.getvalue()
    if kind == "random":
        return np.random.default_rng(1).bytes(20000)
    if kind == "empty":
        return b""
    if kind == "first-1KB":
        return clip.read_bytes()[:1024]
    assert kind == "first-half"
    return clip.read_bytes()[: clip.stat().st_size // 2]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("text", "this file is not a video"),
        ("png-renamed", "this file is not a video"),
        ("random", "this file is not a video"),
        ("empty", "the file is empty"),
        ("first-1KB", "damaged or truncated"),
        ("first-half", "damaged or truncated"),
    ],
)
def test_refuses_non_videos_and_truncated(
    clip: Path, tmp_path: Path, kind: str, message: str
) -> None:
    path = tmp_path / "upload.mp4"
    path.write_bytes(upload_bytes(kind, clip))
    with pytest.raises(MediaError, match=message):
        media.probe(path)
    with pytest.raises(MediaError, match=message):
        media.decode(path)


def test_truncated_after_a_valid_header_fails_to_decode(tmp_path: Path) -> None:
    """Index complete, half the picture data missing: probe passes, decode must not."""
    whole = tmp_path / "whole.mp4"
    media.encode(gradient_frames(120, (128, 128)), whole, 24.0)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 3 // 4])
    assert media.probe(cut).frame_count == 120
    with pytest.raises(MediaError, match="damaged or truncated"):
        media.decode(cut)


def test_refuses_audio_only(tmp_path: Path) -> None:
    path = tmp_path / "song.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac", str(path))
    with pytest.raises(MediaError, match="no video stream"):
        media.probe(path)


def test_refuses_playlists_and_concat_scripts_that_point_at_local_files(
    clip: Path, tmp_path: Path
) -> None:
    (tmp_path / "target.mp4").write_bytes(clip.read_bytes())
    hls = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\ntarget.mp4\n#EXT-X-ENDLIST\n"
    concat = f"ffconcat version 1.0\nfile '{tmp_path / 'target.mp4'}'\n"
    for name, text in [("list.m3u8", hls), ("list.mp4", hls), ("c.ffconcat", concat)]:
        (tmp_path / name).write_text(text)
        with pytest.raises(MediaError, match=r"not a video \(allowed: mp4, mov, webm, mkv, gif\)"):
            media.decode(tmp_path / name)


def test_size_limit_is_checked_before_ffmpeg(tmp_path: Path) -> None:
    huge = tmp_path / "huge.mp4"
    with huge.open("wb") as sparse:  # 80 MiB of nothing: instant to make, takes no disk
        sparse.truncate(80 * 1024 * 1024)
    with pytest.raises(MediaError, match=r"the file is 80 MiB; the limit is 50 MiB"):
        media.probe(huge)
    fifo = tmp_path / "pipe.mp4"  # ffmpeg would block forever on a FIFO with no writer
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(MediaError, match="not a regular file"):
        media.decode(fifo)
    assert time.monotonic() - started < 5
    with pytest.raises(MediaError, match="does not exist"):
        media.probe(tmp_path / "missing.mp4")


def test_small_size_limit(clip: Path) -> None:
    assert clip.stat().st_size > 1000
    with pytest.raises(MediaError, match=r"KiB; the limit is 1000 bytes"):
        media.decode(clip, media.MediaLimits(max_bytes=1000))


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (media.MediaLimits(max_pixels=4000), r"64x64 \(4096 pixels per frame\); the limit is 4000"),
        (media.MediaLimits(max_duration_s=1.5), r"2\.0 s long; the limit is 1\.5 s"),
        (media.MediaLimits(max_frames=20), r"about 24 frames; the limit is 20"),
    ],
    ids=["pixels", "duration", "frames"],
)
def test_refuses_over_limits(clip: Path, limits: media.MediaLimits, message: str) -> None:
    with pytest.raises(MediaError, match=message):
        media.probe(clip, limits)
    with pytest.raises(MediaError, match=message):
        media.decode(clip, limits)


def test_frame_cap_holds_when_the_container_lies_about_its_duration(tmp_path: Path) -> None:
    honest = make_testsrc(tmp_path / "honest.mkv", "-c:v", "libx264", frames=30)
    data = bytearray(honest.read_bytes())
    at = data.find(b"\x44\x89\x88")  # the Segment's Duration element: an 8-byte float in ms
    assert struct.unpack(">d", data[at + 3 : at + 11]) == (1250.0,)
    data[at + 3 : at + 11] = struct.pack(">d", 100.0)
    lying = tmp_path / "lying.mkv"
    lying.write_bytes(bytes(data))
    limits = media.MediaLimits(max_frames=10)
    assert media.probe(lying, limits).frame_count == 2  # the estimate believes the lie...
    with pytest.raises(MediaError, match="more than 10 frames; the limit is 10"):
        media.decode(lying, limits)  # ...the decoder's hard cap does not
    assert len(media.decode(lying)[0]) == 30


def test_limits_exactly_at_the_edge_pass(clip: Path) -> None:
    limits = media.MediaLimits(max_pixels=4096, max_duration_s=2.0, max_frames=24)
    assert len(media.decode(clip, limits)[0]) == 24


def test_timeout_kills_ffmpeg(clip: Path) -> None:
    with pytest.raises(MediaError, match=r"took longer than 0\.0001 s"):
        media.probe(clip, media.MediaLimits(timeout_s=0.0001))
