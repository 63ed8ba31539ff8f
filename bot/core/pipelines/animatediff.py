"""AnimateDiff: an SD1.5 base with a ``MotionAdapter``, run by ``AnimateDiffPipeline``.

The adapter comes either as a diffusers folder (guoyww's v1-5-2) or as a bare state-dict file
(ByteDance's AnimateDiff-Lightning ships ``…_4step_diffusers.safetensors`` with no config).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.core.pipelines.base import (
    STEP_TENSORS,
    DenoiseRequest,
    LoadRequest,
    NoImagePipeline,
    StepEndCallback,
    previewer_for,
    single_file,
    to_uint8_frames,
)

if TYPE_CHECKING:
    from bot.core.progress import JobControl


class AnimateDiffAdapter(NoImagePipeline):
    stage = "denoise"

    def load(self, request: LoadRequest) -> Any:
        from diffusers import AnimateDiffPipeline

        if request.adapter_source is None:
            raise ValueError("AnimateDiff needs a motion adapter source")
        adapter = load_motion_adapter(request.adapter_source, request.torch_dtype)
        return AnimateDiffPipeline.from_pretrained(
            download_base(request.source, request.variant),
            motion_adapter=adapter,
            dtype=request.dtypes(),
            variant=request.variant,
        )

    def run(self, pipe: Any, request: DenoiseRequest, control: JobControl) -> np.ndarray:
        control.check()
        self._fit_context(pipe, request.num_frames)
        output = pipe(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            width=request.width,
            height=request.height,
            num_frames=request.num_frames,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            generator=request.generator,
            output_type="np",
            callback_on_step_end=StepEndCallback(
                control,
                self.stage,
                request.num_inference_steps,
                previewer_for(control, "animatediff", request),
            ),
            callback_on_step_end_tensor_inputs=STEP_TENSORS,
        )
        return to_uint8_frames(output.frames)

    @staticmethod
    def _fit_context(pipe: Any, num_frames: int) -> None:
        """The motion modules were trained on at most ``motion_max_seq_length`` frames (32 for
        v1-5-2); longer videos use diffusers' FreeNoise sliding context windows."""
        max_len = pipe.unet.config.get("motion_max_seq_length", 32)
        if num_frames > max_len:
            context = min(16, max_len)
            pipe.enable_free_noise(context_length=context, context_stride=max(context // 4, 1))
        elif getattr(pipe, "free_noise_enabled", False):
            pipe.disable_free_noise()


UNUSED_BASE_COMPONENTS = ("safety_checker",)
"""Folders of an SD 1.5 base that ``AnimateDiffPipeline`` never loads. diffusers builds its download
list from every folder in ``model_index.json``, so a plain ``from_pretrained`` also fetches the
base's safety checker (about 1.2 GB in float32)."""


def download_base(source: str, variant: str | None) -> str:
    """The SD 1.5 base as a local folder, downloaded without the parts AnimateDiff does not use.

    It is diffusers' own download (``DiffusionPipeline.download``: variant, safetensors against
    ``.bin``, the hub cache, ``HF_HUB_OFFLINE``), told that the unused components are passed in
    (diffusers skips the folders of components given to it, ``pipeline_utils.download``'s
    "Don't download any objects that are passed"). A local folder is used as it is."""
    if Path(source).expanduser().is_dir():
        return source
    from diffusers import DiffusionPipeline

    skipped: dict[str, Any] = dict.fromkeys(UNUSED_BASE_COMPONENTS)
    return str(DiffusionPipeline.download(source, variant=variant, **skipped))


def load_motion_adapter(source: str, torch_dtype: Any) -> Any:
    """A ``MotionAdapter`` from a diffusers folder or hub id, or from a bare ``.safetensors`` state
    dict: a local file (its ``config.json`` beside it, if any) or ``owner/repo/file.safetensors``
    on the hub. Without a config the adapter has diffusers' default (v1-5-2) shape, which is the
    shape Lightning's checkpoints have."""
    from diffusers import MotionAdapter

    if not source.endswith(".safetensors"):
        return MotionAdapter.from_pretrained(source, dtype=torch_dtype)
    from safetensors.torch import load_file

    path = single_file(source)
    state = load_file(str(path))
    config = path.parent / "config.json"
    adapter: Any = (
        MotionAdapter.from_config(MotionAdapter.load_config(path.parent))
        if config.is_file()
        else MotionAdapter(**motion_adapter_shape(state))
    )
    adapter.load_state_dict(state, strict=True)
    return adapter if adapter.dtype == torch_dtype else adapter.to(dtype=torch_dtype)


def motion_adapter_shape(state: dict[str, Any]) -> dict[str, Any]:
    """A bare adapter state dict's ``MotionAdapter`` arguments, read from its tensors: the channels
    of each block, motion layers per block, transformer layers per motion module, the positional
    table's length, and whether it has a mid block. Heads leave no trace in the weights and stay at
    the default 8 (Lightning's, as its card's ``MotionAdapter()``); the norm groups are the default
    32, or the channels' common divisor where that is smaller."""
    import math

    channels: list[int] = []
    while f"down_blocks.{len(channels)}.motion_modules.0.proj_in.weight" in state:
        channels.append(
            int(state[f"down_blocks.{len(channels)}.motion_modules.0.proj_in.weight"].shape[0])
        )
    if not channels:
        raise ValueError("not a MotionAdapter state dict: no down_blocks.*.motion_modules")
    layers = {key.split(".")[3] for key in state if key.startswith("down_blocks.0.motion_modules.")}
    blocks = {
        key.split(".")[5]
        for key in state
        if key.startswith("down_blocks.0.motion_modules.0.transformer_blocks.")
    }
    positions = next(
        (int(t.shape[1]) for k, t in state.items() if k.endswith("pos_encoder.pe")), 32
    )
    return {
        "block_out_channels": tuple(channels),
        "motion_layers_per_block": len(layers),
        "motion_transformer_layers_per_block": max(len(blocks), 1),
        "motion_max_seq_length": positions,
        "use_motion_mid_block": any(key.startswith("mid_block.") for key in state),
        "motion_norm_num_groups": min(32, math.gcd(*channels)),
    }
