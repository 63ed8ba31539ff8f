"""What loading a model downloads from the Hugging Face hub, asked before the download starts.

A model reads one or more hub repos (its pipeline, a motion adapter, separate image-to-video
weights, a fused LoRA file). Those already in the local cache cost nothing; for the others this
module lists the repo's files once (one request, no retries, a short timeout) and adds up what a
load takes of them, so the CLI can say "this downloads 5.4 GiB" before it starts.

Offline (``HF_HUB_OFFLINE``) or with the hub out of reach, a repo that is not in the cache is named
at once, in one line, instead of after huggingface_hub's retries (half a minute and more) and
diffusers' advice about ``local_files_only``, which names the pipeline's base even when it was the
motion adapter that was missing.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.core.errors import ModelLoadError, exception_chain
from bot.core.media import format_size
from bot.core.registry import get_spec

if TYPE_CHECKING:
    from bot.core.manager import ModelManager

LIST_TIMEOUT_S = 10.0
"""How long the one listing request per missing repo may take before the hub counts as out of
reach."""

_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_WEIGHT = re.compile(
    r"^(?P<stem>[^.]+?)(?:\.(?P<variant>[A-Za-z0-9_]+))?(?:-\d{5}-of-\d{5})?"
    r"\.(?P<ext>safetensors|bin|ckpt|pt|pth|msgpack|h5|onnx|gguf)$"
)
_SKIPPED_FORMATS = ("msgpack", "h5", "onnx", "gguf")
"""Flax, TensorFlow, ONNX and GGUF weights: a diffusers load in PyTorch never takes them."""
_PICKLES = ("bin", "ckpt", "pt", "pth")
_ROOT_EXTRAS = (".md", ".png", ".jpg", ".jpeg", ".gif", ".mp4", ".webp", ".gitattributes")


@dataclass(frozen=True)
class Need:
    """One hub repo a model reads: the whole load's share of it (``files`` None), or only the
    named files (a LoRA)."""

    repo: str
    files: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Download:
    """A repo that is not in the cache yet, and about how many bytes its load fetches (None when
    the hub would not say)."""

    repo: str
    size_bytes: int | None


def model_needs(manager: ModelManager, key: str, *, image: bool = False) -> list[Need]:
    """The hub repos loading ``key`` reads (with ``image``, for a picture job), after the owner's
    overrides; local folders and files (the tiny models, a ``sources`` path) are left out."""
    spec = get_spec(key)
    needs: list[Need] = []
    for source in manager.hub_sources(spec, image=image):
        need = _need_of(source)
        if need is not None and need not in needs:
            needs.append(need)
    return needs


def _need_of(source: str) -> Need | None:
    """A hub source as a :class:`Need`: ``owner/repo``, or ``owner/repo/file`` (with a LoRA pair,
    ``owner/repo/first+second``); None for a local path."""
    from pathlib import Path

    from bot.core.registry import LORA_PAIR

    if not source or Path(source).expanduser().exists() or source.startswith(("/", ".", "~")):
        return None
    parts = source.split("/")
    repo = "/".join(parts[:2])
    if not _REPO_ID.match(repo):
        return None
    if len(parts) == 2:
        return Need(repo)
    files = tuple(part.rpartition("/")[2] for part in "/".join(parts[2:]).split(LORA_PAIR))
    return Need(repo, files)


def is_cached(need: Need) -> bool:
    """Whether the Hugging Face cache holds ``need``: its files, or a pipeline's
    ``model_index.json`` (or a model's ``config.json``) for a whole-repo load."""
    from huggingface_hub import try_to_load_from_cache

    names = need.files or ("model_index.json", "config.json")
    found = [isinstance(try_to_load_from_cache(need.repo, name), str) for name in names]
    return all(found) if need.files else any(found)


def missing(needs: Iterable[Need]) -> list[Need]:
    return [need for need in needs if not is_cached(need)]


def plan_downloads(
    key: str,
    needs: Sequence[Need],
    dtype: str = "float32",
    *,
    timeout_s: float = LIST_TIMEOUT_S,
) -> list[Download]:
    """What loading ``key`` would download: each need not in the cache, with its size from one
    listing of the repo. Offline, or with the hub out of reach, raises :class:`ModelLoadError`
    at once naming the missing repos; so does a repo the hub does not have."""
    from huggingface_hub import constants

    absent = missing(needs)
    if not absent:
        return []
    names = _repos(absent)
    if constants.HF_HUB_OFFLINE:
        raise ModelLoadError(
            f"{key} needs {names}, not downloaded yet, and HF_HUB_OFFLINE is set: unset it to "
            f"download {_it(absent)} into {constants.HF_HUB_CACHE}"
        )
    downloads = []
    for need in absent:
        try:
            entries = list_files(need.repo, timeout_s=timeout_s)
        except ModelLoadError:
            raise
        except Exception as exc:
            if _is_network_error(exc):
                root = exception_chain(exc)[-1]
                raise ModelLoadError(
                    f"{key} needs {names}, not downloaded yet, and the hub at {constants.ENDPOINT}"
                    f" cannot be reached ({type(root).__name__}: {_one_line(root)}): check the "
                    "network, a proxy (HTTPS_PROXY) or HF_ENDPOINT, then try again"
                ) from exc
            downloads.append(Download(need.repo, None))  # the load itself will say what is wrong
            continue
        size = download_size(entries, dtype, need.files)
        downloads.append(Download(need.repo, size))
    return downloads


def list_files(repo: str, *, timeout_s: float = LIST_TIMEOUT_S) -> dict[str, int]:
    """Every file of ``repo`` on the hub with its size, from one tree listing (and its pages):
    one try each, so an unreachable hub fails now rather than after the library's backoff."""
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_backoff

    url: str | None = f"{constants.ENDPOINT}/api/models/{repo}/tree/main"
    params: dict[str, str] | None = {"recursive": "true"}
    files: dict[str, int] = {}
    while url is not None:
        try:
            response = http_backoff(
                "GET",
                url,
                params=params,
                headers=build_hf_headers(),
                timeout=timeout_s,
                max_retries=0,
            )
            hf_raise_for_status(response)
        except Exception as exc:
            names = {type(error).__name__ for error in exception_chain(exc)}
            if names & {"RepositoryNotFoundError", "GatedRepoError"}:
                raise ModelLoadError(
                    f"the hub has no repo {repo} (or it is private or gated): check the id"
                ) from exc
            raise
        for entry in response.json():
            if entry.get("type") == "file":
                lfs = entry.get("lfs") or {}
                files[entry["path"]] = int(lfs.get("size") or entry.get("size") or 0)
        url, params = response.links.get("next", {}).get("url"), None
    return files


def download_size(files: dict[str, int], dtype: str, only: Sequence[str] | None = None) -> int:
    """About what a load takes of a repo of ``files`` (path: bytes), as diffusers picks them:
    the named files only (a LoRA); else the components' folders with one weight format each
    (safetensors over pickles, never Flax, TensorFlow or ONNX), in the variant the load chooses
    (fp16 files for half precision where a folder has them), plus the root's settings files. A
    repo without ``model_index.json`` (a motion adapter) is one component at its root."""
    from bot.core.manager import HALF_VARIANT, choose_variant

    if only is not None:
        return sum(size for path, size in files.items() if path.rpartition("/")[2] in only)
    pipeline = "model_index.json" in files
    if pipeline:
        variant = choose_variant(files, dtype)
    else:  # one component at the root: its half-precision files when the load asks for them
        half = any(f".{HALF_VARIANT}." in path for path in files if "/" not in path)
        variant = HALF_VARIANT if half and dtype != "float32" else None
    folders: dict[str, list[tuple[int, re.Match[str] | None]]] = {}
    for path, size in files.items():
        folder, _, name = path.rpartition("/")
        weight = _WEIGHT.match(name)
        if "/" in folder or (folder and not pipeline):
            continue  # not a component's folder: samples, other formats
        if not folder and (name.startswith(".") or name.endswith(_ROOT_EXTRAS)):
            continue  # every repo's notes and pictures
        if not folder and pipeline and weight is not None:
            continue  # a pipeline's single-file checkpoints at its root
        folders.setdefault(folder, []).append((size, weight))
    return sum(_folder_size(entries, variant) for entries in folders.values())


def _folder_size(entries: list[tuple[int, re.Match[str] | None]], variant: str | None) -> int:
    """One component folder: its settings files, plus the weights of one format and variant."""
    settings = sum(size for size, weight in entries if weight is None)
    weights = [
        (size, weight)
        for size, weight in entries
        if weight is not None and weight["ext"] not in _SKIPPED_FORMATS
    ]
    if any(weight["ext"] == "safetensors" for _, weight in weights):
        weights = [(size, weight) for size, weight in weights if weight["ext"] == "safetensors"]
    elif weights:
        weights = [(size, weight) for size, weight in weights if weight["ext"] in _PICKLES]
    chosen = [size for size, weight in weights if weight["variant"] == variant]
    if not chosen:  # this folder has no files of the variant: diffusers takes the plain ones
        chosen = [size for size, weight in weights if weight["variant"] is None]
    return settings + sum(chosen)


def describe_downloads(key: str, downloads: Sequence[Download]) -> str:
    """The line said before a download starts: which repos, about how big, and where to."""
    from huggingface_hub import constants

    parts = [
        f"{d.repo} ({format_size(d.size_bytes)})" if d.size_bytes is not None else d.repo
        for d in downloads
    ]
    sizes = [d.size_bytes for d in downloads if d.size_bytes is not None]
    total = f", {format_size(sum(sizes))} in all" if len(sizes) > 1 else ""
    return (
        f"downloading {key} for its first use: {', '.join(parts)}{total}, into "
        f"{constants.HF_HUB_CACHE}"
    )


def failed_repo(needs: Sequence[Need], exc: BaseException, default: str) -> str:
    """The repo a failed load was reading: the one its exception chain names (a motion adapter
    fails before its pipeline is touched), else ``default``."""
    text = " ".join(str(error) for error in exception_chain(exc))
    for need in [*needs[1:], *needs[:1]]:  # the parts before the pipeline they go on
        if need.repo in text or need.repo.replace("/", "--") in text:
            return need.repo
    return default


def _is_network_error(exc: BaseException) -> bool:
    """No answer from the hub at all (refused, unresolvable, timed out, a broken proxy), as
    opposed to an answer that was an error."""
    chain = exception_chain(exc)
    if any(isinstance(error, ConnectionError | TimeoutError | socket.gaierror) for error in chain):
        return True
    names = {cls.__name__ for error in chain for cls in type(error).__mro__}
    return bool(names & {"TransportError", "TimeoutException", "NetworkError", "ProxyError"})


def _repos(needs: Sequence[Need]) -> str:
    names = [need.repo for need in needs]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def _it(needs: Sequence[Need]) -> str:
    return "it" if len(needs) == 1 else "them"


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else "no message"
