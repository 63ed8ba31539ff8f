"""Extend a clip (``bot.core.extend``): the seam measure and the colour match on synthetic clips,
the choice of extender and its refusals, the plan's limits, and the real extension on each
extender's tiny twin (LTX-Video 0.9.7's ``LTXConditionPipeline`` with the tail as a condition;
Wan 2.2 TI2V from the last frame), with the sound kept, chained, and through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.core import media
from bot.core.engine import GenerationEngine
from bot.core.errors import InvalidParameterError, MediaError
from bot.core.extend import (
    check_limits,
    choose_extender,
    extend_models,
    extender_spec,
    match_colour,
    plan_extend,
    plan_within_limits,
    seam_ratio,
)
from bot.core.registry import get_spec
from bot.core.result import GenerationResult
from tests.test_sound import TOLERANCE_S, assert_sound_fits, chirp, clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EXTENDERS = ["tiny_wan_vace", "tiny_ltx_distilled", "tiny_wan"]


# --- the seam and the colour (synthetic clips, no model) ----------------------------------------


def moving_clip(frames: int, start: int = 0, phase: float = 0.0) -> np.ndarray:
    """A smooth pattern panning one pixel per frame: every consecutive pair differs alike, a
    little. Another ``phase`` is another picture."""
    y, x = np.mgrid[0:48, 0:64].astype(np.float32)
    clips = []
    for i in range(start, start + frames):
        channels = [
            128 + 60 * np.sin(2 * np.pi * (x + i) / 40 + phase + c) * np.cos(2 * np.pi * y / 30)
            for c in (0.0, 1.0, 2.0)
        ]
        clips.append(np.stack(channels, axis=-1))
    return np.clip(np.rint(clips), 0, 255).astype(np.uint8)


def test_the_seam_of_a_continuous_clip_is_about_one_and_a_jump_is_far_more() -> None:
    whole = moving_clip(20)
    assert seam_ratio(whole, 10) == pytest.approx(1.0, abs=0.2)
    jumped = np.concatenate([whole[:10], moving_clip(10, start=10, phase=2.0)])
    assert seam_ratio(jumped, 10) > 3.0


def test_the_seam_must_fall_inside_the_clip() -> None:
    with pytest.raises(ValueError, match="inside the clip"):
        seam_ratio(moving_clip(4), 4)


def test_the_colour_match_lowers_the_seam_of_a_continuation_with_a_colour_cast() -> None:
    """The continuation goes on moving as the clip did, but tinted, as a model drifts: the
    join jumps; matched to the tail's statistics, it moves like the rest of the clip."""
    whole = moving_clip(24)
    original, continuation = whole[:12], whole[12:].astype(np.float32)
    cast = np.clip(continuation * [0.75, 0.95, 1.1] + [30, -10, 12], 0, 255).astype(np.uint8)
    before = seam_ratio(np.concatenate([original, cast]), 12)
    corrected = match_colour(cast, original[-8:])
    after = seam_ratio(np.concatenate([original, corrected]), 12)
    assert before > 3.0
    assert after < before / 2 and after < 2.0
    tail = original[-8:].reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(corrected.reshape(-1, 3).mean(axis=0), tail.mean(axis=0), atol=1.5)


def test_a_flat_channel_is_only_shifted() -> None:
    flat = np.full((2, 4, 4, 3), 100, dtype=np.uint8)
    reference = np.full((1, 4, 4, 3), 120, dtype=np.uint8)
    assert np.all(match_colour(flat, reference) == 120)


# --- which model, and the refusals --------------------------------------------------------------


def test_extenders_are_ordered_best_method_first() -> None:
    order = extend_models()
    methods = [get_spec(key).extends for key in order]
    assert methods == sorted(methods, key=["vace", "tail", "last_frame"].index)
    assert {"ltx_video_distilled", "wan2_2_i2v_a14b", *EXTENDERS} <= set(order)
    assert order[0] == "wan2_1_vace_1_3b"  # the best real extender: many frames, masked


def test_a_model_that_cannot_extend_is_refused_naming_those_that_can() -> None:
    with pytest.raises(InvalidParameterError) as info:
        extender_spec("tiny_t2v")
    text = str(info.value)
    assert text.startswith("model: tiny_t2v cannot extend a clip; models that can: ")
    assert ", ".join(extend_models()) in text and "\n" not in text


