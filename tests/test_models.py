"""The registry and the model manager: keys, loading from saved folders, listing, unloading,
device and dtype, and the seed's three memory switches on real pipelines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bot.core import UnknownModelError
from bot.core.engine import GenerationEngine
from bot.core.manager import ManagerOptions, ModelManager
from bot.core.registry import REGISTRY, get_spec
from bot.core.tiny import tiny_model_keys


def test_registry_has_the_seed_models_with_their_hub_ids() -> None:
    assert get_spec("animatediff").adapter_source == "guoyww/animatediff-motion-adapter-v1-5-2"
    assert get_spec("modelscope_t2v").source == "ali-vilab/text-to-video-ms-1.7b"
    assert get_spec("zeroscope_v2_576w").source == "cerspense/zeroscope_v2_576w"
    assert get_spec("zeroscope_v2_xl").source == "cerspense/zeroscope_v2_XL"
    assert (
        get_spec("zeroscope_v2_576w").native_width,
        get_spec("zeroscope_v2_576w").native_height,
    ) == (576, 320)
    for key in ("animatediff", "modelscope_t2v", "zeroscope_v2_576w"):
        assert get_spec(key).upscaler == "zeroscope_v2_xl"
    assert get_spec("zeroscope_v2_576w").default_frames == 24  # its card's recipe
    assert [
        get_spec(k).vram_gb
        for k in ("animatediff", "modelscope_t2v", "zeroscope_v2_576w", "zeroscope_v2_xl")
    ] == [6, 7, 8, 15.5]  # Zeroscope XL: its card says 15.3 GB for 30 frames
    finishing = {"tiny_rife", "tiny_realesrgan"}  # learned finishing twins, not generators
    finishing.add("tiny_wan_a14b_gguf")  # GGUF files of tiny_wan_a14b's experts, not a model
    for key in set(tiny_model_keys()) - finishing:
        assert get_spec(key).tiny


def test_unknown_key_lists_known_keys(manager) -> None:
    with pytest.raises(UnknownModelError) as info:
        manager.load_model("stable-video")
    assert all(key in str(info.value) for key in REGISTRY)


def test_tiny_models_are_saved_and_loaded_back_with_from_pretrained(manager, model_cache) -> None:
    loaded = manager.load_model("tiny_animatediff")
    base = model_cache / "tiny_animatediff" / "base"
    index = json.loads((base / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"  # an SD1.5-shaped base, as on the hub
    assert (base / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (model_cache / "tiny_animatediff" / "motion_adapter" / "config.json").is_file()
    assert type(loaded.pipeline).__name__ == "AnimateDiffPipeline"
    assert type(loaded.pipeline.unet).__name__ == "UNetMotionModel"
    t2v = manager.load_model("tiny_t2v")
    assert type(t2v.pipeline).__name__ == "TextToVideoSDPipeline"
    assert type(t2v.pipeline.unet).__name__ == "UNet3DConditionModel"
    assert len(t2v.pipeline.vae.config.block_out_channels) == 4  # 8x downsampling, like SD
    v2v = manager.load_model("tiny_v2v")
    assert type(v2v.pipeline).__name__ == "VideoToVideoSDPipeline"


def test_tokenizer_is_a_real_clip_tokenizer(manager) -> None:
    tokenizer = manager.load_model("tiny_t2v").pipeline.tokenizer
    ids = tokenizer("a cat surfing").input_ids
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert len(ids) == 5  # a, cat, surfing: whole-word pieces from the generated merges
    assert tokenizer.decode(ids[1:-1]) == "a cat surfing"


def test_a_model_folder_can_be_given_as_a_source(fresh_manager, small_params, model_cache) -> None:
    """A key can point at any local folder (or another hub id): here zeroscope at the tiny t2v."""
    fresh_manager.load_model("tiny_t2v")  # builds the folder
    fresh_manager.configure(sources={"zeroscope_v2_576w": str(model_cache / "tiny_t2v")})
    loaded = fresh_manager.load_model("zeroscope_v2_576w")
    assert type(loaded.pipeline).__name__ == "TextToVideoSDPipeline"
    engine = GenerationEngine(fresh_manager)
    direct = engine.generate_video(small_params(model="tiny_t2v", width=256, height=256))
    via_key = engine.generate_video(small_params(model="zeroscope_v2_576w", width=256, height=256))
    assert np.array_equal(np.asarray(direct.images[2]), np.asarray(via_key.images[2]))


def test_list_unload_and_active_model(fresh_manager) -> None:
    assert not any(row.loaded for row in fresh_manager.list_models())
    fresh_manager.load_model("tiny_t2v")
    fresh_manager.load_model("tiny_v2v")  # an upscaler never becomes the active model
    rows = {row.key: row for row in fresh_manager.list_models()}
    assert rows["tiny_t2v"].loaded and rows["tiny_t2v"].active
    assert rows["tiny_v2v"].loaded and not rows["tiny_v2v"].active
    assert rows["tiny_t2v"].memory_mb and rows["tiny_t2v"].memory_mb > 0.5
    assert rows["animatediff"].vram_gb == 6 and rows["animatediff"].memory_mb is None
    assert rows["animatediff"].source == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert fresh_manager.unload_model("tiny_t2v") is True
    assert fresh_manager.unload_model("tiny_t2v") is False
    assert fresh_manager.active_key is None
    assert not fresh_manager.is_loaded("tiny_t2v")


def test_device_and_dtype_choice(fresh_manager) -> None:
    assert fresh_manager.resolved_device() == "cpu"  # no GPU on CI
    assert fresh_manager.resolved_dtype("cpu") == "float32"
    fresh_manager.configure(dtype="bfloat16")
    assert fresh_manager.resolved_dtype("cpu") == "bfloat16"
    loaded = fresh_manager.load_model("tiny_t2v")
    assert loaded.dtype == "bfloat16"
    assert str(loaded.pipeline.unet.dtype) == "torch.bfloat16"


def test_animatediff_base_is_configurable() -> None:
    manager = ModelManager(ManagerOptions(animatediff_base="emilianJR/epiCRealism"))
    assert manager.source_of(get_spec("animatediff")) == "emilianJR/epiCRealism"


SWITCHES = ["cpu_offload", "vae_slicing", "forward_chunking"]


@pytest.mark.parametrize("model", ["tiny_t2v", "tiny_animatediff"])
@pytest.mark.parametrize("switch", SWITCHES)
def test_memory_switch_is_real_and_keeps_the_frames(
    fresh_manager, small_params, model, switch
) -> None:
    engine = GenerationEngine(fresh_manager)
    params = small_params(model=model, num_frames=8)
    reference = np.stack([np.asarray(f) for f in engine.generate_video(params).images])
    fresh_manager.configure(**{switch: True})
    loaded = fresh_manager.get_loaded(model)
    pipe = loaded.pipeline
    if switch == "cpu_offload":
        assert getattr(pipe.unet, "_hf_hook", None) is not None  # accelerate's offload hook
    elif switch == "vae_slicing":
        assert pipe.vae.use_slicing
    else:
        chunked = [m for m in pipe.unet.modules() if getattr(m, "_chunk_size", None) == 1]
        assert chunked, "no feed-forward layer was chunked"
    result = engine.generate_video(params)
    assert result.metadata["memory"][switch] is True
    switched = np.stack([np.asarray(f) for f in result.images])
    assert np.abs(switched.astype(int) - reference.astype(int)).max() <= 2
    fresh_manager.configure(**{switch: False})
    assert fresh_manager.get_loaded(model).switches.__getattribute__(switch) is False
    if switch == "cpu_offload":
        assert getattr(pipe.unet, "_hf_hook", None) is None


@pytest.mark.parametrize(
    ("capability", "dtype"),
    [((6, 1), "float16"), ((7, 5), "float16"), ((8, 0), "bfloat16"), ((9, 0), "bfloat16")],
)
def test_auto_half_precision_follows_the_compute_capability(capability, dtype) -> None:
    """bf16 from Ampere (8.0) on; T4 (7.5) and V100 (7.0) emulate it, so they get fp16."""
    from bot.core.manager import half_dtype_for

    assert half_dtype_for(capability) == dtype


def test_auto_half_precision_follows_the_models_card(monkeypatch) -> None:
    """CogVideoX-2b's card asks for fp16 (its 5B siblings for bf16); an owner's dtype still wins."""
    import torch

    from bot.core.manager import ManagerOptions, ModelManager
    from bot.core.registry import REGISTRY

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    auto = ModelManager(ManagerOptions())
    assert auto.resolved_dtype("cuda", REGISTRY["cogvideox_2b"]) == "float16"
    assert auto.resolved_dtype("cuda", REGISTRY["cogvideox_5b"]) == "bfloat16"
    assert auto.resolved_dtype("cpu", REGISTRY["cogvideox_2b"]) == "float32"
    forced = ModelManager(ManagerOptions(dtype="bfloat16"))
    assert forced.resolved_dtype("cuda", REGISTRY["cogvideox_2b"]) == "bfloat16"


def test_memory_figures_count_everything_a_model_loads() -> None:
    """Zeroscope XL needs about 15 GB at 1024x576 (its card: 15.3 GB for 30 frames); CogVideoX-5b's
    figure counts the second, image-to-video transformer it loads for pictures."""
    from bot.core.manager import ModelManager
    from bot.core.registry import REGISTRY

    assert REGISTRY["zeroscope_v2_xl"].vram_gb >= 15
    rows = {row.key: row for row in ModelManager().list_models()}
    five = REGISTRY["cogvideox_5b"]
    assert rows["cogvideox_5b"].vram_gb == five.vram_gb + five.image_vram_gb > five.vram_gb
