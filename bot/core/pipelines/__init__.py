"""One small adapter per diffusers pipeline family.

The adapters hide how each family is loaded and called, and in particular the two different hook
APIs for progress and cancel: the deprecated ``TextToVideoSDPipeline``/``VideoToVideoSDPipeline``
only take the legacy ``callback``/``callback_steps``, newer pipelines take ``callback_on_step_end``.
The newer DiT families (LTX-Video, Wan, CogVideoX, HunyuanVideo 1.5) share one adapter class;
LTX-2, which makes sound with its picture, has its own (``run_with_sound``).
"""

from __future__ import annotations

from bot.core.pipelines.animatediff import AnimateDiffAdapter
from bot.core.pipelines.base import DenoiseRequest, LoadRequest, PipelineAdapter
from bot.core.pipelines.ltx2 import LTX2_ADAPTER
from bot.core.pipelines.stable_audio import STABLE_AUDIO_ADAPTER
from bot.core.pipelines.text_to_video import TextToVideoAdapter
from bot.core.pipelines.transformer_video import (
    COGVIDEOX_ADAPTER,
    HUNYUAN15_ADAPTER,
    LTX_ADAPTER,
    WAN_ADAPTER,
)
from bot.core.pipelines.video_to_video import VideoToVideoAdapter

_ADAPTERS: dict[str, PipelineAdapter] = {
    "text_to_video": TextToVideoAdapter(),
    "animatediff": AnimateDiffAdapter(),
    "video_to_video": VideoToVideoAdapter(),
    "ltx": LTX_ADAPTER,
    "ltx2": LTX2_ADAPTER,
    "wan": WAN_ADAPTER,
    "cogvideox": COGVIDEOX_ADAPTER,
    "hunyuan_video15": HUNYUAN15_ADAPTER,
    "stable_audio": STABLE_AUDIO_ADAPTER,
}


def adapter_for(family: str) -> PipelineAdapter:
    return _ADAPTERS[family]


__all__ = ["DenoiseRequest", "LoadRequest", "PipelineAdapter", "adapter_for"]
