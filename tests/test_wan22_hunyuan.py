"""Wan 2.2 A14B (two experts: T2V, I2V and lightx2v's 4-step pair) and HunyuanVideo 1.5 (T2V, I2V,
the step-distilled I2V) on their tiny twins: the card recipes in the registry, both experts
running and switching at the boundary, the low-noise guidance reaching the low-noise expert,
the LoRA pair fused file by file into its expert, Hunyuan's guider taking the job's guidance and
its steps reported from the scheduler, pictures through the I2V repo, drafts on the partners,
previews and caches."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from bot.core import GenerationParams, InvalidParameterError, JobControl
from bot.core.caches import cache_applied, plan_cache, supported_caches
from bot.core.engine import GenerationEngine
from bot.core.manager import ManagerOptions, ModelManager
from bot.core.pipelines.loras import LoraError, fuse_lora, lora_files
from bot.core.previews import projection_for
from bot.core.registry import REGISTRY, get_spec, guidance_2_of
from bot.core.tiny import build_tiny_model
from bot.core.tiny.newer import LIGHTX2V_22_FILES

TINY = (
    "tiny_wan_a14b",
    "tiny_wan_a14b_lightx2v",
    "tiny_wan_a14b_i2v",
    "tiny_hunyuan15",
    "tiny_hunyuan15_i2v_distilled",
)
PROMPT = "a paper boat drifting on a pond"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def job(model: str, **changes: Any) -> GenerationParams:
    values: dict[str, Any] = {"prompt": PROMPT, "model": model, "seed": 3}
    return GenerationParams(**{**values, "num_inference_steps": 2, **changes})


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("picture") / "boat.png"
    pixels = np.zeros((64, 80, 3), np.uint8)
    pixels[:, :40] = (200, 40, 30)
    pixels[::3] = 255
    Image.fromarray(pixels).save(path)
    return str(path)


@contextlib.contextmanager
def expert_timesteps(pipeline: Any) -> Iterator[dict[str, list[float]]]:
    """The timestep of every call of a Wan 2.2 pipeline's two experts, by expert, while inside."""
    seen: dict[str, list[float]] = {"transformer": [], "transformer_2": []}
    hooks = [
        getattr(pipeline, name).register_forward_pre_hook(
            lambda _m, _a, kwargs, name=name: seen[name].append(float(kwargs["timestep"][0])),
            with_kwargs=True,
        )
        for name in seen
    ]
    try:
        yield seen
    finally:
        for hook in hooks:
            hook.remove()


@pytest.fixture
def expert_calls(engine: GenerationEngine) -> Iterator[dict[str, list[float]]]:
    """The timestep of every call of tiny_wan_a14b's two experts, by expert."""
    with expert_timesteps(engine.manager.load_model("tiny_wan_a14b").pipeline) as seen:
        yield seen


# --- the recipes --------------------------------------------------------------------------------


