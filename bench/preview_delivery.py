"""What live previews cost on the Discord side: edits, bytes uploaded and time to the result.

Starts the local fake Discord (``tests/fake_discord``) and a real :class:`bot.client.VideoBot` on
a tiny model, then runs the same ``/video`` jobs one after another with ``[discord]
live_previews`` on and off, at the production progress cadence (``--interval``, 2 s by default).
A first job loads the model and is not counted. For each setting it prints per job: the progress edits, how many carried a new preview, the
preview files' sizes, the bytes those edits uploaded, and the time from the command to the final
message. The preview's own cost on the GPU thread is ``bench/preview_cost.py``'s.

Not a test: the figures depend on the machine. Usage:

    VIDEOBOT_MODEL_CACHE=/tmp/videobot-test-models \\
        .venv/bin/python bench/preview_delivery.py [--jobs 3] [--steps 40] [--frames 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # fake_discord and bot_helpers, as the tests import them
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VIDEOBOT_MODEL_CACHE", "/tmp/videobot-test-models")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


async def run(previews: bool, args: argparse.Namespace, manager: Any) -> list[dict[str, float]]:
    from bot_helpers import make_bot, make_settings, wait_for_result
    from fake_discord import FakeDiscord

    rows = []
    with tempfile.TemporaryDirectory(prefix="videobot-bench-") as folder:
        settings = make_settings(
            Path(folder),
            discord={"live_previews": previews},
            limits={"progress_interval_s": args.interval},
        )
        async with FakeDiscord() as fake, fake.run_bot(make_bot(settings, manager)):
            for index in range(-1, args.jobs):  # job -1 loads the model: not counted
                prompt = (
                    f"a paper boat --seed {index + 1} --frames {args.frames} --steps {args.steps}"
                )
                before = len(fake.requests)
                started = time.perf_counter()
                interaction = await fake.run_slash_command(
                    "video", {"prompt": prompt, "width": args.size, "height": args.size}
                )
                message = await wait_for_result(fake, interaction, timeout=600)
                elapsed = time.perf_counter() - started
                edits = [
                    r
                    for r in fake.requests[before:]
                    if r.method == "PATCH" and "@original" in r.path and r.status == 200
                ]
                progress = [r for r in edits if not any(f.filename == "video.mp4" for f in r.files)]
                with_preview = [r for r in progress if r.files]
                sizes = [f.size for r in with_preview for f in r.files]
                if index < 0:
                    continue
                rows.append(
                    {
                        "edits": len(progress),
                        "previews": len(with_preview),
                        "mean_kb": statistics.mean(sizes) / 1024 if sizes else 0.0,
                        "max_kb": max(sizes) / 1024 if sizes else 0.0,
                        "uploaded_kb": sum(sizes) / 1024,
                        "seconds": elapsed,
                        "video_kb": message.attachments[0].size / 1024,
                    }
                )
    return rows


def report(name: str, rows: list[dict[str, float]]) -> None:
    print(f"\nlive_previews = {name}")
    print("  job  edits  previews  preview mean/max KB  preview KB sent  video KB  to result s")
    for index, row in enumerate(rows):
        print(
            f"  {index:>3}  {row['edits']:>5.0f}  {row['previews']:>8.0f}  "
            f"{row['mean_kb']:>9.1f} / {row['max_kb']:<6.1f}  {row['uploaded_kb']:>15.1f}  "
            f"{row['video_kb']:>8.1f}  {row['seconds']:>11.2f}"
        )
    print(f"  mean time to result: {statistics.mean(r['seconds'] for r in rows):.2f} s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--interval", type=float, default=2.0, help="[limits] progress_interval_s")
    args = parser.parse_args()

    from bot.core.manager import ManagerOptions, ModelManager

    manager = ModelManager(ManagerOptions(cache_dir=Path(os.environ["VIDEOBOT_MODEL_CACHE"])))
    on = await run(True, args, manager)
    off = await run(False, args, manager)
    report("true", on)
    report("false", off)
    ratio = statistics.mean(r["seconds"] for r in on) / statistics.mean(r["seconds"] for r in off)
    print(f"\ntime to result, previews on / off: {ratio:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
