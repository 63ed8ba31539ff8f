"""Speed options (bot.core.speed), the encoder choice (bot.core.media) and the GPU benchmark harness
(bench/gpu_speed.py), all on the CPU with the tiny models: each switch does what it says to the
pipeline, leaves the pixels as they were (within float tolerance), resolves ``auto`` to off on the
CPU and on for CUDA, and never makes a job fail."""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bot.core import media
from bot.core.errors import MediaError
from bot.core.manager import ManagerOptions, ModelManager
from bot.core.registry import REGISTRY
from bot.core.speed import (
    AUTO_DECODE_CHUNK,
    CompiledDenoiser,
    SpeedOptions,
    VaeCall,
    call_geometry,
    compile_bucket,
    compile_buckets,
    latent_geometry,
    resolve_speed,
    resolve_switch,
    resolve_vae_dtype,
    speed_report,
)

ROOT = Path(__file__).resolve().parents[1]
OFF = SpeedOptions.all_off()


def render(cache: Path, speed: SpeedOptions, model: str = "tiny_t2v", **changes: object):  # type: ignore[no-untyped-def]
    """One small job on a manager of its own; returns the manager and the frames (uint8)."""
    from bot.core import GenerationParams
    from bot.core.engine import GenerationEngine

    manager = ModelManager(ManagerOptions(cache_dir=cache, speed=speed))
    values: dict[str, object] = {
        "prompt": "a paper boat on a pond",
        "model": model,
        "width": 64,
        "height": 64,
        "num_frames": 8,
        "num_inference_steps": 10,
        "seed": 1234,
    }
    values.update(changes)
    result = GenerationEngine(manager).generate_video(GenerationParams(**values))  # type: ignore[arg-type]
    assert result.ok, result.error
    return manager, np.stack([np.asarray(image) for image in result.images]).astype(np.int16)


@pytest.fixture(scope="module")
def baseline(model_cache: Path) -> dict[str, np.ndarray]:
    """Every switch off: the pipelines as diffusers loads them."""
    return {model: render(model_cache, OFF, model)[1] for model in ("tiny_t2v", "tiny_animatediff")}


def close(a: np.ndarray, b: np.ndarray, max_levels: int = 2) -> bool:
    return a.shape == b.shape and int(np.abs(a - b).max()) <= max_levels


# --- what "auto" means ---------------------------------------------------------------------------


def test_auto_is_off_on_the_cpu_and_on_for_cuda() -> None:
    for value, cpu, cuda in (("auto", False, True), ("on", True, True), ("off", False, False)):
        assert resolve_switch(value, "cpu") is cpu
        assert resolve_switch(value, "cuda") is cuda
        assert resolve_switch(value, "cuda:1") is cuda
    auto = SpeedOptions()
    cpu = resolve_speed(auto, "cpu", "float32")
    assert not any([cpu.tf32, cpu.fuse_qkv, cpu.channels_last, cpu.cudnn_benchmark, cpu.compile])
    assert (cpu.attention, cpu.decode_chunk, cpu.cuda_graphs, cpu.vae_dtype) == (
        None,
        0,
        False,
        None,
    )
    cuda = resolve_speed(auto, "cuda:0", "bfloat16")
    assert all([cuda.tf32, cuda.fuse_qkv, cuda.channels_last, cuda.cudnn_benchmark, cuda.compile])
    assert cuda.attention == "sdpa" and cuda.decode_chunk == AUTO_DECODE_CHUNK
    assert cuda.cuda_graphs and cuda.compile_mode == "reduce-overhead"
    assert cuda.vae_dtype is None  # bf16 keeps the VAE in bf16: same range as fp32


