"""The newer model families (LTX-Video, Wan, CogVideoX, AnimateDiff-Lightning) through the engine,
on their tiny offline models: defaults, per-model rules, determinism, image-to-video, cancel,
progress, the memory switches, Lightning's bare adapter file and the CLI.

Pipeline-level checks of the tiny models themselves live in ``test_tiny_dit.py``."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from bot.core import (
    GenerationEngine,
    GenerationParams,
    GenerationResult,
    InvalidParameterError,
    JobControl,
    ManagerOptions,
    ModelManager,
    media,
)
from bot.core.pipelines.base import denoiser_of
from bot.core.registry import REGISTRY, get_spec, image_to_video_models
from bot.core.rules import SCHEDULERS

DIT = ("tiny_ltx", "tiny_wan", "tiny_cogvideox")
NEW = (*DIT, "tiny_lightning")
PROMPT = "a paper boat drifting on a pond"
LIGHTNING_FILE = "animatediff_lightning_4step_diffusers.safetensors"


def frames_of(result: GenerationResult) -> np.ndarray:
    assert result.error is None, result.error
    return np.stack([np.asarray(frame) for frame in result.images])


def job(model: str | None, **changes: Any) -> GenerationParams:
    """A short job: 2 steps and a fixed seed; everything else the model's defaults."""
    values: dict[str, Any] = {"prompt": PROMPT, "model": model, "seed": 7}
    if model is not None:
        values["num_inference_steps"] = 2
    return GenerationParams(**{**values, **changes})


