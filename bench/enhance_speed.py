"""Speed of the enhancers (bot.core.enhance) against what they replace: RIFE 4.26 and ffmpeg's
``minterpolate`` for interpolation, Real-ESRGAN x2/x4 and Zeroscope XL for upscaling, in frames
per second at 576x320 and 1280x720 input.

Measured on this machine's CPU: RIFE at full size (the 4.26 network, 5.7M parameters, random
weights: speed does not depend on the values), Real-ESRGAN at full size (RRDBNet, 64 features, 23
blocks, random weights, loaded through spandrel as the bot loads it) and ``minterpolate`` through
``bot.core.media.interpolate``. Real-ESRGAN does 0.4-10 TFLOP a frame, minutes on two cores, so
unless ``--full`` it is timed on one frame at a calibration size and scaled to the others by its
FLOPs, which for a network of only convolutions grow exactly with the pixels (the 576x320 x2 frame
is also timed whole, as a check on the scaling).

Predicted for a GPU: each network's FLOPs per frame (``torch.utils.flop_counter``) at a stated
effective rate, next to Zeroscope XL's FLOPs per upscaled frame (``bench/gpu_speed.py``'s
meta-device counter on its native job: 24 frames of 576x320 to 1024x576) at the rate
docs/PERFORMANCE.md predicts for the UNets. FLOPs
are a poor guide for RIFE, whose warps and resizes are bound by memory, not arithmetic: its rate is
anchored on a published RTX 3090 figure instead (see ``RIFE_TFLOPS``).

Not a test: timings depend on the machine. Usage::

    python bench/enhance_speed.py                 # 3-8 minutes on 2 cores
    python bench/enhance_speed.py --full          # Real-ESRGAN timed at every size (much longer)
    python bench/enhance_speed.py --no-zeroscope  # skip counting Zeroscope XL's FLOPs
    python bench/enhance_speed.py --quick         # about a minute: fewer, shorter timings
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from bot.core import media  # noqa: E402
from bot.core.enhance.esrgan import SpandrelUpscaler, load_descriptor  # noqa: E402
from bot.core.enhance.rife import IFNet, RifeInterpolator  # noqa: E402
from bot.core.tiny.enhance import esrgan_shapes, random_state_dict  # noqa: E402

SIZES = ((576, 320), (1280, 720))
CALIBRATION = (144, 80)
"""Real-ESRGAN's timed frame without ``--full``: a sixteenth of 576x320."""
H100_TFLOPS = 989.4
"""H100 SXM dense fp16/bf16 tensor-core peak (data sheet)."""
ESRGAN_TFLOPS = (100.0, 200.0, 400.0)
"""Effective fp16 rate assumed for RRDBNet on an H100: low, central, high (10-40% of the peak).
Its 3x3 convolutions have 32-64 output channels, too narrow to fill the tensor cores: TensorRT
reaches 3.35 frames/s of RealESRGAN_x2plus at 720p on an RTX 4060 Ti (vs-realesrgan issue 29),
about 30 TFLOP/s on a card whose dense fp16 peak is about 44."""
RIFE_TFLOPS = (15.0, 25.0, 40.0)
"""Effective rate assumed for RIFE 4.x on an H100, from a measured one: 77-78 frames/s of 2x
1080p with RIFE 4.14/4.15 in PyTorch on an RTX 3090 (Practical-RIFE issue 55), about 7 TFLOP/s
for a network of RIFE 4.26's size per pixel, scaled by the H100's 3.6x memory bandwidth."""
ZEROSCOPE_XL_TFLOP = 4910.0
"""Zeroscope XL's native upscale job as counted on this tree (24 frames, 30 of 50 steps run), used
when the count is skipped."""
UNET_TFLOPS = (0.30 * 790.0, 0.45 * 790.0)
"""docs/PERFORMANCE.md's prediction for the UNet denoisers on an H100: 30-45% of 790 TFLOP/s."""


@dataclass
class Row:
    what: str
    size: tuple[int, int]
    out_size: tuple[int, int]
    cpu_fps: float
    how: str
    gflop: float = float("nan")
    """Per output (upscalers) or per in-between (interpolators) frame."""
    gpu_fps: tuple[float, ...] = ()


def moving_clip(width: int, height: int, count: int) -> list[Image.Image]:
    """A textured picture panning 6 px a frame, with a little grain."""
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (height // 8 + 1, (width + 6 * count) // 8 + 1, 3), dtype=np.uint8)
    texture = np.asarray(
        Image.fromarray(wide).resize(((width + 6 * count), height), Image.Resampling.BICUBIC)
    )
    frames = []
    for k in range(count):
        crop = texture[:, 6 * k : 6 * k + width].astype(np.int16)
        crop = crop + rng.integers(-8, 8, crop.shape, dtype=np.int16)
        frames.append(Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)))
    return frames