def test_memory_savers_win_over_speed_ups() -> None:
    auto = SpeedOptions()
    offload = resolve_speed(auto, "cuda", "bfloat16", cpu_offload=True)
    assert not offload.compile and not offload.cuda_graphs and offload.fuse_qkv
    for saver in ("group_offload", "layerwise_casting"):
        streamed = resolve_speed(auto, "cuda", "bfloat16", **{saver: True})
        assert not (streamed.compile or streamed.fuse_qkv or streamed.channels_last)
    no_graphs = resolve_speed(SpeedOptions(cuda_graphs="off"), "cuda", "bfloat16")
    assert no_graphs.compile and not no_graphs.cuda_graphs and no_graphs.compile_mode == "default"
    tuned = resolve_speed(SpeedOptions(compile_mode="max-autotune"), "cuda", "bfloat16")
    assert tuned.compile_mode == "max-autotune"
    tuned = resolve_speed(
        SpeedOptions(compile_mode="max-autotune", cuda_graphs="off"), "cuda", "bfloat16"
    )
    assert tuned.compile_mode == "max-autotune-no-cudagraphs"
    assert not resolve_speed(SpeedOptions(compile="on"), "cpu", "float32").cuda_graphs


def test_vae_precision_is_only_changed_where_it_must_be() -> None:
    assert resolve_vae_dtype("auto", "bfloat16", force_upcast=True) is None
    assert resolve_vae_dtype("auto", "float16", force_upcast=True) == "float32"
    assert resolve_vae_dtype("auto", "float16", force_upcast=False) is None
    assert resolve_vae_dtype("auto", "bfloat16", spec_dtype="float32") == "float32"
    assert resolve_vae_dtype("pipeline", "bfloat16", spec_dtype="float32") == "bfloat16"
    assert resolve_vae_dtype("bfloat16", "float32") == "bfloat16"


def test_options_are_validated_and_parsed() -> None:
    with pytest.raises(ValueError, match="compile must be one of"):
        SpeedOptions(compile="yes")
    with pytest.raises(ValueError, match="decode_chunk"):
        SpeedOptions(decode_chunk=0)
    with pytest.raises(ValueError, match="unknown speed option"):
        SpeedOptions.from_mapping({"turbo": "on"})
    parsed = SpeedOptions.from_mapping(
        {"compile": "off", "decode_chunk": "4", "compile_frames": "16,24"}
    )
    assert (parsed.compile, parsed.decode_chunk, parsed.compile_frames) == ("off", 4, (16, 24))
    off = resolve_speed(SpeedOptions.all_off(), "cuda", "bfloat16")
    assert not any([off.tf32, off.fuse_qkv, off.channels_last, off.compile, off.cuda_graphs])
    assert (off.attention, off.decode_chunk, off.vae_dtype) == (None, 0, None)
    # The overflow guard is not a speed-up: it stays with everything else off.
    guard = resolve_speed(SpeedOptions.all_off(), "cuda", "float16", force_upcast=True)
    assert guard.vae_dtype == "float32"


def test_speed_section_of_the_settings(monkeypatch, tmp_path: Path) -> None:
    from bot.config import ConfigError, load_settings

    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("VIDEOBOT_CONFIG", str(tmp_path / "empty.toml"))
    assert load_settings().speed.options() == SpeedOptions()
    monkeypatch.setenv("VIDEOBOT_SPEED__COMPILE", "off")
    monkeypatch.setenv("VIDEOBOT_SPEED__DECODE_CHUNK", "4")
    monkeypatch.setenv("VIDEOBOT_SPEED__COMPILE_FRAMES", "[16]")
    options = load_settings().speed.options()
    assert (options.compile, options.decode_chunk, options.compile_frames) == ("off", 4, (16,))
    monkeypatch.setenv("VIDEOBOT_SPEED__ATTENTION", "fastest")
    with pytest.raises(ConfigError, match=r"VIDEOBOT_SPEED__ATTENTION: \[speed\] attention"):
        load_settings()


def test_cli_can_turn_the_speed_ups_off() -> None:
    from bot.cli import build_parser

    args = build_parser().parse_args(["generate", "a cat", "-o", "x.mp4", "--no-speedups"])
    assert args.no_speedups


# --- each switch on the tiny models --------------------------------------------------------------


