"""Tiny replicas of the real hub repos: the tiny models' weights re-laid out in each repo's real
file tree (``manifest.json``), ready for :class:`~tests.local_hub.server.LocalHub` to serve.

For every file the manifest lists, the replica holds what the real file is, at tiny size:

- weights in each form the repo has: ``*.safetensors``, ``*.bin`` (a ``torch.save`` state dict),
  ``*.fp16.*`` variants in half precision, ``*-0000i-of-0000n.*`` shards with their
  ``*.index.json``, ``non_ema`` copies;
- tokenizers in the repo's format: CLIP's ``vocab.json``/``merges.txt``; for the T5 families a real
  trained SentencePiece ``spiece.model`` with ``tokenizer_config.json``, ``special_tokens_map.json``
  and ``added_tokens.json`` and no ``tokenizer.json`` (LTX-Video, CogVideoX), or with a
  ``tokenizer.json`` beside it (Wan); the text encoder's vocabulary is resized to fit;
- the SD 1.5 base's extra components: a tiny ``safety_checker`` and a ``feature_extractor``;
- the enhancers' released files (``hzwer/RIFE``'s zip, ``ai-forever/Real-ESRGAN``'s ``.pth``
  state dicts) as the tiny twins of ``bot.core.tiny.enhance`` wrote them, under the real names;
- bare state dicts (AnimateDiff-Lightning's adapters, lightx2v's LoRAs) as the tiny model's own
  file of that kind (by name, where the tiny model has one per real file: lightx2v's Wan 2.2 pairs);
- tokenizers built in code (``"tokenizer": "own"``: HunyuanVideo 1.5's Qwen2 and ByT5) and other
  settings files a tiny component wrote (a guider's, a SigLIP preprocessor's) as written;
- anything a load must never download (single-file checkpoints, samples, ComfyUI files) as a
  placeholder that no loader could read;
- ``model_index.json`` exactly as the manifest records the real one (pipeline class, component
  classes and library, flags such as ``expand_timesteps`` only where the real index has them);
- each config the manifest records under ``configs`` with exactly the real repo's keys: the tiny
  model's values for the keys it has (the shrunk sizes), the recorded values for the rest. A tiny
  model that sets a key the real file lacks to anything but the class default cannot be passed
  off as that repo, and building its replica fails.

Repos whose network no tiny model of ``bot.core.tiny`` has (Wan 2.1) are built from the hub's own
tiny models (``tests.local_hub.hub_tiny``).
"""

from __future__ import annotations

import fnmatch
import inspect
import io
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from tests.local_hub.hub_tiny import HUB_TINY_PREFIX, build_hub_tiny_model
from tests.local_hub.server import HubRepo

MANIFEST = Path(__file__).with_name("manifest.json")
PLACEHOLDER = b"placeholder: the local hub does not serve this file\n"
_WEIGHT = re.compile(
    r"^(?:(?P<dir>.+)/)?(?P<stem>diffusion_pytorch_model|model|pytorch_model)"
    r"(?:-(?P<i>\d{5})-of-(?P<n>\d{5}))?(?:\.(?P<variant>fp16|non_ema))?\.(?P<ext>safetensors|bin)$"
)
_INDEX = re.compile(
    r"^(?:(?P<dir>.+)/)?(?P<stem>diffusion_pytorch_model|model)\.safetensors\.index\.json$"
)
_SPM_PIECES = 160
_T5_EXTRA_IDS = 100


_OWN_TOKENIZER_STAND_INS = {
    "added_tokens.json": b"{}\n",
    "special_tokens_map.json": b"{}\n",
    "chat_template.jinja": b"{% for message in messages %}{{ message['content'] }}{% endfor %}\n",
}
"""What the real Gemma tokenizer folders hold beside tokenizer.json that the tiny one lacks."""


def load_manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text())


@cache
def build_repos(cache_dir: Path) -> dict[str, HubRepo]:
    """Every manifest repo as a :class:`HubRepo`, built from the tiny models in ``cache_dir`` (once
    a process: the hub tests and the truth tests share the same replicas)."""
    from bot.core.tiny import build_tiny_model

    manifest = load_manifest()
    repos = {}
    for repo_id, entry in manifest["repos"].items():
        key = entry["replica"].split("/")[0]
        if key.startswith(HUB_TINY_PREFIX):
            build_hub_tiny_model(key, cache_dir / key)
        else:
            build_tiny_model(key, cache_dir / key)
        repos[repo_id] = HubRepo(repo_id, _Replica(cache_dir / entry["replica"], entry).files())
    return repos