def test_the_registry_holds_each_cards_recipe() -> None:
    """Wan2.2's wan/configs (T2V: 40 steps, shift 12, guidance 4.0 high / 3.0 low; I2V: shift 5,
    3.5 / 3.5), 81 frames at 16 fps at 1280x720; lightx2v's 4 steps without CFG at shift 5;
    HunyuanVideo 1.5 480p: 848x480, 121 frames at 24 fps, 50 steps, guidance 6, shift 5; the
    step-distilled I2V: 12 steps, guidance 1, shift 7."""
    t2v, i2v = REGISTRY["wan2_2_t2v_a14b"], REGISTRY["wan2_2_i2v_a14b"]
    for spec in (t2v, i2v):
        assert (spec.default_steps, spec.default_frames, spec.default_fps) == (40, 81, 16)
        assert (spec.native_width, spec.native_height) == (1280, 720)
        assert spec.frames.accepts(81) and not spec.frames.accepts(85)
        assert set(spec.parameters) >= {"transformer", "transformer_2"}
    assert (t2v.default_guidance, t2v.guidance_2) == (4.0, 3.0)
    assert t2v.scheduler_config_for(832, 480)["flow_shift"] == 12.0
    assert t2v.scheduler_config_for(1280, 720)["flow_shift"] == 12.0
    assert (i2v.default_guidance, i2v.guidance_2) == (3.5, 3.5)
    assert i2v.scheduler_config_for(1280, 720)["flow_shift"] == 5.0
    assert i2v.image_only and not t2v.image_to_video
    for base, partner in ((t2v, "wan2_2_t2v_a14b_lightx2v"), (i2v, "wan2_2_i2v_a14b_lightx2v")):
        lora = REGISTRY[partner]
        assert base.draft_model == partner and lora.source == base.source
        assert (lora.default_steps, lora.default_guidance, lora.guidance_2) == (4, 1.0, None)
        assert lora.scheduler_config_for(1280, 720)["flow_shift"] == 5.0
        assert lora.lora_scale == 1.0
    high, low = lora_files(REGISTRY["wan2_2_t2v_a14b_lightx2v"].lora_source or "")
    assert high.endswith("/" + LIGHTX2V_22_FILES["t2v_high"])
    assert low == "lightx2v/Wan2.2-Distill-Loras/" + LIGHTX2V_22_FILES["t2v_low"]
    assert lora_files(REGISTRY["wan2_2_i2v_a14b_lightx2v"].lora_source or "")[1] == (
        "lightx2v/Wan2.2-Distill-Loras/" + LIGHTX2V_22_FILES["i2v_low"]
    )
    hy = REGISTRY["hunyuan_video15_480p"]
    assert hy.source == "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_t2v"
    assert hy.image_source == "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v"
    assert (hy.native_width, hy.native_height, hy.default_frames, hy.default_fps) == (
        848,
        480,
        121,
        24,
    )
    assert (hy.default_steps, hy.default_guidance, hy.scheduler_config) == (50, 6.0, {"shift": 5.0})
    distilled = REGISTRY[hy.draft_model or ""]
    assert distilled.image_only and distilled.source.endswith("-480p_i2v_step_distilled")
    assert (distilled.default_steps, distilled.default_guidance) == (12, 1.0)
    assert distilled.scheduler_config == {"shift": 7.0}


def test_the_low_noise_guidance_keeps_the_cards_ratio_and_never_drops_below_one() -> None:
    spec = REGISTRY["wan2_2_t2v_a14b"]
    assert spec.guidance_2_for(4.0) == 3.0 and spec.guidance_2_for(8.0) == 6.0
    assert spec.guidance_2_for(1.2) == 1.0 and guidance_2_of(1.0, 0.75) == 1.0
    assert REGISTRY["wan2_2_i2v_a14b"].guidance_2_for(5.0) == 5.0
    assert REGISTRY["wan2_2_t2v_a14b_lightx2v"].guidance_2_for(1.0) is None


def test_a_picture_only_model_refuses_a_job_without_a_picture() -> None:
    for key in ("wan2_2_i2v_a14b", "hunyuan_video15_480p_i2v_distilled", "tiny_wan_a14b_i2v"):
        with pytest.raises(InvalidParameterError, match="animates pictures only"):
            GenerationParams(prompt=PROMPT, model=key)
    GenerationParams(prompt=PROMPT, model="hunyuan_video15_480p")  # text and pictures


# --- every tiny twin renders ----------------------------------------------------------------------


@pytest.mark.parametrize("key", TINY)
def test_each_new_tiny_model_renders_its_defaults(
    engine: GenerationEngine, picture: str, key: str
) -> None:
    spec = get_spec(key)
    image = picture if spec.image_only else None
    result = engine.generate_video(job(key, image=image))
    assert result.ok, result.error
    assert len(result.images) == spec.default_frames
    assert result.size == (spec.native_width, spec.native_height)
    assert np.asarray(result.images[0]).std() > 0


