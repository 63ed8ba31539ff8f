"""What fusing a step-distillation LoRA costs at load: the seconds ``fuse_lora`` adds to a model's
load, and the memory it holds meanwhile, on a real-size Wan transformer.

The manager fuses the LoRA (``bot/core/pipelines/loras.py``) right after ``from_pretrained``,
before the pipeline is placed, so the fuse runs where the weights are loaded: on the CPU. This
builds the transformer of a registry key from ``bench/model_configs`` with random weights in
bf16, writes a random LoRA of the published rank in lightx2v's key format
(``bot.core.tiny.dit.lightx2v_lora_state``) and times the very ``fuse_lora`` the bot runs. After
the fuse, each step costs what the base model's does (no LoRA layer is left), so load time is the
only cost there is.

    python bench/lora_fuse.py --model wan2_1_1_3b --rank 64

Prints the LoRA's size, the fuse's seconds and its peak extra resident memory, and the fuse time
per billion transformer parameters (the 14B's fuse, which needs more memory than the build
machine has, scales with its layers' sizes).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _peak_rss() -> int:
    """The process's peak resident memory in bytes since the last reset (Linux's VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> int:
    """Resets the peak to the current resident memory (``clear_refs`` 5), so the fuse's own peak
    is read, not the build's; returns that current figure."""
    Path("/proc/self/clear_refs").write_text("5")
    return _peak_rss()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="wan2_1_1_3b", help="a Wan key of bench/model_configs")
    parser.add_argument("--rank", type=int, default=64, help="the LoRA's rank (lightx2v's: 64)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's own)")
    args = parser.parse_args(argv)

    import gpu_speed
    import torch
    from diffusers import WanPipeline
    from safetensors.torch import save_file

    from bot.core.pipelines.loras import fuse_lora
    from bot.core.tiny.dit import lightx2v_lora_state

    if args.threads:
        torch.set_num_threads(args.threads)
    config = gpu_speed.load_configs(args.model)["components"]["transformer"]
    started = time.perf_counter()
    transformer = gpu_speed.build_module(config, "cpu", torch.bfloat16, seed=0)
    built = time.perf_counter() - started
    params = sum(p.numel() for p in transformer.parameters())
    shapes = {name: tuple(t.shape) for name, t in transformer.state_dict().items()}
    torch.manual_seed(1)
    lora = {k: v.to(torch.bfloat16) for k, v in lightx2v_lora_state(shapes, args.rank).items()}
    pipe = WanPipeline(
        tokenizer=None, text_encoder=None, vae=None, scheduler=None, transformer=transformer
    )
    with tempfile.TemporaryDirectory(prefix="videobot-lora-") as folder:
        path = Path(folder) / "lora.safetensors"
        save_file(lora, str(path))
        size_mb = path.stat().st_size / 2**20
        before = _reset_peak_rss()
        started = time.perf_counter()
        fuse_lora(pipe, str(path), 1.0)
        seconds = time.perf_counter() - started
        peak_extra = (_peak_rss() - before) / 2**30
    leftover = [n for n, _ in transformer.named_parameters() if "lora" in n]
    print(
        "| model | params | LoRA rank | LoRA file | fuse s | s per 1B params | peak extra RSS | build s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.model} | {params / 1e9:.2f}B | {args.rank} | {size_mb:.0f} MB | {seconds:.2f} | "
        f"{seconds / (params / 1e9):.2f} | {peak_extra:.2f} GB | {built:.1f} |"
    )
    if leftover:
        print(f"LoRA layers left after the fuse: {leftover[:3]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