def build_repo(cache_dir: Path, repo_id: str) -> HubRepo:
    """One manifest repo as a :class:`HubRepo` (its tiny model built into ``cache_dir``), for a
    test that needs a few repos rather than the whole hub."""
    from bot.core.tiny import build_tiny_model

    entry = load_manifest()["repos"][repo_id]
    key = entry["replica"].split("/")[0]
    if key.startswith(HUB_TINY_PREFIX):
        build_hub_tiny_model(key, cache_dir / key)
    else:
        build_tiny_model(key, cache_dir / key)
    return HubRepo(repo_id, _Replica(cache_dir / entry["replica"], entry).files())


def never_fetched(repo_id: str) -> list[str]:
    return list(load_manifest()["repos"][repo_id].get("never_fetched", []))


class _Replica:
    def __init__(self, tiny: Path, entry: dict[str, Any]) -> None:
        self.tiny = tiny
        self.entry = entry
        self.tokenizer = entry.get("tokenizer")
        self._states: dict[str, dict[str, Any]] = {}

    def files(self) -> dict[str, bytes]:
        blocked = self.entry.get("never_fetched", [])
        out = {}
        for name in self.entry["files"]:
            if any(fnmatch.fnmatch(name, pattern) for pattern in blocked):
                out[name] = PLACEHOLDER
            else:
                out[name] = self._file(name)
        return out

    def _file(self, name: str) -> bytes:
        folder, _, base = name.rpartition("/")
        weight = _WEIGHT.match(name)
        if weight:
            return self._weights(weight)
        index = _INDEX.match(name)
        if index:
            return self._index(index.group("dir") or "", index.group("stem"), name)
        if base.endswith(".safetensors"):
            # A bare state dict (AnimateDiff-Lightning's adapters, lightx2v's LoRAs): the tiny
            # file of the same name where the tiny model has one per real file (lightx2v's Wan 2.2
            # high/low pairs), else the tiny folder's one file, in the real file's format.
            if (self.tiny / base).is_file():
                return (self.tiny / base).read_bytes()
            return next(self.tiny.glob("*.safetensors")).read_bytes()
        if base.endswith((".zip", ".pth")) and (self.tiny / name).is_file():
            # The enhancers' released files (RIFE's train_log archive, Real-ESRGAN's state
            # dicts): the tiny twin wrote each in the released format under the real name.
            return (self.tiny / name).read_bytes()
        if self.tokenizer == "own" and folder.startswith("tokenizer"):
            # Tokenizers built in code by the tiny model (HunyuanVideo 1.5's Qwen2 BPE with its
            # chat template, ByT5, LTX-2's Gemma): served as transformers saved them; a file
            # of the real folder that the tiny tokenizer did not write (Gemma's SentencePiece
            # model and side files beside its tokenizer.json) gets a small stand-in.
            if (self.tiny / name).is_file():
                return (self.tiny / name).read_bytes()
            return _OWN_TOKENIZER_STAND_INS.get(base, PLACEHOLDER)
        if folder == "tokenizer":
            return self._tokenizer_file(base)
        if name == "model_index.json":
            return _diffusers_json(self.entry["model_index"])
        if folder == "safety_checker" and base == "config.json":
            return _safety_checker()[0]
        if folder == "feature_extractor" and not (self.tiny / name).is_file():
            return json.dumps(_CLIP_IMAGE_PROCESSOR, indent=2).encode()
        if base in ("config.json", "scheduler_config.json"):
            data = json.loads((self.tiny / name).read_text())
            if folder == "text_encoder" and self.tokenizer in ("t5_spiece", "umt5_spiece"):
                data["vocab_size"] = _t5_vocab_size(data["vocab_size"])
            record = self.entry.get("configs", {}).get(name)
            if record is not None:
                return _diffusers_json(real_config(data, record, name))
            return json.dumps(data, indent=2).encode()
        if folder and (self.tiny / name).is_file():
            # A component's own settings file the tiny model wrote (HunyuanVideo 1.5's guider
            # config and SigLIP preprocessor config): the real class, the tiny values.
            return (self.tiny / name).read_bytes()
        return PLACEHOLDER  # README.md, .gitattributes, LICENSE, samples

    # --- weights ---------------------------------------------------------------------------------

    def _state(self, folder: str) -> dict[str, Any]:
        if folder not in self._states:
            import torch
            from safetensors.torch import load_file

            if folder == "safety_checker":
                state = _safety_checker()[1]
            else:
                source = self.tiny / folder if folder else self.tiny
                state = {}
                for path in sorted(source.glob("*.safetensors")):
                    state.update(load_file(str(path)))
            if folder == "text_encoder" and self.tokenizer in ("t5_spiece", "umt5_spiece"):
                state = _resize_vocab(state)
            self._states[folder] = {k: v.to(torch.float32) for k, v in state.items()}
        return self._states[folder]

    def _shard(self, folder: str, count: int, number: int) -> dict[str, Any]:
        names = sorted(self._state(folder))
        return {name: self._state(folder)[name] for name in names[number - 1 :: count]}

    def _weights(self, match: re.Match[str]) -> bytes:
        import torch
        from safetensors.torch import save

        folder = match.group("dir") or ""
        if match.group("n"):
            state = self._shard(folder, int(match.group("n")), int(match.group("i")))
        else:
            state = self._state(folder)
        if match.group("variant") == "fp16":
            state = {k: v.to(torch.float16) for k, v in state.items()}
        state = {k: v.contiguous() for k, v in state.items()}
        if match.group("ext") == "safetensors":
            return save(state, metadata={"format": "pt"})
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    def _index(self, folder: str, stem: str, name: str) -> bytes:
        blocked = self.entry.get("never_fetched", [])
        shards = [
            f
            for f in self.entry["files"]
            if f.startswith(f"{folder}/{stem}-")
            and not any(fnmatch.fnmatch(f, pattern) for pattern in blocked)
        ]
        weight_map, total = {}, 0
        for shard in shards:
            match = _WEIGHT.match(shard)
            assert match is not None
            part = self._shard(folder, int(match.group("n")), int(match.group("i")))
            for key, tensor in part.items():
                weight_map[key] = shard.rpartition("/")[2]
                total += tensor.numel() * tensor.element_size()
        return json.dumps(
            {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
            indent=2,
        ).encode()

    # --- pipeline and tokenizer files ------------------------------------------------------------

    def _tokenizer_file(self, base: str) -> bytes:
        max_length = json.loads((self.tiny / "tokenizer" / "tokenizer_config.json").read_text())[
            "model_max_length"
        ]
        if self.tokenizer == "clip":
            return _clip_tokenizer_files()[base]
        return _t5_tokenizer_files(max_length, with_json=self.tokenizer == "umt5_spiece")[base]


# --- real indexes and configs ---------------------------------------------------------------------


def _diffusers_json(data: dict[str, Any]) -> bytes:
    """As diffusers writes ``model_index.json`` and configs: indent 2, sorted keys, a newline."""
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def real_config(tiny: dict[str, Any], record: dict[str, Any], name: str) -> dict[str, Any]:
    """``name``'s config with exactly the real keys ``record["keys"]``: the recorded values where
    ``record["values"]`` has one, else the tiny model's (its shrunk sizes). A key of the tiny config
    that the real file lacks is dropped, so a load takes the class default for it: that must be
    the value the tiny model was built with, or the replica would be another network."""
    values = record.get("values", {})
    class_name = values.get("_class_name", tiny.get("_class_name"))
    defaults = _init_defaults(class_name)
    for key in sorted(set(tiny) - set(record["keys"])):
        if key in defaults and _as_json(tiny[key]) != _as_json(defaults[key]):
            raise ValueError(
                f"{name}: the tiny model sets {key}={tiny[key]!r}, a key the real file lacks "
                f"(it would load as {defaults[key]!r}); build the tiny model with the default"
            )
    out = {}
    for key in record["keys"]:
        if key in values:
            out[key] = values[key]
        elif key in tiny:
            out[key] = tiny[key]
        else:
            raise ValueError(f"{name}: no value for the real key {key!r}; record it under 'values'")
    return out


@cache
def _init_defaults(class_name: str | None) -> dict[str, Any]:
    import diffusers

    cls = getattr(diffusers, class_name or "", None)
    if cls is None:
        return {}
    return {
        name: param.default
        for name, param in inspect.signature(cls.__init__).parameters.items()
        if param.default is not inspect.Parameter.empty
    }


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


# --- T5 SentencePiece tokenizer --------------------------------------------------------------------


@cache
def _spiece_model() -> bytes:
    """A real SentencePiece unigram model, trained here on sentences of the tiny vocabulary, with
    T5's special ids (pad 0, eos 1, unk 2, no bos)."""
    import sentencepiece as spm

    from bot.core.tiny.common import _VOCAB_WORDS

    words = list(_VOCAB_WORDS)
    sentences = [
        " ".join(words[(i * 7 + j * 3) % len(words)] for j in range(6 + i % 5)) for i in range(400)
    ]
    sentences += ["".join(chr(c) for c in range(33, 127))]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=_SPM_PIECES,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    return model.getvalue()


def _spm_size() -> int:
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_proto=_spiece_model())
    return int(processor.get_piece_size())


