"""Pictures handed in to be animated (``bot/core/images.py``): allowed formats load as RGB, every
kind of bad file is refused as an ``InvalidParameterError`` on the ``image`` field, limits are
checked before the pixels are decoded, and ``fit_image`` crops around the centre."""

from __future__ import annotations

import io
import os
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.core.errors import InvalidParameterError
from bot.core.images import ALLOWED_FORMATS, ImageLimits, fit_image, load_image, save_image


def encoded(picture: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient(width: int = 48, height: int = 32) -> Image.Image:
    """A picture whose every pixel differs from its neighbours: no constant colour hides a bug."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) * 3 % 256], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def refused(source: object, limits: ImageLimits | None = None) -> InvalidParameterError:
    with pytest.raises(InvalidParameterError) as info:
        load_image(source, limits)  # type: ignore[arg-type]
    assert info.value.field == "image"
    assert str(info.value).startswith("image: ")
    return info.value


def with_png_size(png: bytes, width: int, height: int) -> bytes:
    """A real PNG whose IHDR now claims ``width`` x ``height`` (CRC recomputed): a header that
    promises a huge picture at the cost of a few bytes."""
    assert png[12:16] == b"IHDR"
    body = struct.pack(">II", width, height) + png[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + body))
    return png[:16] + body + crc + png[33:]


# --- formats that load --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "lossless"),
    [("PNG", True), ("BMP", True), ("WEBP", True), ("JPEG", False), ("GIF", False)],
)
def test_allowed_formats_load_as_rgb(tmp_path: Path, fmt: str, lossless: bool) -> None:
    picture = gradient()
    options = {"lossless": True} if fmt == "WEBP" else {}
    path = tmp_path / f"picture.{fmt.lower()}"
    path.write_bytes(encoded(picture, fmt, **options))
    for source in (path, str(path), path.read_bytes()):
        loaded = load_image(source)
        assert loaded.mode == "RGB" and loaded.size == picture.size
        diff = np.abs(np.asarray(loaded, np.int16) - np.asarray(picture, np.int16))
        if lossless:
            assert diff.max() == 0
        else:  # JPEG's compression and GIF's 256-colour palette
            assert diff.mean() < 24


def test_real_type_comes_from_the_content_not_the_name(tmp_path: Path) -> None:
    path = tmp_path / "actually_a_jpeg.png"
    path.write_bytes(encoded(gradient(), "JPEG"))
    assert load_image(path).size == (48, 32)
    renamed = tmp_path / "picture.jpg"
    renamed.write_bytes(encoded(gradient(), "TIFF"))
    assert "PNG, JPEG" in str(refused(renamed))


def test_animated_gif_gives_its_first_frame(tmp_path: Path) -> None:
    red = Image.new("RGB", (32, 32), (255, 0, 0))
    blue = Image.new("RGB", (32, 32), (0, 0, 255))
    path = tmp_path / "anim.gif"
    red.save(path, save_all=True, append_images=[blue], duration=100, loop=0)
    assert Image.open(path).n_frames == 2
    pixels = np.asarray(load_image(path))
    assert (pixels[..., 0] > 200).all() and (pixels[..., 2] < 50).all()


def test_animated_webp_gives_its_first_frame(tmp_path: Path) -> None:
    green = Image.new("RGB", (32, 32), (0, 255, 0))
    blue = Image.new("RGB", (32, 32), (0, 0, 255))
    path = tmp_path / "anim.webp"
    green.save(path, save_all=True, append_images=[blue], duration=100, lossless=True)
    pixels = np.asarray(load_image(path))
    assert (pixels[..., 1] > 200).all() and (pixels[..., 2] < 50).all()


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": a phone photo taken upright
    data = encoded(gradient(48, 32), "JPEG", exif=exif.tobytes())
    assert load_image(data).size == (32, 48)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparent_pixels_become_white(mode: str) -> None:
    picture = Image.new("RGBA", (32, 32), (200, 0, 0, 0))  # fully transparent red
    opaque = Image.new("RGBA", (16, 32), (200, 0, 0, 255))
    picture.paste(opaque, (0, 0))
    pixels = np.asarray(load_image(encoded(picture.convert(mode), "PNG")))
    assert (pixels[:, 16:] == 255).all()  # the transparent half
    assert (pixels[:, :16] != 255).any(axis=-1).all()  # the opaque half keeps its colour


def test_palette_transparency_becomes_white() -> None:
    picture = Image.new("P", (32, 32), 0)
    picture.putpalette([0, 0, 0, 10, 200, 10] + [0] * (254 * 3))
    picture.paste(1, (0, 0, 16, 32))
    data = encoded(picture, "GIF", transparency=0)
    pixels = np.asarray(load_image(data))
    assert (pixels[:, 16:] == 255).all()
    assert (pixels[:, :16] == (10, 200, 10)).all()


# --- files that are refused ---------------------------------------------------------------------


def test_byte_limit_is_checked_from_the_file_size_before_reading(tmp_path: Path) -> None:
    png = encoded(gradient(), "PNG")
    path = tmp_path / "picture.png"
    path.write_bytes(png)
    assert load_image(path, ImageLimits(max_bytes=len(png))).size == (48, 32)
    message = str(refused(path, ImageLimits(max_bytes=len(png) - 1)))
    assert "the limit is" in message
    # A sparse 1 GiB file: its size in the message can only come from stat, not from reading it
    # (which would stop after max_bytes + 1 bytes anyway), and it is refused at once.
    sparse = tmp_path / "huge.png"
    with open(sparse, "wb") as file:
        file.write(png)
        file.truncate(2**30)
    started = time.perf_counter()
    message = str(refused(sparse, ImageLimits(max_bytes=2**20)))
    assert time.perf_counter() - started < 1.0
    assert "is 1024.0 MB; the limit is 1.0 MB" in message


def test_byte_limit_applies_to_bytes_too() -> None:
    png = encoded(gradient(), "PNG")
    assert "the limit is" in str(refused(png, ImageLimits(max_bytes=len(png) - 1)))


def test_pixel_limit_is_read_from_the_header_without_decoding() -> None:
    png = encoded(gradient(32, 32), "PNG")
    claims_5000 = with_png_size(png, 5000, 5000)  # 25 Mpx: above the 16.8 Mpx default limit
    started = time.perf_counter()
    message = str(refused(claims_5000))
    assert time.perf_counter() - started < 0.5  # decoding 25 Mpx alone would take longer
    assert "is 5000x5000 pixels; the limit is 16,777,216 pixels" in message
    assert "is 32x32 pixels; the limit is 1,000 pixels" in str(
        refused(png, ImageLimits(max_pixels=1000))
    )


def test_header_claiming_billions_of_pixels_is_refused_at_once() -> None:
    png = encoded(gradient(32, 32), "PNG")
    for side in (10_000, 100_000):
        started = time.perf_counter()
        refused(with_png_size(png, side, side))
        assert time.perf_counter() - started < 0.5


def test_header_claiming_billions_of_pixels_names_the_pixel_limit() -> None:
    png = encoded(gradient(32, 32), "PNG")
    assert "pixels" in str(refused(with_png_size(png, 100_000, 100_000)))


@pytest.mark.parametrize("side", [40, 60])  # over the limit (a warning), over twice it (an error)
def test_pillow_decompression_bomb_guard_is_an_error(
    monkeypatch: pytest.MonkeyPatch, side: int
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = encoded(gradient(side, side), "PNG")
    refused(data, ImageLimits(max_pixels=10**6))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10**6)
    assert load_image(data).size == (side, side)


def _mp4(tmp_path: Path) -> bytes:
    from bot.core import media

    frames = [gradient(32, 32) for _ in range(3)]
    return Path(media.encode(frames, tmp_path / "clip.mp4", 8).path).read_bytes()


@pytest.mark.parametrize("kind", ["text", "mp4", "TIFF", "ICO", "PPM", "TGA", "PCX", "empty"])
def test_other_formats_are_refused_naming_the_allowed_ones(tmp_path: Path, kind: str) -> None:
    if kind == "text":
        data = b"this is not a picture\n" * 10
    elif kind == "mp4":
        data = _mp4(tmp_path)
    elif kind == "empty":
        data = b""
    else:
        data = encoded(gradient(32, 32), kind)
        # Pillow itself reads these fine: only our allow-list refuses them.
        assert Image.open(io.BytesIO(data)).format == kind
    path = tmp_path / "upload.png"
    path.write_bytes(data)
    message = str(refused(path))
    assert "not a picture I can read" in message
    for fmt in ALLOWED_FORMATS:
        assert fmt in message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_truncated_picture_is_refused_as_damaged(fmt: str) -> None:
    data = encoded(gradient(64, 64), fmt)
    message = str(refused(data[: len(data) // 2]))
    assert "damaged or truncated" in message or "not a picture" in message
    if fmt == "PNG":
        assert "damaged or truncated" in message


def test_corrupt_png_data_is_refused_as_damaged() -> None:
    data = bytearray(encoded(gradient(64, 64), "PNG"))
    start = data.index(b"IDAT") + 8
    data[start : start + 40] = bytes(40)  # zeroed compressed data: zlib cannot inflate it
    assert "damaged or truncated" in str(refused(bytes(data)))


def test_missing_file_is_refused(tmp_path: Path) -> None:
    message = str(refused(tmp_path / "nowhere.png"))
    assert "cannot be opened" in message and "nowhere.png" in message


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


def test_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "folder.png"
    folder.mkdir()
    before = _open_descriptors()
    for _ in range(3):
        assert "is not a regular file" in str(refused(folder))
    assert _open_descriptors() == before  # no descriptor left open by a refusal


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            load_image(fifo)
            outcome.append(None)
        except BaseException as exc:  # handed to the main thread
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():  # unblock the reader so the thread can end
        with open(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "wb"):
            pass
        pytest.fail("reading a FIFO blocked waiting for a writer")
    assert isinstance(outcome[0], InvalidParameterError)
    assert outcome[0].field == "image" and "is not a regular file" in str(outcome[0])


@pytest.mark.parametrize("size", [(8, 8), (100, 10), (15, 200)])
def test_too_small_pictures_are_refused(size: tuple[int, int]) -> None:
    message = str(refused(encoded(Image.new("RGB", size, (9, 9, 9)), "PNG")))
    assert f"is {size[0]}x{size[1]} pixels; each side needs at least 16" in message
    assert load_image(encoded(Image.new("RGB", size), "PNG"), ImageLimits(min_side=8)).size == size


def test_every_refusal_is_a_value_error_for_callers() -> None:
    with pytest.raises(ValueError):
        load_image(b"nope")


# --- fitting and saving -------------------------------------------------------------------------


def _bands(width: int, height: int, colours: list[tuple[int, int, int]]) -> Image.Image:
    """Vertical bands of equal width, left to right, or horizontal ones for a tall picture."""
    pixels = np.zeros((height, width, 3), np.uint8)
    wide = width >= height
    n = len(colours)
    for i, colour in enumerate(colours):
        if wide:
            pixels[:, i * width // n : (i + 1) * width // n] = colour
        else:
            pixels[i * height // n : (i + 1) * height // n, :] = colour
    return Image.fromarray(pixels, "RGB")


RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def test_fit_crops_a_wide_picture_around_its_centre() -> None:
    # Green outer quarters, red and blue in the middle half: a square crop keeps only the middle.
    picture = _bands(128, 64, [GREEN, RED, BLUE, GREEN])
    fitted = fit_image(picture, 32, 32)
    assert fitted.size == (32, 32)
    pixels = np.asarray(fitted, np.int16)
    assert pixels[..., 1].max() < 40  # no green: the sides were cropped, not squeezed in
    assert (pixels[:, :14, 0] > 200).all()  # left half red
    assert (pixels[:, 18:, 2] > 200).all()  # right half blue


def test_fit_crops_a_tall_picture_around_its_centre() -> None:
    picture = _bands(40, 160, [GREEN, RED, BLUE, GREEN])
    fitted = fit_image(picture, 64, 32)  # 2:1 crop from the middle of a 1:4 picture
    assert fitted.size == (64, 32)
    pixels = np.asarray(fitted, np.int16)
    assert pixels[..., 1].max() < 40
    assert (pixels[:14, :, 0] > 200).all() and (pixels[18:, :, 2] > 200).all()


@pytest.mark.parametrize(
    ("source", "target"), [((48, 32), (64, 64)), ((17, 300), (96, 32)), ((64, 64), (32, 96))]
)
def test_fit_gives_exactly_the_target_size(
    source: tuple[int, int], target: tuple[int, int]
) -> None:
    fitted = fit_image(gradient(*source), *target)
    assert fitted.size == target and fitted.mode == "RGB"


def test_fit_to_the_same_size_keeps_the_picture() -> None:
    picture = gradient(64, 32)
    assert np.array_equal(np.asarray(fit_image(picture, 64, 32)), np.asarray(picture))


def test_save_image_writes_a_png_atomically(tmp_path: Path) -> None:
    picture = load_image(encoded(gradient(), "JPEG"))
    path = save_image(picture, tmp_path / "nested" / "kept.png")
    assert [p.name for p in path.parent.iterdir()] == ["kept.png"]  # no staging file left
    assert Image.open(path).format == "PNG"
    assert np.array_equal(np.asarray(load_image(path)), np.asarray(picture))
