"""Sound survives every path: edits, upscales, fitting the upload limit, the CLI and ``/edit``.

The inputs are made here with the bundled ffmpeg, small and short: a phone clip with a rotation
tag and AAC, a native 1080x1920 portrait clip, a webm with Opus, an mp4 with two audio tracks,
one whose audio is longer than its video, a variable-frame-rate clip with a flash and a beep at
the same moment, and a silent one. Outputs are measured independently of ``bot.core.media``:
stream lengths from ffmpeg's packet listing (``framecrc``), sound from PCM decoded by ffmpeg and
an FFT (a rising chirp's dominant frequency at its start and end).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
import pytest
from bot_helpers import make_bot, make_settings, wait_for_result
from fake_discord import Upload
from PIL import Image

from bot.core import GenerationResult, edits, media
from bot.core.engine import GenerationEngine
from bot.core.manager import ModelManager

pytest_plugins = ("fake_discord.fixtures",)

ROOT = Path(__file__).resolve().parents[1]
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
TOLERANCE_S = 0.15
"""How far the sound's length may be from the picture's (the issue's bound)."""
PCM_RATE = 16000
READ = (FFMPEG, "-hide_banner", "-loglevel", "error", "-i")


# --- making inputs ---------------------------------------------------------------------------


def ffmpeg(*args: str) -> None:
    subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", *args],
        check=True,
        capture_output=True,
    )


def chirp(seconds: float, *, low: int = 300, high: int = 3000, layout: str = "stereo") -> str:
    """A lavfi source of a sine rising from ``low`` to ``high`` Hz over ``seconds``."""
    slope = (high - low) / (2 * seconds)
    return (
        f"aevalsrc=exprs='0.5*sin(2*PI*({low}*t+{slope:.4f}*t*t))':s=44100:d={seconds}:c={layout}"
    )


def clip(
    path: Path,
    *,
    size: str = "64x48",
    rate: int = 24,
    seconds: float = 1.5,
    sounds: tuple[str, ...] = (),
    video: tuple[str, ...] = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
    audio: tuple[str, ...] = ("-c:a", "aac"),
    extra: tuple[str, ...] = (),
) -> Path:
    inputs = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={seconds}"]
    maps = ["-map", "0:v"]
    for number, sound in enumerate(sounds, start=1):
        inputs += ["-f", "lavfi", "-i", sound]
        maps += ["-map", f"{number}:a"]
    ffmpeg(*inputs, *maps, *video, *(audio if sounds else ()), *extra, "-y", str(path))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sound")
    flat = clip(folder / "flat.mp4", rate=30, sounds=(chirp(1.5),))
    phone = folder / "phone.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(flat), "-c", "copy", str(phone))
    return {
        "phone": phone,
        "webm": clip(
            folder / "opus.webm",
            sounds=(chirp(1.5, layout="mono"),),
            video=("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"),
            audio=("-c:a", "libopus"),
        ),
        "two tracks": clip(
            folder / "two.mp4",
            seconds=1.0,
            sounds=("sine=frequency=440:duration=1", "sine=frequency=1000:duration=1"),
            extra=("-disposition:a:0", "0", "-disposition:a:1", "default"),
        ),
        "long audio": clip(folder / "long.mp4", seconds=1.0, sounds=(chirp(2.0),)),
        "silent": clip(folder / "silent.mp4", seconds=1.0),
        "short": clip(
            folder / "short.mp4", size="32x24", rate=12, seconds=0.5, sounds=(chirp(0.5),)
        ),
    }