def _t5_vocab_size(tiny_vocab: int) -> int:
    return max(tiny_vocab, _spm_size() + _T5_EXTRA_IDS)


def _resize_vocab(state: dict[str, Any]) -> dict[str, Any]:
    """The text encoder's embedding grown (seeded rows) or cut to the SentencePiece vocabulary plus
    T5's 100 sentinel ids, as T5-XXL's 32128 rows hold spiece's 32000 pieces and the sentinels."""
    import torch

    out = {}
    for name, tensor in state.items():
        if name.endswith(("shared.weight", "embed_tokens.weight")):
            rows = _t5_vocab_size(tensor.shape[0])
            if rows > tensor.shape[0]:
                generator = torch.Generator().manual_seed(0)
                extra = torch.randn(rows - tensor.shape[0], tensor.shape[1], generator=generator)
                tensor = torch.cat([tensor.float(), extra.to(tensor.dtype) * tensor.float().std()])
        out[name] = tensor
    return out


@cache
def _t5_tokenizer_files(max_length: int, with_json: bool) -> dict[str, bytes]:
    size = _spm_size()
    extra = [f"<extra_id_{i}>" for i in range(_T5_EXTRA_IDS)]
    config = {
        "additional_special_tokens": extra,
        "clean_up_tokenization_spaces": True,
        "eos_token": "</s>",
        "extra_ids": _T5_EXTRA_IDS,
        "legacy": True,
        "model_max_length": max_length,
        "pad_token": "<pad>",
        "sp_model_kwargs": {},
        "tokenizer_class": "T5Tokenizer",
        "unk_token": "<unk>",
    }
    files = {
        "spiece.model": _spiece_model(),
        "tokenizer_config.json": json.dumps(config, indent=2).encode(),
        "special_tokens_map.json": json.dumps(
            {
                "additional_special_tokens": extra,
                "eos_token": "</s>",
                "pad_token": "<pad>",
                "unk_token": "<unk>",
            },
            indent=2,
        ).encode(),
        "added_tokens.json": json.dumps(
            {token: size + _T5_EXTRA_IDS - 1 - i for i, token in enumerate(extra)}, indent=2
        ).encode(),
    }
    if with_json:
        files["tokenizer.json"] = _converted_tokenizer_json(files)
    return files


