"""The tiny LTX-Video, Wan 2.2, CogVideoX and AnimateDiff-Lightning models, checked through the
diffusers pipeline classes themselves: they load with each production class's ``from_pretrained``,
keep the real models' frame and size rules, are deterministic per seed, and the image-to-video
pipelines really follow their input image."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from bot.core import tiny
from bot.core.tiny import LIGHTNING_ADAPTER_FILE, build_tiny_model

NEW_KEYS = ("tiny_ltx", "tiny_wan", "tiny_cogvideox", "tiny_lightning")
PROMPT = "a paper boat drifting on a pond"


@pytest.fixture(scope="module")
def tiny_root(model_cache: Path) -> Path:
    for key in NEW_KEYS:
        build_tiny_model(key, model_cache / key)
    return model_cache


@pytest.fixture(scope="module")
def load(tiny_root: Path) -> Callable[[str, str], Any]:
    """``load(class_name, folder)``: the pipeline loaded by that class's own ``from_pretrained``,
    cached for the module (loading is the slow part)."""
    import diffusers

    pipes: dict[tuple[str, str], Any] = {}

    def get(class_name: str, folder: str) -> Any:
        if (class_name, folder) not in pipes:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipe = getattr(diffusers, class_name).from_pretrained(tiny_root / folder)
            pipe.set_progress_bar_config(disable=True)
            pipes[(class_name, folder)] = pipe
        return pipes[(class_name, folder)]

    return get


def _image(seed: int, size: int = 64) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _frames(pipe: Any, seed: int, **job: Any) -> np.ndarray:
    """Run a short job with classifier-free guidance on (guidance > 1) and return the frames."""
    job = {"prompt": PROMPT, "num_inference_steps": 2, "guidance_scale": 3.0, **job}
    out = pipe(generator=torch.Generator().manual_seed(seed), output_type="np", **job)
    return np.asarray(out.frames)


def _ltx_condition(pipe: Any) -> Any:
    """LTXConditionPipeline builds its own sigma schedule and never passes ``mu``, so it needs the
    scheduler without dynamic shifting (as in LTX-Video 0.9.5+'s config); the 0.9.0 config this
    folder copies has it on, exactly like the hub's ``Lightricks/LTX-Video``."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    if pipe.scheduler.config.use_dynamic_shifting:
        pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(
            pipe.scheduler.config, use_dynamic_shifting=False
        )
    return pipe


def _ltx_condition_job(image: Image.Image) -> dict[str, Any]:
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    return {"conditions": [LTXVideoCondition(image=image, frame_index=0)]}


# (class, folder, job) for text-to-video: frames (F), height, width of the smallest valid jobs,
# non-square so a height/width mix-up shows.
T2V_JOBS = [
    ("LTXPipeline", "tiny_ltx", {"num_frames": 9, "height": 32, "width": 64}),
    ("WanPipeline", "tiny_wan", {"num_frames": 5, "height": 32, "width": 64}),
    ("CogVideoXPipeline", "tiny_cogvideox/t2v", {"num_frames": 9, "height": 16, "width": 32}),
]

# (class, folder, job without the image, how the image is passed) for image-to-video.
I2V_JOBS = [
    ("LTXImageToVideoPipeline", "tiny_ltx", {"num_frames": 9, "height": 64, "width": 32}, "image"),
    ("LTXConditionPipeline", "tiny_ltx", {"num_frames": 9, "height": 32, "width": 32}, "ltx"),
    ("WanImageToVideoPipeline", "tiny_wan", {"num_frames": 5, "height": 64, "width": 32}, "image"),
    (
        "CogVideoXImageToVideoPipeline",
        "tiny_cogvideox/i2v",
        {"num_frames": 9, "height": 32, "width": 16},
        "image",
    ),
]


def _i2v(load: Callable[[str, str], Any], class_name: str, folder: str) -> Any:
    pipe = load(class_name, folder)
    return _ltx_condition(pipe) if class_name == "LTXConditionPipeline" else pipe


def _i2v_job(job: dict[str, Any], how: str, image: Image.Image) -> dict[str, Any]:
    return {**job, **(_ltx_condition_job(image) if how == "ltx" else {"image": image})}


def _assert_video(frames: np.ndarray, job: dict[str, Any]) -> None:
    assert frames.shape == (1, job["num_frames"], job["height"], job["width"], 3)
    assert np.isfinite(frames).all()
    assert frames.min() >= 0.0 and frames.max() <= 1.0
    assert frames.std() > 1e-3  # a real decoded picture, not a constant


# --- folders and configs -----------------------------------------------------------------------


def test_folders_have_the_hub_layouts(tiny_root: Path) -> None:
    def index(folder: str) -> dict[str, Any]:
        return json.loads((tiny_root / folder / "model_index.json").read_text())

    assert index("tiny_ltx")["_class_name"] == "LTXPipeline"
    wan = index("tiny_wan")
    assert wan["_class_name"] == "WanPipeline"
    assert wan["expand_timesteps"] is True and wan["boundary_ratio"] is None
    assert wan["text_encoder"] == ["transformers", "UMT5EncoderModel"]
    assert index("tiny_cogvideox/t2v")["_class_name"] == "CogVideoXPipeline"
    assert index("tiny_cogvideox/i2v")["_class_name"] == "CogVideoXImageToVideoPipeline"
    assert index("tiny_lightning/base")["_class_name"] == "StableDiffusionPipeline"
    adapter = tiny_root / "tiny_lightning" / "motion_adapter"
    assert sorted(p.name for p in adapter.iterdir()) == sorted(
        [LIGHTNING_ADAPTER_FILE, "config.json"]
    )
    for key in NEW_KEYS:
        size = sum(f.stat().st_size for f in (tiny_root / key).rglob("*") if f.is_file())
        assert size < 5_000_000, (key, size)


def test_format_version_covers_every_module_of_the_package() -> None:
    """A change to any builder rebuilds the cache; the hash is of names and bytes in name order."""
    sources = sorted(Path(tiny.__file__).parent.glob("*.py"))
    assert {p.name for p in sources} >= {"__init__.py", "common.py", "unet.py", "dit.py"}
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    assert digest.hexdigest()[:16] == tiny.TINY_FORMAT_VERSION
    assert set(NEW_KEYS) <= set(tiny.tiny_model_keys())


def test_configs_keep_the_real_structural_factors(load: Callable[[str, str], Any]) -> None:
    ltx = load("LTXPipeline", "tiny_ltx")
    assert (ltx.vae_spatial_compression_ratio, ltx.vae_temporal_compression_ratio) == (32, 8)
    assert ltx.transformer.config.in_channels == ltx.vae.config.latent_channels == 128
    assert ltx.scheduler.config.use_dynamic_shifting
    wan = load("WanPipeline", "tiny_wan")
    assert (wan.vae.config.scale_factor_spatial, wan.vae.config.scale_factor_temporal) == (16, 4)
    assert wan.vae.config.z_dim == wan.transformer.config.in_channels == 48
    assert wan.vae.config.is_residual and wan.vae.config.patch_size == 2
    assert tuple(wan.transformer.config.patch_size) == (1, 2, 2)
    assert wan.scheduler.config.prediction_type == "flow_prediction"
    assert wan.scheduler.config.use_flow_sigmas and wan.scheduler.config.flow_shift == 5.0
    t2v = load("CogVideoXPipeline", "tiny_cogvideox/t2v")
    i2v = load("CogVideoXImageToVideoPipeline", "tiny_cogvideox/i2v")
    assert (t2v.vae_scale_factor_spatial, t2v.vae_scale_factor_temporal) == (8, 4)
    assert i2v.transformer.config.in_channels == 2 * t2v.transformer.config.in_channels == 32
    assert t2v.transformer.config.use_rotary_positional_embeddings
    assert t2v.scheduler.config.prediction_type == "v_prediction"
    assert t2v.scheduler.config.timestep_spacing == "trailing"
    assert t2v.scheduler.config.rescale_betas_zero_snr


def test_cogvideox_i2v_shares_text_encoder_and_vae_with_t2v(
    load: Callable[[str, str], Any],
) -> None:
    t2v = load("CogVideoXPipeline", "tiny_cogvideox/t2v")
    i2v = load("CogVideoXImageToVideoPipeline", "tiny_cogvideox/i2v")
    for part in ("text_encoder", "vae"):
        a, b = getattr(t2v, part).state_dict(), getattr(i2v, part).state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[name], b[name]) for name in a), part
    assert t2v.tokenizer.get_vocab() == i2v.tokenizer.get_vocab()


