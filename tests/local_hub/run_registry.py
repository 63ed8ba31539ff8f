"""Run in a fresh process by ``tests/test_hub.py``, as a user's process would start: ``HF_ENDPOINT``
names the local hub, ``HF_HOME`` is a new empty cache, ``HF_HUB_OFFLINE`` is unset. Every registry
key given is loaded through its real repo id with the real ``from_pretrained`` download path and
renders a tiny job (upscalers upscale one) in each dtype given; the report goes to a JSON file.

    python -m tests.local_hub.run_registry REPORT.json float32,bfloat16 key [key=repo ...]

``key=repo`` loads ``key`` from another hub repo (the owner's ``sources`` override), such as a
hostile test layout of the same model; its rows carry the repo under ``override``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from dataclasses import replace
from typing import Any


def main(argv: list[str]) -> int:
    report_path, dtypes, keys = argv[0], argv[1].split(","), argv[2:]
    assert "HF_HUB_OFFLINE" not in os.environ, "the hub test runs online"
    import torch

    torch.set_num_threads(1)
    from bot.core.manager import ManagerOptions, ModelManager

    report: dict[str, Any] = {"runs": [], "renamed": _renamed()}
    for dtype in dtypes:
        manager = ModelManager(ManagerOptions(device="cpu", dtype=dtype))
        for item in keys:
            key, _, override = item.partition("=")
            runner = manager
            if override:
                runner = ModelManager(
                    ManagerOptions(device="cpu", dtype=dtype, sources={key: override})
                )
            row = _run(runner, key, dtype)
            row["override"] = override or None
            report["runs"].append(row)
            runner.unload_all()
    with open(report_path, "w") as out:
        json.dump(report, out, indent=1)
    return 0


def _run(manager: Any, key: str, dtype: str) -> dict[str, Any]:
    """Load ``key`` as the bot does (``ModelManager.load_model``: the real id, the download, the
    variant choice, ``from_pretrained``), then render a tiny job on the loaded pipeline through its
    adapter, at the smallest size the family takes: the load is what this checks, and the engine's
    own path is covered on the tiny models elsewhere."""
    import torch

    from bot.core.pipelines.base import DenoiseRequest, denoiser_of
    from bot.core.progress import JobControl
    from bot.core.registry import get_spec

    spec = get_spec(key)
    row: dict[str, Any] = {"key": key, "dtype": dtype, "source": manager.source_of(spec)}
    started = time.perf_counter()
    try:
        loaded = manager.load_model(key)
        row["load_s"] = round(time.perf_counter() - started, 2)
        row["variant"] = loaded.load_request.variant
        row["loaded_dtype"] = str(denoiser_of(loaded.pipeline).dtype)  # Wan's VAE stays fp32
        # A fused LoRA shows as other denoiser weights than its base repo's own.
        row["lora_source"] = loaded.load_request.lora_source
        row["weights_sum"] = float(
            sum(p.double().sum() for p in denoiser_of(loaded.pipeline).parameters())
        )
        second = getattr(loaded.pipeline, "transformer_2", None)  # Wan 2.2 A14B's low-noise expert
        row["weights_sum_2"] = (
            float(sum(p.double().sum() for p in second.parameters())) if second else None
        )
        if spec.role == "soundtrack":  # no picture: a one-second track from the prompt
            from bot.core.soundtrack import make_track

            sound = make_track(loaded, "rain on a tin roof", 1.0, 7, JobControl())
            assert sound.samples is not None
            row["track_s"] = round(sound.duration_s, 3)
            row["finite"] = bool(sound.samples.std() > 0)
            row["error"] = None
            row["seconds"] = round(time.perf_counter() - started, 2)
            return row
        side = 2 * spec.size_multiple if spec.size_multiple >= 32 else 64
        request = DenoiseRequest(
            prompt="a cat surfing a wave at sunset",
            negative_prompt="",
            width=side,
            height=side,
            num_frames=spec.frames.low,
            num_inference_steps=2,
            guidance_scale=spec.default_guidance,
            generator=torch.Generator().manual_seed(7),
            video=_small_video(side) if spec.role == "upscaler" else None,
            fps=spec.default_fps,
            call_options=spec.call_options_for(spec.default_scheduler),
        )
        if spec.image_only:  # a picture-only model (Wan 2.2 I2V A14B) renders from a picture
            from PIL import Image

            picture = Image.new("RGB", (side, side), (40, 120, 200))
            image_pipe = manager.image_pipeline(loaded)
            # A model that takes only a pair (Wan 2.1 FLF2V) gets a last frame too.
            last = Image.new("RGB", (side, side), (200, 60, 40)) if spec.first_last_only else None
            pictures = replace(request, image=picture, end_image=last)
            frames = loaded.adapter.run(image_pipe, pictures, JobControl())
        else:
            frames = loaded.adapter.run(loaded.pipeline, request, JobControl())
        row["frames"], row["size"] = (
            int(frames.shape[0]),
            [int(frames.shape[2]), int(frames.shape[1])],
        )
        row["finite"] = bool(frames.std() > 0)
        if spec.image_to_video and spec.image_source:
            from PIL import Image

            pipe = manager.image_pipeline(loaded)
            picture = Image.new("RGB", (side, side), (200, 120, 40))
            image = loaded.adapter.run(pipe, replace(request, image=picture), JobControl())
            row["image_frames"] = int(image.shape[0])
            row["image_variant"] = loaded.load_request.image_variant
        row["error"] = None
    except Exception as exc:  # the report says what failed; the test asserts on it
        row["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    row["seconds"] = round(time.perf_counter() - started, 2)
    return row


def _small_video(side: int) -> list[Any]:
    from PIL import Image

    return [Image.new("RGB", (side, side), (30 * i, 90, 160)) for i in range(8)]


def _renamed() -> dict[str, Any]:
    """The hub's redirect for a transferred repo, through huggingface_hub itself."""
    from huggingface_hub import HfApi, hf_hub_download

    info = HfApi().model_info("THUDM/CogVideoX-2b")
    path = hf_hub_download("THUDM/CogVideoX-2b", "model_index.json")
    return {"id": info.id, "sha": info.sha, "model_index": json.load(open(path))["_class_name"]}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