def write_picture(path: Path, seed: int, size: tuple[int, int] = (80, 64)) -> Path:
    """A non-square picture (so fitting crops) with large flat areas and some texture."""
    rng = np.random.default_rng(seed)
    pixels = np.empty((size[1], size[0], 3), np.uint8)
    pixels[:] = rng.integers(0, 256, 3, dtype=np.uint8)
    pixels[:, size[0] // 2 :] = rng.integers(0, 256, 3, dtype=np.uint8)
    pixels[::4] = rng.integers(0, 256, (len(pixels[::4]), size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("pictures")
    return str(write_picture(folder / "one.png", 1)), str(write_picture(folder / "two.png", 2))


@pytest.fixture
def new_manager(model_cache: Path) -> Iterator[Callable[..., ModelManager]]:
    """``new_manager(**options)``: a manager of its own with those options, unloaded afterwards."""
    made: list[ModelManager] = []

    def make(**options: Any) -> ModelManager:
        made.append(ModelManager(ManagerOptions(cache_dir=model_cache, **options)))
        return made[-1]

    yield make
    for manager in made:
        manager.unload_all()


# --- defaults -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", NEW)
def test_no_options_at_all_uses_the_models_defaults(engine: GenerationEngine, key: str) -> None:
    spec = get_spec(key)
    params = GenerationParams(prompt=PROMPT, model=key)
    assert {name: getattr(params, name) for name in spec.defaults()} == spec.defaults()
    result = engine.generate_video(params)
    assert result.error is None and result.ok
    assert len(result.images) == spec.default_frames
    assert result.size == (spec.native_width, spec.native_height)
    assert result.frame_rate == spec.default_fps
    assert all(frame.mode == "RGB" for frame in result.images)
    meta = result.metadata
    assert meta["model"] == key and meta["model_name"] == spec.name
    assert meta["family"] == spec.family and meta["image_to_video"] is False
    assert meta["num_frames"] == spec.default_frames
    assert meta["num_inference_steps"] == spec.default_steps
    assert meta["scheduler"] == spec.default_scheduler
    assert meta["guidance_scale"] == spec.default_guidance


@pytest.mark.parametrize("key", NEW)
def test_params_without_a_model_take_the_active_models_defaults(
    new_manager: Callable[..., ModelManager], key: str
) -> None:
    manager = new_manager()
    manager.load_model(key)
    engine = GenerationEngine(manager)
    spec = get_spec(key)
    result = engine.generate_video(GenerationParams(prompt=PROMPT, seed=3))
    assert result.ok, result.error
    assert result.params is not None and result.params.model == key
    assert result.params.num_frames == spec.default_frames == len(result.images)
    assert result.params.num_inference_steps == spec.default_steps
    assert result.params.scheduler == spec.default_scheduler
    assert result.size == (spec.native_width, spec.native_height)
    assert result.metadata["model"] == key
    # An option given stays; the others still come from the model.
    given = engine.generate_video(GenerationParams(prompt=PROMPT, seed=3, num_frames=17))
    assert given.ok, given.error
    assert len(given.images) == 17 and given.size == result.size
    assert given.params is not None and given.params.scheduler == spec.default_scheduler


# --- determinism and valid shapes --------------------------------------------------------------


@pytest.mark.parametrize("key", NEW)
def test_same_seed_same_frames_other_seed_other_frames(engine: GenerationEngine, key: str) -> None:
    first = frames_of(engine.generate_video(job(key)))
    again = frames_of(engine.generate_video(job(key)))
    other = frames_of(engine.generate_video(job(key, seed=8)))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


VALID_SHAPES = {
    "tiny_ltx": (17, 96, 64),  # 8k+1, multiples of 32
    "tiny_wan": (13, 96, 64),  # 4k+1, multiples of 32
    "tiny_cogvideox": (17, 80, 48),  # 8k+1, multiples of 16
    "tiny_lightning": (10, 96, 64),  # any count, multiples of 8
}


@pytest.mark.parametrize(
    ("key", "with_image"), [*((k, False) for k in NEW), *((k, True) for k in DIT)]
)
def test_valid_non_default_frame_count_and_size(
    engine: GenerationEngine, pictures: tuple[str, str], key: str, with_image: bool
) -> None:
    frames, width, height = VALID_SHAPES[key]
    spec = get_spec(key)
    assert (frames, width, height) != (spec.default_frames, spec.native_width, spec.native_height)
    image = pictures[0] if with_image else None
    result = engine.generate_video(
        job(key, num_frames=frames, width=width, height=height, image=image)
    )
    assert result.ok, result.error
    assert len(result.images) == frames
    assert all(frame.size == (width, height) for frame in result.images)
    assert result.metadata["num_frames"] == frames
    assert result.metadata["image_to_video"] is with_image


@pytest.mark.parametrize("key", DIT)
def test_every_allowed_scheduler_runs_and_is_used(engine: GenerationEngine, key: str) -> None:
    spec = get_spec(key)
    default = frames_of(engine.generate_video(job(key)))
    for name in spec.schedulers:
        result = engine.generate_video(job(key, scheduler=name))
        pipe = engine.manager.get_loaded(key).pipeline
        assert type(pipe.scheduler).__name__ == SCHEDULERS[name][0]
        if name != spec.default_scheduler:
            assert not np.array_equal(frames_of(result), default)


# --- rules refused before any work -------------------------------------------------------------


RULE_BREAKS = [
    ("tiny_ltx", {"num_frames": 10}, "num_frames", ["8k+1 frames between 9 and 65", "try 9 or 17"]),
    ("tiny_ltx", {"num_frames": 100}, "num_frames", ["8k+1", "try 65 (got 100)"]),
    ("tiny_wan", {"num_frames": 7}, "num_frames", ["4k+1 frames between 5 and 41", "try 5 or 9"]),
    ("tiny_cogvideox", {"num_frames": 12}, "num_frames", ["8k+1", "try 9 or 17 (got 12)"]),
    ("ltx_video", {"num_frames": 10}, "num_frames", ["8k+1", "for ltx_video: try 9 or 17"]),
    ("wan2_1_1_3b", {"num_frames": 80}, "num_frames", ["4k+1", "try 77 or 81"]),
    ("cogvideox_2b", {"num_frames": 50}, "num_frames", ["8k+1", "try 49 (got 50)"]),
    (
        "tiny_ltx",
        {"width": 48},
        "width",
        ["must be a multiple of 32 between 32 and 256 for tiny_ltx: try 32 or 64 (got 48)"],
    ),
    ("tiny_wan", {"height": 80}, "height", ["multiple of 32", "try 64 or 96 (got 80)"]),
    ("tiny_cogvideox", {"width": 40}, "width", ["multiple of 16", "try 32 or 48 (got 40)"]),
    ("tiny_ltx", {"scheduler": "ddim"}, "scheduler", ["ddim does not work with tiny_ltx; use flow_euler"]),
    ("tiny_wan", {"scheduler": "euler"}, "scheduler", ["use unipc or dpm++"]),
    ("tiny_cogvideox", {"scheduler": "flow_euler"}, "scheduler", ["use cogvideox_dpm or cogvideox_ddim"]),
    ("tiny_lightning", {"scheduler": "ddim"}, "scheduler", ["does not work with tiny_lightning; use euler"]),
    (
        "tiny_lightning",
        {"num_inference_steps": 9},
        "num_inference_steps",
        ["must be between 1 and 8 for tiny_lightning (got 9)"],
    ),
    (
        "tiny_lightning",
        {"guidance_scale": 2.5},
        "guidance_scale",
        ["must be between 1 and 2 for tiny_lightning (got 2.5)"],
    ),
    ("animatediff_lightning", {"num_inference_steps": 10}, "num_inference_steps", ["between 1 and 8"]),
    ("animatediff_lightning", {"guidance_scale": 7.5}, "guidance_scale", ["between 1 and 2"]),
]  # fmt: skip


@pytest.mark.parametrize(("key", "changes", "field", "fragments"), RULE_BREAKS)
def test_rule_breaks_are_refused_naming_the_rule_before_loading(
    new_manager: Callable[..., ModelManager],
    key: str,
    changes: dict[str, Any],
    field: str,
    fragments: list[str],
) -> None:
    with pytest.raises(InvalidParameterError) as info:
        GenerationParams(prompt=PROMPT, model=key, **changes)
    assert info.value.field == field
    for fragment in fragments:
        assert fragment in str(info.value)
    # The engine checks again (params built without validation, or resolved later) before it
    # loads anything.
    manager = new_manager()
    unchecked = GenerationParams(prompt=PROMPT, model=key).model_copy(update=changes)
    with pytest.raises(InvalidParameterError) as again:
        GenerationEngine(manager).generate_video(unchecked)
    assert str(again.value) == str(info.value)
    assert not manager.is_loaded(key) and manager.active_key is None


def test_every_broken_rule_is_reported_at_once() -> None:
    with pytest.raises(InvalidParameterError) as info:
        GenerationParams(prompt=PROMPT, model="tiny_ltx", num_frames=10, width=48, scheduler="ddim")
    message = str(info.value)
    assert info.value.field == "width"
    for fragment in ("width: must be a multiple of 32", "num_frames: needs 8k+1", "use flow_euler"):
        assert fragment in message


def test_rules_of_the_active_model_are_checked_before_any_step(
    new_manager: Callable[..., ModelManager],
) -> None:
    """Params without a model pass the seed's ranges (11 frames is fine there); the engine then
    holds them to the active model's rules (Wan: 4k+1) before denoising anything."""
    manager = new_manager()
    loaded = manager.load_model("tiny_wan")
    calls: list[int] = []
    hook = loaded.pipeline.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(InvalidParameterError, match="try 9 or 13"):
            GenerationEngine(manager).generate_video(GenerationParams(prompt=PROMPT, num_frames=11))
    finally:
        hook.remove()
    assert calls == []


def test_bad_picture_is_refused_before_loading(
    new_manager: Callable[..., ModelManager], tmp_path: Path
) -> None:
    manager = new_manager()
    engine = GenerationEngine(manager)
    (tmp_path / "notes.png").write_text("not a picture")
    for path, fragment in (
        (tmp_path / "missing.png", "cannot be opened"),
        (tmp_path / "notes.png", "not a picture I can read"),
    ):
        with pytest.raises(InvalidParameterError, match=fragment) as info:
            engine.generate_video(job("tiny_wan", image=str(path)))
        assert info.value.field == "image"
    assert not manager.is_loaded("tiny_wan")


# --- image to video -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", DIT)
def test_image_to_video_follows_the_picture(
    engine: GenerationEngine, pictures: tuple[str, str], key: str
) -> None:
    one, two = pictures
    first = engine.generate_video(job(key, image=one))
    assert first.metadata["image_to_video"] is True and first.metadata["model"] == key
    spec = get_spec(key)
    assert len(first.images) == spec.default_frames
    assert first.size == (spec.native_width, spec.native_height)
    same = frames_of(engine.generate_video(job(key, image=one)))
    other = frames_of(engine.generate_video(job(key, image=two)))
    text_only = frames_of(engine.generate_video(job(key)))
    assert np.array_equal(frames_of(first), same)
    assert not np.array_equal(frames_of(first), other)
    assert not np.array_equal(frames_of(first), text_only)


@pytest.mark.parametrize("key", DIT)
def test_image_pipeline_shares_the_loaded_modules(engine: GenerationEngine, key: str) -> None:
    loaded = engine.manager.load_model(key)
    with loaded.lock:
        image_pipe = engine.manager.image_pipeline(loaded)
        assert engine.manager.image_pipeline(loaded) is image_pipe  # made once, kept
    assert image_pipe.vae is loaded.pipeline.vae
    assert image_pipe.text_encoder is loaded.pipeline.text_encoder
    separate = get_spec(key).image_source is not None  # CogVideoX: its own I2V transformer
    assert (image_pipe.transformer is loaded.pipeline.transformer) is not separate
    # The memory a model reports counts a separate transformer, and shared modules once.
    own = sum(p.numel() * p.element_size() for p in image_pipe.transformer.parameters())
    without = loaded.pipeline.components
    counted = sum(
        p.numel() * p.element_size()
        for m in without.values()
        if hasattr(m, "parameters")
        for p in m.parameters()
    )
    assert loaded.parameter_bytes == counted + (own if separate else 0)


@pytest.mark.parametrize(
    "key", ["tiny_t2v", "tiny_animatediff", "tiny_lightning", "cogvideox_2b", "wan2_1_1_3b"]
)
def test_models_without_image_to_video_refuse_a_picture(key: str, tmp_path: Path) -> None:
    picture = str(write_picture(tmp_path / "pic.png", 3))
    with pytest.raises(InvalidParameterError) as info:
        GenerationParams(prompt=PROMPT, model=key, image=picture)
    assert info.value.field == "image"
    message = str(info.value)
    assert f"{key} cannot animate a picture; models that can: " in message
    can = message.split("models that can: ")[1].split(", ")
    assert can == image_to_video_models()
    assert {"ltx_video", "wan2_2_ti2v_5b", "cogvideox_5b", *DIT} <= set(can)
    assert key not in can


def test_manager_refuses_an_image_pipeline_for_a_text_only_model(
    engine: GenerationEngine,
) -> None:
    loaded = engine.manager.load_model("tiny_t2v")
    with pytest.raises(InvalidParameterError, match="tiny_t2v cannot animate a picture"):
        engine.manager.image_pipeline(loaded)


def test_cogvideox_5b_animates_pictures_at_720x480_only(tmp_path: Path) -> None:
    picture = str(tmp_path / "pic.png")  # params do not open it: this checks the rule alone
    params = GenerationParams(prompt=PROMPT, model="cogvideox_5b", image=picture)
    assert (params.width, params.height) == (720, 480)
    for size in ({"width": 768}, {"height": 432}, {"width": 480, "height": 720}):
        with pytest.raises(InvalidParameterError) as info:
            GenerationParams(prompt=PROMPT, model="cogvideox_5b", image=picture, **size)
        assert info.value.field == "width"
        assert "cogvideox_5b animates pictures at 720x480 only" in str(info.value)
        assert "leave the size out" in str(info.value)
        GenerationParams(prompt=PROMPT, model="cogvideox_5b", **size)  # text to video: any size
    # Models without a fixed image size animate at any valid size.
    GenerationParams(prompt=PROMPT, model="wan2_2_ti2v_5b", image=picture, width=832, height=480)


def test_cogvideox_5b_animates_pictures_at_its_trained_49_frames_only(tmp_path: Path) -> None:
    """Its I2V transformer learned position embeddings for 49 frames; diffusers would silently
    compute other ones at any other count, so other counts are refused with the reason."""
    picture = str(tmp_path / "pic.png")
    assert GenerationParams(prompt=PROMPT, model="cogvideox_5b", image=picture).num_frames == 49
    with pytest.raises(InvalidParameterError) as info:
        GenerationParams(prompt=PROMPT, model="cogvideox_5b", image=picture, num_frames=25)
    assert info.value.field == "num_frames"
    assert "animates pictures at 49 frames only" in str(info.value)
    GenerationParams(prompt=PROMPT, model="cogvideox_5b", num_frames=25)  # text: any valid count


def test_cogvideox_runs_dynamic_guidance_with_its_dpm_scheduler_only(
    engine: GenerationEngine,
) -> None:
    """The CogVideo demo's recipe: ``use_dynamic_cfg`` with CogVideoXDPMScheduler, not with DDIM.
    Dynamic guidance rewrites the pipeline's guidance scale at every step (``1 + g * (1 - cos)/2``),
    so after a DPM job it no longer equals the scale asked for."""
    spec = get_spec("cogvideox_5b")
    assert spec.call_options_for("cogvideox_dpm") == {"use_dynamic_cfg": True}
    assert spec.call_options_for("cogvideox_ddim") == {}
    assert get_spec("cogvideox_2b").default_scheduler == "cogvideox_ddim"
    pipe = engine.manager.load_model("tiny_cogvideox").pipeline
    frames_of(engine.generate_video(job("tiny_cogvideox", scheduler="cogvideox_ddim")))
    assert pipe.guidance_scale == 6.0
    frames_of(engine.generate_video(job("tiny_cogvideox", scheduler="cogvideox_dpm")))
    assert pipe.guidance_scale != pytest.approx(6.0)


def test_wan_2_1_flow_shift_follows_the_resolution(
    new_manager: Callable[..., ModelManager], monkeypatch: pytest.MonkeyPatch
) -> None:
    """diffusers' Wan doc: flow_shift 3.0 at 480p, 5.0 at 720p. The engine builds the scheduler a
    job runs with from the shift for its shorter side."""
    wan = get_spec("wan2_1_1_3b")
    assert wan.scheduler_config_for(832, 480)["flow_shift"] == 3.0
    assert wan.scheduler_config_for(1280, 720)["flow_shift"] == 5.0
    assert wan.scheduler_config_for(720, 1280)["flow_shift"] == 5.0
    assert wan.scheduler_config_for(1280, 704)["flow_shift"] == 3.0
    tiny = replace(REGISTRY["tiny_wan"], flow_shifts=((0, 3.0), (64, 5.0)))
    monkeypatch.setitem(REGISTRY, "tiny_wan", tiny)
    engine = GenerationEngine(new_manager())
    pipe = engine.manager.load_model("tiny_wan").pipeline
    for (width, height), shift in (((64, 64), 5.0), ((64, 32), 3.0)):
        frames_of(engine.generate_video(job("tiny_wan", width=width, height=height)))
        assert pipe.scheduler.config.flow_shift == shift


# --- cancel, time limit, progress ---------------------------------------------------------------


def _counting(method: Callable[..., Any], calls: list[int]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return method(*args, **kwargs)

    return counted


@pytest.mark.parametrize(
    ("key", "with_image"), [*((k, False) for k in NEW), *((k, True) for k in DIT)]
)
def test_cancel_at_the_first_step_stops_before_the_decode(
    engine: GenerationEngine,
    pictures: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    key: str,
    with_image: bool,
) -> None:
    loaded = engine.manager.load_model(key)
    pipe = loaded.pipeline
    if with_image:
        with loaded.lock:
            pipe = engine.manager.image_pipeline(loaded)
    decodes: list[int] = []
    monkeypatch.setattr(pipe.vae, "decode", _counting(pipe.vae.decode, decodes))
    steps: list[int] = []
    hook = denoiser_of(pipe).register_forward_pre_hook(lambda *a: steps.append(1))
    image = pictures[0] if with_image else None
    try:
        full = engine.generate_video(job(key, num_inference_steps=3, image=image))
        assert full.ok, full.error
        assert decodes, "the counter must see the decode of a finished job"
        per_step = len(steps) // 3
        assert per_step >= 1 and len(steps) == 3 * per_step
        decodes.clear()
        steps.clear()
        seen: list[int] = []

        def on_progress(progress: Any) -> None:
            seen.append(progress.step)
            if progress.step == 1:
                control.cancel()

        control = JobControl(on_progress=on_progress)
        result = engine.generate_video(job(key, num_inference_steps=3, image=image), control)
    finally:
        hook.remove()
    assert result.cancelled and result.error == "Cancelled."
    assert result.images == [] and not result.ok
    assert seen == [1]
    assert len(steps) == per_step  # no denoising step after the cancel
    assert decodes == []  # and no decode
    assert engine.generate_video(job(key, image=image)).ok  # the model still works


@pytest.mark.parametrize("key", DIT)
def test_time_limit_stops_a_job(engine: GenerationEngine, key: str) -> None:
    engine.manager.load_model(key)
    seen: list[int] = []

    def slow_step(progress: Any) -> None:
        seen.append(progress.step)
        time.sleep(0.6)

    control = JobControl(on_progress=slow_step, time_limit_s=0.5)
    result = engine.generate_video(job(key, num_inference_steps=4), control)
    assert not result.cancelled and result.images == []
    assert result.error is not None
    assert result.error.startswith("Stopped: the job ran longer than its limit of 0.5 s")
    assert seen == [1]
    relaxed = engine.generate_video(job(key), JobControl(time_limit_s=120))
    assert relaxed.ok, relaxed.error


@pytest.mark.parametrize(
    ("key", "with_image"), [*((k, False) for k in NEW), *((k, True) for k in DIT)]
)
def test_progress_reports_every_step_in_order(
    engine: GenerationEngine, pictures: tuple[str, str], key: str, with_image: bool
) -> None:
    seen: list[Any] = []
    control = JobControl(on_progress=seen.append)
    image = pictures[1] if with_image else None
    result = engine.generate_video(job(key, num_inference_steps=3, image=image), control)
    assert result.ok, result.error
    assert [p.step for p in seen] == [1, 2, 3]
    assert all(p.total == 3 and p.stage == "denoise" for p in seen)
    assert seen[-1].fraction == 1.0 and seen[-1].eta_s == 0.0
    assert all(b.elapsed_s >= a.elapsed_s for a, b in itertools.pairwise(seen))


# --- memory switches ----------------------------------------------------------------------------


def _hook_names(module: torch.nn.Module) -> set[str]:
    names: set[str] = set()
    for sub in module.modules():
        registry = getattr(sub, "_diffusers_hook", None)
        if registry is not None:
            names |= set(registry.hooks)
    return names


def _baseline(new_manager: Callable[..., ModelManager], params: GenerationParams) -> np.ndarray:
    return frames_of(GenerationEngine(new_manager()).generate_video(params))


@pytest.mark.parametrize("key", DIT)
def test_vae_tiling_switch(new_manager: Callable[..., ModelManager], key: str) -> None:
    manager = new_manager(vae_tiling=True)
    engine = GenerationEngine(manager)
    spec = get_spec(key)
    result = engine.generate_video(job(key))
    vae = manager.get_loaded(key).pipeline.vae
    assert vae.use_tiling is True
    assert result.metadata["memory"]["vae_tiling"] is True
    assert len(result.images) == spec.default_frames
    assert result.size == (spec.native_width, spec.native_height)
    manager.configure(vae_tiling=False)  # switches on a loaded model at once
    assert vae.use_tiling is False
    assert engine.generate_video(job(key)).metadata["memory"]["vae_tiling"] is False


@pytest.mark.parametrize("key", DIT)
def test_group_offload_gives_the_same_frames(
    new_manager: Callable[..., ModelManager], pictures: tuple[str, str], key: str
) -> None:
    manager = new_manager(group_offload=True)
    engine = GenerationEngine(manager)
    result = engine.generate_video(job(key))
    loaded = manager.get_loaded(key)
    assert "group_offloading" in _hook_names(loaded.pipeline.transformer)
    assert result.metadata["memory"]["group_offload"] is True
    assert result.metadata["memory"]["cpu_offload"] is False
    assert np.array_equal(frames_of(result), _baseline(new_manager, job(key)))
    # The image pipeline's transformer (CogVideoX's is loaded separately) is offloaded too.
    animated = engine.generate_video(job(key, image=pictures[0]))
    assert "group_offloading" in _hook_names(loaded.image_pipeline.transformer)
    expected = _baseline(new_manager, job(key, image=pictures[0]))
    assert np.array_equal(frames_of(animated), expected)


@pytest.mark.parametrize("key", DIT)
def test_layerwise_casting_stores_the_denoiser_in_fp8(
    new_manager: Callable[..., ModelManager], pictures: tuple[str, str], key: str
) -> None:
    manager = new_manager(layerwise_casting=True)
    engine = GenerationEngine(manager)
    result = engine.generate_video(job(key))
    assert result.ok, result.error
    assert result.metadata["memory"]["layerwise_casting"] is True
    loaded = manager.get_loaded(key)
    animated = engine.generate_video(job(key, image=pictures[0]))
    assert animated.ok, animated.error
    for transformer in (loaded.pipeline.transformer, loaded.image_pipeline.transformer):
        linears = [m for m in transformer.modules() if isinstance(m, torch.nn.Linear)]
        in_fp8 = [m for m in linears if m.weight.dtype == torch.float8_e4m3fn]
        assert len(in_fp8) > len(linears) / 2  # embedders and norms stay in full precision
        assert "layerwise_casting" in _hook_names(transformer)
    for other in (loaded.pipeline.vae, loaded.pipeline.text_encoder):
        assert {p.dtype for p in other.parameters()} == {torch.float32}
    # Same model, coarser weights: close to the full-precision frames, not noise.
    for got, params in ((result, job(key)), (animated, job(key, image=pictures[0]))):
        frames = frames_of(got).astype(np.int16)
        full = _baseline(new_manager, params).astype(np.int16)
        assert frames.std() > 1  # not a blank (NaN-turned-black) video
        assert np.abs(frames - full).mean() < 8


@pytest.mark.parametrize("key", DIT)
def test_cpu_offload_switches_on_and_off_a_loaded_model(
    new_manager: Callable[..., ModelManager], pictures: tuple[str, str], key: str
) -> None:
    """Model CPU offload works without a GPU too (the onload device is the CPU): the switch can be
    flipped on a loaded DiT model, text and image jobs keep running and give the same frames."""
    manager = new_manager()
    engine = GenerationEngine(manager)
    text, image = job(key), job(key, image=pictures[0])
    plain = frames_of(engine.generate_video(text))
    plain_image = frames_of(engine.generate_video(image))
    loaded = manager.get_loaded(key)
    manager.configure(cpu_offload=True)
    assert hasattr(loaded.pipeline.transformer, "_hf_hook")
    offloaded = engine.generate_video(text)
    assert offloaded.metadata["memory"]["cpu_offload"] is True
    assert np.array_equal(frames_of(offloaded), plain)
    assert np.array_equal(frames_of(engine.generate_video(image)), plain_image)
    manager.configure(cpu_offload=False)
    assert not hasattr(loaded.pipeline.transformer, "_hf_hook")
    back = engine.generate_video(text)
    assert back.metadata["memory"]["cpu_offload"] is False
    assert np.array_equal(frames_of(back), plain)
    assert np.array_equal(frames_of(engine.generate_video(image)), plain_image)


# --- AnimateDiff-Lightning ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def lightning_file(model_cache: Path) -> Path:
    from bot.core.tiny import build_tiny_model

    build_tiny_model("tiny_lightning", model_cache / "tiny_lightning")
    path = model_cache / "tiny_lightning" / "motion_adapter" / LIGHTNING_FILE
    assert path.is_file()
    return path


def test_motion_adapter_from_a_bare_safetensors_file(lightning_file: Path) -> None:
    from diffusers import MotionAdapter
    from safetensors.torch import load_file

    from bot.core.pipelines.animatediff import load_motion_adapter

    state = load_file(str(lightning_file))
    adapter = load_motion_adapter(str(lightning_file), torch.float32)
    assert isinstance(adapter, MotionAdapter)
    loaded = adapter.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[name], state[name]) for name in state)
    half = load_motion_adapter(str(lightning_file), torch.float16)
    assert half.dtype == torch.float16


def test_motion_adapter_from_the_hub_downloads_the_named_file(
    lightning_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub

    from bot.core.pipelines.animatediff import load_motion_adapter

    calls: list[dict[str, Any]] = []

    def fake_download(**kwargs: Any) -> str:
        calls.append(kwargs)
        return str(lightning_file)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.chdir(tmp_path)  # no local file of that relative name
    adapter = load_motion_adapter(f"owner/repo/{LIGHTNING_FILE}", torch.float32)
    assert calls == [{"repo_id": "owner/repo", "filename": LIGHTNING_FILE}]
    from safetensors.torch import load_file

    state = load_file(str(lightning_file))
    assert all(torch.equal(adapter.state_dict()[name], state[name]) for name in state)


def test_lightning_registry_entry_loads_its_hub_file_and_runs(
    lightning_file: Path,
    model_cache: Path,
    new_manager: Callable[..., ModelManager],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real ``animatediff_lightning`` entry, its base pointed at the tiny SD folder and the
    hub download answered with the tiny adapter file: the engine asks the hub for ByteDance's
    4-step file and runs with the card's trailing Euler scheduler."""
    import huggingface_hub

    calls: list[dict[str, Any]] = []

    def fake_download(**kwargs: Any) -> str:
        calls.append(kwargs)
        return str(lightning_file)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    base = str(model_cache / "tiny_lightning" / "base")
    manager = new_manager(sources={"animatediff_lightning": base})
    params = GenerationParams(
        prompt=PROMPT, model="animatediff_lightning", width=256, height=256, num_frames=8, seed=1
    )
    assert (params.num_inference_steps, params.guidance_scale, params.scheduler) == (
        4,
        1.0,
        "euler",
    )
    seen: list[int] = []
    result = GenerationEngine(manager).generate_video(params, JobControl(seen.append))
    assert result.ok, result.error
    assert calls == [{"repo_id": "ByteDance/AnimateDiff-Lightning", "filename": LIGHTNING_FILE}]
    assert len(result.images) == 8 and result.size == (256, 256)
    assert len(seen) == 4
    scheduler = manager.get_loaded("animatediff_lightning").pipeline.scheduler
    assert type(scheduler).__name__ == "EulerDiscreteScheduler"
    assert scheduler.config.timestep_spacing == "trailing"
    assert scheduler.config.beta_schedule == "linear"


def test_tiny_lightning_runs_its_bare_adapter_weights(
    engine: GenerationEngine, lightning_file: Path
) -> None:
    from safetensors.torch import load_file

    unet = engine.manager.load_model("tiny_lightning").pipeline.unet
    assert type(unet).__name__ == "UNetMotionModel"
    weights = unet.state_dict()
    state = load_file(str(lightning_file))
    assert all(torch.equal(weights[name], state[name]) for name in state)


# --- CLI ----------------------------------------------------------------------------------------


def run_cli(
    args: list[str], cwd: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """``videobot ARGS`` in this process (as ``tests/test_cli.py`` does)."""
    from bot.cli import main

    monkeypatch.chdir(cwd)
    try:
        code = main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_generate_with_no_options_uses_the_models_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_cli(
        ["generate", "a cat", "--model", "tiny_ltx", "-o", "out.mp4"], tmp_path, capsys, monkeypatch
    )
    assert code == 0, err
    spec = get_spec("tiny_ltx")
    assert f"saved out.mp4: {spec.default_frames} frames at {spec.default_fps} fps, 64x64" in out
    assert media.probe(tmp_path / "out.mp4").frame_count == spec.default_frames
    video = GenerationResult.from_video_file(tmp_path / "out.mp4")
    assert len(video.images) == spec.default_frames and video.size == (64, 64)
    assert video.frame_rate == spec.default_fps


def test_cli_generate_animates_a_picture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_picture(tmp_path / "pic.png", 4)
    args = ["generate", "a cat", "--model", "tiny_wan", "--image", "pic.png", "--steps", "2"]
    code, out, err = run_cli([*args, "-o", "anim.mp4"], tmp_path, capsys, monkeypatch)
    assert code == 0, err
    assert "model tiny_wan" in out
    assert media.probe(tmp_path / "anim.mp4").frame_count == get_spec("tiny_wan").default_frames


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["--model", "tiny_t2v", "--image", "pic.png"],
            ["--image: tiny_t2v cannot animate a picture; models that can: ", "tiny_ltx"],
        ),
        (["--model", "tiny_wan", "--image", "missing.png"], ["--image: cannot be opened"]),
        (
            ["--model", "tiny_ltx", "--num-frames", "10"],
            ["--num-frames: needs 8k+1 frames", "try 9 or 17 (got 10)"],
        ),
        (["--model", "tiny_ltx", "--width", "48"], ["--width: must be a multiple of 32"]),
        (["--model", "tiny_lightning", "--steps", "9"], ["--steps: must be between 1 and 8"]),
    ],
)
def test_cli_bad_input_exits_2_naming_the_option(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    fragments: list[str],
) -> None:
    write_picture(tmp_path / "pic.png", 5)
    code, out, err = run_cli(
        ["generate", "a cat", *args, "-o", "out.mp4"], tmp_path, capsys, monkeypatch
    )
    assert code == 2, (out, err)
    for fragment in fragments:
        assert fragment in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pic.png"]  # no output left behind


def test_registry_lists_the_new_families() -> None:
    families = {spec.family for spec in REGISTRY.values()}
    assert {"ltx", "wan", "cogvideox"} <= families
    for key in NEW:
        spec = get_spec(key)
        assert spec.tiny and spec.frames.accepts(spec.default_frames)
        assert spec.default_scheduler in spec.schedulers