# --- text side -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("class_name", "folder", "max_length"),
    [
        ("LTXPipeline", "tiny_ltx", 128),
        ("WanPipeline", "tiny_wan", 512),
        ("CogVideoXPipeline", "tiny_cogvideox/t2v", 226),
    ],
)
def test_t5_tokenizer_and_long_prompts(
    load: Callable[[str, str], Any], class_name: str, folder: str, max_length: int
) -> None:
    pipe = load(class_name, folder)
    tokenizer = pipe.tokenizer
    assert type(tokenizer).__name__ == "T5Tokenizer"
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert pipe.text_encoder.config.vocab_size == len(tokenizer)
    ids = tokenizer("a cat on a boat").input_ids
    assert tokenizer.convert_ids_to_tokens(ids) == ["▁a", "▁cat", "▁on", "▁a", "▁boat", "</s>"]
    assert tokenizer.unk_token_id not in tokenizer("Zebra #42, über?!").input_ids[:4]
    long_prompt = " ".join(["a cinematic scene of a horse on mars at sunset"] * 80)
    embeds = pipe.encode_prompt(
        long_prompt, do_classifier_free_guidance=False, max_sequence_length=max_length
    )[0]
    assert embeds.shape == (1, max_length, pipe.text_encoder.config.d_model)