@pytest.fixture(scope="module")
def portrait(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A native 1080x1920 portrait clip with AAC: 12 frames."""
    return clip(
        tmp_path_factory.mktemp("portrait") / "portrait.mp4",
        size="1080x1920",
        seconds=0.5,
        sounds=(chirp(0.5),),
    )


# --- measuring outputs -----------------------------------------------------------------------


def stream_ends(path: Path) -> dict[str, float]:
    """The end of the last packet of the first video and audio streams, in seconds."""
    listing = subprocess.run(
        [*READ, str(path), "-map", "0:v:0", "-map", "0:a:0?", "-c", "copy", "-f", "framecrc", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    bases: dict[int, float] = {}
    kinds: dict[int, str] = {}
    ends: dict[str, float] = {}
    for line in listing.splitlines():
        if line.startswith("#tb "):
            index, value = line[4:].split(":")
            numerator, denominator = value.strip().split("/")
            bases[int(index)] = int(numerator) / int(denominator)
        elif line.startswith("#media_type "):
            index, kind = line[12:].split(":")
            kinds[int(index)] = kind.strip()
        elif line and not line.startswith("#"):
            fields = [field.strip() for field in line.split(",")]
            index = int(fields[0])
            end = (int(fields[2]) + int(fields[3])) * bases[index]
            ends[kinds[index]] = max(ends.get(kinds[index], 0.0), end)
    return ends


def pcm(path: Path) -> np.ndarray:
    """The sound of ``path`` as mono samples at ``PCM_RATE``, decoded by ffmpeg."""
    raw = subprocess.run(
        [*READ, str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(PCM_RATE), "-f", "f32le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, "<f4")


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / PCM_RATE)[int(spectrum.argmax())])


def start_and_end_hz(path: Path, window_s: float = 0.2) -> tuple[float, float]:
    samples = pcm(path)
    width = int(window_s * PCM_RATE)
    return dominant_hz(samples[:width]), dominant_hz(samples[-width:])


def assert_sound_fits(path: Path) -> dict[str, float]:
    """An H.264 mp4 with an AAC track as long as its picture (within ``TOLERANCE_S``)."""
    info = media.probe(path)
    assert (info.container, info.codec) == ("mp4", "h264")
    assert info.audio is not None and info.audio.codec == "aac"
    ends = stream_ends(path)
    assert abs(ends["audio"] - ends["video"]) <= TOLERANCE_S, ends
    return ends


@pytest.fixture(scope="module")
def engine() -> GenerationEngine:
    return GenerationEngine(ModelManager())


def edit(
    engine: GenerationEngine, source: Path, out: Path, operation: str, **arguments: Any
) -> GenerationResult:
    """One edit the way the bot and the CLI run it: planned, then streamed file to file."""
    limits = media.MediaLimits()
    plan = edits.plan_edit(operation, media.probe(source, limits), limits, **arguments)
    return engine.edit_file(plan, source, out, limits=limits, encoder="libx264")


EDITS: list[tuple[str, Callable[[int], dict[str, Any]]]] = [
    ("trim", lambda n: {"start_frame": n // 4, "end_frame": 3 * n // 4}),
    ("speed", lambda n: {"speed_factor": 2.0}),
    ("speed", lambda n: {"speed_factor": 0.5}),
    ("reverse", lambda n: {}),
    ("loop", lambda n: {"loops": 2}),
    ("interpolate", lambda n: {"factor": 2}),
]
EDIT_IDS = ["trim", "speed2", "speed0.5", "reverse", "loop", "interpolate"]


# --- every edit keeps the sound ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["phone", "webm", "two tracks", "long audio"])
@pytest.mark.parametrize(("operation", "arguments"), EDITS, ids=EDIT_IDS)
def test_every_edit_keeps_the_sound_as_long_as_the_picture(
    clips, engine, tmp_path, name, operation, arguments
) -> None:  # type: ignore[no-untyped-def]
    source = clips[name]
    info = media.probe(source)
    out = tmp_path / "out.mp4"
    result = edit(engine, source, out, operation, **arguments(info.frame_count))
    ends = assert_sound_fits(out)
    planned = len(result.images) / result.frame_rate
    assert abs(ends["video"] - planned) <= 1 / result.frame_rate + 1e-6
    # no note about the sound (an interpolation's note says only what smoothed it)
    assert result.sound is not None and "sound" not in result.metadata.get("note", "")


@pytest.mark.parametrize(
    ("operation", "arguments"),
    [
        *EDITS[:5],
        pytest.param(*EDITS[5], marks=pytest.mark.slow),  # minterpolate at 1080x1920: ~15 s
    ],
    ids=EDIT_IDS,
)
def test_a_native_portrait_clip_keeps_its_sound(
    portrait, engine, tmp_path, operation, arguments
) -> None:  # type: ignore[no-untyped-def]
    info = media.probe(portrait)
    assert (info.width, info.height, info.frame_count) == (1080, 1920, 12)
    out = tmp_path / "out.mp4"
    edit(engine, portrait, out, operation, **arguments(info.frame_count))
    assert_sound_fits(out)
    assert (media.probe(out).width, media.probe(out).height) == (1080, 1920)


def test_the_phone_clip_stays_upright_with_its_sound(clips, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "back.mp4"
    edit(engine, clips["phone"], out, "reverse")
    info = media.probe(out)
    assert (info.width, info.height) == (48, 64)
    assert info.audio is not None and info.audio.channels == 2


@pytest.mark.parametrize(("operation", "arguments"), EDITS, ids=EDIT_IDS)
def test_silent_stays_silent(clips, engine, tmp_path, operation, arguments) -> None:  # type: ignore[no-untyped-def]
    source = clips["silent"]
    out = tmp_path / "out.mp4"
    result = edit(engine, source, out, operation, **arguments(media.probe(source).frame_count))
    assert media.probe(out).audio is None and "audio" not in stream_ends(out)
    assert result.sound is None and "sound" not in result.metadata.get("note", "")


# --- what each edit does to the sound -----------------------------------------------------------


def test_reverse_turns_a_rising_chirp_into_a_falling_one(clips, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    before = start_and_end_hz(clips["phone"])
    assert before[0] < 800 and before[1] > 2400  # the source rises
    out = tmp_path / "back.mp4"
    edit(engine, clips["phone"], out, "reverse")
    start, end = start_and_end_hz(out)
    assert start > 2400 and end < 800


def test_the_sound_of_audio_longer_than_the_video_is_cut_to_the_video(
    clips, engine, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """The chirp runs 2 s over 1 s of video: reversed, it starts where the video ends (1650 Hz),
    not where the sound does (3000 Hz)."""
    info = media.probe(clips["long audio"])
    assert info.duration_s == pytest.approx(1.0, abs=0.01) and info.frame_count == 24
    out = tmp_path / "back.mp4"
    edit(engine, clips["long audio"], out, "reverse")
    ends = assert_sound_fits(out)
    assert ends["video"] == pytest.approx(1.0, abs=0.05)
    start, end = start_and_end_hz(out)
    assert 1200 < start < 1800 and end < 800


@pytest.mark.parametrize("factor", [2.0, 0.5, 3.0])
def test_speed_changes_the_length_not_the_pitch(clips, engine, tmp_path, factor) -> None:  # type: ignore[no-untyped-def]
    """The default track is a steady 1000 Hz tone: after the speed change it lasts 1/factor as
    long and is still 1000 Hz (atempo, chained past 2x for 3x)."""
    out = tmp_path / "fast.mp4"
    edit(engine, clips["two tracks"], out, "speed", speed_factor=factor)
    ends = assert_sound_fits(out)
    assert ends["audio"] == pytest.approx(1.0 / factor, abs=0.06)
    assert dominant_hz(pcm(out)) == pytest.approx(1000, abs=30)


def test_the_default_track_of_two_is_kept(clips, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    info = media.probe(clips["two tracks"])
    assert info.audio is not None and (info.audio.index, info.audio.streams) == (2, 2)
    out = tmp_path / "same.mp4"
    edit(engine, clips["two tracks"], out, "interpolate", factor=2)
    assert dominant_hz(pcm(out)) == pytest.approx(1000, abs=30)  # not the first track's 440


def test_loop_repeats_the_sound(clips, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "loop.mp4"
    edit(engine, clips["phone"], out, "loop", loops=2)
    samples = pcm(out)
    half = len(samples) // 2
    assert abs(len(samples) / PCM_RATE - 3.0) <= TOLERANCE_S
    first, second = samples[1000 : half - 1000], samples[half + 1000 : 2 * half - 1000]
    assert np.corrcoef(first, second)[0, 1] > 0.9  # the same chirp twice, not silence
    assert dominant_hz(samples[half - 3200 : half]) > 2400  # each pass ends high
    assert dominant_hz(samples[half + 200 : half + 3400]) < 800  # and the next starts low


def test_trim_keeps_the_same_span_of_sound(clips, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Frames 15-30 of the 30 fps phone clip are 0.5-1.0 s, where the chirp (300 Hz + 1800 Hz a
    second) rises from 1200 to 2100 Hz."""
    out = tmp_path / "cut.mp4"
    edit(engine, clips["phone"], out, "trim", start_frame=15, end_frame=30)
    assert assert_sound_fits(out)["video"] == pytest.approx(0.5, abs=0.01)
    samples = pcm(out)
    first, last = dominant_hz(samples[:1600]), dominant_hz(samples[-1600:])
    assert 1150 < first < 1450 and 1850 < last < 2150


@pytest.mark.parametrize("factor", [4.0, 0.25])
def test_speed_past_the_sounds_range_drops_it_and_says_so(clips, engine, tmp_path, factor) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "fast.mp4"
    result = edit(engine, clips["phone"], out, "speed", speed_factor=factor)
    assert media.probe(out).audio is None and result.sound is None
    note = result.metadata["note"]
    assert f"at {factor:g}x" in note and "from 0.5x to 3x" in note


def test_atempo_is_chained_within_its_classic_range() -> None:
    assert edits.atempo_chain(3.0) == "atempo=2.000000,atempo=1.500000"
    assert edits.atempo_chain(0.25) == "atempo=0.500000,atempo=0.500000"
    assert edits.atempo_chain(1.5) == "atempo=1.500000"


def test_variable_frame_rate_stays_in_sync(tmp_path, engine) -> None:  # type: ignore[no-untyped-def]
    """30 fps with two frames of three dropped in the first second (10 then 30 frames a
    second), a white flash and a beep both at 1.5 s. Played at a constant rate the flash would
    come 0.25 s early; read by timestamps it comes with the beep."""
    source = tmp_path / "vfr.mp4"
    ffmpeg(
        *("-f", "lavfi", "-i", "color=black:size=64x48:rate=30:duration=2.5"),
        *("-f", "lavfi", "-i", "aevalsrc=exprs='if(between(t,1.5,1.6),sin(2*PI*1000*t),0)'"),
        *("-t", "2.5", "-filter_complex"),
        "[0:v]drawbox=c=white:t=fill:enable='between(t,1.5,1.6)',"
        "select='gte(t,1)+not(mod(n,3))'[v]",
        *("-map", "[v]", "-map", "1:a", "-fps_mode", "vfr", "-c:v", "libx264"),
        *("-c:a", "aac", "-y", str(source)),
    )
    info = media.probe(source)
    out = tmp_path / "cut.mp4"
    start = round(0.5 * info.fps)
    edit(engine, source, out, "trim", start_frame=start, end_frame=info.frame_count)
    frames, fps = media.decode(out)
    flash = next(i for i, f in enumerate(frames) if np.asarray(f).mean() > 128) / fps
    samples = pcm(out)
    beep = int(np.argmax(np.abs(samples) > 0.3)) / PCM_RATE
    assert abs(flash - beep) <= 1.5 / fps, (flash, beep)


# --- results made here: waveforms, ping-pong, fitting the upload limit --------------------------


def frames_of(count: int, size: tuple[int, int] = (64, 48)) -> list[Image.Image]:
    return [Image.new("RGB", size, (i * 8 % 256, 64, 128)) for i in range(count)]


def rising(seconds: float, rate: int = 24000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * (300 * t + 2700 / (2 * seconds) * t * t))).astype(np.float32)


