"""Live previews: the latent-to-RGB projections, the animated picture, and previews made during
real generations on every tiny family (image-to-video and the upscaler included), at most once per
interval, never with previews off, and never in the way of a cancel."""

from __future__ import annotations

import io
import itertools
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from bot.core import GenerationParams
from bot.core import previews as previews_module
from bot.core.engine import GenerationEngine
from bot.core.previews import (
    PREVIEW_FRAMES,
    PREVIEW_LONGEST_SIDE,
    PROJECTIONS,
    LatentPreviewer,
    packed_unpacker,
    preview_size,
    project,
    projection_for,
)
from bot.core.progress import JobControl, Preview, Progress
from bot.core.registry import get_spec

PROMPT = "a paper boat drifting on a pond"

# (model, frames, width, height): frame counts that give each family at least 3 latent frames.
FAMILIES = [
    ("tiny_t2v", 8, 64, 64),
    ("tiny_animatediff", 8, 64, 48),
    ("tiny_lightning", 8, 64, 64),
    ("tiny_ltx", 17, 96, 64),
    ("tiny_wan", 9, 64, 96),
    ("tiny_cogvideox", 9, 64, 64),
]
IMAGE_TO_VIDEO = ["tiny_ltx", "tiny_wan", "tiny_cogvideox"]


def job(model: str, frames: int, width: int, height: int, **changes: Any) -> GenerationParams:
    values: dict[str, Any] = {
        "prompt": PROMPT,
        "model": model,
        "num_frames": frames,
        "width": width,
        "height": height,
        "num_inference_steps": max(4, int(get_spec(model).steps.low)),
        "seed": 7,
    }
    return GenerationParams(**{**values, **changes})


def decode(preview: Preview) -> list[Image.Image]:
    """Every frame of a preview, checked to be a looping animated GIF."""
    picture = Image.open(io.BytesIO(preview.data))
    assert picture.format == "GIF" and picture.is_animated
    assert picture.info.get("loop") == 0  # loops forever
    frames = []
    for index in range(picture.n_frames):
        picture.seek(index)
        frames.append(picture.convert("RGB"))
    return frames


def collect(previews: bool = True, every_s: float = 0.0) -> tuple[JobControl, list[Progress]]:
    seen: list[Progress] = []
    control = JobControl(on_progress=seen.append, previews=previews, previews_every_s=every_s)
    return control, seen


