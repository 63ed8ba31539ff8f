"""LTX-2 conditions (issue 25, sections 1 and 2): a first and a last picture, and a clip's tail to
extend it, through diffusers' real ``LTX2ConditionPipeline`` built over the loaded modules of the
tiny twins (``tiny_ltx2``: one stage; ``tiny_ltx2_distilled``: half size, x2 latent upsampler,
refine). The pictures land at latent indexes 0 and the last; an extension keeps the original
frames and sound and goes on with LTX-2's own sound, not silence."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bot.core import GenerationParams, media
from bot.core.engine import GenerationEngine
from bot.core.extend import extend_models, plan_extend
from bot.core.progress import JobControl, Progress
from bot.core.registry import first_last_frame_models, get_spec
from bot.core.result import GenerationResult
from tests.test_extend import extended_silent_clip
from tests.test_sound import PCM_RATE, TOLERANCE_S, assert_sound_fits, chirp, clip, pcm

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LTX2_KEYS = ("ltx2", "ltx2_distilled", "tiny_ltx2", "tiny_ltx2_distilled")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Each ``LTX2ConditionPipeline`` call: its class name and arguments (the real call runs)."""
    from diffusers import LTX2ConditionPipeline

    seen: list[tuple[str, dict[str, Any]]] = []
    real = LTX2ConditionPipeline.__call__

    @functools.wraps(real)
    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((type(self).__name__, kwargs))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LTX2ConditionPipeline, "__call__", spy)
    return seen


def picture(folder: Path, colour: tuple[int, int, int]) -> str:
    path = folder / f"{'-'.join(map(str, colour))}.png"
    Image.new("RGB", (64, 64), colour).save(path)
    return str(path)


def first_last(
    engine: GenerationEngine,
    tmp_path: Path,
    model: str,
    end: Any,
    control: JobControl | None = None,
    **extra: Any,
) -> Any:
    params = GenerationParams(
        prompt="a red ball turns blue",
        model=model,
        image=picture(tmp_path, (230, 40, 30)),
        end_image=picture(tmp_path, end),
        seed=3,
        **extra,
    )
    result = engine.generate_video(params, control)
    assert result.error is None, result.error
    return result


def indexes(call: dict[str, Any]) -> list[tuple[int, float]]:
    return [(c.index, c.strength) for c in call["conditions"]]


# --- the registry ---------------------------------------------------------------------------


def test_ltx2_keys_take_a_first_and_last_frame_and_extend_before_ltx_video() -> None:
    able = first_last_frame_models()
    assert all(get_spec(k).first_last_frame and k in able for k in LTX2_KEYS)
    order = extend_models()
    assert all(get_spec(k).extends == "tail" for k in LTX2_KEYS)
    # Within the tail method the models that continue the sound come first.
    assert order.index("ltx2") < order.index("ltx_video_distilled")
    assert order.index("tiny_ltx2") < order.index("tiny_ltx_distilled")
    assert order[0] == "wan2_1_vace_1_3b"


# --- first and last frame -------------------------------------------------------------------


def test_first_and_last_frame_run_ltx2s_condition_pipeline_at_both_ends(
    engine: GenerationEngine, calls: list[tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    """17 frames are 3 latent frames: the start picture at index 0, the end at index 2; another
    end picture gives another video, and the sound is still made. The live preview shows the
    video's latents, not the keyframe tokens appended after them."""
    seen: list[Progress] = []
    control = JobControl(on_progress=seen.append, previews=True, previews_every_s=3600.0)
    blue = first_last(engine, tmp_path, "tiny_ltx2", (20, 40, 230), control, num_frames=17)
    assert any(p.preview is not None for p in seen)
    green = first_last(engine, tmp_path, "tiny_ltx2", (20, 230, 40), num_frames=17)
    assert [name for name, _ in calls] == ["LTX2ConditionPipeline"] * 2
    call = calls[0][1]
    assert indexes(call) == [(0, 1.0), (2, 1.0)] and "image" not in call
    start, end = (np.asarray(c.frames) for c in call["conditions"])
    assert np.abs(start.astype(int) - [230, 40, 30]).mean() < 12  # the CRF 33 round trip
    assert np.abs(end.astype(int) - [20, 40, 230]).mean() < 12
    assert blue.metadata["first_last_frame"] is True and blue.sound is not None
    frames = [np.stack([np.asarray(f) for f in r.images]).astype(int) for r in (blue, green)]
    assert frames[0].shape == (17, 64, 64, 3)
    assert np.abs(frames[0] - frames[1]).mean() > 0


def test_the_distilled_recipe_pins_both_ends_in_both_stages(
    engine: GenerationEngine, calls: list[tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    result = first_last(
        engine, tmp_path, "tiny_ltx2_distilled", (20, 40, 230), width=128, height=64
    )
    assert result.size == (128, 64) and result.sound is not None
    (_, first), (_, second) = calls
    assert (first["width"], second["width"]) == (64, 128)
    assert indexes(first) == indexes(second) == [(0, 1.0), (1, 1.0)]  # 9 frames: 2 latent
    assert second["latents"] is not None and second["audio_latents"] is not None


# --- extend -----------------------------------------------------------------------------------


def test_ltx2_extends_a_clip_and_continues_its_sound(
    engine: GenerationEngine, calls: list[tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    """The original frames unchanged, then the continuation; the tail at latent index 0; the
    audio as long as the picture, the original's chirp first and LTX-2's sound after (random
    weights: not silence)."""
    source_path = clip(
        tmp_path / "sound.mp4", size="64x48", rate=8, seconds=1.125, sounds=(chirp(1.125),)
    )
    source = GenerationResult.from_video_file(source_path)
    original = np.stack([np.asarray(f) for f in source.images])
    result = engine.extend(source, prompt="the ball rolls on", model="tiny_ltx2", seed=1)
    assert result.error is None, result.error
    plan = plan_extend(get_spec("tiny_ltx2"), 64, 48, 9, 8.0)
    assert [name for name, _ in calls] == ["LTX2ConditionPipeline"]
    [condition] = calls[0][1]["conditions"]
    assert (condition.index, len(condition.frames)) == (0, plan.context)
    assert len(result.images) == 9 + plan.new_frames and plan.new_frames > 0
    np.testing.assert_array_equal(np.stack([np.asarray(f) for f in result.images[:9]]), original)
    assert result.metadata["sound"] is True and result.metadata["extend"]["method"] == "tail"
    out = Path(result.save_as_video(tmp_path / "extended.mp4", encoder="libx264"))
    ends = assert_sound_fits(out)
    assert abs(ends["audio"] - len(result.images) / 8.0) <= TOLERANCE_S
    samples = pcm(out)
    join = int(9 / 8.0 * PCM_RATE)
    margin = int(0.05 * PCM_RATE)  # AAC's frames blur the join a little
    before, after = samples[: join - margin], samples[join + margin :]
    assert np.sqrt(np.mean(before**2)) > 0.1  # the chirp, kept
    assert after.size > 0.5 * PCM_RATE * plan.new_frames / 8.0
    assert np.sqrt(np.mean(after**2)) > 1e-4  # LTX-2's sound, not apad's silence


def test_a_silent_clip_extended_by_ltx2_stays_silent(
    engine: GenerationEngine, tmp_path: Path
) -> None:
    result = extended_silent_clip(engine, tmp_path, "tiny_ltx2", 8)
    out = Path(result.save_as_video(tmp_path / "silent-extended.mp4", encoder="libx264"))
    assert media.probe(out).audio is None