# --- Wan 2.2 A14B's two experts ---------------------------------------------------------------------


def test_both_experts_run_and_switch_at_the_boundary(
    engine: GenerationEngine, expert_calls: dict[str, list[float]]
) -> None:
    """8 guided steps at shift 12: the high-noise expert runs every step at t >= 875 (boundary
    0.875 x 1000), the low-noise one every step below, each twice a step (with and without the
    prompt)."""
    result = engine.generate_video(job("tiny_wan_a14b", num_inference_steps=8))
    assert result.ok, result.error
    high, low = expert_calls["transformer"], expert_calls["transformer_2"]
    assert high and low
    assert min(high) >= 875 > max(low)
    assert len(high) + len(low) == 2 * 8
    assert max(high) >= 990  # the first step (t = 999) is the high-noise expert's


def test_the_low_noise_expert_gets_guidance_scale_2(engine: GenerationEngine) -> None:
    """The job's guidance guides ``transformer``; ``guidance_scale_2`` (the card's 3/4 of it)
    guides ``transformer_2``, as the pipeline recorded them for the run."""
    loaded = engine.manager.load_model("tiny_wan_a14b")
    assert engine.generate_video(job("tiny_wan_a14b", guidance_scale=8.0)).ok
    assert loaded.pipeline._guidance_scale == 8.0
    assert loaded.pipeline._guidance_scale_2 == 6.0
    with_ratio = engine.generate_video(job("tiny_wan_a14b", guidance_scale=8.0))
    assert engine.generate_video(job("tiny_wan_a14b", guidance_scale=2.0)).ok
    assert loaded.pipeline._guidance_scale_2 == 1.5
    other = engine.generate_video(job("tiny_wan_a14b", guidance_scale=8.0, seed=4))
    assert not np.array_equal(np.asarray(with_ratio.images[-1]), np.asarray(other.images[-1]))


def test_a_draft_runs_the_lightx2v_partner_in_four_unguided_expert_passes(
    engine: GenerationEngine,
) -> None:
    partner = engine.manager.load_model("tiny_wan_a14b_lightx2v")
    with expert_timesteps(partner.pipeline) as seen:
        result = engine.generate_video(
            job("tiny_wan_a14b", num_inference_steps=40, quality="draft")
        )
    assert result.ok, result.error
    assert result.metadata["draft"]["model"] == "tiny_wan_a14b_lightx2v"
    # UniPC at shift 5, 4 steps: t = 1000 and 937.5 high-noise, 833 and 625 low-noise, as
    # LightX2V's boundary_step_index 2.
    assert len(seen["transformer"]) == 2 and len(seen["transformer_2"]) == 2
    assert min(seen["transformer"]) >= 875 > max(seen["transformer_2"])


# --- lightx2v's LoRA pair ---------------------------------------------------------------------------


