"""Encode throughput of bot.core.media on this machine.

Not a test: timings depend on the machine. Prints the mp4 encode rate for 24 frames of 576x320
(median of 10 runs after a warm-up, default settings of ``encode``) and whether it meets the target
of 300 frames/s, then the time ``encode_within`` takes for a 10 MiB budget.

The headline clip is a smooth multi-scale texture panning 4 px per frame, like a generated clip with
camera motion. x264's speed depends on the content, so a harder clip (colour waves moving in three
directions over the whole frame, plus grain) is timed as well, for information.

Usage: python bench/encode_throughput.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from bot.core import media

WIDTH, HEIGHT, FRAMES, FPS = 576, 320, 24, 8.0
TARGET_FPS = 300.0
BUDGET_BYTES = 10 * 1024 * 1024
PAN_PX = 4


def pan_frames() -> list[Image.Image]:
    """A crop window sliding over a wide texture made of smooth noise at three scales."""
    rng = np.random.default_rng(1)
    wide = WIDTH + PAN_PX * FRAMES
    texture = np.full((HEIGHT, wide, 3), 128.0)
    for cells, amplitude in ((8, 90), (32, 40), (128, 20)):
        grid = rng.normal(0, 1, (max(2, HEIGHT * cells // WIDTH), cells * wide // WIDTH, 3))
        grid = (grid - grid.min()) / np.ptp(grid) * 255
        layer = Image.fromarray(grid.astype(np.uint8), "RGB").resize((wide, HEIGHT), Image.BICUBIC)
        texture += (np.asarray(layer, np.float64) - 128) * amplitude / 128
    pixels = np.clip(texture, 0, 255).astype(np.uint8)
    return [
        Image.fromarray(pixels[:, i * PAN_PX : i * PAN_PX + WIDTH], "RGB") for i in range(FRAMES)
    ]


def wave_frames() -> list[Image.Image]:
    """Every pixel changes colour every frame, in a way block motion search cannot follow."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    frames = []
    for index in range(FRAMES):
        shift = index * 6.0
        rgb = np.stack(
            [
                128 + 100 * np.sin((x + shift) / 37.0),
                128 + 100 * np.cos((y - shift) / 23.0),
                128 + 100 * np.sin((x + y + 2 * shift) / 51.0),
            ],
            axis=-1,
        )
        rgb += rng.normal(0, 2, rgb.shape)
        frames.append(Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB"))
    return frames


def timings(function: Callable[[], object], runs: int) -> list[float]:
    """Wall times of ``runs`` calls after one warm-up call (page cache, binary start-up)."""
    function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def report_encode(name: str, frames: list[Image.Image], out: Path, runs: int) -> float:
    times = timings(lambda: media.encode(frames, out, FPS), runs)
    size = media.encode(frames, out, FPS).size_bytes
    median = statistics.median(times)
    rate = FRAMES / median
    print(
        f"  {name:<6} median {median * 1000:6.1f} ms (min {min(times) * 1000:.1f}, "
        f"max {max(times) * 1000:.1f}) -> {rate:4.0f} frames/s, {size / 1024:.0f} KiB"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    pan = pan_frames()
    print(
        f"encode(): {FRAMES} frames of {WIDTH}x{HEIGHT}, crf 18, preset {media.DEFAULT_PRESET}, "
        f"median of {args.runs} runs"
    )
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "bench.mp4"
        rate = report_encode("pan", pan, out, args.runs)
        report_encode("waves", wave_frames(), out, args.runs)
        within_times = timings(lambda: media.encode_within(pan, out, FPS, BUDGET_BYTES), args.runs)
        within = media.encode_within(pan, out, FPS, BUDGET_BYTES)
    print(
        f"encode_within(10 MiB), pan: median {statistics.median(within_times) * 1000:.1f} ms, "
        f"crf {within.crf}, {within.width}x{within.height} at {within.fps:g} fps, "
        f"{within.size_bytes / 1024:.0f} KiB"
    )
    verdict = "met" if rate >= TARGET_FPS else "NOT met"
    print(f"target: >= {TARGET_FPS:.0f} frames/s for the pan clip: {verdict} ({rate:.0f})")


if __name__ == "__main__":
    main()
