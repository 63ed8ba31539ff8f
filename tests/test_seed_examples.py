"""The seed's usage examples (docs/video-generation.md), run as written with ``bot.core`` for
``core``. The real hub keys are pointed at the tiny offline folders (a key's source may be any local
folder), so the code below is exactly the seed's, at the seed's sizes, on real pipelines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.core import media


@pytest.fixture
def seed_world(tmp_path: Path, model_cache: Path):  # type: ignore[no-untyped-def]
    """The process-wide manager, its real keys pointed at the tiny models' folders."""
    from bot.core import get_model_manager
    from bot.core.tiny import build_tiny_model

    for key in ("tiny_t2v", "tiny_v2v", "tiny_animatediff"):
        build_tiny_model(key, model_cache / key)
    manager = get_model_manager()
    previous = manager.options
    manager.configure(
        cache_dir=model_cache,
        sources={
            "animatediff": str(model_cache / "tiny_animatediff" / "base"),
            "animatediff:adapter": str(model_cache / "tiny_animatediff" / "motion_adapter"),
            "modelscope_t2v": str(model_cache / "tiny_t2v"),
            "zeroscope_v2_576w": str(model_cache / "tiny_t2v"),
            "zeroscope_v2_xl": str(model_cache / "tiny_v2v"),
        },
    )
    cwd = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(cwd)
    manager.unload_all()
    manager.configure(**previous.__dict__)


@pytest.mark.slow
def test_seed_examples_run_as_written(seed_world: Path) -> None:
    # --- Basic Video Generation ---
    from bot.core import GenerationParams, get_generation_engine, get_model_manager

    # Initialize
    model_manager = get_model_manager()
    generation_engine = get_generation_engine()

    # Load video model
    model_manager.load_model("animatediff")

    # Create parameters
    params = GenerationParams(
        prompt="a beautiful sunset over mountains", num_frames=16, fps=8, width=512, height=512
    )

    # Generate video
    result = generation_engine.generate_video(params)

    # Save as video file
    video_path = generation_engine.save_result_as_video(result, "output.mp4")

    assert result.error is None and result.metadata["model"] == "animatediff"
    info = media.probe(video_path)
    assert (info.width, info.height, info.frame_count, info.fps) == (512, 512, 16, 8)

    # --- Advanced Video Generation with ModelScope ---
    model_manager.load_model("modelscope_t2v")
    params = GenerationParams(
        prompt="cinematic scene of a futuristic city with flying cars",
        negative_prompt="blurry, low quality",
        num_frames=24,
        fps=8,
        width=512,
        height=512,
        num_inference_steps=25,
        guidance_scale=9.0,
    )
    result = generation_engine.generate_video(params)
    assert result.error is None and result.metadata["model"] == "modelscope_t2v"
    assert len(result.images) == 24

    # --- Zeroscope High-Quality Generation ---
    model_manager.load_model("zeroscope_v2_576w")
    params = GenerationParams(
        prompt="an astronaut riding a horse on mars",
        num_frames=24,
        fps=8,
        width=576,
        height=320,  # Specific aspect ratio for Zeroscope
    )
    result = generation_engine.generate_video(params)
    assert result.metadata["model"] == "zeroscope_v2_576w"
    assert result.images[0].size == (576, 320)

    # --- Video Editing Features ---
    trimmed_result = generation_engine.edit_video(result, "trim", start_frame=5, end_frame=20)
    fast_result = generation_engine.edit_video(result, "speed", speed_factor=2.0)
    slow_result = generation_engine.edit_video(result, "speed", speed_factor=0.5)
    reversed_result = generation_engine.edit_video(result, "reverse")
    looped_result = generation_engine.edit_video(result, "loop", loops=3)
    assert len(trimmed_result.images) == 15
    assert len(fast_result.images) == 12 and len(slow_result.images) == 48
    assert reversed_result.images[0] is result.images[-1]
    assert len(looped_result.images) == 72

    # --- Video Upscaling ---
    upscaled_video_path = generation_engine.upscale_video(result, "upscaled_output.mp4")
    upscaled = media.probe(upscaled_video_path)
    assert (upscaled.width, upscaled.height) == (1024, 576)  # the Zeroscope XL recipe's size
    assert upscaled.frame_count == 24

    # --- Error Handling ---
    try:
        result = generation_engine.generate_video(params)
        if result.error:
            print(f"Generation failed: {result.error}")
    except Exception as e:
        print(f"Error: {e}")
    assert result.error is None
