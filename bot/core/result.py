"""The outcome of a generation, an edit or an upscale: frames plus everything needed to reproduce,
render or edit them again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core import media
from bot.core.errors import MediaError

if TYPE_CHECKING:
    from PIL import Image

    from bot.core.params import GenerationParams


@dataclass
class GenerationResult:
    """The seed's result type.

    ``error`` is set (and ``images`` empty) when the job failed or was cancelled; ``params`` is
    ``None`` for videos that were not generated here (uploads opened for editing). ``fps`` is the
    playback rate of ``images``, which edits such as interpolation change; it defaults to
    ``params.fps``. ``images`` is a list, or for an edit's result the frames of its file read on
    demand (:class:`bot.core.media.VideoFrames`).

    ``sound`` is the video's sound beside its frames (:class:`bot.core.media.Sound`): the audio
    of a file it was opened from or edited into, a track carried in memory, or a waveform a
    generator attaches (``Sound.waveform(samples, rate)``); None for a silent video, which stays
    silent (no empty track is written). Edits and upscales carry it; :meth:`save_as_video`
    muxes it. ``metadata["note"]``, when set, is one line for the member about the result (an
    edit that left the sound out says why); the bot posts it with the video.
    """

    images: Sequence[Image.Image]
    metadata: dict[str, Any]
    generation_time: float
    seed_used: int
    params: GenerationParams | None
    error: str | None = None
    fps: float | None = None
    cancelled: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    sound: media.Sound | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.images)

    @property
    def frame_rate(self) -> float:
        if self.fps is not None:
            return self.fps
        return float(self.params.fps) if self.params is not None else 8.0

    @property
    def size(self) -> tuple[int, int]:
        return self.images[0].size if self.images else (0, 0)

    def save_images(self, output_dir: str | Path, prefix: str = "generated") -> list[str]:
        """Save every frame as ``{prefix}_{index:04d}.png``; returns the paths in frame order."""
        folder = Path(output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, frame in enumerate(self.images):
            path = folder / f"{prefix}_{index:04d}.png"
            frame.save(path)
            paths.append(str(path))
        return paths

    def save_as_video(
        self, output_path: str | Path, fps: float | None = None, *, encoder: str = "auto"
    ) -> str:
        """Encode the frames as an H.264 mp4 that plays inline in Discord and browsers
        (``encoder``: see :func:`bot.core.media.video_encoder`), with the sound as AAC when
        there is one, fitted to the frames' length."""
        if not self.images:
            raise MediaError(f"there are no frames to save ({self.error or 'empty result'})")
        encoded = media.encode(
            self.images, output_path, fps or self.frame_rate, encoder=encoder, sound=self.sound
        )
        return str(encoded.path)

    @classmethod
    def from_video_file(
        cls, path: str | Path, limits: media.MediaLimits | None = None
    ) -> GenerationResult:
        """Open an existing video (an upload, a previous output) for upscaling or editing in
        memory: every frame is decoded and held, so the video must fit ``limits``'s memory budget
        (``max_decoded_bytes``), checked from the probe before anything is decoded. Its sound
        stays in the file (``sound.path``): call ``sound.detached()`` before the file goes."""
        frames, info = media.decode_video(path, limits or media.MediaLimits())
        return cls(
            images=frames,
            metadata={"source": Path(path).name},
            generation_time=0.0,
            seed_used=0,
            params=None,
            fps=info.fps,
            sound=media.Sound.of_file(path, info),
        )