# --- generation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("class_name", "folder", "job"), T2V_JOBS)
def test_text_to_video_shape_and_determinism(
    load: Callable[[str, str], Any], class_name: str, folder: str, job: dict[str, Any]
) -> None:
    pipe = load(class_name, folder)
    first = _frames(pipe, 1, **job)
    _assert_video(first, job)
    np.testing.assert_array_equal(first, _frames(pipe, 1, **job))
    assert np.abs(first - _frames(pipe, 2, **job)).max() > 1e-3


@pytest.mark.parametrize(("class_name", "folder", "job", "how"), I2V_JOBS)
def test_image_to_video_follows_the_image(
    load: Callable[[str, str], Any], class_name: str, folder: str, job: dict[str, Any], how: str
) -> None:
    pipe = _i2v(load, class_name, folder)
    first = _frames(pipe, 1, **_i2v_job(job, how, _image(1)))
    _assert_video(first, job)
    np.testing.assert_array_equal(first, _frames(pipe, 1, **_i2v_job(job, how, _image(1))))
    other_image = _frames(pipe, 1, **_i2v_job(job, how, _image(2)))
    assert np.abs(first - other_image).max() > 1e-3
    other_seed = _frames(pipe, 2, **_i2v_job(job, how, _image(1)))
    assert np.abs(first - other_seed).max() > 1e-3


def test_real_frame_rules_hold(load: Callable[[str, str], Any]) -> None:
    """A frame count off the real rule comes out rounded down to it (LTX-Video's 8k+1, Wan's and
    CogVideoX's 4k+1 latent frames), which only happens if time is compressed by the real factors."""
    wan = load("WanPipeline", "tiny_wan")
    assert _frames(wan, 0, num_frames=11, height=32, width=32).shape[1] == 9
    ltx = load("LTXPipeline", "tiny_ltx")
    assert _frames(ltx, 0, num_frames=16, height=32, width=32).shape[1] == 9
    assert _frames(ltx, 0, num_frames=17, height=32, width=32).shape[1] == 17


# --- AnimateDiff-Lightning -------------------------------------------------------------------------


def _lightning_adapter(tiny_root: Path) -> Any:
    from diffusers import MotionAdapter
    from safetensors.torch import load_file

    folder = tiny_root / "tiny_lightning" / "motion_adapter"
    adapter = MotionAdapter.from_config(MotionAdapter.load_config(folder / "config.json"))
    adapter.load_state_dict(load_file(folder / LIGHTNING_ADAPTER_FILE), strict=True)
    return adapter


def test_lightning_adapter_is_a_bare_state_dict(tiny_root: Path, model_cache: Path) -> None:
    from diffusers import MotionAdapter
    from safetensors.torch import load_file

    state = load_file(tiny_root / "tiny_lightning" / "motion_adapter" / LIGHTNING_ADAPTER_FILE)
    assert any(name.startswith("down_blocks.0.motion_modules.") for name in state)
    adapter = _lightning_adapter(tiny_root)
    assert all(torch.equal(adapter.state_dict()[name], state[name]) for name in state)
    build_tiny_model("tiny_animatediff", model_cache / "tiny_animatediff")
    other = MotionAdapter.from_pretrained(model_cache / "tiny_animatediff" / "motion_adapter")
    other_state = other.state_dict()
    assert other_state.keys() == state.keys()
    assert any(not torch.equal(state[name], other_state[name]) for name in state)


def test_lightning_runs_on_its_base_with_the_trailing_euler_scheduler(tiny_root: Path) -> None:
    from diffusers import AnimateDiffPipeline, EulerDiscreteScheduler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = AnimateDiffPipeline.from_pretrained(
            tiny_root / "tiny_lightning" / "base", motion_adapter=_lightning_adapter(tiny_root)
        )
    pipe.scheduler = EulerDiscreteScheduler.from_config(
        pipe.scheduler.config, timestep_spacing="trailing", beta_schedule="linear"
    )
    pipe.set_progress_bar_config(disable=True)
    job = {"num_frames": 8, "height": 64, "width": 64}
    frames = _frames(pipe, 1, **job, guidance_scale=1.0)
    _assert_video(frames, job)
