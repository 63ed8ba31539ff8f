"""The ``videobot`` command as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import os
import re
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
        ("trim", "--start", "0.25s", "--end", "0.75s"): 4,  # 8 frames at 8 fps: frames 2-5
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
        (["edit", "IN.mp4", "speed"], "--speed-factor: speed needs a factor, 0.25 to 4"),
        (
            ["edit", "IN.mp4", "trim", "--start", "5s"],
            "--start: must be from 0 to under 1.00 s, the video's length (got 5 s)",
        ),
        (
            ["edit", "IN.mp4", "trim", "--start", "0.5s", "--end", "0.25s"],
            "--end: must come after the start (0.5 s)",
        ),
        (
            ["edit", "IN.mp4", "trim", "--start", "1.5x"],
            "argument --start: must be a time in seconds, like 1.5s (got '1.5x')",
        ),
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
    """Offline with the model not downloaded: one line naming each repo that is missing, at once
    (no retries, no diffusers internals), and the folders made for the output are removed."""
    env_missing = tmp_path / "empty-cache"
    env_missing.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", HF_HOME=str(env_missing))
    run = subprocess.run(
        [sys.executable, "-m", "bot", "generate", "x", "--model", "animatediff", "-o", OUT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()
    assert line.startswith(
        "videobot generate: error: animatediff needs stable-diffusion-v1-5/stable-diffusion-v1-5 "
        "and guoyww/animatediff-motion-adapter-v1-5-2, not downloaded yet, and HF_HUB_OFFLINE "
        "is set: unset it to download them into "
    ), line
    assert "local_files_only" not in line and "stacktrace" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty-cache"]


# --- what a first use downloads, said before it starts ---------------------------------------

ANIMATEDIFF_REPOS = (
    "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "guoyww/animatediff-motion-adapter-v1-5-2",
)
MiB = 2**20


@pytest.fixture
def empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Hugging Face cache with nothing in it (huggingface_hub reads its constants per call)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def cache_repo(cache: Path, repo: str, files: dict[str, bytes]) -> None:
    """Put ``files`` of ``repo`` in the cache as huggingface_hub lays it out."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    for name, data in files.items():
        path = folder / "snapshots" / commit / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_offline_names_only_the_repo_that_is_missing(
    tmp_path: Path, empty_hub_cache: Path, capsys, monkeypatch
) -> None:
    """The SD 1.5 base is downloaded, its motion adapter is not: the line names the adapter."""
    cache_repo(empty_hub_cache, ANIMATEDIFF_REPOS[0], {"model_index.json": b"{}"})
    code, _, err = run_in_process(
        ["generate", "x", "--model", "animatediff", "-o", "out.mp4"], tmp_path, capsys, monkeypatch
    )
    assert code == 1
    [line] = err.strip().splitlines()
    assert f"animatediff needs {ANIMATEDIFF_REPOS[1]}, not downloaded yet" in line
    assert ANIMATEDIFF_REPOS[0] not in line and "HF_HUB_OFFLINE is set" in line


def test_an_unreachable_hub_fails_at_once_naming_the_repo(
    tmp_path: Path, empty_hub_cache: Path, capsys, monkeypatch
) -> None:
    """No network: one try with no backoff, then one line (before this, huggingface_hub retried
    for half a minute and diffusers printed its internals)."""
    import socket

    from huggingface_hub import constants

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    code, _, err = run_in_process(
        ["generate", "x", "--model", "modelscope_t2v", "-o", "out.mp4"],
        tmp_path,
        capsys,
        monkeypatch,
    )
    assert code == 1
    [line] = err.strip().splitlines()
    assert line.startswith(
        "videobot generate: error: modelscope_t2v needs ali-vilab/text-to-video-ms-1.7b, not "
        f"downloaded yet, and the hub at http://127.0.0.1:{port} cannot be reached (Connect"
    ), line


