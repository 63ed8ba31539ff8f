"""Every edit against the frames it must produce, through the engine's ``edit_video``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bot.core import GenerationResult, InvalidParameterError, VideoBotError
from bot.core.engine import GenerationEngine
from bot.core.manager import ModelManager


def numbered_clip(count: int = 12, fps: float = 8.0) -> GenerationResult:
    """Frames whose grey level encodes their index, so every output frame names its source."""
    frames = [Image.new("RGB", (32, 32), (i * 20, i * 20, i * 20)) for i in range(count)]
    return GenerationResult(
        images=frames,
        metadata={"model": "tiny_t2v"},
        generation_time=0.0,
        seed_used=5,
        params=None,
        fps=fps,
    )


def indices(result: GenerationResult) -> list[int]:
    return [int(np.asarray(frame)[0, 0, 0]) // 20 for frame in result.images]


@pytest.fixture(scope="module")
def editor() -> GenerationEngine:
    return GenerationEngine(ModelManager())


def test_trim_keeps_the_half_open_range(editor) -> None:
    clip = numbered_clip()
    assert indices(editor.edit_video(clip, "trim", start_frame=3, end_frame=7)) == [3, 4, 5, 6]
    assert indices(editor.edit_video(clip, "trim", start_frame=9)) == [9, 10, 11]
    assert indices(editor.edit_video(clip, "trim", end_frame=2)) == [0, 1]


def test_speed_drops_or_repeats_evenly(editor) -> None:
    clip = numbered_clip()
    assert indices(editor.edit_video(clip, "speed", speed_factor=2.0)) == [0, 2, 4, 6, 8, 10]
    assert indices(editor.edit_video(clip, "speed", speed_factor=3.0)) == [0, 3, 6, 9]
    slow = editor.edit_video(clip, "speed", speed_factor=0.5)
    assert indices(slow) == [i // 2 for i in range(24)]
    assert slow.frame_rate == clip.frame_rate  # duration changes, the rate does not


def test_reverse_and_loop(editor) -> None:
    clip = numbered_clip(5)
    assert indices(editor.edit_video(clip, "reverse")) == [4, 3, 2, 1, 0]
    assert indices(editor.edit_video(clip, "loop", loops=3)) == [0, 1, 2, 3, 4] * 3


def test_interpolate_keeps_sources_and_adds_in_betweens(editor) -> None:
    clip = numbered_clip(6)
    smooth = editor.edit_video(clip, "interpolate", factor=2)
    assert len(smooth.images) == 12 and smooth.frame_rate == 16.0
    levels = [float(np.asarray(f).mean()) for f in smooth.images]
    for k in range(6):  # output frame 2k is source frame k (within codec-free rounding)
        assert abs(levels[2 * k] - k * 20) <= 2
    for k in range(5):  # the frame after it lies between source k and k+1
        assert k * 20 - 2 <= levels[2 * k + 1] <= (k + 1) * 20 + 2


def test_edits_chain_and_record_history(editor) -> None:
    clip = numbered_clip()
    edited = editor.edit_video(
        editor.edit_video(clip, "reverse"), "trim", start_frame=0, end_frame=3
    )
    assert indices(edited) == [11, 10, 9]
    assert [e["operation"] for e in edited.metadata["edits"]] == ["reverse", "trim"]
    assert edited.seed_used == clip.seed_used
    assert indices(clip) == list(range(12))  # the source is untouched


def test_bad_edits_change_nothing(editor) -> None:
    clip = numbered_clip()
    for op, kwargs in [
        ("trim", {"start_frame": 5, "end_frame": 20}),
        ("speed", {"speed_factor": 0}),
        ("loop", {"loops": 0}),
        ("interpolate", {"factor": 9}),
        ("sharpen", {}),
    ]:
        with pytest.raises(InvalidParameterError):
            editor.edit_video(clip, op, **kwargs)
    assert indices(clip) == list(range(12))
    failed = GenerationResult(
        images=[], metadata={}, generation_time=0, seed_used=0, params=None, error="Cancelled."
    )
    with pytest.raises(VideoBotError, match="no frames to edit"):
        editor.edit_video(failed, "reverse")