def test_channels_last_changes_conv_weights_not_pixels(model_cache: Path, baseline) -> None:
    manager, frames = render(model_cache, SpeedOptions(channels_last="on"))
    pipe = manager.get_loaded("tiny_t2v").pipeline
    convs = [m for m in pipe.unet.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert any(not c.weight.is_contiguous() for c in convs)  # 3x3 kernels: really NHWC now
    assert speed_report(pipe)["channels_last"] >= len(convs)
    assert close(frames, baseline["tiny_t2v"])
    off_pipe = render(model_cache, OFF)[0].get_loaded("tiny_t2v").pipeline
    assert all(
        m.weight.is_contiguous() for m in off_pipe.unet.modules() if isinstance(m, torch.nn.Conv2d)
    )


def test_fused_qkv_fuses_and_keeps_pixels(model_cache: Path, baseline) -> None:
    from diffusers.models.attention_processor import Attention, FusedAttnProcessor2_0

    manager, frames = render(model_cache, SpeedOptions(fuse_qkv="on"))
    unet = manager.get_loaded("tiny_t2v").pipeline.unet
    attentions = [m for m in unet.modules() if isinstance(m, Attention)]
    assert attentions
    for attention in attentions:
        assert isinstance(attention.processor, FusedAttnProcessor2_0)
        assert hasattr(attention, "to_kv" if attention.is_cross_attention else "to_qkv")
    assert close(frames, baseline["tiny_t2v"])


def test_fused_qkv_on_animatediff_survives_free_noise(model_cache: Path, baseline) -> None:
    """Past 32 frames AnimateDiff switches to FreeNoise, which rebuilds the motion blocks from their
    state dicts: only the spatial attention is fused, so that still works."""
    from diffusers.models.attention_processor import Attention

    manager, frames = render(model_cache, SpeedOptions(fuse_qkv="on"), "tiny_animatediff")
    unet = manager.get_loaded("tiny_animatediff").pipeline.unet
    fused = {
        path: hasattr(m, "to_qkv") or hasattr(m, "to_kv")
        for path, m in unet.named_modules()
        if isinstance(m, Attention)
    }
    assert any(fused.values()) and not any(v for p, v in fused.items() if "motion_modules" in p)
    assert close(frames, baseline["tiny_animatediff"])
    from bot.core import GenerationParams
    from bot.core.engine import GenerationEngine

    long = GenerationParams(
        prompt="a cat", model="tiny_animatediff", width=32, height=32, num_frames=40,
        num_inference_steps=10, seed=1,
    )  # fmt: skip
    result = GenerationEngine(manager).generate_video(long)
    assert result.ok, result.error


def test_sdpa_replaces_the_classic_processor(model_cache: Path, baseline) -> None:
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    from bot.core.speed import set_attention

    manager, _ = render(model_cache, OFF)
    pipe = manager.get_loaded("tiny_t2v").pipeline
    pipe.unet.set_attn_processor(AttnProcessor())
    changed = set_attention(pipe, "sdpa")
    assert changed is not None and changed["unet"] > 0
    assert all(type(p) is AttnProcessor2_0 for p in pipe.unet.attn_processors.values())
    flash_manager, flash = render(model_cache, SpeedOptions(attention="flash"))
    assert isinstance(flash_manager.get_loaded("tiny_t2v").pipeline.unet.forward, CompiledDenoiser)
    assert close(flash, baseline["tiny_t2v"])
    assert resolve_speed(SpeedOptions(attention="flash"), "cuda", "float32").attention == "sdpa"
    assert resolve_speed(SpeedOptions(attention="flash"), "cuda", "bfloat16").attention == "flash"


def test_decode_chunks_change_no_pixel(model_cache: Path, baseline, monkeypatch) -> None:
    manager, frames = render(model_cache, SpeedOptions(decode_chunk=3))
    vae = manager.get_loaded("tiny_t2v").pipeline.vae
    assert isinstance(vae.decode, VaeCall) and vae.decode.chunk == 3
    assert close(frames, baseline["tiny_t2v"])
    calls = []
    original = vae.decode.original
    monkeypatch.setattr(
        vae.decode, "original", lambda z, *a, **k: calls.append(len(z)) or original(z, *a, **k)
    )
    latents = torch.randn(8, 4, 8, 8)
    with torch.inference_mode():
        chunked = vae.decode(latents).sample
        whole = original(latents).sample
    assert calls == [3, 3, 2]
    assert torch.allclose(chunked, whole, atol=1e-5)


def test_vae_in_another_precision_still_decodes_and_encodes(model_cache: Path, baseline) -> None:
    manager, frames = render(model_cache, SpeedOptions(vae_dtype="bfloat16"))
    pipe = manager.get_loaded("tiny_t2v").pipeline
    assert pipe.vae.dtype == torch.bfloat16 and pipe.unet.dtype == torch.float32
    assert frames.shape == baseline["tiny_t2v"].shape
    assert np.abs(frames - baseline["tiny_t2v"]).mean() < 2.0
    # The upscaler encodes its input video with the VAE too: the latents come back in the
    # pipeline's precision, as the UNet needs.
    from bot.core import GenerationParams
    from bot.core.engine import GenerationEngine

    engine = GenerationEngine(manager)

    source = engine.generate_video(
        GenerationParams(
            prompt="a cat", model="tiny_t2v", width=64, height=64, num_frames=8, seed=2
        )
    )
    upscaled = engine.upscale(source, upscaler="tiny_v2v", seed=3)
    assert upscaled.ok, upscaled.error
    assert manager.get_loaded("tiny_v2v").pipeline.vae.dtype == torch.bfloat16


def test_a_failing_speed_up_never_stops_a_model(model_cache: Path, baseline, monkeypatch) -> None:
    import bot.core.speed as speed

    def broken(pipe):  # type: ignore[no-untyped-def]
        raise RuntimeError("no fusion today")

    monkeypatch.setattr(speed, "fuse_qkv", broken)
    manager, frames = render(model_cache, SpeedOptions(fuse_qkv="on", channels_last="on"))
    report = speed_report(manager.get_loaded("tiny_t2v").pipeline)
    assert report["fuse_qkv"].startswith("failed: RuntimeError")
    assert report["channels_last"] > 0
    assert close(frames, baseline["tiny_t2v"])


# --- compile -------------------------------------------------------------------------------------


def test_buckets_are_a_small_fixed_set() -> None:
    rng = np.random.default_rng(0)
    for key in ("zeroscope_v2_576w", "animatediff", "ltx_video", "wan2_1_1_3b", "cogvideox_5b"):
        spec = REGISTRY[key]
        buckets = compile_buckets(spec)
        assert 1 <= len(buckets) <= 3
        assert all((h, w) == (spec.native_height, spec.native_width) for _, h, w in buckets)
        assert all(spec.frames.accepts(f) for f, _, _ in buckets)
        assert (spec.default_frames, spec.native_height, spec.native_width) in buckets
        chosen = set()
        for _ in range(300):  # members' choices
            frames = int(rng.integers(spec.frames.low, spec.frames.high + 1))
            height = int(rng.choice([spec.native_height, spec.min_size, 320, 512]))
            width = int(rng.choice([spec.native_width, spec.min_size, 576, 512]))
            bucket = compile_bucket(frames, height, width, buckets)
            assert bucket is None or bucket in buckets
            chosen.add(bucket)
        assert chosen <= buckets | {None}
    assert compile_buckets(REGISTRY["zeroscope_v2_576w"], (8, 12, 999)) == {
        (8, 320, 576),
        (12, 320, 576),
    }


def test_latent_geometry_of_jobs_and_calls() -> None:
    from types import SimpleNamespace

    assert latent_geometry(SimpleNamespace(vae_scale_factor=8), 24, 320, 576) == (24, 40, 72)
    wan = SimpleNamespace(vae_scale_factor_temporal=4, vae_scale_factor_spatial=8)
    assert latent_geometry(wan, 81, 480, 832) == (21, 60, 104)
    ltx = SimpleNamespace(vae_temporal_compression_ratio=8, vae_spatial_compression_ratio=32)
    assert latent_geometry(ltx, 121, 512, 768) == (16, 16, 24)
    from diffusers import CogVideoXTransformer3DModel, UNet3DConditionModel

    with torch.device("meta"):
        unet = UNet3DConditionModel(block_out_channels=(32, 32, 64, 64), norm_num_groups=8)
        cog = CogVideoXTransformer3DModel(num_layers=1, num_attention_heads=2, attention_head_dim=8)
    sample = torch.empty(2, 4, 24, 40, 72, device="meta")
    assert call_geometry(unet)((sample,), {}) == (24, 40, 72)  # type: ignore[misc]
    cog_latents = torch.empty(2, 13, 16, 60, 90, device="meta")
    assert call_geometry(cog)((), {"hidden_states": cog_latents}) == (13, 60, 90)  # type: ignore[misc]
    assert call_geometry(torch.nn.Linear(2, 2)) is None


def test_compile_runs_bucket_shapes_compiled_and_others_eager(
    model_cache: Path, baseline, monkeypatch
) -> None:
    import bot.core.speed as speed

    monkeypatch.setattr(speed, "COMPILE_BACKEND", "eager")  # Dynamo without inductor: quick
    options = SpeedOptions(compile="on", compile_frames=(8,))
    manager, frames = render(model_cache, options)
    pipe = manager.get_loaded("tiny_t2v").pipeline
    forward = pipe.unet.forward
    assert isinstance(forward, CompiledDenoiser)
    assert forward.buckets == {(8, 8, 8)} and forward.calls["compiled"] > 0
    assert forward.broken is None
    assert close(frames, baseline["tiny_t2v"])
    from bot.core import GenerationParams
    from bot.core.engine import GenerationEngine

    before = dict(forward.calls)
    result = GenerationEngine(manager).generate_video(
        GenerationParams(
            prompt="a cat", model="tiny_t2v", width=64, height=64, num_frames=9, seed=1
        )
    )
    assert result.ok
    assert forward.calls["compiled"] == before["compiled"]  # 9 frames: not a bucket
    assert forward.calls["eager"] > before["eager"]


def test_compile_falls_back_to_eager_when_it_raises(
    model_cache: Path, baseline, monkeypatch
) -> None:
    def failing_compile(fn, **kwargs):  # type: ignore[no-untyped-def]
        def run(*args, **kw):  # type: ignore[no-untyped-def]
            raise RuntimeError("inductor exploded")

        return run

    monkeypatch.setattr(torch, "compile", failing_compile)
    manager, frames = render(model_cache, SpeedOptions(compile="on", compile_frames=(8,)))
    forward = manager.get_loaded("tiny_t2v").pipeline.unet.forward
    assert isinstance(forward, CompiledDenoiser)
    assert forward.broken is not None and "inductor exploded" in forward.broken
    assert forward.calls["compiled"] == 0 and forward.calls["eager"] > 0
    assert close(frames, baseline["tiny_t2v"])


def test_cuda_graph_outputs_are_copies(monkeypatch) -> None:
    import bot.core.speed as speed

    monkeypatch.setattr(speed, "COMPILE_BACKEND", "eager")
    layer = torch.nn.Linear(4, 4)
    shared = torch.zeros(2, 4)

    def forward(x):  # type: ignore[no-untyped-def]
        shared.copy_(x)  # like a CUDA graph's static output buffer
        return (shared,)

    layer.forward = forward  # type: ignore[method-assign]
    wrapper = CompiledDenoiser(
        layer,
        buckets=frozenset({(1, 1, 1)}),
        geometry=lambda args, kwargs: (1, 1, 1),
        mode="default",
        cuda_graphs=True,
    )
    first = wrapper(torch.ones(2, 4))[0]
    wrapper(torch.full((2, 4), 2.0))
    assert torch.equal(first, torch.ones(2, 4))  # not overwritten by the next replay


# --- the mp4 encoder -----------------------------------------------------------------------------


@pytest.fixture
def encoder_state(monkeypatch):  # type: ignore[no-untyped-def]
    """Isolate the cached NVENC probe."""
    monkeypatch.setattr(media, "_nvenc_works", None)
    media._nvenc_warned.clear()
    yield monkeypatch
    media._nvenc_warned.clear()


def _frames(count: int = 6):  # type: ignore[no-untyped-def]
    from PIL import Image

    return [Image.new("RGB", (66, 34), (40 * i % 255, 90, 200)) for i in range(count)]


def test_encoder_is_libx264_without_cuda(encoder_state, tmp_path: Path) -> None:
    probes = []
    encoder_state.setattr(media, "_cuda_present", lambda: False)
    encoder_state.setattr(media, "_probe_nvenc", lambda: probes.append(1) or True)
    assert media.video_encoder("auto") == "libx264"
    assert probes == []  # no GPU: not even probed
    encoded = media.encode(_frames(), tmp_path / "a.mp4", 8, encoder="auto")
    assert encoded.encoder == "libx264"
    info = media.probe(encoded.path)
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", 66, 34)


def test_nvenc_that_does_not_work_falls_back_once(encoder_state, tmp_path: Path) -> None:
    probes = []
    real_probe = media._probe_nvenc
    encoder_state.setattr(media, "_cuda_present", lambda: True)

    def probe() -> bool:
        probes.append(1)
        return real_probe()

    encoder_state.setattr(media, "_probe_nvenc", probe)
    assert media.video_encoder("h264_nvenc") == "libx264"  # this machine has no NVIDIA driver
    assert media.video_encoder("auto") == "libx264"
    encoded = media.encode(_frames(), tmp_path / "b.mp4", 8, encoder="h264_nvenc")
    assert encoded.encoder == "libx264" and len(probes) == 1  # probed once, answer cached
    with pytest.raises(MediaError, match="unknown encoder"):
        media.video_encoder("x265")
    with pytest.raises(MediaError, match="unknown encoder"):
        media.encode(_frames(), tmp_path / "x.mp4", 8, encoder="x265")


def test_nvenc_failing_mid_encode_is_redone_with_libx264(encoder_state, tmp_path: Path) -> None:
    encoder_state.setattr(media, "_cuda_present", lambda: True)
    encoder_state.setattr(media, "_nvenc_works", True)  # the probe said yes; the encode fails
    assert media.video_encoder("auto") == "h264_nvenc"
    encoded = media.encode(_frames(), tmp_path / "c.mp4", 8)
    assert encoded.encoder == "libx264" and media.probe(encoded.path).codec == "h264"
    assert media._nvenc_works is False and media.video_encoder("auto") == "libx264"
    assert not list(tmp_path.glob(".*part"))  # the atomic write left nothing behind


def test_budget_encodes_stay_on_libx264(encoder_state, tmp_path: Path) -> None:
    encoder_state.setattr(media, "_cuda_present", lambda: True)
    encoder_state.setattr(media, "_nvenc_works", True)
    encoded = media.encode_within(_frames(), tmp_path / "d.mp4", 8, 10 * 2**20)
    assert encoded.encoder == "libx264"


# --- FLOP counting and the benchmark harness -----------------------------------------------------


def _load_bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gpu_speed", ROOT / "bench" / "gpu_speed.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_speed"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():  # type: ignore[no-untyped-def]
    return _load_bench()


def test_meta_flop_count_matches_hand_counts(bench) -> None:
    count = bench.FlopCount()
    with torch.device("meta"):
        linear = torch.nn.Linear(64, 32)
        conv = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1)
    stand_in = bench.MetaStandIn("linear", linear, count)
    out = stand_in(torch.randn(8, 64))
    assert out.shape == (8, 32) and out.device.type == "cpu" and not out.any()
    assert count.flops["linear.forward"] == 2 * 8 * 64 * 32
    stand_in(torch.randn(8, 64))  # the same shape: taken from the cache, counted again
    assert (
        count.calls["linear.forward"] == 2 and count.flops["linear.forward"] == 2 * 2 * 8 * 64 * 32
    )
    bench.MetaStandIn("conv", conv, count)(torch.randn(1, 3, 16, 16))
    assert count.flops["conv.forward"] == 2 * (8 * 16 * 16) * (3 * 3 * 3)
    with torch.device("meta"):
        attention = torch.empty(2, 4, 128, 32)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.scaled_dot_product_attention(attention, attention, attention)
    assert counter.get_total_flops() == 2 * (2 * 2 * 4 * 128 * 128 * 32)  # QK^T and AV