def test_the_extender_is_the_one_asked_for_else_the_owners_else_the_best_enabled() -> None:
    enabled = ["tiny_t2v", "tiny_wan", "tiny_ltx_distilled"]
    assert choose_extender(enabled, None, None) == "tiny_ltx_distilled"  # tail beats last frame
    assert choose_extender([*enabled, "tiny_wan_vace"], None, None) == "tiny_wan_vace"
    assert choose_extender(enabled, "tiny_wan", None) == "tiny_wan"
    assert choose_extender(enabled, "tiny_wan", "tiny_ltx_distilled") == "tiny_ltx_distilled"
    with pytest.raises(InvalidParameterError, match="no model on this bot can extend"):
        choose_extender(["tiny_t2v"], None, None)
    with pytest.raises(InvalidParameterError, match="tiny_wan_a14b_i2v is not enabled"):
        choose_extender(enabled, None, "tiny_wan_a14b_i2v")


def test_a_clip_with_sound_prefers_an_enabled_extender_that_makes_sound() -> None:
    """Only LTX-2 continues the clip's sound; the others pad it with silence."""
    enabled = ["tiny_t2v", "tiny_wan", "tiny_wan_vace", "tiny_ltx2"]
    assert choose_extender(enabled, None, None) == "tiny_wan_vace"  # the usual order
    assert choose_extender(enabled, None, None, sound=True) == "tiny_ltx2"
    silent_makers = ["tiny_wan", "tiny_ltx_distilled"]  # none makes sound: the usual order
    assert choose_extender(silent_makers, None, None, sound=True) == "tiny_ltx_distilled"
    assert choose_extender(enabled, "tiny_wan", None, sound=True) == "tiny_wan"  # the owner's
    assert choose_extender(enabled, None, "tiny_wan_vace", sound=True) == "tiny_wan_vace"


def test_planning_within_limits_plans_then_refuses_what_the_limits_would() -> None:
    spec = get_spec("tiny_wan")
    assert plan_within_limits(spec, 64, 48, 470, 8.0, None, None) == plan_extend(
        spec, 64, 48, 470, 8.0
    )
    with pytest.raises(InvalidParameterError, match=r"the result would last .* the limit is 60 s"):
        plan_within_limits(spec, 64, 48, 470, 8.0, None, media.MediaLimits(max_duration_s=60.0))


def test_the_plan_follows_the_models_frame_rule_and_nearest_size() -> None:
    plan = plan_extend(get_spec("ltx_video_distilled"), 1920, 1080, 200, 30.0, 48)
    assert plan.context == 17 and get_spec("ltx_video_distilled").frames.accepts(plan.render_frames)
    assert plan.new_frames == plan.render_frames - plan.context >= 48
    assert (plan.width % 32, plan.height % 32) == (0, 0) and plan.width > plan.height
    single = plan_extend(get_spec("wan2_2_i2v_a14b"), 832, 480, 81, 16.0)
    assert (single.method, single.context) == ("last_frame", 1)
    short = plan_extend(get_spec("tiny_ltx_distilled"), 64, 48, 5, 8.0)
    assert short.context == 1  # a clip shorter than 9 frames gives what the 8k+1 rule allows


def test_a_result_over_the_limits_is_refused_with_the_numbers() -> None:
    plan = plan_extend(get_spec("tiny_wan"), 64, 48, 470, 8.0)
    with pytest.raises(InvalidParameterError) as info:
        check_limits(plan, 64, 48, media.MediaLimits(max_duration_s=60.0))
    assert str(info.value) == (
        "video: the result would last 60.2 s (470 + 12 frames at 8 fps); the limit is 60 s: "
        "trim it first"
    )
    small = media.MediaLimits(max_decoded_bytes=500_000)
    with pytest.raises(MediaError, match=r"extending this video would take .* the limit is"):
        check_limits(plan_extend(get_spec("tiny_wan"), 64, 48, 60, 8.0), 64, 48, small)


# --- the real extension on the tiny twins --------------------------------------------------------


