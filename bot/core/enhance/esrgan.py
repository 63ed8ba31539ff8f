"""Real-ESRGAN-class super-resolution through spandrel: any frame size in, ``scale`` times out,
frames batched on the device.

spandrel (chaiNNer's model loader) reads a bare state dict, recognises its architecture from the
key layout (ESRGAN/RRDBNet, Real-ESRGAN's compact SRVGGNet, SwinIR, HAT, DAT, ... ) and builds the
network at the widths the weights have, so the x2 and x4 Real-ESRGAN releases, the tiny twin and
any other single-image upscaler an owner points at load through one call.
"""

from __future__ import annotations

import enum
import importlib.util
import sys
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.core.enhance.base import Frames, as_array, report, to_images, to_tensor, to_uint8
from bot.core.enhance.weights import WeightsUnavailable

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from bot.core.progress import JobControl

STAGE = "upscale"
_BATCH_OUTPUT_PIXELS = {"cuda": 16_000_000, "cpu": 4_000_000}
"""Output pixels per batch. RRDBNet keeps 64 channels at the input size and at each doubling, so
its activations grow with the output: 16 megapixels (four 2560x1440 frames from 1280x720 x2, five
2304x1280 from 576x320 x4) should stay within a few GB in half precision. An estimate, not yet
measured on a GPU: ``batch_size`` overrides it."""
_import_lock = threading.Lock()


def spandrel_module() -> ModuleType:
    """spandrel, imported even where torchvision is not installed.

    spandrel declares torchvision as a dependency but calls it in only two architectures this
    project never loads (RestoreFormer face restoration, LaMa inpainting), whose modules import
    it when spandrel is imported. On the CPU build machines the only torchvision wheel is a CUDA
    build that fails at import next to the CPU torch (and would then break every library that
    probes for torchvision), so spandrel is installed without its dependencies, and here, when
    torchvision is absent, a stand-in is lent for the length of spandrel's import alone: nothing
    else ever sees it, and calling either of those two architectures says what is missing."""
    with _import_lock:
        if "spandrel" in sys.modules:
            return sys.modules["spandrel"]
        if importlib.util.find_spec("torchvision") is not None:
            import spandrel

            return spandrel
        stand_ins = _torchvision_stand_ins()
        lent = [name for name in stand_ins if name not in sys.modules]
        sys.modules.update({name: stand_ins[name] for name in lent})
        try:
            import spandrel
        finally:
            for name in lent:
                sys.modules.pop(name, None)
        return spandrel


def _torchvision_stand_ins() -> dict[str, ModuleType]:
    def missing(*_: Any, **__: Any) -> Any:
        raise ModuleNotFoundError(
            "this spandrel architecture needs torchvision, which is not installed"
        )

    functional = ModuleType("torchvision.transforms.functional")
    functional.__dict__.update(
        InterpolationMode=enum.Enum("InterpolationMode", "NEAREST BILINEAR BICUBIC"),
        rotate=missing,
        normalize=missing,
    )
    transforms = ModuleType("torchvision.transforms")
    transforms.__dict__.update(functional=functional)
    package = ModuleType("torchvision")
    package.__dict__.update(transforms=transforms)
    return {
        "torchvision": package,
        "torchvision.transforms": transforms,
        "torchvision.transforms.functional": functional,
    }


def load_descriptor(state: dict[str, torch.Tensor]) -> Any:
    """spandrel's ``ImageModelDescriptor`` for ``state``; refuses weights spandrel does not know
    and models that are not single-image super-resolution (inpainting, face restoration)."""
    try:
        spandrel = spandrel_module()
    except ModuleNotFoundError as exc:
        raise WeightsUnavailable(
            "upscaling needs the spandrel package: pip install --no-deps spandrel==0.4.2 "
            "(the Makefile and the Dockerfile install it)"
        ) from exc
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError as exc:
        raise WeightsUnavailable(
            "spandrel recognises no upscaler architecture in these weights "
            f"({len(state)} tensors, first: {next(iter(state), 'none')})"
        ) from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose != "SR":
        raise WeightsUnavailable(
            f"these weights are a {descriptor.architecture.name} {descriptor.purpose} model, "
            "not a super-resolution one"
        )
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise WeightsUnavailable(
            f"the {descriptor.architecture.name} model takes {descriptor.input_channels} "
            f"channels and gives {descriptor.output_channels}; frames need 3 (RGB)"
        )
    return descriptor


class SpandrelUpscaler:
    """An :class:`~bot.core.enhance.base.Upscaler` on one device: frames go through the model a
    batch at a time (half precision on CUDA where the architecture supports it)."""

    def __init__(
        self,
        descriptor: Any,
        device: str = "cpu",
        *,
        half: bool | None = None,
        batch_size: int | None = None,
    ) -> None:
        import torch

        self.device = torch.device(device)
        if half is None:
            half = self.device.type == "cuda" and bool(descriptor.supports_half)
        self.dtype = torch.float16 if half else torch.float32
        self.descriptor = descriptor.to(self.device, self.dtype).eval()
        self.scale: int = int(descriptor.scale)
        self.name = f"{descriptor.architecture.name.lower()} x{self.scale}"
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def upscale(self, frames: Frames, control: JobControl | None = None) -> list[Image.Image]:
        import torch

        clip = as_array(frames)
        count, height, width, _ = clip.shape
        out = np.empty((count, height * self.scale, width * self.scale, 3), dtype=np.uint8)
        size = self.batch_size or self._batch_size(out[0].size // 3)
        report(control, STAGE, 0, count)
        with self._lock, torch.inference_mode():
            for start in range(0, count, size):
                batch = to_tensor(clip[start : start + size], self.device, self.dtype)
                out[start : start + len(batch)] = to_uint8(self.descriptor(batch))
                report(control, STAGE, min(start + size, count), count)
        return to_images(out)

    def _batch_size(self, output_pixels: int) -> int:
        budget = _BATCH_OUTPUT_PIXELS.get(self.device.type, _BATCH_OUTPUT_PIXELS["cuda"])
        return max(1, budget // output_pixels)
