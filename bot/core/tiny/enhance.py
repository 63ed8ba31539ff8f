"""Tiny twins of the enhancers' weights: the released files' formats and key layouts, at a few
channels, seeded.

- ``tiny_rife`` mirrors ``hzwer/RIFE``: ``RIFEv4.26_0921.zip`` holding ``train_log/flownet.pkl``
  (a ``torch.save``d state dict under ``module.`` keys, with the training-only ``teacher`` and
  ``caltime`` tensors the release also carries) and the ``__MACOSX/`` shadow entry the release
  has, so the loader's member lookup is exercised too;
- ``tiny_realesrgan`` mirrors ``ai-forever/Real-ESRGAN``: ``RealESRGAN_x2.pth`` and
  ``RealESRGAN_x4.pth``, RRDBNet state dicts in BasicSR's key names (``conv_first``,
  ``body.N.rdbM.convK``, ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``),
  the x2 one taking 12 pixel-unshuffled input channels, which is how spandrel tells it apart.

The layouts are written out here from the releases, not taken from :mod:`bot.core.enhance.rife`,
so a test that loads a twin checks the network against the published layout rather than against
itself.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.tiny.common import TINY_SEED

if TYPE_CHECKING:
    import torch

RIFE_ARCHIVE = "RIFEv4.26_0921.zip"
ESRGAN_FILES = {2: "RealESRGAN_x2.pth", 4: "RealESRGAN_x4.pth"}

TINY_RIFE_WIDTHS = (8, 8, 8, 8, 8)
"""The real 4.26 has 192, 128, 96, 64 and 32 channels in its five blocks."""
TINY_ESRGAN = {"num_feat": 8, "num_grow": 32, "num_blocks": 2}
"""The real Real-ESRGAN has 64 features and 23 blocks; the 32 growth channels stay, since spandrel
reads the feature width from the weights but builds every RRDBNet with 32 growth channels."""

_RIFE_FLOW_OUTPUTS = 13
_RIFE_BLOCK_FEATURES = 8


def rife_shapes(
    widths: tuple[int, ...] = (192, 128, 96, 64, 32),
    *,
    depth: int = 8,
    head_hidden: int = 16,
    features: int = 4,
    extras: bool = True,
) -> dict[str, tuple[int, ...]]:
    """Key to shape of Practical-RIFE 4.26's ``flownet.pkl`` (without the ``module.`` prefix) at
    the given widths; the defaults are the release's. ``extras`` adds the tensors of the
    training-only teacher block and time estimator that the release also saved."""
    shapes: dict[str, tuple[int, ...]] = {
        "encode.cnn0.weight": (head_hidden, 3, 3, 3),
        "encode.cnn0.bias": (head_hidden,),
        "encode.cnn1.weight": (head_hidden, head_hidden, 3, 3),
        "encode.cnn1.bias": (head_hidden,),
        "encode.cnn2.weight": (head_hidden, head_hidden, 3, 3),
        "encode.cnn2.bias": (head_hidden,),
        "encode.cnn3.weight": (head_hidden, features, 4, 4),  # ConvTranspose2d: (in, out, k, k)
        "encode.cnn3.bias": (features,),
    }
    first = 7 + 2 * features
    later = 6 + 2 * features + 2 + _RIFE_BLOCK_FEATURES + 4
    for index, width in enumerate(widths):
        shapes.update(
            _ifblock_shapes(f"block{index}", first if index == 0 else later, width, depth)
        )
    if extras:
        shapes.update(_ifblock_shapes("teacher", later + 3, widths[-2], depth))
        channels = [(2 * features + 9, 32), (32, 64), (64, 64), (64, 64), (64, 1)]
        for index, (cin, cout) in enumerate(channels):
            shapes[f"caltime.{2 * index}.weight"] = (cout, cin, 3, 3)
            shapes[f"caltime.{2 * index}.bias"] = (cout,)
    return shapes


def _ifblock_shapes(
    name: str, in_planes: int, width: int, depth: int
) -> dict[str, tuple[int, ...]]:
    half = width // 2
    shapes: dict[str, tuple[int, ...]] = {
        f"{name}.conv0.0.0.weight": (half, in_planes, 3, 3),
        f"{name}.conv0.0.0.bias": (half,),
        f"{name}.conv0.1.0.weight": (width, half, 3, 3),
        f"{name}.conv0.1.0.bias": (width,),
    }
    for index in range(depth):
        shapes[f"{name}.convblock.{index}.conv.weight"] = (width, width, 3, 3)
        shapes[f"{name}.convblock.{index}.conv.bias"] = (width,)
        shapes[f"{name}.convblock.{index}.beta"] = (1, width, 1, 1)
    shapes[f"{name}.lastconv.0.weight"] = (width, 4 * _RIFE_FLOW_OUTPUTS, 4, 4)
    shapes[f"{name}.lastconv.0.bias"] = (4 * _RIFE_FLOW_OUTPUTS,)
    return shapes


def esrgan_shapes(
    scale: int, *, num_feat: int = 64, num_grow: int = 32, num_blocks: int = 23
) -> dict[str, tuple[int, ...]]:
    """Key to shape of a Real-ESRGAN RRDBNet (BasicSR names) at ``scale`` 2 or 4; the defaults
    are the released models'. The x2 model unshuffles its input 2x2 into 12 channels and then
    upsamples 4x, as Real-ESRGAN's x2 does."""
    if scale not in (2, 4):
        raise ValueError(f"Real-ESRGAN comes in x2 and x4 (got x{scale})")
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, cin: int, cout: int) -> None:
        shapes[f"{name}.weight"] = (cout, cin, 3, 3)
        shapes[f"{name}.bias"] = (cout,)

    conv("conv_first", 3 * (4 if scale == 2 else 1), num_feat)
    for block in range(num_blocks):
        for rdb in (1, 2, 3):
            for k in range(1, 5):
                conv(f"body.{block}.rdb{rdb}.conv{k}", num_feat + (k - 1) * num_grow, num_grow)
            conv(f"body.{block}.rdb{rdb}.conv5", num_feat + 4 * num_grow, num_feat)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        conv(name, num_feat, num_feat)
    conv("conv_last", num_feat, 3)
    return shapes


def random_state_dict(
    shapes: dict[str, tuple[int, ...]], seed: int = TINY_SEED, std: float = 0.05
) -> dict[str, torch.Tensor]:
    """Seeded weights of the given shapes: normal with a small spread for weights, zeros for
    biases and ones for RIFE's per-channel gains (``beta``), as the networks are initialised."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        if key.endswith(".beta"):
            state[key] = torch.ones(shape)
        elif key.endswith(".bias"):
            state[key] = torch.zeros(shape)
        else:
            state[key] = torch.randn(shape, generator=generator) * std
    return state


def build_tiny_rife(target: Path) -> None:
    import torch

    state = random_state_dict(rife_shapes(TINY_RIFE_WIDTHS))
    buffer = io.BytesIO()
    torch.save({f"module.{key}": value for key, value in state.items()}, buffer)
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target / RIFE_ARCHIVE, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train_log/flownet.pkl", buffer.getvalue())
        archive.writestr("__MACOSX/train_log/._flownet.pkl", b"\x00\x05\x16\x07 not weights")


def build_tiny_realesrgan(target: Path) -> None:
    import torch

    target.mkdir(parents=True, exist_ok=True)
    for scale, name in ESRGAN_FILES.items():
        state = random_state_dict(esrgan_shapes(scale, **TINY_ESRGAN), seed=TINY_SEED + scale)
        torch.save(state, target / name)
