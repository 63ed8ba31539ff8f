"""Tiny GGUF twins of QuantStack's Wan 2.2 A14B files: real GGUF files of the tiny experts.

QuantStack's ``Wan2.2-{T2V,I2V}-A14B-GGUF`` repos hold each expert as its own file,
``HighNoise/Wan2.2-T2V-A14B-HighNoise-Q8_0.gguf`` (``transformer``) and
``LowNoise/Wan2.2-T2V-A14B-LowNoise-Q8_0.gguf`` (``transformer_2``), made with city96's
ComfyUI-GGUF ``tools/convert.py``: the original Wan key names (``blocks.0.self_attn.q.weight``,
``head.modulation``), architecture ``"wan"``, one-dimensional tensors and the ``.modulation``
tables in F32, the 5-D patch embedding in F16, then llama.cpp's quantiser for the rest. The twins
here are written the same way from the tiny A14B experts (``bot.core.tiny.newer``, the very weights
``tiny_wan_a14b`` loads), with gguf-py's own writer and ``gguf.quants.quantize``:

- ``Q8_0`` files hold Q8_0, as the real ones;
- gguf-py 0.19.0 cannot write K-quants (``quantize`` raises ``NotImplementedError`` for Q4_K, Q5_K
  and Q6_K), so the ``Q5_K_M`` and ``Q4_K_M`` files hold Q5_0 and Q4_0: the same bits a weight in
  blocks of 32 instead of 256, under the real files' names;
- a tensor is quantised where its rows are whole blocks; at tiny width (24) that is the four whose
  inputs are 32 wide (both time and text embedders' first layer, each block's FFN output). City96's
  1024-element floor is not applied: at this size it would leave nothing quantised. The others stay
  F16, as city96's converter falls back for rows that are not whole blocks.

``t2v/`` and ``i2v/`` are laid out as the two repos, so the local hub serves them file for file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bot.core.tiny.newer import _WAN21_Z, _wan_expert

QUANTS = {"Q8_0": "Q8_0", "Q5_K_M": "Q5_0", "Q4_K_M": "Q4_0"}
"""Each real file's quant type and the type its twin holds (gguf-py writes no K-quants)."""
_EXPERTS = {"HighNoise": 0, "LowNoise": 1}
"""Each file's expert, by the seed offset ``bot.core.tiny.newer`` builds it with."""
_KINDS = {"t2v": ("T2V", _WAN21_Z), "i2v": ("I2V", 2 * _WAN21_Z + 4)}
_TO_WAN: tuple[tuple[str, str], ...] = (
    ("condition_embedder.time_embedder.linear_1.", "time_embedding.0."),
    ("condition_embedder.time_embedder.linear_2.", "time_embedding.2."),
    ("condition_embedder.text_embedder.linear_1.", "text_embedding.0."),
    ("condition_embedder.text_embedder.linear_2.", "text_embedding.2."),
    ("condition_embedder.time_proj.", "time_projection.1."),
    (".attn1.", ".self_attn."),
    (".attn2.", ".cross_attn."),
    (".to_q.", ".q."),
    (".to_k.", ".k."),
    (".to_v.", ".v."),
    (".to_out.0.", ".o."),
    (".norm2.", ".norm3."),  # diffusers' cross-attention norm is Wan's norm3
    (".ffn.net.0.proj.", ".ffn.0."),
    (".ffn.net.2.", ".ffn.2."),
    ("proj_out.", "head.head."),
)
"""diffusers' Wan names back to the original ones: the inverse of diffusers'
``convert_wan_transformer_to_diffusers`` (``tests/test_gguf.py`` checks the round trip)."""


def wan_original_keys(state: dict[str, Any]) -> dict[str, Any]:
    """A diffusers ``WanTransformer3DModel`` state dict under the original Wan key names."""
    out = {}
    for key, value in state.items():
        name = key
        for diffusers_name, wan_name in _TO_WAN:
            name = name.replace(diffusers_name, wan_name)
        if name == "scale_shift_table":
            name = "head.modulation"
        name = re.sub(r"^(blocks\.\d+)\.scale_shift_table$", r"\1.modulation", name)
        out[name] = value
    return out


def write_gguf(state: dict[str, Any], quant: str, path: Path) -> None:
    """Write ``state`` (original Wan names) as city96's converter lays a Wan GGUF out, with the
    quantisable tensors in ``quant`` (a gguf-py type name: ``Q8_0``, ``Q5_0``, ``Q4_0``)."""
    import gguf
    import numpy as np

    target = gguf.GGMLQuantizationType[quant]
    block = gguf.GGML_QUANT_SIZES[target][0]
    writer = gguf.GGUFWriter(path=None, arch="wan")
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_file_type(getattr(gguf.LlamaFileType, f"MOSTLY_{quant}"))
    for key, tensor in state.items():
        data = tensor.float().numpy().astype(np.float32)
        if data.ndim == 1 or ".modulation" in key:
            kind = gguf.GGMLQuantizationType.F32
        elif data.shape[-1] % block == 0 and data.ndim <= 4:
            kind = target
        else:
            kind = gguf.GGMLQuantizationType.F16
        writer.add_tensor(key, gguf.quants.quantize(data, kind), raw_dtype=kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def build_tiny_wan_a14b_gguf(target: Path) -> None:
    """``t2v/`` and ``i2v/``: each expert of the tiny A14B pipelines in every quant, as the real
    repos name them (``HighNoise/Wan2.2-T2V-A14B-HighNoise-Q8_0.gguf``, ...)."""
    for folder, (kind, in_channels) in _KINDS.items():
        for noise, seed_offset in _EXPERTS.items():
            state = wan_original_keys(_wan_expert(in_channels, seed_offset).state_dict())
            for real, twin in QUANTS.items():
                name = f"{noise}/Wan2.2-{kind}-A14B-{noise}-{real}.gguf"
                write_gguf(state, twin, target / folder / name)


__all__ = ["QUANTS", "build_tiny_wan_a14b_gguf", "wan_original_keys", "write_gguf"]
