"""The engine on real diffusers pipelines (the tiny offline models): determinism, shapes,
schedulers, progress, cancel, failures and upscaling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from bot.core import GenerationParams, InvalidParameterError, JobControl, VideoBotError
from bot.core.engine import GenerationEngine, GenerationFailed, upscale_size
from bot.core.registry import get_spec


def frames_array(result) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.stack([np.asarray(frame) for frame in result.images])


@pytest.mark.parametrize("model", ["tiny_t2v", "tiny_animatediff"])
def test_frame_count_size_and_metadata(engine, small_params, model: str) -> None:
    params = small_params(model=model, width=96, height=64, num_frames=10)
    result = engine.generate_video(params)
    assert result.error is None and result.ok
    assert len(result.images) == 10
    assert all(frame.size == (96, 64) and frame.mode == "RGB" for frame in result.images)
    assert result.seed_used == 1234
    assert result.params is params
    assert result.frame_rate == params.fps
    assert result.metadata["model"] == model
    assert result.metadata["num_frames"] == 10
    assert result.generation_time > 0
    assert set(result.timings) == {"load", "denoise", "postprocess"}


@pytest.mark.parametrize("model", ["tiny_t2v", "tiny_animatediff"])
def test_same_seed_same_frames_other_seed_other_frames(engine, small_params, model: str) -> None:
    first = frames_array(engine.generate_video(small_params(model=model)))
    second = frames_array(engine.generate_video(small_params(model=model)))
    other = frames_array(engine.generate_video(small_params(model=model, seed=99)))
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_seed_is_drawn_when_missing(engine, small_params) -> None:
    seeds = {engine.generate_video(small_params(seed=None)).seed_used for _ in range(3)}
    assert all(isinstance(seed, int) and 0 <= seed < 2**32 for seed in seeds)
    assert len(seeds) > 1


def test_prompt_changes_the_video(engine, small_params) -> None:
    a = frames_array(engine.generate_video(small_params(prompt="a red car")))
    b = frames_array(engine.generate_video(small_params(prompt="a blue boat at night")))
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("scheduler", ["ddim", "dpm++", "euler", "euler_a", "unipc", "pndm"])
def test_every_scheduler_runs_and_is_really_used(engine, small_params, scheduler: str) -> None:
    result = engine.generate_video(small_params(scheduler=scheduler))
    assert result.ok, result.error
    loaded = engine.manager.get_loaded("tiny_t2v")
    from bot.core.rules import SCHEDULERS

    assert type(loaded.pipeline.scheduler).__name__ == SCHEDULERS[scheduler][0]
    if scheduler != "ddim":
        ddim = frames_array(engine.generate_video(small_params(scheduler="ddim")))
        assert not np.array_equal(frames_array(result), ddim)


def test_runs_on_the_model_loaded_last_when_params_name_none(fresh_manager, small_params) -> None:
    engine = GenerationEngine(fresh_manager)
    with pytest.raises(VideoBotError, match="no model is loaded"):
        engine.generate_video(small_params(model=None))
    fresh_manager.load_model("tiny_t2v")
    fresh_manager.load_model("tiny_animatediff")
    result = engine.generate_video(small_params(model=None))
    assert result.metadata["model"] == "tiny_animatediff"
    fresh_manager.unload_model("tiny_animatediff")
    assert engine.generate_video(small_params(model=None)).metadata["model"] == "tiny_t2v"


def test_size_outside_the_active_model_is_refused(fresh_manager, small_params, model_cache) -> None:
    """Params without a model pass the registry-wide size check; the engine then checks the size
    against the model it resolves (here zeroscope's 256-1024, served by the tiny t2v folder)."""
    engine = GenerationEngine(fresh_manager)
    fresh_manager.load_model("tiny_t2v")
    fresh_manager.configure(sources={"zeroscope_v2_576w": str(model_cache / "tiny_t2v")})
    fresh_manager.load_model("zeroscope_v2_576w")
    with pytest.raises(InvalidParameterError, match="between 256 and 1024 for zeroscope_v2_576w"):
        engine.generate_video(small_params(model=None, width=128))


@pytest.mark.parametrize("model", ["tiny_t2v", "tiny_animatediff"])
def test_progress_reports_every_step_in_order(engine, small_params, model: str) -> None:
    seen = []
    control = JobControl(on_progress=seen.append)
    result = engine.generate_video(small_params(model=model, num_inference_steps=12), control)
    assert result.ok
    assert [p.step for p in seen] == list(range(1, 13))
    assert all(p.total == 12 and p.stage == "denoise" for p in seen)
    assert seen[-1].fraction == 1.0 and seen[-1].eta_s == 0.0
    assert all(b.elapsed_s >= a.elapsed_s for a, b in itertools.pairwise(seen))


@pytest.mark.parametrize("model", ["tiny_t2v", "tiny_animatediff"])
def test_cancel_stops_within_one_step_and_produces_nothing(
    engine, small_params, model: str
) -> None:
    loaded = engine.manager.load_model(model)
    unet_calls = []
    hook = loaded.pipeline.unet.register_forward_hook(lambda *a: unet_calls.append(1))
    vae_calls = []
    vae_hook = loaded.pipeline.vae.decoder.register_forward_hook(lambda *a: vae_calls.append(1))
    try:
        control = JobControl(on_progress=lambda p: p.step == 3 and control.cancel())
        result = engine.generate_video(small_params(model=model, num_inference_steps=20), control)
    finally:
        hook.remove()
        vae_hook.remove()
    assert result.cancelled and result.error == "Cancelled."
    assert result.images == []
    assert len(unet_calls) == 3  # the step during which cancel arrived was the last one
    assert vae_calls == []  # no decode of a cancelled job
    assert engine.generate_video(small_params(model=model)).ok  # the engine still works


def test_cancel_before_start_runs_no_step(engine, small_params) -> None:
    control = JobControl()
    control.cancel()
    result = engine.generate_video(small_params(), control)
    assert result.cancelled and control.last is None


def test_out_of_memory_comes_back_as_error_with_advice(engine, small_params) -> None:
    loaded = engine.manager.load_model("tiny_t2v")

    def explode(*args: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    hook = loaded.pipeline.unet.register_forward_pre_hook(explode)
    try:
        result = engine.generate_video(small_params())
    finally:
        hook.remove()
    assert not result.ok and not result.cancelled
    assert "Out of GPU memory on tiny_t2v for 8 frames at 64x64" in result.error
    for advice in ("Reduce the frame count", "CPU offload", "VAE slicing", "forward chunking"):
        assert advice in result.error
    assert engine.generate_video(small_params()).ok


def test_any_pipeline_exception_becomes_an_error(engine, small_params) -> None:
    loaded = engine.manager.load_model("tiny_animatediff")

    def explode(*args: object) -> None:
        raise RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR")

    hook = loaded.pipeline.vae.decoder.register_forward_pre_hook(explode)
    try:
        result = engine.generate_video(small_params(model="tiny_animatediff"))
    finally:
        hook.remove()
    assert result.error is not None and "RuntimeError: cuDNN error" in result.error
    assert result.images == []


def test_missing_model_files_come_back_as_error(fresh_manager, small_params, tmp_path) -> None:
    fresh_manager.configure(sources={"tiny_t2v": str(tmp_path / "nowhere")})
    result = GenerationEngine(fresh_manager).generate_video(small_params())
    assert result.error is not None and result.error.startswith("Could not load tiny_t2v from ")
    # The root of the exception chain, not only diffusers' "see the stacktrace above" wrapper.
    assert "caused by" in result.error or "nowhere" in result.error
    assert "stacktrace" not in result.error


def test_interpolate_and_loop_options(engine, small_params) -> None:
    base = engine.generate_video(small_params())
    smooth = engine.generate_video(small_params(interpolate=2))
    assert smooth.frame_rate == base.frame_rate * 2
    assert len(smooth.images) == 2 * len(base.images)  # same duration at twice the rate
    looped = engine.generate_video(small_params(loop=True))
    n = len(base.images)
    assert len(looped.images) == 2 * n - 2
    looped_frames = frames_array(looped)
    base_frames = frames_array(base)
    assert np.array_equal(looped_frames[:n], base_frames)
    assert np.array_equal(looped_frames[n:], base_frames[-2:0:-1])


# --- upscaling ------------------------------------------------------------------------------------


def test_upscale_doubles_size_through_the_tiny_upscaler(engine, small_params, tmp_path) -> None:
    result = engine.generate_video(small_params(width=64, height=48))
    seen = []
    upscaled = engine.upscale(result, control=JobControl(on_progress=seen.append), seed=5)
    assert upscaled.ok, upscaled.error
    assert upscaled.size == (128, 96)
    assert len(upscaled.images) == len(result.images)
    assert upscaled.metadata["upscaler"] == "tiny_v2v"
    # strength 0.6 of 10 steps: the pipeline runs the last 6
    assert [p.step for p in seen] == [1, 2, 3, 4, 5, 6] and seen[0].stage == "upscale"
    again = engine.upscale(result, seed=5)
    assert np.array_equal(frames_array(again), frames_array(upscaled))
    path = engine.upscale_video(result, tmp_path / "up.mp4", seed=5)
    assert path.endswith("up.mp4")


def test_upscale_runs_the_upscalers_own_steps_not_the_generators(engine, small_params) -> None:
    """Steps x strength is what really runs: the upscaler's recipe, whatever the video was made
    with. Zeroscope XL takes diffusers' 50 steps (30 run at strength 0.6, the text-to-video doc's
    upscale example), not 20 x 0.6 = 12."""
    from bot.core.engine import DEFAULT_UPSCALE_STRENGTH

    xl = get_spec("zeroscope_v2_xl")
    assert int(xl.default_steps * DEFAULT_UPSCALE_STRENGTH) >= 30
    result = engine.generate_video(small_params(num_inference_steps=12))
    seen = []
    upscaled = engine.upscale(result, control=JobControl(on_progress=seen.append), seed=5)
    assert upscaled.metadata["upscale_steps"] == get_spec("tiny_v2v").default_steps
    assert len(seen) == int(get_spec("tiny_v2v").default_steps * DEFAULT_UPSCALE_STRENGTH)


def test_upscale_cancel_and_errors(engine, small_params, tmp_path) -> None:
    result = engine.generate_video(small_params())
    control = JobControl(on_progress=lambda p: control.cancel())
    cancelled = engine.upscale(result, control=control)
    assert cancelled.cancelled and cancelled.images == []
    with pytest.raises(InvalidParameterError, match="tiny_t2v is not an upscaler"):
        engine.upscale(result, upscaler="tiny_t2v")
    with pytest.raises(InvalidParameterError, match=r"strength: must be between 0\.1 and 1"):
        engine.upscale(result, strength=0)
    loaded = engine.manager.load_model("tiny_v2v")
    hook = loaded.pipeline.unet.register_forward_pre_hook(
        lambda *a: (_ for _ in ()).throw(torch.OutOfMemoryError("CUDA out of memory"))
    )
    try:
        with pytest.raises(GenerationFailed, match="Out of GPU memory on tiny_v2v"):
            engine.upscale_video(result, tmp_path / "never.mp4")
    finally:
        hook.remove()
    assert not (tmp_path / "never.mp4").exists()


def test_upscale_sizes_of_the_real_upscaler() -> None:
    xl = get_spec("zeroscope_v2_xl")
    assert upscale_size(xl, 576, 320) == (1024, 576)  # the Zeroscope card's recipe
    assert upscale_size(xl, 512, 512) == (576, 576)  # square: fitted inside 1024x576
    assert upscale_size(xl, 256, 256) == (576, 576)
    with pytest.raises(InvalidParameterError, match="already 1024x576"):
        upscale_size(xl, 1024, 576)
    assert upscale_size(get_spec("tiny_v2v"), 64, 40) == (128, 80)


def test_generation_params_from_seed_examples_fit_their_models() -> None:
    GenerationParams(prompt="x", model="zeroscope_v2_576w", num_frames=24, width=576, height=320)
    GenerationParams(prompt="x", model="modelscope_t2v", num_frames=24, guidance_scale=9.0)


def test_long_animatediff_videos_use_free_noise(engine, small_params) -> None:
    """The motion modules know 32 frames; beyond that FreeNoise context windows take over."""
    result = engine.generate_video(small_params(model="tiny_animatediff", num_frames=40))
    assert result.ok and len(result.images) == 40
    pipe = engine.manager.get_loaded("tiny_animatediff").pipeline
    assert pipe.free_noise_enabled
    assert engine.generate_video(small_params(model="tiny_animatediff", num_frames=16)).ok
    assert not pipe.free_noise_enabled


def test_load_failure_message_names_the_root_cause_and_what_to_do() -> None:
    """The one line members, the log and the CLI get (bot.core.errors.load_failure_message)."""
    from bot.core.errors import load_failure_message

    try:
        try:
            raise ConnectionRefusedError("no route to huggingface.co")
        except OSError as cause:
            raise OSError(
                "Cannot load model x. Please check out the root cause in the stacktrace above."
            ) from cause
    except OSError as exc:
        message = load_failure_message("animatediff", "owner/repo", exc)
    assert message.startswith("Could not load animatediff from owner/repo: OSError: Cannot load")
    assert "caused by ConnectionRefusedError: no route to huggingface.co" in message
    assert "check the network" in message and "stacktrace" not in message