def sounding(seconds: float) -> GenerationResult:
    """A generator's result: 24 frames at 12 fps (2 s) with a rising tone of ``seconds``."""
    return GenerationResult(
        images=frames_of(24),
        metadata={},
        generation_time=0.0,
        seed_used=0,
        params=None,
        fps=12.0,
        sound=media.Sound.waveform(rising(seconds), 24000),
    )


def test_a_generators_waveform_is_muxed_with_the_frames(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = sounding(2.2)  # a little longer: cut to the frames
    out = Path(result.save_as_video(tmp_path / "gen.mp4"))
    assert assert_sound_fits(out)["video"] == pytest.approx(2.0)
    assert media.probe(out).audio.sample_rate == 24000  # type: ignore[union-attr]
    start, end = start_and_end_hz(out)
    assert start < 800 and end > 2000


def test_ping_pong_sound_turns_back_seamlessly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The sound of a ping-pong loop goes up then down again, as long as the frames, so a player
    looping it hears no jump."""
    frames = frames_of(24)
    looped = edits.ping_pong(frames)
    sound = media.Sound.waveform(rising(2.0), 24000)
    sound = sound.then(edits.ping_pong_filter(len(frames), 12.0), len(looped) / 12.0)
    out = tmp_path / "pingpong.mp4"
    media.encode(looped, out, 12.0, sound=sound)
    ends = assert_sound_fits(out)
    assert ends["audio"] == pytest.approx(46 / 12, abs=0.05)
    samples = pcm(out)
    middle = len(samples) // 2
    start, end = dominant_hz(samples[:3200]), dominant_hz(samples[-3200:])
    assert start < 800 and end < 800 and dominant_hz(samples[middle - 1600 : middle + 1600]) > 2000


def test_the_in_memory_edits_carry_the_sound(tmp_path, engine) -> None:  # type: ignore[no-untyped-def]
    clip_result = sounding(2.0)
    back = engine.edit_video(clip_result, "reverse")
    out = Path(back.save_as_video(tmp_path / "back.mp4"))
    start, end = start_and_end_hz(out)
    assert start > 2000 and end < 800
    dropped = engine.edit_video(clip_result, "speed", speed_factor=4.0)
    assert dropped.sound is None and "sound was left out" in dropped.metadata["note"]


def busy_frames(count: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(
            rng.integers(0, 2, (24, 32, 3), dtype=np.uint8).repeat(2, 0).repeat(2, 1) * 255
        )
        for _ in range(count)
    ]


def noise(seconds: float, rate: int = 48000) -> np.ndarray:
    return (np.random.default_rng(1).uniform(-0.5, 0.5, (int(seconds * rate), 2))).astype(
        np.float32
    )


def test_fitting_the_budget_lowers_the_sound_before_the_picture(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Noise is what AAC cannot squeeze: 4 s cost ~64 KB at 128 kb/s and ~16 KB at 32 kb/s, so a
    budget between the two is met by the sound alone, at the picture's best quality."""
    frames, sound = frames_of(48), media.Sound.waveform(noise(4.0), 48000)
    full = media.encode(frames, tmp_path / "full.mp4", 12.0, sound=sound)
    budget = full.size_bytes - 30_000
    fitted = media.encode_within(frames, tmp_path / "fit.mp4", 12.0, budget, sound=sound)
    assert fitted.size_bytes <= budget and fitted.crf == 18 and fitted.width == 64
    assert fitted.audio_kbps is not None and fitted.audio_kbps < 128
    assert media.probe(fitted.path).audio is not None


def test_the_picture_gives_way_only_once_the_sound_is_at_its_lowest(tmp_path) -> None:  # type: ignore[no-untyped-def]
    frames, sound = busy_frames(24), media.Sound.waveform(noise(2.0), 48000)
    full = media.encode_within(frames, tmp_path / "full.mp4", 12.0, 10**9, sound=sound)
    assert (full.crf, full.audio_kbps) == (18, 128)
    fitted = media.encode_within(
        frames, tmp_path / "fit.mp4", 12.0, full.size_bytes // 2, sound=sound
    )
    assert fitted.crf > 18 and fitted.audio_kbps == 32
    assert_sound_fits(fitted.path)


def test_reverse_is_charged_the_whole_sound(clips) -> None:  # type: ignore[no-untyped-def]
    info = media.probe(clips["phone"])
    silent = media.VideoInfo(**{**info.__dict__, "audio": None})
    limits = media.MediaLimits()
    with_sound = edits.plan_edit("reverse", info, limits)
    without = edits.plan_edit("reverse", silent, limits)
    assert with_sound.memory_bytes - without.memory_bytes == info.sound_bytes
    assert info.sound_bytes == 66150 * 2 * 4  # 1.5 s of 44.1 kHz stereo as float
    assert edits.plan_edit("trim", info, limits).memory_bytes == media.FRAMES_IN_FLIGHT * (
        info.frame_bytes
    )


def test_an_unreadable_sound_leaves_a_silent_video_not_a_failure(tmp_path) -> None:  # type: ignore[no-untyped-def]
    garbage = tmp_path / "garbage.mka"
    garbage.write_bytes(b"\x1a\x45\xdf\xa3" + b"\x00" * 200)
    sound = media.Sound(path=garbage, rate=48000, channels=2, duration_s=1.0)
    encoded = media.encode(frames_of(12), tmp_path / "out.mp4", 12.0, sound=sound)
    assert encoded.audio_kbps is None and media.probe(encoded.path).audio is None


# --- the upscale, the CLI and /edit in the fake Discord ------------------------------------------


def test_an_upscale_on_a_worker_carries_the_sound(clips, tmp_path, manager) -> None:  # type: ignore[no-untyped-def]
    """The source's file is gone once the worker returns: its sound travels in the result."""
    from bot.core.progress import JobControl
    from bot.jobspec import JobSpec
    from bot.lifecycle import JobKind
    from bot.worker import Worker

    spec = JobSpec(
        kind=JobKind.UPSCALE,
        model="tiny_v2v",
        params={"upscaler": "tiny_v2v"},
        prompt="",
        media=clips["short"].read_bytes(),
    )
    result = Worker("test", GenerationEngine(manager)).run(spec, JobControl())
    assert result.ok, result.error
    assert result.sound is not None and result.sound.track is not None
    out = Path(result.save_as_video(tmp_path / "big.mp4"))
    info = media.probe(out)
    assert (info.width, info.height, info.frame_count) == (64, 48, 6)
    assert_sound_fits(out)
    start, end = start_and_end_hz(out, window_s=0.1)
    assert start < 1000 and end > 2400


def test_the_cli_edits_with_sound_and_says_when_it_drops_it(
    clips, tmp_path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """``videobot edit`` as a member runs it (a subprocess), then in this process for the
    speed that drops the sound (the same code, without a second interpreter start)."""
    run = subprocess.run(
        [sys.executable, "-m", "bot", "edit", str(clips["webm"]), "reverse", "-o", "back.mp4"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "with sound" in run.stdout
    assert_sound_fits(tmp_path / "back.mp4")
    start, end = start_and_end_hz(tmp_path / "back.mp4")
    assert start > 2400 and end < 800

    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["edit", str(clips["webm"]), "speed", "--speed-factor", "4", "-o", "f.mp4"]) == 0
    out = capsys.readouterr().out
    assert "silent" in out and "The sound was left out: at 4x" in out


async def test_edit_an_uploaded_clip_with_sound_in_discord(
    fake_discord, manager, clips, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    fake = fake_discord
    data = clips["phone"].read_bytes()
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)):
        reversed_message = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "edit", {"operation": "reverse", "video": Upload("phone.mp4", data, "video/mp4")}
            ),
        )
        [attachment] = reversed_message.attachments
        out = tmp_path / "reversed.mp4"
        out.write_bytes(attachment.data)
        assert_sound_fits(out)
        start, end = start_and_end_hz(out)
        assert start > 2400 and end < 800

        fast = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "edit",
                {
                    "operation": "speed",
                    "speed_factor": 4.0,
                    "video": Upload("phone.mp4", data, "video/mp4"),
                },
            ),
        )
        assert "The sound was left out: at 4x" in fast.content
        out = tmp_path / "fast.mp4"
        out.write_bytes(fast.attachments[0].data)
        assert media.probe(out).audio is None

        short = Upload("short.mp4", clips["short"].read_bytes(), "video/mp4")
        upscaled = await wait_for_result(
            fake, await fake.run_slash_command("upscale", {"video": short})
        )
        out = tmp_path / "upscaled.mp4"
        out.write_bytes(upscaled.attachments[0].data)
        assert media.probe(out).width == 64
        assert_sound_fits(out)


async def test_a_result_over_the_upload_limit_keeps_its_sound(clips, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.delivery import fitted_copy
    from bot.lifecycle import JobKind
    from bot.service import Finished

    out = tmp_path / "loop.mp4"
    result = edit(engine, clips["phone"], out, "loop", loops=3)
    budget = out.stat().st_size - 2000
    smaller = await fitted_copy(Finished(1, JobKind.EDIT, result, out), budget)
    assert smaller != out and smaller.stat().st_size <= budget
    assert_sound_fits(smaller)