def test_meta_count_of_zeroscope_matches_the_issue(bench) -> None:
    """The full-size Zeroscope 576w job: 25 UNet calls on a CFG batch of 2 at 24x40x72 latents,
    which the issue puts at about 1070 TFLOP."""
    job = bench.native_job(REGISTRY["zeroscope_v2_576w"])
    assert (job.width, job.height, job.num_frames, job.steps) == (576, 320, 24, 25)
    count = bench.count_flops(job)
    assert count.calls == {"text_encoder.forward": 2, "unet.forward": 25, "vae.decode": 1}
    assert count.part("unet.") / 1e12 == pytest.approx(1070, rel=0.01)
    assert 0 < count.part("vae.") / count.total < 0.05


def test_every_registry_model_has_configs(bench) -> None:
    assert set(bench.default_models()) == {
        k for k, s in REGISTRY.items() if not s.tiny
    }  # every generator, upscaler and soundtrack model of the registry has its configs


def test_ltx2_configs_name_classes_the_harness_can_build(bench) -> None:
    """LTX-2's connectors, vocoders and upsampler live in ``diffusers.pipelines.ltx2``, not at
    diffusers' top level; the distilled 2.3's x2 upsampler is beside its index, not in it."""
    for key in ("ltx2", "ltx2_distilled"):
        components = bench.load_configs(key)["components"]
        for name, config in components.items():
            if name in ("scheduler", "tokenizer"):
                continue
            cls, _ = bench._component_class(config)
            assert cls.__name__ == config.get(
                "_class_name", (config.get("architectures") or [""])[0]
            )
    assert "latent_upsampler" in bench.load_configs("ltx2_distilled")["components"]
    assert "latent_upsampler" not in bench.load_configs("ltx2")["components"]


