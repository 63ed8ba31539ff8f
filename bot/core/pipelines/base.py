"""What every pipeline adapter offers the engine, and the helpers they share."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from bot.core.previews import LatentPreviewer
    from bot.core.progress import JobControl


@dataclass(frozen=True)
class LoadRequest:
    """Where a model's files are and in which precision to load them."""

    source: str
    torch_dtype: Any
    adapter_source: str | None = None
    image_source: str | None = None
    variant: str | None = None
    """The weight files' variant (``"fp16"`` for ``*.fp16.*``), chosen from what the source has."""
    image_variant: str | None = None
    """The same for ``image_source``, which is another repo with its own files."""
    vae_dtype: Any | None = None
    lora_source: str | None = None
    """A LoRA fused into the denoiser once the pipeline is loaded (``bot.core.pipelines.loras``)."""
    lora_scale: float = 1.0
    quantization: str | None = None
    """Weight-only quantisation of the denoiser and text encoder (``"int8"``, ``"fp8"``), where the
    memory plan asks for it (``bot.core.pipelines.quantize``); the transformer families take it."""
    gguf_files: dict[str, str] = field(default_factory=dict)
    """Denoisers loaded from GGUF files instead of the repo's own weights (``{"transformer":
    file, "transformer_2": file}``), where a GGUF plan asks for it (``bot.core.pipelines.gguf``)."""

    def load_options(self) -> dict[str, Any]:
        """``from_pretrained``'s quantisation argument, or the GGUF-loaded denoisers passed as
        components, where a plan asks for one."""
        if self.gguf_files:
            from bot.core.pipelines.gguf import load_gguf_components

            return load_gguf_components(self.gguf_files, self.source, self.torch_dtype)
        if self.quantization is None:
            return {}
        from bot.core.pipelines.quantize import quantization_config

        return {"quantization_config": quantization_config(self.quantization)}

    def dtypes(self) -> Any:
        """``from_pretrained``'s dtype: one for all, or a per-component map when the VAE differs."""
        if self.vae_dtype is None:
            return self.torch_dtype
        return {"default": self.torch_dtype, "vae": self.vae_dtype}


@dataclass(frozen=True)
class DenoiseRequest:
    """One pipeline call, already validated and resolved against the model."""

    prompt: str
    negative_prompt: str
    width: int
    height: int
    num_frames: int
    num_inference_steps: int
    guidance_scale: float
    generator: torch.Generator
    video: Sequence[Image.Image] | None = None
    strength: float = 0.6
    image: Image.Image | None = None
    end_image: Image.Image | None = None
    """The last frame to reach from ``image`` (a first-and-last-frame model's ``last_image``)."""
    fps: int = 8
    call_options: dict[str, Any] = field(default_factory=dict)


class PipelineAdapter(Protocol):
    """Loads one diffusers family and runs it with progress and cancel."""

    @property
    def stage(self) -> str:
        """The progress stage its steps are reported under ("denoise", "upscale")."""
        ...

    def load(self, request: LoadRequest) -> Any: ...

    def image_pipeline(self, pipe: Any, request: LoadRequest) -> Any:
        """The image-to-video pipeline of this family, sharing ``pipe``'s components where the
        weights are the same; raises for families that cannot animate a picture."""
        ...

    def run(self, pipe: Any, request: DenoiseRequest, control: JobControl) -> np.ndarray:
        """Returns frames as a ``(frames, height, width, 3)`` uint8 array."""
        ...


def single_file(source: str) -> Path:
    """One weights file that is not a diffusers folder (a bare adapter or LoRA state dict): a local
    path, or ``owner/repo/path/in/repo.safetensors`` on the hub, fetched by huggingface_hub's own
    download, so its cache, ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` apply as to every other load."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    from huggingface_hub import hf_hub_download

    owner, _, rest = source.partition("/")
    repo, _, filename = rest.partition("/")
    if not (owner and repo and filename):
        raise FileNotFoundError(
            f"{source!r} is neither a file nor owner/repo/file.safetensors on the hub"
        )
    return Path(hf_hub_download(repo_id=f"{owner}/{repo}", filename=filename))


DENOISER_NAMES = ("unet", "transformer", "transformer_2")


def denoisers(pipe: Any) -> list[tuple[str, Any]]:
    """The pipeline's denoising networks, by attribute name."""
    import torch

    found = []
    for name in DENOISER_NAMES:
        module = getattr(pipe, name, None)
        if isinstance(module, torch.nn.Module):
            found.append((name, module))
    return found


def denoiser_of(pipe: Any) -> Any:
    """The network run at every step: a UNet for the 2023 models, a transformer for the newer."""
    return getattr(pipe, "unet", None) or pipe.transformer