def _converted_tokenizer_json(files: dict[str, bytes]) -> bytes:
    """What the Wan repos ship beside spiece.model: transformers' own conversion of it."""
    import tempfile

    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        out = folder / "out"
        tokenizer.save_pretrained(out)
        return (out / "tokenizer.json").read_bytes()


# --- CLIP tokenizer, SD 1.5 extras -----------------------------------------------------------------


@cache
def _clip_tokenizer_files() -> dict[str, bytes]:
    from bot.core.tiny.unet import _tiny_vocab_and_merges

    vocab, merges = _tiny_vocab_and_merges()
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
    }
    config = {
        **special,
        "add_prefix_space": False,
        "do_lower_case": True,
        "errors": "replace",
        "model_max_length": 77,
        "tokenizer_class": "CLIPTokenizer",
    }
    return {
        "vocab.json": json.dumps(vocab).encode(),
        "merges.txt": ("#version: 0.2\n" + "\n".join(merges) + "\n").encode(),
        "special_tokens_map.json": json.dumps(special, indent=2).encode(),
        "tokenizer_config.json": json.dumps(config, indent=2).encode(),
    }


_CLIP_IMAGE_PROCESSOR = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}


@cache
def _safety_checker() -> tuple[bytes, dict[str, Any]]:
    """A tiny ``StableDiffusionSafetyChecker`` (CLIP vision tower + concept embeddings)."""
    import tempfile

    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from safetensors.torch import load_file
    from transformers import CLIPConfig

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "vocab_size": 100,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 16,
        },
        projection_dim=16,
    )
    with tempfile.TemporaryDirectory() as scratch:
        StableDiffusionSafetyChecker(config).save_pretrained(scratch)
        return (
            Path(scratch, "config.json").read_bytes(),
            load_file(f"{scratch}/model.safetensors"),
        )