def test_stream_split_separates_the_audio_half(bench) -> None:
    """An audio-video denoiser's FLOPs by stream: ``audio_*`` modules, the cross-modal attention
    between the streams, and nothing for a video-only network."""
    from torch.utils.flop_counter import FlopCounterMode

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ff = torch.nn.Linear(8, 8)
            self.audio_ff = torch.nn.Linear(4, 4)
            self.audio_to_video_attn = torch.nn.Linear(8, 4)

        def forward(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
            return (
                self.ff(video).sum()
                + self.audio_ff(audio).sum()
                + self.audio_to_video_attn(video).sum()
            )

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.audio_proj_in = torch.nn.Linear(4, 4)
            self.transformer_blocks = torch.nn.ModuleList([Block(), Block()])

        def forward(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
            audio = self.audio_proj_in(audio)
            return sum(block(video, audio) for block in self.transformer_blocks)

    with torch.device("meta"):
        net, video, audio = Net(), torch.empty(3, 8), torch.empty(5, 4)
    with FlopCounterMode(display=False) as counter:
        net(video, audio)
    split = bench.stream_split(counter.get_flop_counts())
    assert split == {"audio": 2 * 5 * 4 * 4 * 3, "cross-modal": 2 * (2 * 3 * 8 * 4)}
    with FlopCounterMode(display=False) as counter:
        torch.nn.Linear(8, 8, device="meta")(video)
    assert bench.stream_split(counter.get_flop_counts()) == {}


@pytest.mark.slow
def test_meta_count_of_the_distilled_ltx2_runs_both_stages_and_the_sound(
    bench, monkeypatch
) -> None:
    """The distilled LTX-2.3 at a small size: 8 transformer passes at half size, the x2 latent
    upsampler once, 3 at full size, then the video VAE, audio VAE and vocoder; the transformer's
    audio stream is counted. About 12 s (Gemma 3 12B and the 22B transformer on the meta device)."""
    from dataclasses import replace

    monkeypatch.setattr("bot.core.pipelines.ltx2.TEXT_TOKENS", 128)
    job = replace(bench.native_job(REGISTRY["ltx2_distilled"]), width=512, height=256, num_frames=9)
    count = bench.count_flops(job)
    assert count.calls["transformer.forward"] == 8 + 3
    assert count.calls["latent_upsampler.forward"] == 1
    assert count.calls["vocoder.forward"] == count.calls["audio_vae.decode"] == 1
    audio = count.streams["transformer.audio"]
    assert 0 < audio < count.part("transformer") and count.streams["transformer.cross-modal"] > 0


@pytest.mark.slow
def test_harness_runs_end_to_end_on_the_cpu(bench, capsys) -> None:
    models = ["zeroscope_v2_576w", "zeroscope_v2_xl", "animatediff", "wan2_2_ti2v_5b"]
    before = dict(REGISTRY)
    code = bench.main(["--tiny", "--models", ",".join(models), "--runs", "1", "--warmup", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert before == REGISTRY  # --tiny's relaxed rules are put back
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == len(bench.COLUMNS) and cells[0] in models:
            rows[cells[0]] = cells[1:]
    assert set(rows) == set(models)
    for key, cells in rows.items():
        numbers = [float(c) for c in cells]
        assert all(math.isfinite(n) for n in numbers), (key, cells)
        seconds, tflop = numbers[0], numbers[6]
        assert seconds > 0 and tflop > 0
        mean_diff = numbers[-1]
        assert mean_diff <= 0.5, key  # same dtype on the CPU: the engine's path is the card's
    assert re.search(r"zeroscope_v2_xl: .*calls: .*vae\.encode x1", out, re.S)


def test_warm_up_compiles_every_bucket_at_load_and_nothing_when_compile_is_off(
    model_cache: Path, monkeypatch
) -> None:
    """The issue asks for compile at model load: warm_up renders each bucket once, so a member's
    first job of a bucket's size already runs the compiled graph."""
    import bot.core.speed as speed
    from bot.core import GenerationParams
    from bot.core.engine import GenerationEngine
    from bot.core.manager import ManagerOptions, ModelManager

    monkeypatch.setattr(speed, "COMPILE_BACKEND", "eager")  # Dynamo without inductor: quick
    options = SpeedOptions(compile="on", compile_frames=(8, 16))
    manager = ModelManager(ManagerOptions(cache_dir=model_cache, speed=options))
    engine = GenerationEngine(manager)
    assert engine.warm_up("tiny_t2v") == [(8, 64, 64), (16, 64, 64)]
    forward = manager.get_loaded("tiny_t2v").pipeline.unet.forward
    assert isinstance(forward, CompiledDenoiser) and forward.compiled is not None
    compiled_before = forward.calls["compiled"]
    assert compiled_before > 0 and len(forward.compiled_shapes) == 2
    result = engine.generate_video(
        GenerationParams(prompt="a cat", model="tiny_t2v", num_frames=8, num_inference_steps=10)
    )
    assert result.ok and forward.calls["compiled"] > compiled_before
    assert len(forward.compiled_shapes) == 2  # no new shape: nothing compiled for the member

    off = GenerationEngine(ModelManager(ManagerOptions(cache_dir=model_cache)))
    assert off.warm_up("tiny_t2v") == []  # compile resolves to off on the CPU
    assert off.warm_up("tiny_v2v") == []  # an upscaler is only loaded


# --- attention kernels from other packages (SageAttention, FlashAttention 3) --------------------


@pytest.mark.parametrize("kind", ["sage", "flash3"])
def test_an_attention_kernel_that_is_not_installed_is_refused_in_one_line(kind: str) -> None:
    with pytest.raises(ValueError) as caught:
        SpeedOptions(attention=kind)
    line = str(caught.value)
    assert "\n" not in line and line.startswith(f"attention: {kind} is not installed here")
    assert "use sdpa or flash instead" in line


def test_kernel_backends_resolve_to_sdpa_where_they_cannot_run(monkeypatch) -> None:
    monkeypatch.setattr("bot.core.speed.check_kernel_installed", lambda kind: None)
    sage = SpeedOptions(attention="sage")
    assert resolve_speed(sage, "cuda", "bfloat16").attention == "sage"
    assert resolve_speed(sage, "cuda", "float32").attention == "sdpa"  # half precision only
    assert resolve_speed(sage, "cpu", "float32").attention == "sdpa"  # CUDA kernels


def test_a_kernel_backend_is_set_on_the_transformer_through_diffusers_dispatcher(
    monkeypatch, model_cache: Path
) -> None:
    from bot.core.speed import set_attention

    monkeypatch.setattr(
        "diffusers.models.attention_dispatch._check_attention_backend_requirements",
        lambda backend: None,
    )
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    # diffusers also makes the backend the process's active one: put it back for later tests.
    monkeypatch.setattr(
        _AttentionBackendRegistry, "_active_backend", _AttentionBackendRegistry._active_backend
    )
    manager = ModelManager(ManagerOptions(cache_dir=model_cache, speed=OFF))
    try:
        pipe = manager.load_model("tiny_wan").pipeline
        set_attention(pipe, "sage")
        backends = {
            getattr(p, "_attention_backend", None)
            for p in pipe.transformer.attn_processors.values()
        }
        assert {str(getattr(b, "value", b)) for b in backends} == {"sage"}
    finally:
        manager.unload_all()
