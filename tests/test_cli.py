"""The ``videobot`` command as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core import media

ROOT = Path(__file__).resolve().parents[1]


def run_in_process(
    args: list[str], cwd: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """``videobot ARGS`` through ``bot.cli.main`` in this process: the same code as the command,
    without paying the torch import for every case."""
    from bot.cli import main

    monkeypatch.chdir(cwd)
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def videobot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


TINY = ["--model", "tiny_t2v", "--num-frames", "8", "--steps", "10", "--seed", "3"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    run = videobot("generate", "a cat surfing", *TINY, "-o", "out/cat.mp4", cwd=folder)
    assert run.returncode == 0, run.stderr
    assert "saved out/cat.mp4: 8 frames at 8 fps, 64x64, model tiny_t2v, seed 3" in run.stdout
    assert "denoise" in run.stderr and "10/10" in run.stderr  # the tqdm progress bar
    return folder / "out" / "cat.mp4"


def test_generate_writes_a_playable_mp4(generated: Path) -> None:
    info = media.probe(generated)
    assert (info.width, info.height, info.codec) == (64, 64, "h264")
    assert info.frame_count == 8


def test_edit_each_operation(generated: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    cases = {
        ("trim", "--start-frame", "2", "--end-frame", "6"): 4,
        ("speed", "--speed-factor", "2"): 4,
        ("reverse",): 8,
        ("loop", "--loops", "3"): 24,
        ("interpolate",): 16,
    }
    for args, frames in cases.items():
        out = tmp_path / f"{args[0]}.mp4"
        code, _, err = run_in_process(
            ["edit", str(generated), *args, "-o", str(out)], tmp_path, capsys, monkeypatch
        )
        assert code == 0, err
        assert media.probe(out).frame_count == frames, args


def test_edit_and_upscale_honour_the_bots_limits(
    generated: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """``[limits]`` from config.toml and ``VIDEOBOT_LIMITS__*`` apply to the CLI as to the bot."""
    (tmp_path / "config.toml").write_text("[limits]\ndecode_memory_mb = 0.5\n")
    out = tmp_path / "back.mp4"
    code, _, err = run_in_process(
        ["edit", str(generated), "reverse", "-o", str(out)], tmp_path, capsys, monkeypatch
    )
    assert code == 2 and "reversing this video would take" in err, err
    assert "(64x64 x 8 frames); the limit is 512 KiB" in err and not out.exists()
    monkeypatch.setenv("VIDEOBOT_LIMITS__MAX_UPLOAD_SECONDS", "0.5")
    code, _, err = run_in_process(
        ["upscale", str(generated), "--upscaler", "tiny_v2v", "-o", str(out)],
        tmp_path,
        capsys,
        monkeypatch,
    )
    assert code == 2 and "the video is 1.0 s long; the limit is 0.5 s" in err, err
    (tmp_path / "config.toml").write_text("[limits]\ndecode_memory = 1\n")
    code, _, err = run_in_process(
        ["edit", str(generated), "trim", "-o", str(out)], tmp_path, capsys, monkeypatch
    )
    assert code == 2 and "decode_memory" in err and "Traceback" not in err, err


def test_upscale_with_the_tiny_upscaler(generated: Path, tmp_path: Path) -> None:
    out = tmp_path / "big.mp4"
    run = videobot(
        "upscale",
        str(generated),
        "--upscaler",
        "tiny_v2v",
        "--steps",
        "10",
        "-o",
        str(out),
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    info = media.probe(out)
    assert (info.width, info.height) == (128, 128)


def test_models_lists_every_key() -> None:
    run = videobot("models", cwd=ROOT)
    assert run.returncode == 0
    for key in (
        "animatediff",
        "modelscope_t2v",
        "zeroscope_v2_576w",
        "zeroscope_v2_xl",
        "tiny_t2v",
    ):
        assert key in run.stdout
    assert (
        "1024x576" in run.stdout and "15.5GB" in run.stdout
    )  # Zeroscope XL: its card says 15.3 GB


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["generate", "x", *TINY[:2], "--num-frames", "100"],
            "--num-frames: must be between 8 and 64 for tiny_t2v: try 64 (got 100)",
        ),
        (
            ["generate", "x", *TINY[:2], "--width", "65"],
            "--width: must be a multiple of 8 between 32 and 1024 for tiny_t2v: try 64 or 72 (got 65)",
        ),
        (
            ["generate", "x", *TINY[:2], "--scheduler", "nope"],
            "--scheduler: unknown scheduler 'nope'; known: ddim",
        ),
        (["generate", " ", *TINY[:2]], "PROMPT: must not be empty"),
        (["generate", "x", "--model", "sora"], "--model: unknown model 'sora'; known: animatediff"),
        (
            ["generate", "x", *TINY[:2], "--fps", "fast"],
            "argument --fps: invalid int value: 'fast'",
        ),
        (
            ["generate", "x", *TINY[:2], "--dtype", "int8"],
            "--dtype: must be auto, float16, bfloat16 or float32",
        ),
        (
            ["generate", "x", *TINY[:2], "--device", "gpu"],
            "--device: must be auto, cpu, cuda, cuda:N (cuda:1, ...) or mps (got 'gpu')",
        ),
        (
            ["generate", "x", *TINY[:2], "--size", "64x48", "--width", "32"],
            "--size: give --size or --width/--height, not both",
        ),
        (
            ["generate", "x", *TINY[:2], "--size", "big"],
            "argument --size: must be WIDTHxHEIGHT, like 576x320 (got 'big')",
        ),
        (
            ["edit", "IN.mp4", "blur"],
            "OP: unknown edit 'blur'; known: trim, speed, reverse, loop, interpolate",
        ),
        (["edit", "IN.mp4", "trim", "--end-frame", "20"], "--end-frame: must be between 1 and 8"),
        (
            ["edit", "IN.mp4", "speed", "--speed-factor", "0"],
            "--speed-factor: must be between 0.25 and 4",
        ),
        (["edit", "IN.mp4", "loop", "--loops", "0"], "--loops: must be between 1 and 10"),
        (["edit", "missing.mp4", "reverse"], "missing.mp4 is not a file"),
        (["edit", "notvideo.mp4", "reverse"], "not a video"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line_and_no_output(
    generated: Path, tmp_path: Path, args: list[str], message: str, capsys, monkeypatch
) -> None:
    (tmp_path / "IN.mp4").write_bytes(generated.read_bytes())
    (tmp_path / "notvideo.mp4").write_text("this is not a video at all\n")
    code, out, err = run_in_process([*args, "-o", "result.mp4"], tmp_path, capsys, monkeypatch)
    assert code == 2, (out, err)
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "result.mp4").exists()
    assert not [p for p in tmp_path.iterdir() if p.name not in ("IN.mp4", "notvideo.mp4")]


def test_the_names_members_use_are_aliases(tmp_path: Path, capsys, monkeypatch) -> None:
    args = ["generate", "x", "--model", "tiny_t2v", "--frames", "8", "--steps", "10"]
    args += ["--guidance", "5", "--neg", "blurry", "--size", "64x48", "--seed", "1"]
    code, out, err = run_in_process([*args, "-o", "alias.mp4"], tmp_path, capsys, monkeypatch)
    assert code == 0, err
    assert "saved alias.mp4: 8 frames at 8 fps, 64x48, model tiny_t2v, seed 1" in out
    from bot.cli import build_parser

    parsed = build_parser().parse_args([*args, "-o", "alias.mp4"])
    assert (parsed.guidance_scale, parsed.negative_prompt, parsed.num_frames) == (5.0, "blurry", 8)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("folder.mp4", "-o: folder.mp4 is a folder; name a file in it"),
        ("file.txt/out.mp4", "file.txt is a file, not a folder"),
    ],
)
def test_output_path_is_checked_before_rendering(
    tmp_path: Path, output: str, message: str, capsys, monkeypatch
) -> None:
    (tmp_path / "folder.mp4").mkdir()
    (tmp_path / "file.txt").write_text("x")
    args = ["generate", "x", *TINY, "-o", output]
    code, out, err = run_in_process(args, tmp_path, capsys, monkeypatch)
    assert code == 2, (out, err)
    assert message in err
    assert "denoise" not in err  # refused before any rendering
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "folder.mp4"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_output_folder_is_refused(tmp_path: Path, capsys, monkeypatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, _out, err = run_in_process(
        ["generate", "x", *TINY, "-o", "locked/out.mp4"], tmp_path, capsys, monkeypatch
    )
    assert code == 2 and "cannot write in" in err


OUT = "made/for/a.mp4"


def test_failed_generation_exits_1_and_leaves_no_file(tmp_path: Path) -> None:
    """A load failure says its real cause (not diffusers' "see the stacktrace above"), and the
    folders made for the output are removed again."""
    env_missing = tmp_path / "empty-cache"
    env_missing.mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "bot", "generate", "x", "--model", "animatediff", "-o", OUT],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1
    assert (
        "Could not load animatediff from stable-diffusion-v1-5/stable-diffusion-v1-5" in run.stderr
    )
    assert "check the network" in run.stderr
    assert "caused by OfflineModeIsEnabled: Cannot reach https://huggingface.co/" in run.stderr
    assert "stacktrace" not in run.stderr
    assert "Traceback" not in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty-cache"]
