"""Every registry model loads from its real repo id, through the real download code, from a local
hub that serves tiny replicas laid out like the real repos (``tests/local_hub``).

One hub and one fresh Hugging Face cache serve the whole session. The loads and renders run in a
separate process started as a user's would be (``HF_ENDPOINT`` set, ``HF_HUB_OFFLINE`` unset, a new
``HF_HOME``), since huggingface_hub and diffusers read those variables once, at import.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.errors import load_failure_advice
from bot.core.manager import ManagerOptions, ModelManager, choose_variant, list_weight_files
from bot.core.pipelines.loras import lora_files
from bot.core.registry import REGISTRY, RENAMED_REPOS, current_repo_id
from tests.local_hub.replica import PLACEHOLDER, build_repos, load_manifest
from tests.local_hub.server import LocalHub

REAL_KEYS = [key for key, spec in REGISTRY.items() if not spec.tiny]
DTYPES = ("float32", "bfloat16")
# A made-up repo with ModelScope's files in half precision only (manifest: "hostile").
FP16_ONLY = "videobot-tests/modelscope-fp16-only"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def local_hub(model_cache: Path) -> Iterator[LocalHub]:
    hub = LocalHub(build_repos(model_cache), load_manifest()["renamed"]).start()
    yield hub
    hub.stop()


@pytest.fixture(scope="session")
def hub_report(
    local_hub: LocalHub, model_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    scratch = tmp_path_factory.mktemp("hub")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_HUB_CACHE")}
    env.update(
        HF_ENDPOINT=local_hub.endpoint,
        HF_HOME=str(scratch / "hf_home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        VIDEOBOT_MODEL_CACHE=str(model_cache),
        OMP_NUM_THREADS="1",
    )
    report = scratch / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.local_hub.run_registry",
            str(report),
            ",".join(DTYPES),
            *REAL_KEYS,
            f"modelscope_t2v={FP16_ONLY}",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(report.read_text())


def _row(
    report: dict[str, Any], key: str, dtype: str, override: str | None = None
) -> dict[str, Any]:
    return next(
        r
        for r in report["runs"]
        if r["key"] == key and r["dtype"] == dtype and r["override"] == override
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("key", REAL_KEYS)
@pytest.mark.slow
def test_every_registry_model_renders_from_its_real_repo(
    hub_report: dict[str, Any], key: str, dtype: str
) -> None:
    row = _row(hub_report, key, dtype)
    spec = REGISTRY[key]
    assert row["error"] is None, row["error"]
    assert row["source"] == spec.source
    assert row["source"] in load_manifest()["repos"]
    assert row["loaded_dtype"] == f"torch.{dtype}"
    if spec.role == "soundtrack":  # a track, not a picture: one second from the prompt
        assert row["track_s"] == 1.0 and row["finite"]
        return
    side = 2 * spec.size_multiple if spec.size_multiple >= 32 else 64  # as run_registry renders
    assert row["size"] == [side, side] and row["finite"]
    assert row["frames"] == (8 if spec.role == "upscaler" else spec.frames.low)
    if spec.image_source:  # CogVideoX-5b animates pictures with a second repo's transformer
        assert row["image_frames"] == spec.frames.low


def test_modelscope_loads_full_weights_in_float32_and_an_fp16_only_layout_in_any(
    hub_report: dict[str, Any],
) -> None:
    """The real ModelScope repo holds full-precision files beside the fp16 ones (diffusers' own
    slow test loads it in fp32 without a variant): float32 takes the full files, half precision
    the fp16 ones. A repo with only fp16 files (the hostile layout) still loads, with the fp16
    variant, in either precision."""
    assert _row(hub_report, "modelscope_t2v", "float32")["variant"] is None
    assert _row(hub_report, "modelscope_t2v", "bfloat16")["variant"] == "fp16"
    for dtype in DTYPES:
        row = _row(hub_report, "modelscope_t2v", dtype, override=FP16_ONLY)
        assert row["error"] is None, row["error"]
        assert row["source"] == FP16_ONLY and row["variant"] == "fp16"
        assert row["loaded_dtype"] == f"torch.{dtype}" and row["finite"]
    # Repos with full and fp16 weights: the smaller files in half precision, full ones in float32.
    assert _row(hub_report, "animatediff", "float32")["variant"] is None
    assert _row(hub_report, "animatediff", "bfloat16")["variant"] == "fp16"
    assert _row(hub_report, "cogvideox_2b", "bfloat16")["variant"] is None


def test_no_load_downloads_what_it_does_not_use(
    hub_report: dict[str, Any], local_hub: LocalHub
) -> None:
    fetched = {
        path for method, path in local_hub.requests if method == "GET" and "/resolve/" in path
    }
    assert fetched, "nothing was downloaded from the local hub"
    for repo_id, entry in load_manifest()["repos"].items():
        for pattern in entry.get("never_fetched", []):
            # The pattern is matched against the path inside the repo (after the revision), so
            # a root ``model.safetensors`` is not ``text_encoder/model.safetensors``.
            prefix = f"/{repo_id}/resolve/"
            inside = [p[len(prefix) :].split("/", 1)[1] for p in fetched if p.startswith(prefix)]
            hits = [p for p in inside if fnmatch.fnmatch(p, pattern)]
            assert not hits, f"{repo_id}: {hits}"
    # AnimateDiff never uses the SD 1.5 base's safety checker (about 1.2 GB): not even asked for.
    assert not [p for _, p in local_hub.requests if "/safety_checker/" in p]
    # Every repo the registry names was really reached through the hub's resolve endpoint, a
    # LoRA's repo included.
    for key in REAL_KEYS:
        for repo in (REGISTRY[key].source, _lora_repo(key)):
            assert repo is None or any(p.startswith(f"/{repo}/resolve/") for p in fetched), repo


def _lora_repo(key: str) -> str | None:
    source = REGISTRY[key].lora_source
    return "/".join(source.split("/")[:2]) if source else None


def test_a_lora_model_fuses_its_file_from_the_hub_into_the_base_repos_weights(
    hub_report: dict[str, Any], local_hub: LocalHub
) -> None:
    """Wan 2.1 14B and its lightx2v partner load the same base repo; the partner fetches the
    published LoRA file by its hub path, and its denoiser's weights are no longer the base's."""
    lora = REGISTRY["wan2_1_14b_lightx2v"]
    assert lora.source == REGISTRY["wan2_1_14b"].source and lora.lora_source is not None
    owner, repo, filename = lora.lora_source.split("/", 2)
    assert filename in load_manifest()["repos"][f"{owner}/{repo}"]["files"]
    assert ("GET", f"/{owner}/{repo}/resolve/main/{filename}") in local_hub.requests
    for dtype in DTYPES:
        base, fused = _row(hub_report, "wan2_1_14b", dtype), _row(hub_report, lora.key, dtype)
        assert base["lora_source"] is None and fused["lora_source"] == lora.lora_source
        assert fused["weights_sum"] != base["weights_sum"]


def test_a_lora_pair_fetches_both_files_and_changes_both_experts(
    hub_report: dict[str, Any], local_hub: LocalHub
) -> None:
    """Wan 2.2 A14B's lightx2v partners fetch the high- and the low-noise file of their pair by
    their hub paths, and both experts' weights are no longer the base repo's."""
    for key, base in (
        ("wan2_2_t2v_a14b_lightx2v", "wan2_2_t2v_a14b"),
        ("wan2_2_i2v_a14b_lightx2v", "wan2_2_i2v_a14b"),
    ):
        for source in lora_files(REGISTRY[key].lora_source or ""):
            assert source is not None
            owner, repo, filename = source.split("/", 2)
            assert ("GET", f"/{owner}/{repo}/resolve/main/{filename}") in local_hub.requests
        for dtype in DTYPES:
            fused, plain = _row(hub_report, key, dtype), _row(hub_report, base, dtype)
            assert fused["weights_sum"] != plain["weights_sum"]
            assert fused["weights_sum_2"] != plain["weights_sum_2"] is not None


def test_renamed_repo_follows_the_hub_redirect(
    hub_report: dict[str, Any], local_hub: LocalHub
) -> None:
    renamed = hub_report["renamed"]
    assert renamed["id"] == "zai-org/CogVideoX-2b"
    assert renamed["model_index"] == "CogVideoXPipeline"
    assert ("HEAD", "/THUDM/CogVideoX-2b/resolve/main/model_index.json") in local_hub.requests
    assert ("GET", "/api/models/THUDM/CogVideoX-2b") in local_hub.requests


def test_old_repo_ids_are_aliases_of_the_current_ones() -> None:
    assert current_repo_id("THUDM/CogVideoX-5b-I2V") == "zai-org/CogVideoX-5b-I2V"
    assert current_repo_id("damo-vilab/text-to-video-ms-1.7b") == "ali-vilab/text-to-video-ms-1.7b"
    assert current_repo_id("/models/THUDM/CogVideoX-2b") == "/models/THUDM/CogVideoX-2b"
    manager = ModelManager(
        ManagerOptions(
            sources={
                "cogvideox_5b": "THUDM/CogVideoX-5b",
                "cogvideox_5b:image": "THUDM/CogVideoX-5b-I2V",
            }
        )
    )
    assert manager.source_of(REGISTRY["cogvideox_5b"]) == "zai-org/CogVideoX-5b"
    assert manager.image_source_of(REGISTRY["cogvideox_5b"]) == "zai-org/CogVideoX-5b-I2V"
    assert not set(RENAMED_REPOS) & {spec.source for spec in REGISTRY.values()}


@pytest.mark.parametrize(
    ("repo_id", "float32", "half"),
    [
        ("ali-vilab/text-to-video-ms-1.7b", None, "fp16"),  # full and fp16 files
        (FP16_ONLY, "fp16", "fp16"),  # only fp16 files
        ("stable-diffusion-v1-5/stable-diffusion-v1-5", None, "fp16"),  # both
        ("cerspense/zeroscope_v2_576w", None, None),  # .bin only, no variant
        ("zai-org/CogVideoX-5b", None, None),  # shards, no variant
        ("Lightricks/LTX-Video", None, None),  # root single files do not count
    ],
)
def test_variant_is_chosen_from_the_real_trees(
    repo_id: str, float32: str | None, half: str | None
) -> None:
    files = load_manifest()["repos"][repo_id]["files"]
    assert choose_variant(files, "float32") == float32
    assert choose_variant(files, "float16") == half
    assert choose_variant(files, "bfloat16") == half


def test_a_local_folder_without_fp16_files_gets_no_variant(model_cache: Path, manager: Any) -> None:
    manager.load_model("tiny_t2v")  # builds the tiny folder, which has no fp16 files
    files = list_weight_files(str(model_cache / "tiny_t2v"))
    assert any(f.endswith("diffusion_pytorch_model.safetensors") for f in files)
    assert choose_variant(files, "float16") is None


def test_served_files_are_what_the_real_repos_hold(local_hub: LocalHub) -> None:
    """The replicas' formats: a trained spiece.model and no tokenizer.json where the real repo has
    none, .bin pickles where it has .bin, a shard index naming every shard, fp16 tensors in fp16."""
    import io

    import sentencepiece as spm
    import torch
    from safetensors.torch import load

    cog = local_hub.repos["zai-org/CogVideoX-5b"].files
    assert "tokenizer/tokenizer.json" not in cog
    pieces = spm.SentencePieceProcessor(model_proto=cog["tokenizer/spiece.model"])
    assert pieces.get_piece_size() > 50 and pieces.id_to_piece(1) == "</s>"
    index = json.loads(cog["transformer/diffusion_pytorch_model.safetensors.index.json"])
    assert set(index["weight_map"].values()) == {
        "diffusion_pytorch_model-00001-of-00002.safetensors",
        "diffusion_pytorch_model-00002-of-00002.safetensors",
    }
    zeroscope = local_hub.repos["cerspense/zeroscope_v2_576w"].files
    state = torch.load(io.BytesIO(zeroscope["unet/diffusion_pytorch_model.bin"]), weights_only=True)
    assert state and all(t.dtype == torch.float32 for t in state.values())
    assert zeroscope["zs2_576w/text2video_pytorch_model.pth"] == PLACEHOLDER
    modelscope = local_hub.repos["ali-vilab/text-to-video-ms-1.7b"].files
    half = load(modelscope["unet/diffusion_pytorch_model.fp16.safetensors"])
    assert all(t.dtype == torch.float16 for t in half.values())
    full = load(modelscope["unet/diffusion_pytorch_model.safetensors"])
    assert full.keys() == half.keys() and all(t.dtype == torch.float32 for t in full.values())


def test_a_missing_tokenizer_package_is_named_not_the_network(
    local_hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CogVideoX's tokenizer is only a spiece.model: without sentencepiece transformers falls back
    to a tiktoken reader, and the failure must say so instead of blaming the network."""
    from transformers import AutoTokenizer

    for name, data in local_hub.repos["zai-org/CogVideoX-2b"].files.items():
        if name.startswith("tokenizer/"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(data)
    assert AutoTokenizer.from_pretrained(tmp_path / "tokenizer")("a cat").input_ids[-1] == 1
    monkeypatch.setitem(sys.modules, "sentencepiece", None)
    monkeypatch.setitem(sys.modules, "google.protobuf", None)
    with pytest.raises(Exception) as failure:
        AutoTokenizer.from_pretrained(tmp_path / "tokenizer")
    advice = load_failure_advice(failure.value)
    assert "sentencepiece and protobuf" in advice
    assert "network" not in advice
