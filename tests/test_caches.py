"""Feature caches (``[speed] cache``, ``bot.core.caches``) on the tiny transformer models: each cache
really skips work, changes the frames only within a stated tolerance, composes with compile, offload
and cancel, and is refused with a clear note where it does not apply (the UNet models)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.core import GenerationParams
from bot.core.caches import CACHE_CHOICES, FAMILY_CACHES, NO_CACHE, plan_cache, supported_caches
from bot.core.engine import GenerationEngine
from bot.core.manager import ManagerOptions, ModelManager
from bot.core.progress import JobControl
from bot.core.registry import REGISTRY
from bot.core.speed import SpeedOptions

STEPS = 8
MEAN_TOLERANCE = 4.0
"""A cache may move the frames, but on average by at most 4 of 255 levels per pixel against the
same job without it (the tiny models' worst case, MagCache on CogVideoX, measures about 2.4)."""

MODELS = ("tiny_ltx", "tiny_wan", "tiny_cogvideox")
CASES = [(key, name) for key in MODELS for name in supported_caches(REGISTRY[key])]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def job(key: str, **changes: Any) -> GenerationParams:
    values: dict[str, Any] = {
        "prompt": "a red fox runs",
        "model": key,
        "seed": 3,
        "num_inference_steps": STEPS,
    }
    return GenerationParams(**{**values, **changes})


class WorkCounter:
    """Counts what the transformer blocks really compute: calls of each block's self-attention
    output projection (skipped by the attention caches) and of each block's feed-forward (skipped
    with the whole block by First Block Cache and MagCache). Forward hooks on the leaves: a hook on
    the block itself would fire even when a cache hook returns the cached output in its place."""

    def __init__(self, transformer: Any) -> None:
        blocks = getattr(transformer, "transformer_blocks", None) or transformer.blocks
        self.attention = 0
        self.feed_forward = 0
        self.handles = []
        for block in blocks:
            self.handles.append(block.attn1.to_out[0].register_forward_hook(self._attention))
            feed = getattr(block, "ff", None) or block.ffn
            self.handles.append(feed.register_forward_hook(self._feed_forward))

    def _attention(self, *_: Any) -> None:
        self.attention += 1

    def _feed_forward(self, *_: Any) -> None:
        self.feed_forward += 1

    def reset(self) -> tuple[int, int]:
        counts = (self.attention, self.feed_forward)
        self.attention = self.feed_forward = 0
        return counts

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def frames(result: Any) -> np.ndarray:
    assert result.ok, result.error
    return np.stack([np.asarray(image) for image in result.images]).astype(np.int16)


@pytest.fixture(scope="module")
def runs(model_cache: Path) -> Iterator[Callable[..., tuple[np.ndarray, tuple[int, int]]]]:
    """``run(key, cache, **options)``: frames and (attention, feed-forward) work of one job on a
    manager with that ``[speed] cache``; managers are kept per option set."""
    managers: dict[tuple[Any, ...], ModelManager] = {}

    def run(key: str, cache: str, **options: Any) -> tuple[np.ndarray, tuple[int, int]]:
        speed = options.pop("speed", {})
        ident = (cache, tuple(sorted(speed.items())), tuple(sorted(options.items())))
        if ident not in managers:
            managers[ident] = ModelManager(
                ManagerOptions(
                    cache_dir=model_cache, speed=SpeedOptions(cache=cache, **speed), **options
                )
            )
        manager = managers[ident]
        transformer = manager.load_model(key).pipeline.transformer
        counter = WorkCounter(transformer)
        try:
            result = GenerationEngine(manager).generate_video(job(key))
            return frames(result), counter.reset()
        finally:
            counter.remove()

    yield run
    for manager in managers.values():
        manager.unload_all()


def test_every_transformer_family_has_caches_and_every_tiny_model_runs_them() -> None:
    assert {name for _, name in CASES} == {"first_block", "mag", "faster", "pab", "taylorseer"}
    for key in MODELS:
        assert supported_caches(REGISTRY[key]) == FAMILY_CACHES[REGISTRY[key].family]


@pytest.mark.parametrize(("key", "name"), CASES)
def test_cache_skips_work_and_stays_within_tolerance(runs, key: str, name: str) -> None:
    plain, (attention, feed_forward) = runs(key, "off")
    cached, (attention_c, feed_forward_c) = runs(key, name)
    assert attention_c < attention, f"{name} computed every attention on {key}"
    if name in ("first_block", "mag"):  # whole blocks are skipped, their feed-forward too
        assert feed_forward_c < feed_forward
    assert not np.array_equal(plain, cached)  # it really ran with the cache
    difference = float(np.abs(plain - cached).mean())
    assert difference <= MEAN_TOLERANCE, f"{name} on {key}: mean difference {difference:.2f}"


def test_the_cache_is_recorded_and_taken_off_after_the_job(model_cache: Path) -> None:
    manager = ModelManager(ManagerOptions(cache_dir=model_cache, speed=SpeedOptions(cache="pab")))
    try:
        result = GenerationEngine(manager).generate_video(job("tiny_wan"))
        assert result.ok and result.metadata["cache"]["name"] == "pab"
        assert result.metadata["cache"]["settings"]["spatial_attention_block_skip_range"] == 2
        assert not manager.get_loaded("tiny_wan").pipeline.transformer.is_cache_enabled
    finally:
        manager.unload_all()


def test_auto_is_each_models_default_which_is_off(model_cache: Path) -> None:
    for spec in REGISTRY.values():
        assert spec.cache_default == "off"
        assert plan_cache("auto", spec).name is None
    manager = ModelManager(ManagerOptions(cache_dir=model_cache))
    try:
        result = GenerationEngine(manager).generate_video(job("tiny_ltx"))
        assert result.metadata["cache"] == {
            "name": "off",
            "settings": {},
            "note": "off (tiny_ltx's default)",
        }
    finally:
        manager.unload_all()


# --- where a cache does not apply ----------------------------------------------------------------


@pytest.mark.parametrize("key", ["tiny_t2v", "tiny_animatediff"])
def test_a_unet_model_runs_without_the_cache_and_says_why(
    runs, model_cache: Path, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    plain = GenerationEngine(ModelManager(ManagerOptions(cache_dir=model_cache)))
    cached = GenerationEngine(
        ModelManager(ManagerOptions(cache_dir=model_cache, speed=SpeedOptions(cache="first_block")))
    )
    params = GenerationParams(prompt="a fox", model=key, seed=5, num_inference_steps=10)
    with caplog.at_level(logging.INFO, logger="bot.core.caches"):
        result = cached.generate_video(params)
    assert result.ok
    note = result.metadata["cache"]["note"]
    assert result.metadata["cache"]["name"] == "off"
    assert "First Block Cache (first_block) does not apply to" in note and "a UNet model" in note
    assert "LTX-Video, Wan, CogVideoX" in note
    assert note in caplog.text
    assert np.array_equal(frames(result), frames(plain.generate_video(params)))
    for engine in (plain, cached):
        engine.manager.unload_all()


def test_faster_cache_is_refused_outside_cogvideox_naming_what_the_family_takes() -> None:
    plan = plan_cache("faster", REGISTRY["wan2_1_1_3b"])
    assert plan.name is None
    assert plan.note == (
        "off: FasterCache (faster) does not apply to the wan family of wan2_1_1_3b; it takes "
        "first_block, mag, pab, taylorseer"
    )
    assert plan_cache("faster", REGISTRY["cogvideox_5b"]).name == "faster"


def test_magcache_needs_calibrated_ratios() -> None:
    plan = plan_cache("mag", REGISTRY["ltx_video"])
    assert plan.name is None and "calibrated magnitude ratios" in plan.note
    assert "mag" not in supported_caches(REGISTRY["ltx_video"])
    assert plan_cache("mag", REGISTRY["tiny_ltx"]).name == "mag"
    # Wan 2.1 1.3B carries MagCache's published ratios (50 steps), stretched to any step count.
    wan = plan_cache("mag", REGISTRY["wan2_1_1_3b"])
    assert wan.name == "mag" and len(wan.settings["mag_ratios"]) == 50
    assert wan.note == "mag (threshold=0.12, max_skip_steps=2, retention_ratio=0.2)"


def test_the_switch_is_validated() -> None:
    with pytest.raises(ValueError, match="cache must be one of auto, off, first_block"):
        SpeedOptions(cache="teacache")
    assert SpeedOptions.all_off().cache == "off"
    assert SpeedOptions.from_mapping({"cache": "mag"}).cache == "mag"
    assert CACHE_CHOICES[:2] == ("auto", "off")
    with pytest.raises(ValueError, match="compile_scope must be one of auto, regional, full"):
        SpeedOptions(compile_scope="blocks")
    with pytest.raises(ValueError, match="bad cache names"):
        replace(REGISTRY["tiny_wan"], cache_default="teacache")


# --- composing with compile, offload and cancel --------------------------------------------------


def test_cache_composes_with_regional_compilation(runs, monkeypatch) -> None:
    import bot.core.speed as speed

    monkeypatch.setattr(speed, "COMPILE_BACKEND", "eager")  # Dynamo without inductor: quick
    eager, work = runs("tiny_ltx", "first_block")
    compiled, work_compiled = runs("tiny_ltx", "first_block", speed={"compile": "on"})
    assert work_compiled == work  # the same blocks skipped
    assert int(np.abs(eager - compiled).max()) <= 2


def test_regional_compilation_compiles_the_repeated_blocks(model_cache: Path, monkeypatch) -> None:
    import bot.core.speed as speed

    monkeypatch.setattr(speed, "COMPILE_BACKEND", "eager")
    manager = ModelManager(
        ManagerOptions(cache_dir=model_cache, speed=SpeedOptions(compile="on", cache="mag"))
    )
    try:
        result = GenerationEngine(manager).generate_video(job("tiny_wan"))
        assert result.ok
        pipe = manager.get_loaded("tiny_wan").pipeline
        report = speed.speed_report(pipe)["compile"]
        assert report["transformer"].startswith("regional: WanTransformerBlock")
        assert all(block._compiled_call_impl is not None for block in pipe.transformer.blocks)
        assert not isinstance(pipe.transformer.forward, speed.CompiledDenoiser)
    finally:
        manager.unload_all()


def test_cache_composes_with_whole_denoiser_compilation(runs, monkeypatch) -> None:
    import bot.core.speed as speed

    monkeypatch.setattr(speed, "COMPILE_BACKEND", "eager")
    eager, work = runs("tiny_cogvideox", "pab")
    options = {"compile": "on", "compile_scope": "full", "compile_frames": (9,)}
    compiled, work_compiled = runs("tiny_cogvideox", "pab", speed=options)
    assert work_compiled == work
    assert int(np.abs(eager - compiled).max()) <= 2


@pytest.mark.parametrize("saver", ["cpu_offload", "group_offload"])
def test_cache_composes_with_offload(runs, saver: str) -> None:
    """Model offload wraps the transformer's forward in accelerate's hooks, group offload puts
    diffusers' own hooks on every leaf layer; the cache hooks sit on the blocks between them."""
    cached, work = runs("tiny_wan", "first_block")
    offloaded, work_offloaded = runs("tiny_wan", "first_block", **{saver: True})
    assert work_offloaded == work
    assert np.array_equal(offloaded, cached)


def test_a_cancelled_job_leaves_no_cache_behind(model_cache: Path) -> None:
    manager = ModelManager(ManagerOptions(cache_dir=model_cache, speed=SpeedOptions(cache="mag")))
    engine = GenerationEngine(manager)
    try:

        def cancel_at_step_three(progress: Any) -> None:
            if progress.step == 3:
                control.cancel()

        control = JobControl(on_progress=cancel_at_step_three)
        result = engine.generate_video(job("tiny_ltx"), control)
        assert result.cancelled and result.error == "Cancelled."
        transformer = manager.get_loaded("tiny_ltx").pipeline.transformer
        assert not transformer.is_cache_enabled
        again = frames(engine.generate_video(job("tiny_ltx")))
        fresh = ModelManager(ManagerOptions(cache_dir=model_cache, speed=SpeedOptions(cache="mag")))
        try:
            assert np.array_equal(
                again, frames(GenerationEngine(fresh).generate_video(job("tiny_ltx")))
            )
        finally:
            fresh.unload_all()
    finally:
        manager.unload_all()


def test_no_cache_plan_is_a_no_op() -> None:
    assert NO_CACHE.name is None and NO_CACHE.as_metadata()["name"] == "off"
