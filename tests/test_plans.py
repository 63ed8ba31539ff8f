"""Memory plans: figures from the real parameter counts, the chooser across card sizes, a plan
applied at load, and the out-of-memory retry stepping down the same list."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from bot.core import JobControl
from bot.core.engine import GenerationEngine
from bot.core.manager import ManagerOptions, ModelManager
from bot.core.pipelines.base import denoiser_of
from bot.core.plans import (
    GB,
    HEADROOM,
    PLAN_KEYS,
    Card,
    Shape,
    choose,
    kinds_for,
    plans_for,
    step_down,
    working_gb,
)
from bot.core.registry import REGISTRY
from bot.worker import generate_with_oom_retry

REAL = [key for key, spec in REGISTRY.items() if not spec.tiny]
CARDS = (12, 16, 24, 48, 80)


def card(vram: float, host: float = 64.0) -> Card:
    return Card(vram_gb=vram, host_ram_gb=host, compute_capability=(8, 9))


def test_every_real_model_carries_its_parameter_counts() -> None:
    for key in REAL:
        parts = REGISTRY[key].parameters
        assert parts, key
        assert {"text_encoder", "vae"} <= set(parts), key
        assert {"transformer", "unet"} & set(parts), key


@pytest.mark.parametrize("key", REAL)
def test_the_chooser_picks_the_fastest_plan_that_fits_on_every_card(key: str) -> None:
    spec = REGISTRY[key]
    ranks = []
    for vram in CARDS:
        choice = choose(spec, card(vram))
        assert choice.chosen is not None, f"{key} on {vram} GB: {choice.reason}"
        assert choice.chosen.vram_gb <= vram * HEADROOM
        index = choice.plans.index(choice.chosen)
        assert all(not p.fits for p in choice.plans[:index])  # every faster plan was too big
        ranks.append(PLAN_KEYS.index(choice.chosen.key))
    assert ranks == sorted(ranks, reverse=True)  # a bigger card never gets a slower plan


def test_weights_are_counted_exactly_and_fp8_storage_halves_the_denoiser() -> None:
    spec = REGISTRY["wan2_1_14b"]
    bf16, fp8 = plans_for(spec, Shape(1280, 720, 81), card(80))[:2]
    saved = spec.parameters["transformer"] * 1e6 / GB
    assert bf16.vram_gb - fp8.vram_gb == pytest.approx(saved)
    weights = sum(spec.parameters.values()) * 1e6 * 2 / GB
    assert bf16.vram_gb > weights  # weights, the working memory and the CUDA context


def test_working_memory_grows_with_the_job() -> None:
    spec = REGISTRY["wan2_1_1_3b"]
    small = working_gb(spec, Shape(832, 480, 41))
    native = working_gb(spec, Shape(832, 480, 81))
    assert small == pytest.approx(native * 41 / 81)


def test_the_14b_lands_on_an_fp8_plan_on_a_24_gb_card_and_says_why() -> None:
    choice = choose(REGISTRY["wan2_1_14b"], card(24))
    assert choice.chosen is not None and "fp8" in choice.chosen.key
    assert "needs" in choice.reason and "the card has 24" in choice.reason


def test_no_plan_fits_says_what_it_needs() -> None:
    choice = choose(REGISTRY["wan2_1_14b"], card(4, host=8))
    assert choice.chosen is None
    assert "no plan fits" in choice.reason and "GB of RAM" in choice.reason


def test_step_down_goes_to_a_plan_that_needs_less_memory() -> None:
    spec = REGISTRY["wan2_1_14b"]
    lower = step_down(spec, card(80), "bf16")
    assert lower is not None and lower.key != "bf16"
    assert lower.vram_gb < plans_for(spec, Shape(1280, 720, 81), card(80))[0].vram_gb
    assert step_down(spec, card(80), PLAN_KEYS[-1]) is None


def test_quantisation_plans_need_torchao_and_a_transformer() -> None:
    wan = REGISTRY["wan2_1_1_3b"]
    without = Card(vram_gb=12, host_ram_gb=64, compute_capability=(8, 9), packages=frozenset())
    plans = {p.key: p for p in plans_for(wan, Shape(832, 480, 81), without)}
    assert not plans["torchao_int8"].fits and "needs torchao" in plans["torchao_int8"].why_not
    older = Card(vram_gb=12, host_ram_gb=64, compute_capability=(8, 6))
    plans = {p.key: p for p in plans_for(wan, Shape(832, 480, 81), older)}
    assert "compute capability 8.9" in plans["torchao_fp8"].why_not
    assert choose(wan, older).chosen.key == "torchao_int8"  # type: ignore[union-attr]
    # quantising the text encoder too is what makes it smaller than fp8 storage
    assert plans["torchao_int8"].vram_gb < plans["fp8_storage"].vram_gb
    assert "torchao_int8" not in {k.key for k in kinds_for(REGISTRY["animatediff"])}


def test_an_unknown_plan_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="plan: unknown plan 'fastest'; allowed: auto, bf16"):
        ManagerOptions(plan="fastest")


# --- applied at load, on the CPU, with a tiny model that claims the 14B's parameter counts -------


@pytest.fixture
def big_tiny_wan(monkeypatch: pytest.MonkeyPatch) -> str:
    spec = REGISTRY["tiny_wan"]
    big = dataclasses.replace(spec, parameters=REGISTRY["wan2_1_14b"].parameters, vram_gb=44)
    monkeypatch.setitem(REGISTRY, "tiny_wan", big)
    monkeypatch.setattr("bot.core.manager.host_ram_gb", lambda: 128.0)  # a host with room for it
    return "tiny_wan"


def test_the_chosen_plan_is_applied_at_load(big_tiny_wan: str, tmp_path: Path) -> None:
    from tests.conftest import _CACHE

    manager = ModelManager(ManagerOptions(cache_dir=_CACHE, vram_gb=48))
    try:
        loaded = manager.load_model(big_tiny_wan)
        assert loaded.plan is not None and loaded.plan.chosen is not None
        assert loaded.plan.chosen.key == "fp8_storage"
        weights = {p.dtype for p in denoiser_of(loaded.pipeline).parameters()}
        assert torch.float8_e4m3fn in weights  # the denoiser is stored in fp8
        row = next(r for r in manager.list_models() if r.key == big_tiny_wan)
        assert row.plan is loaded.plan
    finally:
        manager.unload_all()


def test_without_a_card_no_plan_applies(tmp_path: Path) -> None:
    from tests.conftest import _CACHE

    manager = ModelManager(ManagerOptions(cache_dir=_CACHE))
    try:
        loaded = manager.load_model("tiny_wan")
        assert loaded.plan is None
        assert all(p.dtype == torch.float32 for p in denoiser_of(loaded.pipeline).parameters())
    finally:
        manager.unload_all()


def test_out_of_memory_steps_the_model_down_to_the_next_plan(
    big_tiny_wan: str, small_params, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.conftest import _CACHE

    manager = ModelManager(ManagerOptions(cache_dir=_CACHE, vram_gb=80))
    engine = GenerationEngine(manager)
    try:
        loaded = manager.load_model(big_tiny_wan)
        assert loaded.plan is not None and loaded.plan.chosen is not None
        assert loaded.plan.chosen.key == "bf16"

        def out_of_memory(*args: object) -> None:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

        denoiser_of(loaded.pipeline).register_forward_pre_hook(out_of_memory)
        params = small_params(model=big_tiny_wan, num_frames=5, num_inference_steps=2)
        with caplog.at_level("WARNING"):
            result = generate_with_oom_retry(engine, params, JobControl())
        assert result.ok, result.error
        now = manager.get_loaded(big_tiny_wan)
        assert now is not loaded and now.plan is not None and now.plan.chosen is not None
        assert now.plan.chosen.key == result.metadata["stepped_down_to_plan"] != "bf16"
        assert "stepping down to plan" in caplog.text
    finally:
        manager.unload_all()


def test_videobot_models_json_plans_every_model_on_every_card_size() -> None:
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "bot", "models", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    entries = {entry["key"]: entry for entry in json.loads(done.stdout)["models"]}
    assert set(entries) == set(REGISTRY)
    for key in REAL:
        memory = entries[key]["memory"]
        assert set(memory["plan_by_card_gb"]) == {"12", "16", "24", "48", "80"}
        assert all(memory["plan_by_card_gb"].values()), (key, memory["plan_by_card_gb"])
        assert [plan["plan"] for plan in memory["plans"]] == [
            kind.key for kind in kinds_for(REGISTRY[key])
        ]
        assert entries[key]["rules"]["frames"]["max"] == REGISTRY[key].frames.high
    assert entries["tiny_wan"]["memory"]["plans"] is None


def test_videobot_models_shows_the_plan_a_card_gets() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "bot", "models", "--vram-gb", "12"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    wan = next(line for line in done.stdout.splitlines() if line.startswith("wan2_1_1_3b "))
    assert choose(REGISTRY["wan2_1_1_3b"], card(12)).chosen is not None
    assert "plan" in done.stdout.splitlines()[0] and "12 GB card" in done.stdout
    assert any(key in wan for key in PLAN_KEYS) or "none fits" in wan


def test_the_torchao_int8_plan_quantises_and_renders_close_to_full_precision(
    monkeypatch: pytest.MonkeyPatch, small_params
) -> None:
    import numpy as np

    from tests.conftest import _CACHE

    spec = REGISTRY["tiny_wan"]
    monkeypatch.setitem(
        REGISTRY,
        "tiny_wan",
        dataclasses.replace(spec, parameters=REGISTRY["wan2_1_1_3b"].parameters),
    )
    monkeypatch.setattr("bot.core.manager.host_ram_gb", lambda: 128.0)
    params = small_params(model="tiny_wan", num_frames=5, num_inference_steps=3)
    frames = {}
    for vram in (0.0, 12.0):
        manager = ModelManager(ManagerOptions(cache_dir=_CACHE, vram_gb=vram))
        try:
            loaded = manager.load_model("tiny_wan")
            if vram:
                assert loaded.plan is not None and loaded.plan.chosen is not None
                assert loaded.plan.chosen.key == "torchao_int8"
                pipe = loaded.pipeline
                weight = pipe.transformer.blocks[0].attn1.to_q.weight
                assert "Int8" in type(weight).__name__
                assert "Int8" in type(pipe.text_encoder.shared.weight).__name__ or any(
                    "Int8" in type(p).__name__ for p in pipe.text_encoder.parameters()
                )
            result = GenerationEngine(manager).generate_video(params)
            assert result.ok, result.error
            frames[vram] = np.stack(
                [np.asarray(image, dtype=np.float32) for image in result.images]
            )
        finally:
            manager.unload_all()
    difference = np.abs(frames[12.0] - frames[0.0]).mean()
    assert difference < 8.0, difference  # int8 weights: within 8/255 on average of fp32


def test_offload_plans_hold_one_expert_of_a_two_expert_model_at_a_time() -> None:
    one = dataclasses.replace(REGISTRY["wan2_1_14b"], working_gb=5.0)
    two = dataclasses.replace(
        one, parameters={**one.parameters, "transformer_2": one.parameters["transformer"]}
    )
    shape = Shape(1280, 720, 81)
    single = {p.key: p for p in plans_for(one, shape, card(80))}
    double = {p.key: p for p in plans_for(two, shape, card(80))}
    expert = one.parameters["transformer"] * 1e6 * 2 / GB
    assert double["bf16"].vram_gb == pytest.approx(single["bf16"].vram_gb + expert)
    assert double["model_offload"].vram_gb == pytest.approx(single["model_offload"].vram_gb)
    assert double["model_offload"].host_ram_gb == pytest.approx(
        single["model_offload"].host_ram_gb + expert
    )


def test_fp8_storage_casts_both_experts_of_a_two_expert_model() -> None:
    from tests.conftest import _CACHE

    manager = ModelManager(ManagerOptions(cache_dir=_CACHE, layerwise_casting=True))
    try:
        pipe = manager.load_model("tiny_wan_a14b").pipeline
        for expert in (pipe.transformer, pipe.transformer_2):
            assert torch.float8_e4m3fn in {p.dtype for p in expert.parameters()}
    finally:
        manager.unload_all()
