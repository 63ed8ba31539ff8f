"""Step-distillation LoRAs fused at load (``bot.core.pipelines.loras``): the tiny twin of Wan 2.1
14B + lightx2v's 4-step LoRA (``tiny_wan_lightx2v``) carries a LoRA file in lightx2v's own key
format, read by diffusers' real converter and fused with peft. The fused weights are the base plus
the low-rank product, nothing of the LoRA is left at run time, a wrong or broken file is refused
with one clear line and the manager keeps serving, and a draft of tiny Wan runs on the partner."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from bot.core import GenerationParams
from bot.core.engine import GenerationEngine
from bot.core.manager import ManagerOptions, ModelManager
from bot.core.registry import REGISTRY
from bot.core.tiny import LIGHTX2V_LORA_FILE, build_tiny_model

KEY = "tiny_wan_lightx2v"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lora_file(model_cache: Path) -> Path:
    build_tiny_model(KEY, model_cache / KEY)
    return model_cache / KEY / "lora" / LIGHTX2V_LORA_FILE


def engine_with(model_cache: Path, **sources: str) -> GenerationEngine:
    options = ManagerOptions(device="cpu", dtype="float32", cache_dir=model_cache, sources=sources)
    return GenerationEngine(ModelManager(options))


def frames(result: Any) -> np.ndarray:
    assert result.ok, result.error
    return np.stack([np.asarray(image) for image in result.images]).astype(np.int16)


def job(key: str, **changes: Any) -> GenerationParams:
    values: dict[str, Any] = {"prompt": "a kite over the dunes", "model": key, "seed": 5}
    return GenerationParams(**{**values, **changes})


def test_the_registry_pairs_wan_14b_with_lightx2vs_published_lora() -> None:
    base, fused = REGISTRY["wan2_1_14b"], REGISTRY["wan2_1_14b_lightx2v"]
    assert base.draft_model == fused.key and fused.source == base.source
    assert fused.lora_source == (
        "lightx2v/Wan2.1-Distill-Loras/wan2.1_t2v_14b_lora_rank64_lightx2v_4step.safetensors"
    )
    # The card's recipe: 4 steps, no guidance, shift 5.
    assert (fused.default_steps, fused.default_guidance) == (4, 1.0)
    assert fused.scheduler_config_for(1280, 720)["flow_shift"] == 5.0
    # Its tiny twin: the same recipe on tiny Wan, which drafts on it.
    tiny = REGISTRY[KEY]
    assert (tiny.default_steps, tiny.default_guidance) == (4, 1.0)
    assert REGISTRY["tiny_wan"].draft_model == KEY


def test_the_unipc_schedule_at_shift_5_is_lightx2vs_four_timesteps() -> None:
    """LightX2V samples at timesteps 1000, 750, 500, 250 shifted by 5; the partner's scheduler,
    built as the engine builds it, must land on the same ones."""
    from diffusers import UniPCMultistepScheduler

    base = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True)
    config = REGISTRY["wan2_1_14b_lightx2v"].scheduler_config_for(1280, 720)
    scheduler = UniPCMultistepScheduler.from_config(base.config, **config)
    scheduler.set_timesteps(4)
    sigmas = np.array([1.0, 0.75, 0.5, 0.25])
    shifted = 5 * sigmas / (1 + 4 * sigmas)
    np.testing.assert_allclose(scheduler.sigmas[:4].numpy(), shifted, atol=2e-3)


def test_the_tiny_lora_is_in_lightx2vs_key_format_and_diffusers_converts_all_of_it(
    lora_file: Path, manager: ModelManager
) -> None:
    from diffusers import WanPipeline

    state = load_file(str(lora_file))
    assert all(name.startswith("diffusion_model.") for name in state)
    kinds = {
        name.rsplit(".", 2)[-2] if "lora" in name else name.rsplit(".", 1)[-1] for name in state
    }
    assert kinds == {"lora_down", "lora_up", "diff_b", "diff", "diff_m"}
    assert {t.dtype for t in state.values()} == {torch.bfloat16}
    converted = WanPipeline.lora_state_dict(str(lora_file))
    transformer = manager.load_model("tiny_wan").pipeline.transformer
    modules = dict(transformer.named_modules())
    targets = {name.removeprefix("transformer.").rsplit(".lora_", 1)[0] for name in converted}
    assert targets and targets <= set(modules)
    # Every linear layer of the tiny transformer gets a low-rank pair: nothing is left out.
    linears = {name for name, module in modules.items() if isinstance(module, torch.nn.Linear)}
    assert targets == linears


def test_fused_weights_are_the_base_plus_the_low_rank_product(
    lora_file: Path, model_cache: Path
) -> None:
    from diffusers import WanTransformer3DModel

    base = WanTransformer3DModel.from_pretrained(model_cache / KEY / "base" / "transformer")
    engine = engine_with(model_cache)
    loaded = engine.manager.load_model(KEY)
    fused = loaded.pipeline.transformer
    lora = {k: v.float() for k, v in load_file(str(lora_file)).items()}
    pairs = {
        "blocks.1.self_attn.q": "blocks.1.attn1.to_q",
        "blocks.0.cross_attn.o": "blocks.0.attn2.to_out.0",
        "blocks.0.ffn.2": "blocks.0.ffn.net.2",
        "head.head": "proj_out",
        "time_projection.1": "condition_embedder.time_proj",
    }
    base_state, fused_state = base.state_dict(), fused.state_dict()
    for theirs, ours in pairs.items():
        key = f"diffusion_model.{theirs}"
        delta = lora[f"{key}.lora_up.weight"] @ lora[f"{key}.lora_down.weight"]
        torch.testing.assert_close(
            fused_state[f"{ours}.weight"], base_state[f"{ours}.weight"] + delta
        )
        torch.testing.assert_close(
            fused_state[f"{ours}.bias"], base_state[f"{ours}.bias"] + lora[f"{key}.diff_b"]
        )
    # No LoRA layer is left: each step runs the plain fused weights.
    assert not [name for name in fused_state if "lora" in name]
    assert not getattr(fused, "peft_config", None)
    assert type(fused.blocks[0].attn1.to_q) is torch.nn.Linear
    # Image-to-video shares the very same fused modules.
    assert engine.manager.image_pipeline(loaded).transformer is fused


def test_the_lora_is_the_only_difference_from_the_base_model(
    lora_file: Path, model_cache: Path, tmp_path: Path
) -> None:
    """Same settings on tiny Wan and on its LoRA partner: other frames. With a LoRA whose every
    product and bias difference is zero, the partner renders tiny Wan's frames exactly."""
    settings = {"num_inference_steps": 4, "guidance_scale": 1.0, "num_frames": 9}
    engine = engine_with(model_cache)
    plain = frames(engine.generate_video(job("tiny_wan", **settings)))
    distilled = frames(engine.generate_video(job(KEY, **settings)))
    assert plain.shape == distilled.shape
    assert np.abs(plain - distilled).mean() > 1.0

    zero = {
        name: torch.zeros_like(t) if name.endswith(("lora_up.weight", "diff_b")) else t
        for name, t in load_file(str(lora_file)).items()
    }
    save_file(zero, str(tmp_path / "zero.safetensors"))
    neutral = engine_with(model_cache, **{f"{KEY}:lora": str(tmp_path / "zero.safetensors")})
    assert np.array_equal(frames(neutral.generate_video(job(KEY, **settings))), plain)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (
            "wider",
            r"26 of its layers do not match the model's shapes \(first: .*it was made for another model",
        ),
        (
            "nan",
            r"holds NaN or infinite values \(1 tensor, first: "
            r"diffusion_model\.blocks\.0\.self_attn\.q\.lora_up\.weight\); the file is broken",
        ),
        ("missing", r"is neither a file nor owner/repo/file\.safetensors on the hub"),
    ],
)
def test_a_lora_that_does_not_fit_is_refused_in_one_line_and_the_manager_keeps_serving(
    lora_file: Path, model_cache: Path, tmp_path: Path, damage: str, expected: str
) -> None:
    state = load_file(str(lora_file))
    if damage == "wider":  # a LoRA for a bigger model: its down matrices read other widths
        state = {
            n: torch.randn(t.shape[0], 48) if n.endswith("lora_down.weight") else t
            for n, t in state.items()
        }
    elif damage == "nan":
        name = "diffusion_model.blocks.0.self_attn.q.lora_up.weight"
        state[name] = torch.full_like(state[name], float("nan"))
    path = tmp_path / f"{damage}.safetensors"
    if damage != "missing":
        save_file(state, str(path))
    engine = engine_with(model_cache, **{f"{KEY}:lora": str(path)})
    result = engine.generate_video(job(KEY))
    assert not result.ok and result.error is not None
    assert "\n" not in result.error and len(result.error) < 600
    assert re.search(expected, result.error), result.error
    if damage != "missing":
        assert 'sources["key:lora"]' in result.error  # what to do about it
    assert not engine.manager.is_loaded(KEY)
    # The manager serves the next job as before.
    assert engine.generate_video(job("tiny_wan", num_inference_steps=1)).ok


def test_a_draft_of_tiny_wan_runs_its_lora_partner_without_guidance(
    model_cache: Path,
) -> None:
    engine = engine_with(model_cache)
    calls: list[str] = []

    def count(module: Any, _args: Any) -> None:
        if type(module).__name__ == "WanTransformer3DModel":
            calls.append(type(module).__name__)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(count)
    try:
        result = engine.generate_video(job("tiny_wan", quality="draft", num_inference_steps=8))
    finally:
        handle.remove()
    assert result.ok, result.error
    assert result.metadata["model"] == KEY
    assert result.metadata["draft"]["recipe"] == "partner"
    assert result.metadata["draft"]["note"].endswith(
        "4 steps without guidance instead of 8 steps with guidance"
    )
    # 4 unguided passes, where the full render runs 8 steps of two passes each.
    assert len(calls) == 4