@pytest.fixture
def projections_made(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the latents were projected (one per preview built)."""
    calls: list[int] = []
    real = previews_module.project

    def counting(*args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(previews_module, "project", counting)
    return calls


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("previews") / "picture.png"
    gradient = np.linspace(0, 255, 96 * 96 * 3).reshape(96, 96, 3).astype(np.uint8)
    Image.fromarray(gradient).save(path)
    return str(path)


# --- the projection ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PROJECTIONS))
def test_each_channel_maps_to_its_published_row(name: str) -> None:
    """A latent that is 1 in channel k and 0 elsewhere is the factors' row k plus the bias, mapped
    from [-1, 1] to [0, 255]; an all-zero latent is the bias alone."""
    projection = PROJECTIONS[name]
    channels = projection.channels
    # One frame per channel, plus a last frame of zeros: [channels, frames, 1, 1].
    video = torch.zeros(channels, channels + 1, 1, 1)
    for k in range(channels):
        video[k, k] = 1.0
    rgb = project(video, projection, max_frames=channels + 1)
    assert rgb.shape == (channels + 1, 1, 1, 3) and rgb.dtype == np.uint8
    rows = np.array([*projection.factors, (0.0, 0.0, 0.0)]) + np.array(projection.bias)
    expected = np.clip((rows + 1.0) / 2.0, 0.0, 1.0) * 255.0
    assert np.abs(rgb[:, 0, 0].astype(float) - expected).max() <= 0.51


def test_the_family_and_channel_count_choose_the_latent_space() -> None:
    assert projection_for("animatediff", 4) is PROJECTIONS["sd15"]
    assert projection_for("text_to_video", 4) is PROJECTIONS["sd15"]
    assert projection_for("ltx", 128) is PROJECTIONS["ltxv"]
    assert projection_for("wan", 16) is PROJECTIONS["wan21"]
    assert projection_for("wan", 48) is PROJECTIONS["wan22"]
    assert projection_for("cogvideox", 16) is PROJECTIONS["cogvideox"]
    assert projection_for("mochi", 12) is PROJECTIONS["mochi"]
    # No published factors: greyscale.
    assert projection_for("wan", 32) is None
    assert projection_for("unknown", 4) is None


def test_without_factors_the_preview_is_a_stretched_greyscale() -> None:
    video = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    rgb = project(video, None)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert rgb.min() == 0 and rgb.max() == 255  # stretched to the full range
    assert rgb[0, 0, 0, 0] < rgb[-1, -1, -1, 0]  # brighter where the channel mean is higher


def test_long_videos_are_shown_in_a_few_evenly_spread_frames() -> None:
    projection = PROJECTIONS["sd15"]
    video = torch.zeros(4, 30, 2, 2)
    video[0] = torch.linspace(-1, 1, 30).view(30, 1, 1)  # channel 0 ramps over time
    rgb = project(video, projection, max_frames=6)
    assert rgb.shape[0] == 6
    red = rgb[:, 0, 0, 0].astype(int)
    assert all(b > a for a, b in itertools.pairwise(red))  # first to last, in order


def test_the_three_latent_layouts_give_the_same_frames() -> None:
    """CogVideoX's [B, F, C, H, W] and LTX's packed tokens are put back into [C, F, H, W]; the
    packed case goes through the pipeline's own ``_unpack_latents``."""
    from diffusers import LTXPipeline

    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 128, 3, 2, 4, generator=generator)  # B, C, F, H, W
    reference = LatentPreviewer("ltx", width=128, height=64, num_frames=17, fps=24)(latents, 1)
    cog_style = LatentPreviewer("ltx", width=128, height=64, num_frames=17, fps=24, layout="BFCHW")(
        latents.transpose(1, 2).contiguous(), 1
    )

    class Geometry:
        """The attributes ``packed_unpacker`` reads from an LTX pipeline, at LTX's real values."""

        vae_temporal_compression_ratio = 8
        vae_spatial_compression_ratio = 32
        transformer_spatial_patch_size = 1
        transformer_temporal_patch_size = 1
        _unpack_latents = staticmethod(LTXPipeline._unpack_latents)

    packed = LTXPipeline._pack_latents(latents)
    assert packed.shape == (1, 3 * 2 * 4, 128)
    ltx_style = LatentPreviewer(
        "ltx",
        width=128,
        height=64,
        num_frames=17,
        fps=24,
        layout="packed",
        unpack=packed_unpacker(Geometry(), 17, 64, 128),
    )(packed, 1)
    assert reference.data == cog_style.data == ltx_style.data


def test_a_preview_is_a_small_looping_gif_of_the_video_shape() -> None:
    latents = torch.randn(1, 16, 13, 60, 104, generator=torch.Generator().manual_seed(1))
    preview = LatentPreviewer("wan", width=832, height=480, num_frames=49, fps=16)(latents, 7)
    assert preview.filename == "preview.gif" and preview.step == 7
    frames = decode(preview)
    assert len(frames) == PREVIEW_FRAMES  # 13 latent frames, 6 shown
    assert frames[0].size == preview_size(480, 832) == (PREVIEW_LONGEST_SIDE, 74)
    assert len(preview.data) < 64 * 1024  # a few tens of KB even for pure noise
    assert pickle.loads(pickle.dumps(Progress("denoise", 7, 50, 1.0, preview))).preview == preview


@pytest.mark.parametrize(
    "name",
    [
        "AnimateDiffPipeline",
        "LTXPipeline",
        "LTXImageToVideoPipeline",
        "WanPipeline",
        "WanImageToVideoPipeline",
        "CogVideoXPipeline",
        "CogVideoXImageToVideoPipeline",
    ],
)
def test_every_step_end_pipeline_hands_out_its_latents(name: str) -> None:
    """What the adapters ask for (``callback_on_step_end_tensor_inputs``) each pipeline allows."""
    import diffusers

    from bot.core.pipelines.base import STEP_TENSORS

    assert set(STEP_TENSORS) <= set(getattr(diffusers, name)._callback_tensor_inputs)