class _StepReporter:
    """What both callback styles do at a step's end: report it to the job's ``JobControl`` (which
    raises ``GenerationCancelled`` on a cancel) with a preview builder when there is a previewer."""

    def __init__(
        self,
        control: JobControl,
        stage: str,
        total: int,
        previewer: LatentPreviewer | None = None,
    ) -> None:
        self._control = control
        self._stage = stage
        self._total = total
        self._previewer = previewer

    def _report(self, done: int, latents: Any) -> None:
        done = min(done, self._total)
        self._control.step(
            self._stage, done, self._total, preview_of(self._previewer, latents, done)
        )


class StepEndCallback(_StepReporter):
    """Progress, cancel and previews for pipelines with ``callback_on_step_end``.

    Their ``interrupt`` flag only skips the remaining steps and still decodes; raising from the
    callback (``JobControl.step`` raises ``GenerationCancelled``) stops at once and produces nothing,
    as a cancel must. With a ``previewer``, the pipeline is asked for ``latents`` at each step end
    (:data:`STEP_TENSORS`) and the previewer turns them into a picture when ``JobControl`` says one
    is due.
    """

    def __call__(self, _pipe: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> Any:
        self._report(step + 1, tensors.get("latents"))
        return tensors


@contextmanager
def scheduler_steps_reported(pipe: Any, callback: StepEndCallback) -> Iterator[None]:
    """Progress, cancel and previews for a pipeline without ``callback_on_step_end``
    (HunyuanVideo 1.5's): its scheduler's ``step`` is wrapped for the call, and each step's new
    latents go to ``callback`` as ``callback_on_step_end`` would hand them. A cancel raises from
    inside ``step``, which stops the loop at once. The wrapper is an attribute of the scheduler
    object itself, taken off afterwards whatever happens, so the class is never touched."""
    scheduler = pipe.scheduler
    original = scheduler.step
    done = 0

    def step(*args: Any, **kwargs: Any) -> Any:
        nonlocal done
        out = original(*args, **kwargs)
        latents = out[0] if isinstance(out, tuple) else getattr(out, "prev_sample", None)
        callback(pipe, done, None, {"latents": latents})
        done += 1
        return out

    scheduler.step = step
    try:
        yield
    finally:
        vars(scheduler).pop("step", None)


STEP_TENSORS = ["latents"]
"""``callback_on_step_end_tensor_inputs``: every family's ``_callback_tensor_inputs`` has it."""


def preview_of(previewer: LatentPreviewer | None, latents: Any, step: int) -> Any:
    """A builder for ``JobControl.step``: called only when a preview is due, so a step that shows
    none costs nothing."""
    if previewer is None or latents is None:
        return None
    return lambda: previewer(latents, step)


def previewer_for(
    control: JobControl, family: str, request: DenoiseRequest, **options: Any
) -> LatentPreviewer | None:
    """The job's previewer, or ``None`` with previews off (then nothing is ever projected)."""
    if not control.previews:
        return None
    from bot.core.previews import LatentPreviewer

    return LatentPreviewer(
        family,
        width=request.width,
        height=request.height,
        num_frames=request.num_frames,
        fps=request.fps,
        **options,
    )


class NoImagePipeline:
    """The ``image_pipeline`` of families that only generate from text."""

    def image_pipeline(self, pipe: Any, request: LoadRequest) -> Any:
        raise ValueError("this model family cannot animate a picture")


def to_uint8_frames(frames: Any) -> np.ndarray:
    """The pipelines' ``output_type="np"`` video (batch, frames, H, W, C) in [0, 1] -> uint8."""
    array = np.asarray(frames)
    if array.ndim == 5:
        array = array[0]
    return (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)


class LegacyStepCallback(_StepReporter):
    """Progress, cancel and previews for pipelines that only know ``callback``/``callback_steps``
    (ModelScope/Zeroscope's deprecated pipelines take no ``callback_on_step_end``; their legacy
    callback is handed the latents, which is all a preview needs).

    They have no ``interrupt``: the only way to stop them mid-loop is to raise from the callback,
    which :meth:`JobControl.step` does with ``GenerationCancelled``. The index they pass is the
    loop's divided by the scheduler's order, so the calls are counted here instead (clamped to
    the total).
    """

    def __init__(
        self,
        control: JobControl,
        stage: str,
        total: int,
        previewer: LatentPreviewer | None = None,
    ) -> None:
        super().__init__(control, stage, total, previewer)
        self._done = 0

    def __call__(self, step: int, timestep: Any, latents: Any) -> None:
        self._done += 1
        self._report(self._done, latents)
