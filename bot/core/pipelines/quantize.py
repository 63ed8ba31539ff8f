"""Weight-only quantisation at load, for the memory plans that ask for it (``bot.core.plans``).

torchao's int8 (any CUDA card, and the CPU) or fp8 (compute capability 8.9 and up) weight-only
quantisation of the denoiser and the text encoder, through diffusers' pipeline-level quantisation
config. The two are the largest components of every transformer video model (Wan's UMT5 is 5.7 B
parameters), so quantising both is what lets a plan beat fp8 storage of the denoiser alone.
diffusers and transformers each have their own ``TorchAoConfig``, so the mapping names each
component's own (``PipelineQuantizationConfig(quant_mapping=...)``, as diffusers' docs show).
"""

from __future__ import annotations

from typing import Any

QUANTISED_COMPONENTS = ("transformer", "transformer_2", "text_encoder")
"""Wan 2.2 A14B's low-noise expert ``transformer_2`` is quantised like ``transformer`` (the plans
count both experts at one byte a parameter); a pipeline without one ignores its entry."""


def quantization_config(kind: str) -> Any:
    """``from_pretrained``'s ``quantization_config`` for ``kind`` (``"int8"`` or ``"fp8"``)."""
    from diffusers import TorchAoConfig as DiffusersTorchAo
    from diffusers.quantizers import PipelineQuantizationConfig
    from torchao.quantization import Float8WeightOnlyConfig, Int8WeightOnlyConfig
    from transformers import TorchAoConfig as TransformersTorchAo

    config = {"int8": Int8WeightOnlyConfig, "fp8": Float8WeightOnlyConfig}[kind]
    mapping: dict[str, Any] = {
        "transformer": DiffusersTorchAo(config()),
        "transformer_2": DiffusersTorchAo(config()),
        "text_encoder": TransformersTorchAo(config()),
    }
    return PipelineQuantizationConfig(quant_mapping=mapping)


__all__ = ["QUANTISED_COMPONENTS", "quantization_config"]
