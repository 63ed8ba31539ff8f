"""GGUF transformers: the community's quantised files of a denoiser, loaded for the GGUF plans.

Owners of 16-24 GB cards run Wan 2.2 A14B from QuantStack's GGUF files (city96's ComfyUI-GGUF
conversions: the original Wan key names, each expert its own file). diffusers loads such a file
into its own transformer class with ``from_single_file(path, quantization_config=
GGUFQuantizationConfig(compute_dtype=...), config=<the diffusers repo>, subfolder=<component>)``:
the weights stay quantised in memory and each layer is dequantised as it runs (on the CPU too).
The loaded transformers are handed to the pipeline's ``from_pretrained`` as components, so the
repo's own bf16 transformer shards are never downloaded.

A file is named ``owner/repo/path/in/repo.gguf`` (downloaded with ``hf_hub_download``, so its
cache, ``HF_ENDPOINT`` and offline mode apply as to every other load) or by a local path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def gguf_file_names(templates: dict[str, str], quant: str) -> dict[str, str]:
    """Each component's file for ``quant`` (``"Q4_K_M"``) from the registry's ``{quant}`` names."""
    return {component: template.format(quant=quant) for component, template in templates.items()}


def local_gguf_file(name: str) -> str:
    """A local path for ``name``: itself when it is a file, else ``owner/repo/path`` downloaded."""
    if Path(name).expanduser().is_file():
        return str(Path(name).expanduser())
    owner, repo, path = _split(name)
    from huggingface_hub import hf_hub_download

    return str(hf_hub_download(f"{owner}/{repo}", path))


def load_gguf_components(
    files: dict[str, str], config_source: str, torch_dtype: Any
) -> dict[str, Any]:
    """The pipeline components ``files`` names, loaded from their GGUF files into the classes the
    repo ``config_source``'s ``model_index.json`` gives them, computing in ``torch_dtype``."""
    import importlib

    import diffusers
    from diffusers import GGUFQuantizationConfig

    index = diffusers.DiffusionPipeline.load_config(config_source)
    components = {}
    for component, name in files.items():
        library, class_name = index[component]
        cls = getattr(importlib.import_module(library), class_name)
        components[component] = cls.from_single_file(
            local_gguf_file(name),
            quantization_config=GGUFQuantizationConfig(compute_dtype=torch_dtype),
            config=config_source,
            subfolder=component,
            torch_dtype=torch_dtype,
        )
    return components


def _split(name: str) -> tuple[str, str, str]:
    parts = name.split("/", 2)
    if len(parts) != 3 or not all(parts) or not parts[2].endswith(".gguf"):
        raise ValueError(
            f"GGUF file {name!r}: expected a local .gguf file or owner/repo/path/to/file.gguf"
        )
    return parts[0], parts[1], parts[2]


__all__ = ["gguf_file_names", "load_gguf_components", "local_gguf_file"]
