"""Speed options: how a loaded pipeline is made fast on its device (precision, attention kernels,
memory layout, fused projections, compilation, decode chunking, CUDA graphs).

Every option is a switch so it can be measured on and off (``bench/gpu_speed.py``) and tested on the
CPU; ``"auto"`` means on where it is known to pay and be safe (CUDA), off elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.core.models import LoadedModel


@dataclass(frozen=True)
class SpeedOptions:
    """Which speed-ups the manager applies when it places a pipeline on its device."""


def apply_speed_options(loaded: LoadedModel, options: SpeedOptions) -> None:
    """Apply ``options`` to a freshly placed pipeline."""
    return None