def timed(run: Callable[[], Any], repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def flops(module: Callable[..., Any], *inputs: Any) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        module(*inputs)
    return float(counter.get_total_flops())


# --- interpolation -------------------------------------------------------------------------------


def rife_rows(quick: bool = False) -> list[Row]:
    torch.manual_seed(0)
    net = IFNet().eval()
    interpolator = RifeInterpolator(net, "cpu")
    with torch.device("meta"):
        meta_net = IFNet()
    rows = []
    for width, height in SIZES:
        pairs = 3 if width < 1000 and not quick else 1
        frames = moving_clip(width, height, pairs + 1)
        interpolator.interpolate(frames[:2], 2)  # warm-up: allocator, oneDNN kernels
        seconds = timed(
            lambda frames=frames: interpolator.interpolate(frames, 2), repeats=1 if quick else 2
        )
        multiple = net.size_multiple()
        padded = (-(-height // multiple) * multiple, -(-width // multiple) * multiple)
        blank = torch.zeros(1, 3, *padded, device="meta")
        gflop = flops(meta_net, blank, blank, torch.zeros(1, device="meta")) / 1e9
        rows.append(
            Row(
                "RIFE 4.26 (2x)",
                (width, height),
                (width, height),
                pairs / seconds,
                f"{pairs} in-between(s) timed, fp32",
                gflop,
                tuple(t * 1e3 / gflop for t in RIFE_TFLOPS),
            )
        )
    return rows


def minterpolate_rows(quick: bool = False) -> list[Row]:
    rows = []
    for width, height in SIZES:
        frames = moving_clip(width, height, 8)
        seconds = timed(
            lambda frames=frames: media.interpolate(frames, 8.0, 2), repeats=1 if quick else 2
        )
        rows.append(
            Row(
                "minterpolate (2x)",
                (width, height),
                (width, height),
                len(frames) / seconds,
                f"{len(frames)} new of {2 * len(frames)} frames (the CPU, ffmpeg's threads)",
            )
        )
    return rows


# --- upscaling -----------------------------------------------------------------------------------


def esrgan_rows(full: bool, quick: bool = False) -> list[Row]:
    rows = []
    for scale in (2, 4):
        state = random_state_dict(esrgan_shapes(scale), seed=scale, std=0.02)
        upscaler = SpandrelUpscaler(load_descriptor(state), "cpu", batch_size=1)
        model = upscaler.descriptor.model
        probe = torch.rand(1, 3, 64, 64)
        per_pixel = flops(model, probe) / (64 * 64)
        calib_w, calib_h = CALIBRATION
        calib_frame = moving_clip(calib_w, calib_h, 1)
        upscaler.upscale(calib_frame)  # warm-up
        calib_s = timed(lambda u=upscaler, f=calib_frame: u.upscale(f), repeats=2)
        achieved = per_pixel * calib_w * calib_h / calib_s  # FLOP/s on this CPU
        for width, height in SIZES:
            gflop = per_pixel * width * height / 1e9
            measure = full or (scale == 2 and width < 1000 and not quick)
            if measure:
                frame = moving_clip(width, height, 1)
                seconds = timed(lambda u=upscaler, f=frame: u.upscale(f))
                how = "1 frame timed"
            else:
                seconds = gflop * 1e9 / achieved
                how = f"scaled by FLOPs from {calib_w}x{calib_h} ({achieved / 1e9:.0f} GFLOP/s)"
            rows.append(
                Row(
                    f"Real-ESRGAN x{scale}",
                    (width, height),
                    (width * scale, height * scale),
                    1 / seconds,
                    how,
                    gflop,
                    tuple(t * 1e3 / gflop for t in ESRGAN_TFLOPS),
                )
            )
    return rows


def zeroscope_rows(count: bool) -> list[Row]:
    tflop, frames, how = ZEROSCOPE_XL_TFLOP, 24, "the count of this tree, recorded"
    if count:
        try:
            sys.path.insert(0, str(ROOT / "bench"))
            import gpu_speed  # type: ignore[import-not-found]

            from bot.core.registry import REGISTRY

            job = gpu_speed.native_job(REGISTRY["zeroscope_v2_xl"])
            tflop, frames = gpu_speed.count_flops(job).total / 1e12, job.num_frames
            how = f"bench/gpu_speed.py's count of {job.label}"
        except Exception as exc:  # the count needs diffusers' configs; the figure stands in
            print(f"(Zeroscope XL count skipped: {type(exc).__name__}: {exc})")
    per_frame = tflop * 1e3 / frames
    return [
        Row(
            "Zeroscope XL (diffusion)",
            (576, 320),
            (1024, 576),
            float("nan"),
            f"{how}; GPU at 30-45% of 790 TFLOP/s",
            per_frame,
            tuple(t * 1e3 / per_frame for t in UNET_TFLOPS),
        )
    ]


# --- report --------------------------------------------------------------------------------------


def show(rows: list[Row]) -> None:
    head = (
        f"{'what':26} {'input':>9} {'output':>9} {'CPU fr/s':>9} {'GFLOP/fr':>9} "
        f"{'H100 fr/s (low / mid / high)':>30}  how"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        gpu = " / ".join(f"{v:.3g}" for v in row.gpu_fps) if row.gpu_fps else "-"
        cpu = f"{row.cpu_fps:.3g}" if row.cpu_fps == row.cpu_fps else "-"
        gflop = f"{row.gflop:.4g}" if row.gflop == row.gflop else "-"
        print(
            f"{row.what:26} {'x'.join(map(str, row.size)):>9} "
            f"{'x'.join(map(str, row.out_size)):>9} {cpu:>9} {gflop:>9} {gpu:>30}  {row.how}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="time Real-ESRGAN at every size")
    parser.add_argument("--no-zeroscope", action="store_true", help="skip Zeroscope XL's count")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="about a minute: one RIFE pair per size, one run each, every Real-ESRGAN size "
        "scaled from the calibration frame, Zeroscope XL's recorded count",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads")
    print(
        f"GPU rates assumed: RIFE {'/'.join(f'{t:g}' for t in RIFE_TFLOPS)} TFLOP/s, "
        f"Real-ESRGAN {'/'.join(f'{t:g}' for t in ESRGAN_TFLOPS)} TFLOP/s effective "
        f"(H100 dense fp16 peak {H100_TFLOPS:g})\n"
    )
    rows = rife_rows(args.quick) + minterpolate_rows(args.quick)
    rows += esrgan_rows(args.full, args.quick)
    rows += zeroscope_rows(not (args.no_zeroscope or args.quick))
    show(rows)


if __name__ == "__main__":
    main()
