"""Learned interpolation and upscaling (bot.core.enhance): RIFE and Real-ESRGAN on their tiny twins
(the released files' formats and key layouts at a few channels), the frame-rate cap, batching,
progress and cancel, and the minterpolate fallback."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bot.core import enhance, media
from bot.core.enhance import rates
from bot.core.enhance.esrgan import SpandrelUpscaler, load_descriptor, spandrel_module
from bot.core.enhance.rife import RIFE_4_26, IFNetShape, RifeInterpolator, load_ifnet
from bot.core.enhance.weights import WeightsUnavailable, load_state_dict
from bot.core.errors import GenerationCancelled, InvalidParameterError
from bot.core.progress import JobControl
from bot.core.tiny import build_tiny_model
from bot.core.tiny.enhance import TINY_RIFE_WIDTHS, random_state_dict, rife_shapes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def rife_zip(model_cache: Path) -> str:
    build_tiny_model("tiny_rife", model_cache / "tiny_rife")
    return str(model_cache / "tiny_rife" / "RIFEv4.26_0921.zip")


@pytest.fixture(scope="module")
def esrgan_dir(model_cache: Path) -> Path:
    build_tiny_model("tiny_realesrgan", model_cache / "tiny_realesrgan")
    return model_cache / "tiny_realesrgan"


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    enhance.unload()


def clip(count: int = 4, height: int = 64, width: int = 64, seed: int = 0) -> np.ndarray:
    """A moving gradient with noise: neighbouring frames differ, as in a video."""
    rng = np.random.default_rng(seed)
    x = np.mgrid[0:height, 0:width][1]
    frames = [
        ((x + 6 * k) * 3 % 256)[..., None] + rng.integers(0, 40, (height, width, 3))
        for k in range(count)
    ]
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def arrays(frames: list) -> np.ndarray:
    return np.stack([np.asarray(frame) for frame in frames])


# --- RIFE ----------------------------------------------------------------------------------------


def test_the_rife_twin_is_the_releases_archive_and_loads_by_its_layout(rife_zip: str) -> None:
    state = load_state_dict(rife_zip, "flownet.pkl")  # beside a __MACOSX shadow of the same name
    assert all(key.startswith("module.") for key in state)
    assert any(key.startswith("module.teacher.") for key in state)  # training-only, ignored
    net = load_ifnet(state)
    assert net.shape == IFNetShape(widths=TINY_RIFE_WIDTHS)
    assert not any(name.startswith("teacher") for name, _ in net.named_parameters())
    del state["module.block3.convblock.2.beta"]
    with pytest.raises(WeightsUnavailable, match=r"block3\.convblock\.2\.beta"):
        load_ifnet(state)


def test_the_release_layout_at_full_size_is_rife_4_26() -> None:
    state = random_state_dict(rife_shapes())  # 192, 128, 96, 64, 32 channels, with the extras
    net = load_ifnet({f"module.{key}": value for key, value in state.items()})
    assert net.shape == RIFE_4_26
    assert sum(p.numel() for p in net.parameters()) == 5_664_776


def test_rife_doubles_the_frames_and_keeps_every_source_frame(rife_zip: str) -> None:
    frames = clip(4, 40, 72)  # not a multiple of 64: padded for the network, cropped back
    images = [Image.fromarray(frame) for frame in frames]  # what the engine hands over
    out, fps, how = enhance.interpolate(images, 8, factor=2, device="cpu", source=rife_zip)
    result = arrays(out)
    assert (how, fps, result.shape) == ("rife", 16, (8, 40, 72, 3))
    assert np.array_equal(result[::2], frames)  # source frame k is output frame 2k
    assert np.array_equal(result[-1], frames[-1])  # the last frame is held, as minterpolate does
    for k in range(3):  # the in-betweens are the network's, not copies of a neighbour
        assert not np.array_equal(result[2 * k + 1], frames[k])
        assert not np.array_equal(result[2 * k + 1], frames[k + 1])


def test_rife_between_two_equal_frames_is_that_frame(rife_zip: str) -> None:
    """Warping a flat picture along any flow and blending it with itself gives it back: the
    plumbing (scaling to [0, 1] and back, padding, channel order) loses nothing."""
    frames = np.full((2, 64, 64, 3), (90, 140, 200), dtype=np.uint8)
    out, fps, _ = enhance.interpolate(frames, 10, factor=3, device="cpu", source=rife_zip)
    assert fps == 30
    assert np.array_equal(arrays(out), np.repeat(frames[:1], 6, axis=0))


def test_rife_batches_give_the_frames_one_pair_at_a_time_gives(rife_zip: str) -> None:
    net = load_ifnet(load_state_dict(rife_zip))
    frames = clip(5, 64, 64, seed=3)
    one = arrays(RifeInterpolator(net, "cpu", batch_size=1).interpolate(frames, 3))
    many = arrays(RifeInterpolator(net, "cpu", batch_size=8).interpolate(frames, 3))
    assert one.shape == (15, 64, 64, 3)
    assert np.abs(one.astype(int) - many.astype(int)).max() <= 1


def test_rife_reports_each_batch_and_stops_on_a_cancel(rife_zip: str) -> None:
    seen: list[tuple[str, int, int]] = []
    control = JobControl(lambda p: seen.append((p.stage, p.step, p.total)))
    interpolator = RifeInterpolator(load_ifnet(load_state_dict(rife_zip)), "cpu", batch_size=2)
    interpolator.interpolate(clip(4), 2, control)
    assert seen == [("interpolate", 0, 3), ("interpolate", 2, 3), ("interpolate", 3, 3)]
    control.cancel()
    with pytest.raises(GenerationCancelled):
        interpolator.interpolate(clip(4), 2, control)


# --- fallback ------------------------------------------------------------------------------------


def test_without_rife_weights_minterpolate_does_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = media.interpolate

    def spy(frames, fps, factor):  # type: ignore[no-untyped-def]
        calls.append(factor)
        return real(frames, fps, factor)

    monkeypatch.setattr(media, "interpolate", spy)
    frames = clip(3, 48, 48)
    # The hub is offline in the tests and this file is in no cache: the weights cannot be had.
    out, fps, how = enhance.interpolate(
        frames, 12, factor=2, device="cpu", source="hzwer/RIFE/RIFEv4.26_0921.zip"
    )
    assert calls == [2]
    assert how == "minterpolate (RIFE weights unavailable)"
    assert (len(out), fps) == (6, 24)


def test_auto_device_without_a_gpu_takes_minterpolate(
    rife_zip: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    interpolator, reason = enhance.choose_interpolator(8, device="auto", source=rife_zip)
    assert (interpolator.name, reason) == ("minterpolate", "no GPU")


def test_a_refused_rate_costs_nothing(rife_zip: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enhance, "choose_interpolator", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(InvalidParameterError, match="past the 60 fps"):
        enhance.interpolate(clip(2), 30, factor=4, device="cpu", source=rife_zip)


# --- the frame-rate cap --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "factor", "fps", "expected"),
    [
        (8, None, None, (2, 16)),  # neither: doubled
        (8, 4, None, (4, 32)),
        (30, 2, None, (2, 60)),  # exactly at the cap
        (24, None, 60, (2, 48)),  # a target: the largest factor that stays at or under it
        (8, None, 60, (4, 32)),  # at most 4x
        (10, None, 35, (3, 30)),
    ],
)
def test_target_fps_picks_the_factor(
    source: float, factor: int | None, fps: float | None, expected: tuple[int, float]
) -> None:
    assert rates.target_fps(source, factor=factor, fps=fps) == expected


@pytest.mark.parametrize(
    ("source", "factor", "fps", "message"),
    [
        (60, 2, None, "120 fps, past the 60 fps Discord plays smoothly: this video is already"),
        (24, 4, None, "96 fps, past the 60 fps Discord plays smoothly: use 2x \\(48 fps\\)"),
        (24, None, 30, "less than twice the video's 24 fps: .* ask for 48 fps or more"),
        (40, None, 60, "80 fps, past the 60 fps"),
        (8, None, 120, "fps: must be at most 60"),
        (8, 2, 16, "give a factor or a target fps, not both"),
        (8, 5, None, "factor: must be 2, 3 or 4 \\(got 5\\)"),
        (8, True, None, "factor: must be 2, 3 or 4 \\(got True\\)"),
        (float("nan"), 2, None, "frame rate must be a positive number"),
        (8, None, -1, "fps: must be a positive number"),
    ],
)
def test_target_fps_refuses_what_it_cannot_do(
    source: float, factor: int | None, fps: float | None, message: str
) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        rates.target_fps(source, factor=factor, fps=fps)


# --- Real-ESRGAN ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
def test_spandrel_detects_the_esrgan_twin_and_upscales_by_its_scale(
    esrgan_dir: Path, scale: int
) -> None:
    path = esrgan_dir / f"RealESRGAN_x{scale}.pth"
    descriptor = load_descriptor(load_state_dict(str(path)))
    assert (descriptor.architecture.id, descriptor.scale) == ("ESRGAN", scale)
    frames = clip(3, 40, 56)
    out = enhance.upscale(frames, scale, device="cpu", source=str(path))
    assert arrays(out).shape == (3, 40 * scale, 56 * scale, 3)


def test_upscale_batches_give_the_frames_one_at_a_time_gives(esrgan_dir: Path) -> None:
    descriptor = load_descriptor(load_state_dict(str(esrgan_dir / "RealESRGAN_x2.pth")))
    frames = clip(5, 32, 48, seed=1)
    one = arrays(SpandrelUpscaler(descriptor, "cpu", batch_size=1).upscale(frames))
    many = arrays(SpandrelUpscaler(descriptor, "cpu", batch_size=4).upscale(frames))
    assert np.abs(one.astype(int) - many.astype(int)).max() <= 1


def test_upscale_reports_progress_and_stops_on_a_cancel(esrgan_dir: Path) -> None:
    seen: list[int] = []
    control = JobControl(lambda p: seen.append(p.step))
    descriptor = load_descriptor(load_state_dict(str(esrgan_dir / "RealESRGAN_x2.pth")))
    upscaler = SpandrelUpscaler(descriptor, "cpu", batch_size=2)
    upscaler.upscale(clip(3, 16, 16), control)
    assert seen == [0, 2, 3]
    control.cancel()
    with pytest.raises(GenerationCancelled):
        upscaler.upscale(clip(3, 16, 16), control)


def test_training_checkpoints_load_from_their_params_ema(esrgan_dir: Path, tmp_path: Path) -> None:
    state = torch.load(esrgan_dir / "RealESRGAN_x4.pth", weights_only=True)
    wrapped = tmp_path / "RealESRGAN_x4plus.pth"
    torch.save({"params_ema": state}, wrapped)  # the layout of xinntao's own releases
    out = enhance.upscale(clip(1, 8, 8), 4, device="cpu", source=str(wrapped))
    assert out[0].size == (32, 32)


def test_upscale_refuses_what_it_cannot_do(esrgan_dir: Path) -> None:
    with pytest.raises(InvalidParameterError, match=r"scale: must be 2 or 4 \(got 3\)"):
        enhance.upscale(clip(1), 3, device="cpu")
    big = np.zeros((1, 720, 1280, 3), dtype=np.uint8)
    with pytest.raises(InvalidParameterError, match=r"5120x2880, past 3840x2160.*use 2x"):
        enhance.upscale(big, 4, device="cpu")
    x4 = str(esrgan_dir / "RealESRGAN_x4.pth")
    with pytest.raises(InvalidParameterError, match="upscales 4x, not 2x"):
        enhance.upscale(clip(1, 8, 8), 2, device="cpu", source=x4)


def test_weights_that_are_not_an_upscaler_are_refused(rife_zip: str, tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailable, match="spandrel recognises no upscaler"):
        load_descriptor(load_state_dict(rife_zip))
    with pytest.raises(WeightsUnavailable, match=r"could not load weights from nobody/none/x\.pth"):
        enhance.upscale(clip(1, 8, 8), 2, device="cpu", source="nobody/none/x.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(
        WeightsUnavailable, match=f"could not load weights from {re.escape(str(junk))}"
    ):
        load_state_dict(str(junk))


def test_without_spandrel_the_refusal_says_how_to_install_it(
    esrgan_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def absent() -> None:
        raise ModuleNotFoundError("No module named 'spandrel'", name="spandrel")

    monkeypatch.setattr("bot.core.enhance.esrgan.spandrel_module", absent)
    with pytest.raises(WeightsUnavailable, match=r"pip install --no-deps spandrel==0\.4\.2"):
        enhance.upscale(
            clip(1, 8, 8), 2, device="cpu", source=str(esrgan_dir / "RealESRGAN_x2.pth")
        )


def test_spandrel_imports_without_leaving_a_torchvision_stand_in() -> None:
    spandrel = spandrel_module()
    assert hasattr(spandrel, "ModelLoader")
    if "torchvision" in sys.modules:  # a real one, installed with a CUDA torch
        assert sys.modules["torchvision"].__spec__ is not None
    else:
        import importlib.util

        assert importlib.util.find_spec("torchvision") is None