def _delta(state: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    up = state[f"diffusion_model.{key}.lora_up.weight"].float()
    down = state[f"diffusion_model.{key}.lora_down.weight"].float()
    return up @ down


def test_the_pair_fuses_high_into_transformer_and_low_into_transformer_2(
    engine: GenerationEngine, model_cache: Path
) -> None:
    """Each expert gains exactly its own file's low-rank product (lightx2v's files carry no alpha:
    strength 1), and no LoRA layer is left behind."""
    base = engine.manager.load_model("tiny_wan_a14b").pipeline
    fused = engine.manager.load_model("tiny_wan_a14b_lightx2v").pipeline
    folder = model_cache / "tiny_wan_a14b_lightx2v" / "lora"
    high = load_file(str(folder / LIGHTX2V_22_FILES["t2v_high"]))
    low = load_file(str(folder / LIGHTX2V_22_FILES["t2v_low"]))
    for expert, state, other in (("transformer", high, low), ("transformer_2", low, high)):
        before = getattr(base, expert).blocks[0].attn1.to_q.weight.float()
        after = getattr(fused, expert).blocks[0].attn1.to_q.weight.float()
        change = after - before
        torch.testing.assert_close(change, _delta(state, "blocks.0.self_attn.q"), atol=2e-3, rtol=0)
        assert not torch.allclose(change, _delta(other, "blocks.0.self_attn.q"), atol=2e-3)
        names = [n for n, _ in getattr(fused, expert).named_modules()]
        assert not any("lora" in n for n in names)
        assert type(getattr(fused, expert).blocks[0].attn1.to_q) is torch.nn.Linear


def test_a_pair_for_a_one_expert_model_is_refused_in_one_line(model_cache: Path) -> None:
    build_tiny_model("tiny_wan_a14b_lightx2v", model_cache / "tiny_wan_a14b_lightx2v")
    pair = str(model_cache / "tiny_wan_a14b_lightx2v" / "lora" / LIGHTX2V_22_FILES["t2v_high"])
    pair += "+" + LIGHTX2V_22_FILES["t2v_low"]
    options = ManagerOptions(cache_dir=model_cache, sources={"tiny_wan_lightx2v:lora": pair})
    result = GenerationEngine(ModelManager(options)).generate_video(job("tiny_wan_lightx2v"))
    assert not result.ok and result.error is not None and "\n" not in result.error
    assert "needs a second transformer" in result.error


def test_fuse_lora_reads_a_pair_of_whole_sources(model_cache: Path, tmp_path: Path) -> None:
    folder = model_cache / "tiny_wan_a14b_lightx2v" / "lora"
    first, second = str(folder / LIGHTX2V_22_FILES["i2v_high"]), str(tmp_path / "low.safetensors")
    assert lora_files(f"{first}+{second}") == (first, second)
    assert lora_files("owner/repo/a.safetensors+b.safetensors")[1] == "owner/repo/b.safetensors"
    assert lora_files("owner/repo/a.safetensors") == ("owner/repo/a.safetensors", None)
    with pytest.raises(LoraError, match="takes no LoRA"):
        fuse_lora(object(), first, 1.0)


# --- HunyuanVideo 1.5 -------------------------------------------------------------------------------


def test_hunyuans_guider_takes_the_jobs_guidance(engine: GenerationEngine) -> None:
    """No ``guidance_scale`` argument: the guider is made anew with the job's scale; guided, the
    transformer runs twice a step, at guidance 1 once."""
    loaded = engine.manager.load_model("tiny_hunyuan15")
    calls: list[int] = []
    hook = loaded.pipeline.transformer.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        assert engine.generate_video(job("tiny_hunyuan15", guidance_scale=3.5)).ok
        assert loaded.pipeline.guider.guidance_scale == 3.5 and len(calls) == 2 * 2
        calls.clear()
        assert engine.generate_video(job("tiny_hunyuan15", guidance_scale=1.0)).ok
        assert loaded.pipeline.guider.guidance_scale == 1.0 and len(calls) == 2
    finally:
        hook.remove()


def test_hunyuan_reports_steps_and_previews_from_the_scheduler_and_cancels(
    engine: GenerationEngine,
) -> None:
    seen: list[Any] = []
    control = JobControl(on_progress=seen.append, previews=True, previews_every_s=0.0)
    result = engine.generate_video(job("tiny_hunyuan15", num_inference_steps=3), control)
    assert result.ok, result.error
    assert [p.step for p in seen] == [1, 2, 3]
    assert control.preview is not None and control.preview.data.startswith(b"GIF")
    scheduler = engine.manager.load_model("tiny_hunyuan15").pipeline.scheduler
    assert "step" not in vars(scheduler)  # the wrapper is gone after the job

    def cancel_at_first(progress: Any) -> None:
        if progress.step == 1:
            stopper.cancel()

    stopper = JobControl(on_progress=cancel_at_first)
    cancelled = engine.generate_video(job("tiny_hunyuan15", num_inference_steps=3), stopper)
    assert cancelled.cancelled and cancelled.images == []
    assert "step" not in vars(scheduler)


def test_hunyuan_animates_a_picture_through_its_i2v_repo(
    engine: GenerationEngine, picture: str
) -> None:
    """The I2V repo's transformer and SigLIP encoder are loaded; the text encoders, tokenizers,
    VAE and guider are the text pipeline's own objects."""
    result = engine.generate_video(job("tiny_hunyuan15", image=picture))
    assert result.ok, result.error
    loaded = engine.manager.load_model("tiny_hunyuan15")
    with loaded.lock:
        image_pipe = engine.manager.image_pipeline(loaded)
    text_pipe = loaded.pipeline
    assert type(image_pipe).__name__ == "HunyuanVideo15ImageToVideoPipeline"
    assert image_pipe.transformer is not text_pipe.transformer
    assert image_pipe.transformer.config.task_type == "i2v"
    assert type(image_pipe.image_encoder).__name__ == "SiglipVisionModel"
    for shared in ("text_encoder", "text_encoder_2", "tokenizer", "vae"):
        assert getattr(image_pipe, shared) is getattr(text_pipe, shared)


def test_a_pictures_draft_runs_the_step_distilled_model_and_texts_fewer_steps(
    engine: GenerationEngine, picture: str
) -> None:
    drafted = engine.generate_video(job("tiny_hunyuan15", image=picture, quality="draft"))
    assert drafted.ok, drafted.error
    assert drafted.metadata["draft"]["model"] == "tiny_hunyuan15_i2v_distilled"
    text = engine.generate_video(job("tiny_hunyuan15", num_inference_steps=8, quality="draft"))
    assert text.ok, text.error
    assert text.metadata["draft"]["recipe"] == "fewer_steps"
    assert text.metadata["draft"]["cache"] == "taylorseer"


# --- previews and caches ----------------------------------------------------------------------------


def test_hunyuan_previews_use_its_published_factors() -> None:
    projection = projection_for("hunyuan_video15", 32)
    assert projection is not None and projection.channels == 32
    assert projection_for("wan", 16) is not None  # the A14B experts denoise in Wan 2.1's space


def test_the_caches_each_family_takes_and_both_experts_get_one(engine: GenerationEngine) -> None:
    hy = get_spec("tiny_hunyuan15")
    assert supported_caches(hy) == ("pab", "taylorseer")
    assert plan_cache("first_block", hy).name is None
    pipe = engine.manager.load_model("tiny_hunyuan15").pipeline
    with cache_applied(pipe, plan_cache("taylorseer", hy), 4) as applied:
        assert applied == ["transformer"]
        hooked = [
            n
            for n, m in pipe.transformer.named_modules()
            if getattr(m, "_diffusers_hook", None) is not None and m._diffusers_hook.hooks
        ]
        assert hooked == ["transformer_blocks.0.attn", "transformer_blocks.1.attn"]
    wan = engine.manager.load_model("tiny_wan_a14b").pipeline
    with cache_applied(wan, plan_cache("first_block", get_spec("tiny_wan_a14b")), 4) as applied:
        assert applied == ["transformer", "transformer_2"]


def test_an_int8_plan_quantises_both_experts(model_cache: Path) -> None:
    """The torchao plans count both experts at one byte a parameter, so both are quantised."""
    pytest.importorskip("torchao")
    from bot.core.pipelines import LoadRequest, adapter_for

    build_tiny_model("tiny_wan_a14b", model_cache / "tiny_wan_a14b")
    request = LoadRequest(
        source=str(model_cache / "tiny_wan_a14b"), torch_dtype=torch.bfloat16, quantization="int8"
    )
    pipe = adapter_for("wan").load(request)
    for expert in (pipe.transformer, pipe.transformer_2):
        assert type(expert.blocks[0].attn1.to_q.weight).__name__ == "Int8Tensor"
