"""Engine overhead: ``GenerationEngine.generate_video`` against calling the same diffusers pipeline
directly, on the same tiny model, the same arguments and the same seed.

Not a test: timings depend on the machine. The engine adds validation, scheduler selection, the
progress/cancel callback at every step and the conversion of frames to PIL images; the target is a
ratio of at most 1.05. Runs alternate (engine, direct, engine, ...) after a warm-up so drift in the
machine's speed affects both sides alike; the figure is the ratio of the medians.

Usage: python bench/engine_overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from bot.core import GenerationParams, JobControl
from bot.core.engine import GenerationEngine
from bot.core.manager import ManagerOptions, ModelManager
from bot.logs import quiet_libraries

TARGET_RATIO = 1.05
CASES = [
    ("tiny_t2v", 64, 64, 8, 10),
    ("tiny_animatediff", 64, 64, 8, 10),
    ("tiny_t2v", 128, 128, 16, 20),
    ("tiny_animatediff", 128, 128, 16, 20),
]


def direct_call(pipe, params: GenerationParams) -> object:  # type: ignore[no-untyped-def]
    """What a user of diffusers would write: the same call with no callback."""
    with torch.inference_mode():
        return pipe(
            prompt=params.prompt,
            width=params.width,
            height=params.height,
            num_frames=params.num_frames,
            num_inference_steps=params.num_inference_steps,
            guidance_scale=params.guidance_scale,
            generator=torch.Generator("cpu").manual_seed(params.seed or 0),
            output_type="np",
        ).frames


def measure(engine: GenerationEngine, case: tuple[str, int, int, int, int], runs: int) -> float:
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
    pipe = engine.manager.load_model(model).pipeline
    engine.generate_video(params)  # warm-up, and sets the pipeline's scheduler to the engine's
    direct_call(pipe, params)
    engine_s: list[float] = []
    direct_s: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        result = engine.generate_video(params, JobControl(on_progress=lambda p: None))
        engine_s.append(time.perf_counter() - start)
        assert result.ok, result.error
        start = time.perf_counter()
        direct_call(pipe, params)
        direct_s.append(time.perf_counter() - start)
    ratio = statistics.median(engine_s) / statistics.median(direct_s)
    print(
        f"{model:<18} {width}x{height} {frames:>2} frames {steps:>2} steps  "
        f"engine {statistics.median(engine_s) * 1000:7.1f} ms  "
        f"direct {statistics.median(direct_s) * 1000:7.1f} ms  ratio {ratio:.3f}"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    quiet_libraries()
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as cache:
        engine = GenerationEngine(
            ModelManager(ManagerOptions(cache_dir=os.environ.get("VIDEOBOT_MODEL_CACHE", cache)))
        )
        ratios = [measure(engine, case, args.runs) for case in CASES]
    worst = max(ratios)
    verdict = "met" if worst <= TARGET_RATIO else "NOT met"
    print(f"worst ratio {worst:.3f} (target <= {TARGET_RATIO}): {verdict}")


if __name__ == "__main__":
    main()
