"""Fetch only the files a diffusers repo's indexes name, then load from the local snapshot.

``DiffusionPipeline.from_pretrained`` downloads every weight file in each component's folder.
A repo that keeps a stale second set of shards beside the ones its ``*.safetensors.index.json``
names (``Lightricks/LTX-2``'s ``text_encoder/``: 12 old shards beside the 11 the index uses,
about 52 GB) would be downloaded twice over. This module lists the repo, reads
``model_index.json`` and each sharded component's index, and asks ``snapshot_download`` for
exactly: the index files, every non-weight file of the components ``model_index.json`` names
(configs, tokenizers), each component's weights in the chosen variant (safetensors over ``.bin``),
and of a sharded component only the shards its index maps. Single-file checkpoints at the root and
folders the pipeline does not name are never fetched. huggingface_hub's own download does the
work, so its cache, ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` apply as to every other load.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_VARIANT = re.compile(r"\.(fp16|fp32|bf16|non_ema)[.-]")


def indexed_snapshot(source: str, variant: str | None = None) -> str:
    """A local folder holding what a load of ``source`` needs and nothing else: ``source`` itself
    when it is a folder (a tiny model, an owner's path) or when the hub cannot be listed (offline:
    ``from_pretrained`` then loads from the cache and says what is missing)."""
    if Path(source).expanduser().is_dir() or source.count("/") != 1:
        return source
    from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download

    if constants.HF_HUB_OFFLINE:
        return source
    try:
        files = list(HfApi().list_repo_files(source))
    except Exception:
        return source
    with open(hf_hub_download(source, "model_index.json")) as handle:
        index = json.load(handle)

    def weight_map(name: str) -> set[str]:
        with open(hf_hub_download(source, name)) as handle:
            return set(json.load(handle).get("weight_map", {}).values())

    wanted = needed_files(files, index, variant, weight_map)
    return str(snapshot_download(source, allow_patterns=sorted(wanted)))


def needed_files(
    files: list[str],
    index: dict[str, Any],
    variant: str | None,
    weight_map: Any,
) -> set[str]:
    """The files of ``files`` (a repo's listing) that a load needs: ``model_index.json``, and for
    each component ``index`` names (``[library, class]``, not ``[null, null]``) its non-weight
    files and the weights :func:`component_weights` picks. ``weight_map(path)`` reads a shard
    index's ``weight_map`` values (the shard names)."""
    wanted = {"model_index.json"}
    for name, value in index.items():
        if name.startswith("_") or not _listed(value):
            continue
        inside = [f for f in files if f.startswith(f"{name}/")]
        weights = [f for f in inside if f.endswith(_WEIGHT_SUFFIXES)]
        indexes = [f for f in inside if ".index" in f and f.endswith(".json")]
        wanted.update(f for f in inside if f not in weights and f not in indexes)
        wanted.update(component_weights(weights, indexes, variant, weight_map))
    return wanted


def component_weights(
    weights: list[str], indexes: list[str], variant: str | None, weight_map: Any
) -> set[str]:
    """One component's weight files as diffusers loads them: safetensors where there are any,
    the ``variant``'s files where it has some, else the plain ones; of a sharded set, its index
    (``*.safetensors.index.json``, or ``*.safetensors.index.fp16.json`` for a variant) and only
    the shards that index names."""
    safetensors = [f for f in weights if f.endswith(".safetensors")]
    pool = safetensors or weights
    used = variant if variant and any(_variant_of(f) == variant for f in pool) else None
    chosen = [f for f in pool if _variant_of(f) == used]
    suffix = ".safetensors" if safetensors else ".bin"
    ending = f"{suffix}.index.json" if used is None else f"{suffix}.index.{used}.json"
    for index in indexes:
        if index.endswith(ending):
            folder = index.rsplit("/", 1)[0]
            named = {f"{folder}/{shard}" for shard in weight_map(index)}
            return {index, *(f for f in chosen if f in named)}
    return set(chosen)


def _variant_of(path: str) -> str | None:
    match = _VARIANT.search(path.rsplit("/", 1)[-1])
    return match.group(1) if match else None


def _listed(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and value[1] is not None


__all__ = ["component_weights", "indexed_snapshot", "needed_files"]