def test_a_first_use_says_what_it_downloads_and_how_big_before_it_starts(
    tmp_path: Path, empty_hub_cache: Path, capsys, monkeypatch
) -> None:
    """Sizes from the hub's own listing, counting only what a load takes: the components' one
    weight format and variant, not the root's single-file checkpoints or the pickles beside
    safetensors. A load that then fails names the repo it was reading (the adapter)."""
    from huggingface_hub import constants

    from bot.core.manager import ModelManager
    from tests.local_hub.server import HubRepo, LocalHub

    base = {
        "model_index.json": b"{}",
        "v1-5-pruned.ckpt": bytes(4 * MiB),  # a single-file checkpoint: never downloaded
        "unet/config.json": b"{}",
        "unet/diffusion_pytorch_model.safetensors": bytes(MiB),
        "unet/diffusion_pytorch_model.bin": bytes(MiB),  # safetensors win
        "unet/diffusion_pytorch_model.fp16.safetensors": bytes(MiB // 2),  # float32 here
    }
    adapter = {"config.json": b"{}", "diffusion_pytorch_model.safetensors": bytes(2 * MiB)}
    hub = LocalHub(
        {
            repo: HubRepo(repo, files)
            for repo, files in zip(ANIMATEDIFF_REPOS, (base, adapter), strict=True)
        }
    ).start()
    loads: list[str] = []

    def load_model(self: ModelManager, key: str) -> None:
        loads.append(key)
        raise OSError(f"{ANIMATEDIFF_REPOS[1]} does not appear to have a file named config.json")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(ModelManager, "load_model", load_model)
    try:
        code, _, err = run_in_process(
            ["generate", "x", "--model", "animatediff", "--device", "cpu", "-o", "out.mp4"],
            tmp_path,
            capsys,
            monkeypatch,
        )
    finally:
        hub.stop()
    assert code == 1 and loads == ["animatediff"]
    said, failed = err.strip().splitlines()
    assert said == (
        f"videobot: downloading animatediff for its first use: {ANIMATEDIFF_REPOS[0]} (1.0 MiB), "
        f"{ANIMATEDIFF_REPOS[1]} (2.0 MiB), 3.0 MiB in all, into {empty_hub_cache}"
    )
    assert failed.startswith(
        f"videobot generate: error: Could not load animatediff from {ANIMATEDIFF_REPOS[1]}:"
    )


def test_device_cuda_on_a_torch_without_cuda_is_a_usage_error(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    import torch

    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
    code, _, err = run_in_process(
        ["generate", "x", *TINY, "--device", "cuda", "-o", "out.mp4"], tmp_path, capsys, monkeypatch
    )
    assert code == 2
    assert err.strip() == (
        f"videobot generate: error: --device: cuda: this torch ({torch.__version__}) was built "
        "without CUDA; use --device cpu, or install a CUDA build of torch (https://pytorch.org)"
    )
    assert not (tmp_path / "out.mp4").exists()


def test_version(capsys) -> None:
    from bot import __version__
    from bot.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"videobot {__version__}"


def test_draft_runs_the_models_draft_recipe(tmp_path: Path, capsys, monkeypatch) -> None:
    args = ["generate", "x", "--model", "tiny_t2v", "--num-frames", "8", "--steps", "40"]
    code, out, err = run_in_process(
        [*args, "--draft", "-o", "d.mp4"], tmp_path, capsys, monkeypatch
    )
    assert code == 0, err
    assert "draft: 10 steps instead of 40" in out
    assert "10/10" in err and "/40" not in err  # the bar counts the draft's steps


def test_long_edits_show_a_progress_bar(
    generated: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    import bot.cli

    monkeypatch.setattr(bot.cli, "EDIT_BAR_DELAY_S", 0.0)  # the test's edit is a quick one
    code, _, err = run_in_process(
        ["edit", str(generated), "loop", "--loops", "2", "-o", "l.mp4"],
        tmp_path,
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert "edit" in err and "16/16" in err and "frame" in err


def test_the_progress_bar_shows_no_rate_before_a_second_step(capsys) -> None:
    """The first report comes as the first step ends; a rate counted from the bar's creation
    read "144631 step/s"."""
    from bot.cli import _ProgressBar

    with _ProgressBar() as bar:
        bar.control.step("denoise", 1, 10)
        first = capsys.readouterr().err
    assert "1/10" in first and "?step/s" in first, first
    assert not re.search(r"\dstep/s", first), first  # no rate from one step


def test_help_lists_the_models_pictures_work_with(capsys) -> None:
    from bot.cli import main
    from bot.core.registry import REGISTRY, image_to_video_models

    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--draft" in text and "default: animatediff" in text
    for key in image_to_video_models():
        assert (key in text) is (not REGISTRY[key].tiny), key


def test_an_unknown_model_in_the_config_gets_the_nearest_key(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """One line with "did you mean", not every key of the registry (33 and counting)."""
    monkeypatch.setenv("DISCORD_TOKEN", "not-used")
    monkeypatch.setenv("VIDEOBOT_CONFIG", str(tmp_path / "bot.toml"))
    (tmp_path / "bot.toml").write_text('[models]\nenabled = ["animatedif", "tiny_t2v"]\n')
    code, _, err = run_in_process(["run"], tmp_path, capsys, monkeypatch)
    assert code == 2
    [line] = err.strip().splitlines()
    assert line.endswith(
        "[models] enabled: unknown model 'animatedif'; did you mean animatediff? "
        "`videobot models` lists them all"
    ), line
    (tmp_path / "bot.toml").write_text(
        '[models]\nenabled = ["animatediff", "tiny_t2v"]\ndefault = "tiny_t2"\n'
    )
    code, _, err = run_in_process(["run"], tmp_path, capsys, monkeypatch)
    [line] = err.strip().splitlines()
    assert line.endswith(
        "[models] default: unknown model 'tiny_t2'; did you mean tiny_t2v? pick one of: "
        "animatediff, tiny_t2v"
    ), line