@pytest.mark.parametrize("name", ["TextToVideoSDPipeline", "VideoToVideoSDPipeline"])
def test_the_legacy_pipelines_pass_latents_to_their_old_callback(name: str) -> None:
    """ModelScope/Zeroscope's pipelines take no ``callback_on_step_end``: their previews come from
    the legacy ``callback(step, timestep, latents)``."""
    import inspect

    import diffusers

    parameters = inspect.signature(getattr(diffusers, name).__call__).parameters
    assert "callback_on_step_end" not in parameters and "callback" in parameters


def test_each_stage_starts_without_the_previous_stages_preview() -> None:
    """One control over a render then an upscale: the render's picture is not shown as the
    upscale's, and each stage gets its own mid-run preview."""
    seen: list[Progress] = []
    made: list[tuple[str, int]] = []
    control = JobControl(on_progress=seen.append, previews=True, previews_every_s=3600.0)

    def builder(stage: str, step: int) -> Callable[[], Preview]:
        def build() -> Preview:
            made.append((stage, step))
            return Preview(data=f"{stage}-{step}".encode(), filename="preview.gif", step=step)

        return build

    for stage, total in (("denoise", 4), ("upscale", 6)):
        for step in range(1, total + 1):
            control.step(stage, step, total, builder(stage, step))
    assert made == [("denoise", 2), ("upscale", 3)]
    shown = [(p.stage, p.step, p.preview.data if p.preview else None) for p in seen]
    assert shown[3] == ("denoise", 4, b"denoise-2")
    assert shown[4] == ("upscale", 1, None)
    assert shown[-1] == ("upscale", 6, b"upscale-3")


# --- during real generations ------------------------------------------------------------------


def check_previews(seen: list[Progress], width: int, height: int, min_frames: int = 3) -> None:
    with_preview = [p for p in seen if p.preview is not None]
    assert with_preview, "no progress report carried a preview"
    for progress in with_preview:
        assert progress.preview is not None
        assert progress.preview.step <= progress.step
        frames = decode(progress.preview)
        assert len(frames) >= min_frames
        assert all(frame.size == preview_size(height, width) for frame in frames)
        # Something forms: the frames are not one flat colour.
        assert np.asarray(frames[0]).std() > 0
    # Progress and its preview cross processes (a Ray backend pickles them).
    last = with_preview[-1]
    assert pickle.loads(pickle.dumps(last)) == last


@pytest.mark.parametrize(("model", "frames", "width", "height"), FAMILIES)
def test_every_family_shows_previews_while_it_renders(
    engine: GenerationEngine, model: str, frames: int, width: int, height: int
) -> None:
    control, seen = collect()
    result = engine.generate_video(job(model, frames, width, height), control)
    assert result.ok, result.error
    check_previews(seen, width, height)
    # One per step with a zero interval: each step's own latents.
    assert [p.preview.step for p in seen if p.preview] == [p.step for p in seen]


@pytest.mark.parametrize("model", IMAGE_TO_VIDEO)
def test_image_to_video_shows_previews(engine: GenerationEngine, picture: str, model: str) -> None:
    [(frames, width, height)] = [f[1:] for f in FAMILIES if f[0] == model]
    control, seen = collect()
    result = engine.generate_video(job(model, frames, width, height, image=picture), control)
    assert result.ok, result.error
    assert result.metadata["image_to_video"]
    check_previews(seen, width, height)


def test_the_upscaler_shows_previews(engine: GenerationEngine) -> None:
    source = engine.generate_video(job("tiny_t2v", 8, 32, 32))
    control, seen = collect()
    result = engine.upscale(source, upscaler="tiny_v2v", num_inference_steps=4, control=control)
    assert result.ok, result.error
    assert {p.stage for p in seen} == {"upscale"}
    check_previews(seen, 64, 64)


def test_previews_off_builds_none(engine: GenerationEngine, projections_made: list[int]) -> None:
    control, seen = collect(previews=False)
    assert engine.generate_video(job("tiny_t2v", 8, 64, 64), control).ok
    assert seen and all(p.preview is None for p in seen)
    assert projections_made == []
    # The same job with previews on projects: the counter does count.
    control, seen = collect(previews=True)
    assert engine.generate_video(job("tiny_t2v", 8, 64, 64), control).ok
    assert len(projections_made) == len(seen) == 10


