"""GGUF transformers and sequential offload in the memory plans (issue 23, section 3): the GGUF
figures from gguf's own block sizes, the tiny GGUF twins in QuantStack's layout and city96's key
format, the tiny Wan 2.2 A14B rendering under a GGUF plan on the CPU, and sequential offload as the
last resort."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bot.core.engine import GenerationEngine
from bot.core.manager import ManagerOptions, ModelManager
from bot.core.plans import (
    GB,
    GGUF_BLOCKS,
    PLAN_KEYS,
    TOKEN_EMBEDDINGS,
    Card,
    Shape,
    choose,
    gguf_bytes,
    kinds_for,
    largest_layer,
    offload_call,
    plans_for,
    step_down,
)
from bot.core.registry import REGISTRY, TINY_GGUF

A14B = ("wan2_2_t2v_a14b", "wan2_2_i2v_a14b")


def card(vram: float, host: float = 64.0, packages: frozenset[str] | None = None) -> Card:
    if packages is None:
        return Card(vram_gb=vram, host_ram_gb=host, compute_capability=(8, 9))
    return Card(vram_gb=vram, host_ram_gb=host, compute_capability=(8, 9), packages=packages)


# --- the figures --------------------------------------------------------------------------------


def test_the_gguf_block_sizes_are_gguf_s_own() -> None:
    import gguf

    for name, sizes in GGUF_BLOCKS.items():
        assert gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[name]] == sizes, name
    assert gguf_bytes("Q8_0") == 34 / 32 and gguf_bytes("Q4_K_M") == 144 / 256


def test_gguf_plans_count_the_experts_at_their_quant_s_bits() -> None:
    spec = REGISTRY["wan2_2_t2v_a14b"]
    plans = {p.key: p for p in plans_for(spec, Shape(1280, 720, 81), card(80))}
    experts = (spec.parameters["transformer"] + spec.parameters["transformer_2"]) * 1e6 / GB
    for quant, key in (("Q8_0", "gguf_q8_0"), ("Q5_K_M", "gguf_q5_k_m"), ("Q4_K_M", "gguf_q4_k_m")):
        saved = plans["bf16"].vram_gb - plans[key].vram_gb
        assert saved == pytest.approx(experts * (2 - gguf_bytes(quant)))
    assert plans["gguf_q8_0"].vram_gb > plans["gguf_q5_k_m"].vram_gb > plans["gguf_q4_k_m"].vram_gb
    # under model offload one expert is on the GPU at a time, beside the working memory
    assert plans["gguf_q5_k_m_offload"].vram_gb < plans["fp8_model_offload"].vram_gb


def test_gguf_plans_sit_between_torchao_and_model_offload_and_only_where_files_exist() -> None:
    order = list(PLAN_KEYS)
    for key in ("gguf_q8_0", "gguf_q5_k_m", "gguf_q4_k_m"):
        assert order.index("torchao_int8") < order.index(key) < order.index("model_offload")
    assert order[-1] == "sequential_offload"
    for key in (*A14B, "wan2_2_ti2v_5b"):
        assert "gguf_q4_k_m" in {k.key for k in kinds_for(REGISTRY[key])}, key
    # no diffusers single-file loader for HunyuanVideo 1.5's transformer, and a fused LoRA
    # cannot go into quantised weights
    for key in ("hunyuan_video15_480p", "wan2_2_t2v_a14b_lightx2v", "animatediff"):
        assert not any(k.gguf for k in kinds_for(REGISTRY[key])), key


def test_a14b_fits_a_16_gb_card_with_q5_k_m_experts_under_model_offload() -> None:
    for key in A14B:
        choice = choose(REGISTRY[key], card(16))
        assert choice.chosen is not None and choice.chosen.key == "gguf_q5_k_m_offload", key
        assert "fp8_model_offload needs" in choice.reason
        without = choose(REGISTRY[key], card(16, packages=frozenset({"torchao"})))
        assert without.chosen is not None and without.chosen.key == "group_offload"
        plans = {p.key: p for p in without.plans}
        assert "needs gguf" in plans["gguf_q5_k_m_offload"].why_not


def test_without_torchao_a14b_takes_gguf_on_a_48_gb_card() -> None:
    choice = choose(REGISTRY["wan2_2_t2v_a14b"], card(48, packages=frozenset({"gguf"})))
    assert choice.chosen is not None and choice.chosen.kind.gguf is not None


# --- sequential offload ---------------------------------------------------------------------------


def test_sequential_offload_holds_the_largest_layer_and_the_host_every_weight() -> None:
    spec = REGISTRY["wan2_2_t2v_a14b"]
    shape = Shape(1280, 720, 81)
    plans = {p.key: p for p in plans_for(spec, shape, card(80))}
    sequential = plans["sequential_offload"]
    layer = TOKEN_EMBEDDINGS[spec.parameters["text_encoder"]] * 1e6 * 2 / GB
    assert largest_layer(spec) == 1050.1  # UMT5-XXL's token embedding
    assert sequential.vram_gb < plans["group_offload"].vram_gb
    assert sequential.vram_gb > layer
    everything = sum(spec.parameters.values()) * 1e6 * 2 / GB
    assert sequential.host_ram_gb == pytest.approx(plans["model_offload"].host_ram_gb)
    assert sequential.host_ram_gb > everything


def test_every_real_model_s_largest_layer_was_measured_or_estimated_above_the_measured() -> None:
    for key, spec in REGISTRY.items():
        if spec.tiny:
            continue
        assert largest_layer(spec) > 0, key


def test_sequential_offload_is_the_last_resort_the_chooser_and_the_retry_reach() -> None:
    spec = REGISTRY["wan2_2_t2v_a14b"]
    choice = choose(spec, card(7, host=128))
    assert choice.chosen is not None and choice.chosen.key == "sequential_offload"
    assert "group_offload needs" in choice.reason
    lower = step_down(spec, card(7, host=128), "group_offload")
    assert lower is not None and lower.key == "sequential_offload"
    assert step_down(spec, card(7, host=128), "sequential_offload") is None
    assert choose(spec, card(7, host=64)).chosen is None  # 67 GB of weights in host memory


def test_the_manager_places_sequential_offload_with_accelerate_on_cuda_only() -> None:
    assert offload_call("sequential_offload", "cuda:0") == "enable_sequential_cpu_offload"
    assert offload_call("sequential_offload", "cpu") is None  # nothing to offload to
    assert offload_call("model_offload", "cuda:0") is None  # the memory switches place it


def test_sequential_offload_is_chosen_at_load_where_nothing_else_fits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.core.pipelines.base import denoiser_of
    from tests.conftest import _CACHE

    spec = REGISTRY["tiny_wan_a14b"]
    big = dataclasses.replace(spec, parameters=REGISTRY["wan2_2_t2v_a14b"].parameters)
    monkeypatch.setitem(REGISTRY, "tiny_wan_a14b", big)
    monkeypatch.setattr("bot.core.manager.host_ram_gb", lambda: 128.0)
    # with the tiny model's 2 GB of working memory: group offload (a tenth of the experts, 4.3 GB)
    # does not fit 4 GB, one layer at a time (UMT5's 2 GB embedding, 3.6 GB) does
    manager = ModelManager(ManagerOptions(cache_dir=_CACHE, vram_gb=4, device="cpu"))
    try:
        loaded = manager.load_model("tiny_wan_a14b")
        assert loaded.plan is not None and loaded.plan.chosen is not None
        assert loaded.plan.chosen.key == "sequential_offload"
        assert manager._offload_call(loaded) is None  # on the CPU: placed as it is, no hooks
        assert not hasattr(denoiser_of(loaded.pipeline), "_hf_hook")
    finally:
        manager.unload_all()


# --- the tiny twins -----------------------------------------------------------------------------


def test_the_twin_keys_are_city96_s_and_diffusers_converts_them_back() -> None:
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    from bot.core.tiny.gguf import wan_original_keys
    from bot.core.tiny.newer import _wan_expert

    state = _wan_expert(16, 0).state_dict()
    original = wan_original_keys(state)
    assert {"head.modulation", "blocks.0.modulation", "blocks.0.self_attn.q.weight"} <= set(
        original
    )
    assert "blocks.1.norm3.weight" in original and "blocks.1.norm2.weight" not in original
    back = convert_wan_transformer_to_diffusers(dict(original))
    assert set(back) == set(state)
    assert all(back[k] is state[k] for k in state)


@pytest.fixture(scope="module")
def twins() -> Path:
    from bot.core.tiny import build_tiny_model
    from tests.conftest import _CACHE

    build_tiny_model(TINY_GGUF, _CACHE / TINY_GGUF)
    return _CACHE / TINY_GGUF


def test_the_twins_are_real_gguf_files_named_as_quantstack_s(twins: Path) -> None:
    from gguf import GGUFReader

    from tests.local_hub.replica import load_manifest

    repos = load_manifest()["repos"]
    for repo, folder in (("T2V", "t2v"), ("I2V", "i2v")):
        listed = [f for f in repos[f"QuantStack/Wan2.2-{repo}-A14B-GGUF"]["files"] if ".gguf" in f]
        for name in listed:
            assert (twins / folder / name).is_file(), name
        for quant, held in (("Q8_0", "Q8_0"), ("Q5_K_M", "Q5_0"), ("Q4_K_M", "Q4_0")):
            for noise in ("HighNoise", "LowNoise"):
                name = f"{noise}/Wan2.2-{repo}-A14B-{noise}-{quant}.gguf"
                assert name in listed
                reader = GGUFReader(str(twins / folder / name))
                kinds = {t.name: t.tensor_type.name for t in reader.tensors}
                assert kinds["blocks.0.ffn.2.weight"] == held
                assert (
                    kinds["head.modulation"] == "F32" and kinds["patch_embedding.weight"] == "F16"
                )
                arch = reader.fields["general.architecture"]
                assert bytes(arch.parts[arch.data[0]]).decode() == "wan"


def test_the_local_hub_serves_the_twins_under_the_real_names(twins: Path) -> None:
    from tests.conftest import _CACHE
    from tests.local_hub.replica import build_repos

    repo = build_repos(_CACHE)["QuantStack/Wan2.2-T2V-A14B-GGUF"]
    name = "LowNoise/Wan2.2-T2V-A14B-LowNoise-Q4_K_M.gguf"
    assert repo.files[name] == (twins / "t2v" / name).read_bytes()
    assert REGISTRY["wan2_2_t2v_a14b"].gguf_files["transformer_2"].format(quant="Q4_K_M") == (
        f"QuantStack/Wan2.2-T2V-A14B-GGUF/{name}"
    )


def test_a_gguf_file_name_that_is_neither_local_nor_on_the_hub_is_refused() -> None:
    from bot.core.pipelines.gguf import local_gguf_file

    with pytest.raises(ValueError, match=r"expected a local \.gguf file or owner/repo/path"):
        local_gguf_file("QuantStack/Wan2.2-T2V-A14B-GGUF")


# --- rendering ----------------------------------------------------------------------------------


def _frames(manager: ModelManager, params: object) -> np.ndarray:
    result = GenerationEngine(manager).generate_video(params)  # type: ignore[arg-type]
    assert result.ok, result.error
    return np.stack([np.asarray(image, dtype=np.float32) for image in result.images])


def _params() -> object:
    from bot.core import GenerationParams

    return GenerationParams(
        prompt="a paper boat on a pond",
        model="tiny_wan_a14b",
        width=64,
        height=64,
        num_frames=5,
        num_inference_steps=2,
        seed=1234,
    )


@pytest.fixture(scope="module")
def fp32_frames() -> np.ndarray:
    """The tiny A14B in fp32 from its own safetensors (a tiny model has no plan)."""
    from tests.conftest import _CACHE

    full = ModelManager(ManagerOptions(cache_dir=_CACHE, device="cpu"))
    try:
        return _frames(full, _params())
    finally:
        full.unload_all()


@pytest.mark.parametrize(("plan", "tolerance"), [("gguf_q8_0", 0.5), ("gguf_q4_k_m", 2.0)])
def test_the_tiny_a14b_renders_under_a_gguf_plan_close_to_full_precision(
    monkeypatch: pytest.MonkeyPatch,
    twins: Path,
    fp32_frames: np.ndarray,
    plan: str,
    tolerance: float,
) -> None:
    """Both experts come from their GGUF twins, stay quantised in memory and are dequantised on
    the CPU as they run; the frames stay within a stated tolerance of the fp32 ones."""
    from diffusers.quantizers.gguf.utils import GGUFParameter

    from tests.conftest import _CACHE

    spec = REGISTRY["tiny_wan_a14b"]
    real = REGISTRY["wan2_2_t2v_a14b"]
    monkeypatch.setitem(
        REGISTRY, "tiny_wan_a14b", dataclasses.replace(spec, parameters=real.parameters)
    )
    monkeypatch.setattr("bot.core.manager.host_ram_gb", lambda: 128.0)
    manager = ModelManager(ManagerOptions(cache_dir=_CACHE, device="cpu", vram_gb=16, plan=plan))
    try:
        loaded = manager.load_model("tiny_wan_a14b")
        assert loaded.plan is not None and loaded.plan.chosen is not None
        assert loaded.plan.chosen.key == plan
        for expert in (loaded.pipeline.transformer, loaded.pipeline.transformer_2):
            quantised = [p for p in expert.parameters() if isinstance(p, GGUFParameter)]
            # the four tensors whose rows are whole blocks, less the time embedder's, which
            # diffusers keeps in fp32 (WanTransformer3DModel._keep_in_fp32_modules)
            assert len(quantised) == 3
        frames = _frames(manager, _params())
    finally:
        manager.unload_all()
    difference = np.abs(frames - fp32_frames)
    # the twins' Q8_0 within 0.5/255 on average of fp32 (0.014 seen, at most 1/255), Q4_0 (the
    # Q4_K_M file's) within 2/255 (0.23 seen, at most 3/255)
    assert difference.mean() < tolerance, difference.mean()
    assert difference.max() > 0  # the quantised weights were used, not the repo's own