def plan_size(key: str) -> tuple[int, int]:
    """The render size of a 64x48 clip: the model's nearest allowed size for its aspect."""
    plan = plan_extend(get_spec(key), 64, 48, 9, 8.0)
    return plan.width, plan.height


@pytest.fixture(scope="module")
def with_sound(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("extend")
    return clip(folder / "sound.mp4", size="64x48", rate=8, seconds=1.125, sounds=(chirp(1.125),))


@pytest.mark.parametrize("key", EXTENDERS)
def test_extend_gives_the_original_then_the_continuation_with_its_sound(
    key: str, engine: GenerationEngine, with_sound: Path, tmp_path: Path
) -> None:
    source = GenerationResult.from_video_file(with_sound)
    original = np.stack([np.asarray(f) for f in source.images])
    result = engine.extend(source, prompt="the boat sails on", model=key, num_inference_steps=2)
    assert result.error is None, result.error
    plan = plan_extend(get_spec(key), 64, 48, 9, 8.0)
    assert len(result.images) == 9 + plan.new_frames
    assert result.size == (64, 48) and result.frame_rate == pytest.approx(8.0)
    np.testing.assert_array_equal(np.stack([np.asarray(f) for f in result.images[:9]]), original)
    seam = result.metadata["extend"]
    assert (seam["extender"], seam["method"]) == (key, get_spec(key).extends)
    assert seam["seam_ratio"] > 0 and seam["render_size"] == list(plan_size(key))
    out = Path(result.save_as_video(tmp_path / "extended.mp4"))
    ends = assert_sound_fits(out)
    assert abs(ends["audio"] - len(result.images) / 8.0) <= TOLERANCE_S
    assert media.probe(out).frame_count == len(result.images)


def silent_clip(folder: Path) -> Path:
    """The extend tests' silent clip: 9 frames, 64x48 at 8 fps."""
    return clip(folder / "silent.mp4", size="64x48", rate=8, seconds=1.125)


def extended_silent_clip(
    engine: GenerationEngine, folder: Path, model: str, new_frames: int
) -> GenerationResult:
    """:func:`silent_clip` extended on ``model``: it must come back, and silent (a sound that
    started with the continuation would be a seam of its own)."""
    source = GenerationResult.from_video_file(silent_clip(folder))
    result = engine.extend(source, prompt="on", model=model, new_frames=new_frames)
    assert result.error is None, result.error
    assert result.sound is None
    return result


def test_an_extension_can_be_extended_and_a_silent_clip_stays_silent(
    engine: GenerationEngine, tmp_path: Path
) -> None:
    first = extended_silent_clip(engine, tmp_path, "tiny_wan", 4)
    path = Path(first.save_as_video(tmp_path / "first.mp4"))
    assert media.probe(path).audio is None
    reopened = GenerationResult.from_video_file(path)
    second = engine.extend(reopened, prompt="further", model="tiny_wan", new_frames=4)
    assert second.error is None
    assert len(second.images) == len(first.images) + second.metadata["extend"]["new_frames"]
    np.testing.assert_array_equal(
        np.asarray(second.images[len(first.images) - 1]), np.asarray(reopened.images[-1])
    )


def test_extend_refuses_a_model_that_cannot_and_an_empty_prompt(
    engine: GenerationEngine, with_sound: Path
) -> None:
    source = GenerationResult.from_video_file(with_sound)
    with pytest.raises(InvalidParameterError, match="tiny_t2v cannot extend a clip"):
        engine.extend(source, prompt="on", model="tiny_t2v")
    with pytest.raises(InvalidParameterError, match="prompt: say how the clip should go on"):
        engine.extend(source, prompt="  ", model="tiny_wan")


def test_cli_extend_writes_the_longer_clip_with_sound(
    with_sound: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.test_cli import run_in_process

    args = ["extend", str(with_sound), "--prompt", "on", "--model", "tiny_wan", "--steps", "2"]
    code, out, err = run_in_process([*args, "-o", "out.mp4"], tmp_path, capsys, monkeypatch)
    assert code == 0, err
    assert "saved out.mp4: 9 + 12 frames on tiny_wan, 64x48 at 8 fps, with sound" in out
    assert_sound_fits(tmp_path / "out.mp4")
    code, _, err = run_in_process(
        ["extend", str(with_sound), "--prompt", "on", "--model", "tiny_t2v", "-o", "no.mp4"],
        tmp_path,
        capsys,
        monkeypatch,
    )
    assert code == 2 and "tiny_t2v cannot extend a clip" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "no.mp4").exists()


def test_cli_extend_unnamed_picks_by_the_clips_sound(
    with_sound: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without ``--model`` the CLI chooses as the bot does, once the clip is open: LTX-2 for a
    clip with sound, VACE (first in the usual order) for a silent one; stopped at the load."""
    from bot import cli
    from tests.test_cli import run_in_process

    def stop(key: str, *, image: bool = False) -> None:
        raise InvalidParameterError("model", f"would load {key}")

    monkeypatch.setattr(cli, "_load", stop)
    (tmp_path / "config.toml").write_text(
        '[models]\nenabled = ["tiny_t2v", "tiny_wan_vace", "tiny_ltx2"]\n'
    )
    loads = []
    for path in (with_sound, silent_clip(tmp_path)):
        args = ["extend", str(path), "--prompt", "on", "-o", "out.mp4"]
        code, _, err = run_in_process(args, tmp_path, capsys, monkeypatch)
        assert code == 2, err
        loads.append(err.split("would load ")[1].strip())
    assert loads == ["tiny_ltx2", "tiny_wan_vace"]


@pytest.mark.parametrize(
    ("extender", "line"),
    [
        ("tiny_t2v", "'tiny_t2v' cannot extend a clip; pick one of: "),
        ("tiny_ltx_distilled", "'tiny_ltx_distilled' is not in models.enabled; add it there too"),
    ],
)
def test_the_owners_extender_must_extend_and_be_enabled(
    extender: str, line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.config import ConfigError, load_settings

    (tmp_path / "config.toml").write_text(
        f'[models]\nenabled = ["tiny_t2v", "tiny_wan"]\nextender = "{extender}"\n'
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    [only] = caught.value.lines
    assert only.startswith("config.toml: [models] extender: ") and line in only
    (tmp_path / "config.toml").write_text(
        '[models]\nenabled = ["tiny_t2v", "tiny_wan"]\nextender = "tiny_wan"\n'
    )
    assert load_settings().models.extender == "tiny_wan"


def test_models_json_says_how_each_model_extends() -> None:
    from bot.core.manager import ManagerOptions, ModelManager
    from bot.models_json import registry_json

    entries = registry_json(ModelManager(ManagerOptions()))["models"]
    abilities = {entry["key"]: entry["abilities"] for entry in entries}
    assert abilities["ltx_video_distilled"]["extend"] == "tail"
    assert abilities["wan2_2_i2v_a14b"]["extend"] == "last_frame"
    assert abilities["animatediff"]["extend"] is None


async def test_a_database_from_before_keeps_its_jobs_and_takes_extend_jobs(tmp_path: Path) -> None:
    """Migration 3 rebuilds the jobs table for the new kinds: rows, ids and parent links stay."""
    from bot.store import Store, load_migrations

    path = tmp_path / "bot.sqlite3"
    old = await Store.open(path, migrations=load_migrations()[:2])
    who = {"user_id": 1, "user_name": "a", "guild_id": 5, "channel_id": 7, "model": "tiny_wan"}
    parent = await old.create_job(kind="generate", params={}, prompt="p", parent_id=None, **who)
    child = await old.create_job(kind="edit", params={}, prompt="p", parent_id=parent.id, **who)
    with pytest.raises(ValueError, match="kind must be one of"):
        await old.create_job(kind="nonsense", params={}, prompt="p", parent_id=None, **who)
    await old.close()
    store = await Store.open(path)
    try:
        assert (await store.get_job(child.id)).parent_id == parent.id  # type: ignore[union-attr]
        extended = await store.create_job(
            kind="extend", params={"new_frames": None}, prompt="on", parent_id=child.id, **who
        )
        again = await store.get_job(extended.id)
        assert again is not None and again.kind.value == "extend" and again.parent_id == child.id
    finally:
        await store.close()
    import sqlite3

    with sqlite3.connect(path) as db:  # the table's own CHECK takes the new kinds
        db.execute("UPDATE jobs SET kind = 'restyle' WHERE id = ?", (parent.id,))
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