def test_previews_come_at_most_once_per_interval(
    engine: GenerationEngine, projections_made: list[int]
) -> None:
    """A long interval: only the mid-run preview, built once, then carried by every later report.
    A short one: consecutive previews are at least the interval apart on the job's clock."""
    control, seen = collect(every_s=3600.0)
    assert engine.generate_video(job("tiny_t2v", 8, 64, 64, num_inference_steps=10), control).ok
    assert len(projections_made) == 1
    assert [p.preview is not None for p in seen] == [False] * 4 + [True] * 6
    assert {p.preview.step for p in seen if p.preview} == {5}

    control, seen = collect(every_s=0.05)
    assert engine.generate_video(job("tiny_t2v", 8, 64, 64, num_inference_steps=10), control).ok
    made = [p for p in seen if p.preview is not None and p.preview.step == p.step]
    assert made
    assert all(b.elapsed_s - a.elapsed_s >= 0.05 for a, b in itertools.pairwise(made))


@pytest.mark.parametrize("model", ["tiny_animatediff", "tiny_ltx"])
def test_cancel_still_stops_within_a_step_with_previews_on(
    engine: GenerationEngine, model: str
) -> None:
    """A preview at every step, and a cancel at step 3: the denoiser runs no pass after it and
    nothing is decoded."""
    loaded = engine.manager.load_model(model)
    denoiser = getattr(loaded.pipeline, "unet", None) or loaded.pipeline.transformer
    calls: list[int] = []
    hook = denoiser.register_forward_hook(lambda *a: calls.append(1))
    passes_at: dict[int, int] = {}

    def on_progress(progress: Progress) -> None:
        passes_at[progress.step] = len(calls)
        if progress.step == 3:
            control.cancel()

    control = JobControl(on_progress=on_progress, previews=True, previews_every_s=0.0)
    [(frames, width, height)] = [f[1:] for f in FAMILIES if f[0] == model]
    try:
        result = engine.generate_video(
            job(model, frames, width, height, num_inference_steps=12), control
        )
    finally:
        hook.remove()
    assert result.cancelled and result.images == []
    assert sorted(passes_at) == [1, 2, 3]
    assert len(calls) == passes_at[3]  # no denoising pass after the cancel
    assert control.preview is not None and control.preview.step == 3


def test_a_failing_preview_never_fails_the_job(
    engine: GenerationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> np.ndarray:
        raise RuntimeError("no preview today")

    monkeypatch.setattr(previews_module, "project", broken)
    control, seen = collect()
    assert engine.generate_video(job("tiny_t2v", 8, 64, 64), control).ok
    assert all(p.preview is None for p in seen) and not control.previews


# --- the CLI ----------------------------------------------------------------------------------


def run_cli(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """``videobot ARGS`` through ``bot.cli.main`` in this process (the command's own code)."""
    from bot.cli import main

    monkeypatch.chdir(cwd)
    return main(args)


def test_the_cli_writes_each_preview_to_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny = ["--model", "tiny_t2v", "--num-frames", "8", "--steps", "10", "--seed", "3"]
    code = run_cli(
        ["generate", "a cat surfing", *tiny, "--previews", "previews/cat", "-o", "cat.mp4"],
        tmp_path,
        monkeypatch,
    )
    assert code == 0
    written = sorted((tmp_path / "previews" / "cat").iterdir())
    names = [path.name for path in written]
    assert names and all(re.fullmatch(r"step-\d{3}\.gif", name) for name in names)
    # However fast the steps, there is one by mid-run (step 5 of 10).
    assert min(int(name[5:8]) for name in names) <= 5
    assert max(int(name[5:8]) for name in names) <= 10
    for path in written:
        frames = decode(Preview(path.read_bytes(), path.name, 0))
        assert len(frames) == PREVIEW_FRAMES and frames[0].size == (
            PREVIEW_LONGEST_SIDE,
            PREVIEW_LONGEST_SIDE,
        )


def test_the_cli_refuses_a_previews_path_that_is_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").write_text("not a folder")
    code = run_cli(
        ["generate", "a cat", "--model", "tiny_t2v", "--previews", "taken", "-o", "cat.mp4"],
        tmp_path,
        monkeypatch,
    )
    assert code == 2
    assert "--previews: taken is a file, not a folder" in capsys.readouterr().err
    assert not (tmp_path / "cat.mp4").exists()
