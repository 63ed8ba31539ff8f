"""Live preview cost: one preview (latent projection + GIF encode) against one denoising step.

Not a test: timings depend on the machine. Two parts:

1. Tiny models, per family: a real generation with a preview built at every step
   (``previews_every_s=0``). Each step's wall time is split into the preview's share (timed around
   ``LatentPreviewer.__call__``) and the rest (the denoising step itself); the figure is the ratio
   of the medians. Tiny models make a step absurdly cheap (a few ms), so this ratio is the worst
   case, far above what a real model sees.
2. Real latent shapes: the same preview built from random latents of each real model's default
   job (Wan 2.1 1.3B's 16x21x60x104, LTX-Video's 6144 packed tokens of 128 channels, ...), split
   into the projection (on the latents' device; on a GPU run it runs there) and the encode (always
   the CPU). Compare with a real step: docs/PERFORMANCE.md has the predicted H100 step times.

In the bot a preview is built at most once per ``previews_every_s`` (2 s by default), so the
share of the whole job is the preview's cost over that interval, whatever the step time.

Usage: python bench/preview_cost.py [--runs N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

import torch

from bot.core import GenerationParams, JobControl
from bot.core import previews as previews_module
from bot.core.engine import GenerationEngine
from bot.core.manager import ManagerOptions, ModelManager
from bot.core.previews import LatentPreviewer, encode_gif, project, projection_for
from bot.logs import quiet_libraries

# (model, width, height, frames, steps, image-to-video)
TINY_CASES = [
    ("tiny_t2v", 64, 64, 8, 10),
    ("tiny_animatediff", 64, 64, 8, 10),
    ("tiny_ltx", 96, 64, 17, 10),
    ("tiny_wan", 64, 96, 9, 10),
    ("tiny_cogvideox", 64, 64, 9, 10),
]

# (model, family, layout, latent shape as the pipeline holds it, video frames, fps)
REAL_SHAPES: list[tuple[str, str, str, tuple[int, ...], int, int]] = [
    ("animatediff 512x512x16", "animatediff", "BCFHW", (1, 4, 16, 64, 64), 16, 8),
    ("zeroscope_v2_576w 576x320x24", "text_to_video", "BCFHW", (1, 4, 24, 40, 72), 24, 8),
    ("ltx_video 768x512x121", "ltx", "packed", (1, 16 * 16 * 24, 128), 121, 24),
    ("wan2_1_1_3b 832x480x81", "wan", "BCFHW", (1, 16, 21, 60, 104), 81, 16),
    ("wan2_2_ti2v_5b 1280x704x121", "wan", "BCFHW", (1, 48, 31, 44, 80), 121, 24),
    ("cogvideox 720x480x49", "cogvideox", "BFCHW", (1, 13, 16, 60, 90), 49, 8),
]


def tiny_case(engine: GenerationEngine, case: tuple[str, int, int, int, int], runs: int) -> str:
    model, width, height, frames, steps = case
    params = GenerationParams(
        prompt="a paper boat drifting on a pond",
        model=model,
        width=width,
        height=height,
        num_frames=frames,
        num_inference_steps=steps,
        seed=7,
    )
    engine.generate_video(params)  # warm-up: load, first-call costs
    preview_s: list[float] = []
    step_s: list[float] = []
    sizes: list[int] = []
    real_call = LatentPreviewer.__call__

    def timed(self: LatentPreviewer, latents: Any, step: int) -> Any:
        started = time.perf_counter()
        preview = real_call(self, latents, step)
        preview_s.append(time.perf_counter() - started)
        sizes.append(len(preview.data))
        return preview

    LatentPreviewer.__call__ = timed  # type: ignore[method-assign]
    try:
        for _ in range(runs):
            stamps: list[float] = []
            control = JobControl(
                on_progress=lambda p, stamps=stamps: stamps.append(time.perf_counter()),
                previews=True,
                previews_every_s=0.0,
            )
            before = len(preview_s)
            result = engine.generate_video(params, control)
            assert result.ok, result.error
            built = preview_s[before:]
            # Step k's wall time runs from report k-1 to report k and includes preview k.
            for k in range(1, len(stamps)):
                step_s.append(stamps[k] - stamps[k - 1] - built[k])
    finally:
        LatentPreviewer.__call__ = real_call  # type: ignore[method-assign]
    preview = statistics.median(preview_s)
    step = statistics.median(step_s)
    return (
        f"| {model} | {width}x{height}, {frames} frames | {step * 1000:.1f} ms | "
        f"{preview * 1000:.2f} ms | {preview / step * 100:.0f}% | "
        f"{statistics.median(sizes) / 1024:.1f} KB |"
    )


def real_shape(
    shape_case: tuple[str, str, str, tuple[int, ...], int, int], device: str, runs: int
) -> str:
    name, family, layout, shape, frames, fps = shape_case
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(*shape, generator=generator).to(device)
    # The pixel size the latents stand for (only the aspect ratio and the preview size matter).
    width, height = (int(s) for s in name.split()[1].split("x")[:2])
    unpack = None
    if layout == "packed":
        f, h, w = (frames - 1) // 8 + 1, height // 32, width // 32

        def unpack(t: Any) -> Any:
            from diffusers import LTXPipeline

            return LTXPipeline._unpack_latents(t, f, h, w, 1, 1)

    previewer = LatentPreviewer(
        family, width=width, height=height, num_frames=frames, fps=fps, layout=layout, unpack=unpack
    )
    previewer(latents, 1)  # warm-up
    project_s: list[float] = []
    encode_s: list[float] = []
    sizes: list[int] = []
    for _ in range(runs):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        video = previews_module.to_channels_first(latents, layout, unpack)
        frames_rgb = project(
            video, projection_for(family, int(video.shape[0])), previewer.max_frames
        )
        projected = time.perf_counter()
        data = encode_gif(frames_rgb, previewer.size, 100)
        encoded = time.perf_counter()
        project_s.append(projected - started)
        encode_s.append(encoded - projected)
        sizes.append(len(data))
    project_ms = statistics.median(project_s) * 1000
    encode_ms = statistics.median(encode_s) * 1000
    return (
        f"| {name} | {tuple(shape[1:])} | {project_ms:.1f} ms | {encode_ms:.1f} ms | "
        f"{project_ms + encode_ms:.1f} ms | {statistics.median(sizes) / 1024:.1f} KB |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    quiet_libraries()
    cache = os.environ.get("VIDEOBOT_MODEL_CACHE") or tempfile.mkdtemp(prefix="videobot-bench-")
    manager = ModelManager(ManagerOptions(cache_dir=cache, device=args.device))
    engine = GenerationEngine(manager)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}\n")
    print("| model | job | one step | one preview | preview / step | preview size |")
    print("|---|---|---|---|---|---|")
    for case in TINY_CASES:
        print(tiny_case(engine, case, args.runs), flush=True)
    print("\n| real model's default job | latents | projection | GIF encode | one preview | size |")
    print("|---|---|---|---|---|---|")
    for shape_case in REAL_SHAPES:
        print(real_shape(shape_case, args.device, max(args.runs, 5)), flush=True)


if __name__ == "__main__":
    main()
