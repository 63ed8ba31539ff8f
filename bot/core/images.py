"""Pictures members hand in to be animated: checked before they are decoded, then fitted.

An image is untrusted input from chat. Its size in bytes is checked before reading, its real type
and pixel count are read from the header before any pixel is decoded (Pillow only parses the header
in ``Image.open``), only common still-image decoders are allowed, and Pillow's decompression-bomb
guard is turned into an error rather than a warning.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.errors import InvalidParameterError

if TYPE_CHECKING:
    from PIL import Image

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20 * 2**20
    max_pixels: int = 4096 * 4096
    min_side: int = 16


def load_image(source: str | Path | bytes, limits: ImageLimits | None = None) -> Image.Image:
    """An RGB picture from a file path or bytes, or :class:`InvalidParameterError` saying why not."""
    limits = limits or ImageLimits()
    data = source if isinstance(source, bytes) else _read_file(Path(source), limits)
    if len(data) > limits.max_bytes:
        raise InvalidParameterError(
            "image", f"is {_mb(len(data))}; the limit is {_mb(limits.max_bytes)}"
        )
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            width, height = picture.size
            if width * height > limits.max_pixels:
                raise InvalidParameterError(
                    "image",
                    f"is {width}x{height} pixels; the limit is {limits.max_pixels:,} pixels",
                )
            if min(width, height) < limits.min_side:
                raise InvalidParameterError(
                    "image",
                    f"is {width}x{height} pixels; each side needs at least {limits.min_side}",
                )
            picture.seek(0)  # the first frame of an animated GIF or WebP
            picture.load()
            upright: Image.Image = ImageOps.exif_transpose(picture)
    except InvalidParameterError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidParameterError(
            "image", f"has too many pixels; the limit is {limits.max_pixels:,} pixels"
        ) from None
    except UnidentifiedImageError:
        raise InvalidParameterError(
            "image", f"is not a picture I can read; send a {', '.join(ALLOWED_FORMATS)} file"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidParameterError("image", f"is damaged or truncated ({exc})") from None
    return _to_rgb(upright)


def load_end_image(source: str | Path | bytes, limits: ImageLimits | None = None) -> Image.Image:
    """The last frame's picture (``end_image``), checked exactly as the first one; a refusal
    names ``end_image``, so a member knows which of the two pictures it was."""
    try:
        return load_image(source, limits)
    except InvalidParameterError as exc:
        raise InvalidParameterError("end_image", str(exc).removeprefix("image: ")) from None


def fit_image(picture: Image.Image, width: int, height: int) -> Image.Image:
    """Crop to the video's aspect ratio around the centre, then resize: never stretched."""
    from PIL import Image, ImageOps

    return ImageOps.fit(picture, (width, height), Image.Resampling.LANCZOS)


def save_image(picture: Image.Image, path: Path) -> Path:
    """Write a checked picture as PNG (metadata dropped) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.part")
    picture.save(staging, format="PNG")
    os.replace(staging, path)
    return path


def _read_file(path: Path, limits: ImageLimits) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise InvalidParameterError(
            "image", f"cannot be opened: {exc.strerror or exc} ({path})"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidParameterError("image", f"is not a regular file ({path})")
        if info.st_size > limits.max_bytes:
            raise InvalidParameterError(
                "image", f"is {_mb(info.st_size)}; the limit is {_mb(limits.max_bytes)}"
            )
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as file:
        return file.read(limits.max_bytes + 1)


def _to_rgb(picture: Image.Image) -> Image.Image:
    """Transparent pixels become white, as a picture on a page would show them."""
    from PIL import Image

    if picture.mode in ("RGBA", "LA") or (picture.mode == "P" and "transparency" in picture.info):
        rgba = picture.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return picture.convert("RGB")


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f} MB"
