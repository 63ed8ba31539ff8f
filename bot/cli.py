"""The ``videobot`` command line: generate, edit, upscale and list models, offline or on a GPU.

Bad input exits with status 2 and one message naming the option and what it allows, with no
traceback and no output file left behind (videos are written under a temporary name and renamed on
success, and folders made for the output are removed again on failure). A job that fails while
running (out of memory, say) exits with status 1. ``videobot run`` says the same way what is
wrong with the configuration, the token, the network or the Message Content intent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import __version__
from bot.core.aspect import ASPECTS
from bot.core.enhance.names import learned_scale
from bot.core.errors import InvalidParameterError, MediaError, VideoBotError
from bot.core.extend import (
    choose_extender,
    extend_models,
    extender_spec,
    plan_within_limits,
)
from bot.core.manager import ManagerOptions
from bot.core.registry import get_spec, restyle_models
from bot.core.restyle import (
    DEFAULT_RESTYLER,
    DEFAULT_STRENGTH,
    STRENGTH_HELP,
    check_strength,
    plan_restyle,
    restyler_spec,
)
from bot.core.rules import EDIT_OPERATIONS, SCHEDULERS

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.core.media import MediaLimits
    from bot.core.result import GenerationResult

EXIT_USAGE = 2
EXIT_FAILED = 1

DEFAULT_MODEL = "animatediff"
DEFAULT_SOUNDTRACK_MODEL = "stable_audio_open"
"""What ``generate`` renders with when no ``--model`` is given."""
DEFAULT_UPSCALER = "realesrgan"
"""What ``upscale`` runs when no ``--upscaler`` is given: Real-ESRGAN, any size (``--scale``)."""

# GenerationParams fields and the options that set them, so errors name what the user typed.
_OPTION_OF_FIELD = {
    "prompt": "PROMPT",
    "negative_prompt": "--negative-prompt",
    "num_frames": "--num-frames",
    "fps": "--fps",
    "width": "--width",
    "height": "--height",
    "num_inference_steps": "--steps",
    "guidance_scale": "--guidance-scale",
    "seed": "--seed",
    "scheduler": "--scheduler",
    "interpolate": "--interpolate",
    "smooth": "--smooth",
    "loop": "--loop",
    "model": "--model",
    "start_frame": "--start-frame",
    "end_frame": "--end-frame",
    "start_s": "--start",
    "end_s": "--end",
    "speed_factor": "--speed-factor",
    "loops": "--loops",
    "factor": "--factor",
    "target_fps": "--fps",
    "scale": "--scale",
    "operation": "OP",
    "strength": "--strength",
    "upscaler": "--upscaler",
    "dtype": "--dtype",
    "image": "--image",
    "end_image": "--end-image",
    "aspect": "--ar",
    "output": "-o",
    "device": "--device",
    "size": "--size",
}

MANAGER_FLAGS = tuple(option for option in fields(ManagerOptions) if "help" in option.metadata)
"""The model manager's options the CLI offers as flags (``--device``, ``--dtype``, the memory
savers), with the help each declares in ``bot.core.manager``."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videobot", description="Generate, edit and upscale short AI videos."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show logs and tracebacks")
    parser.add_argument("--version", action="version", version=f"videobot {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser("generate", help="render a video from a text prompt")
    generate.add_argument("prompt", metavar="PROMPT")
    generate.add_argument(
        "--model",
        help=f"model key (default: {DEFAULT_MODEL}; see `videobot models`); a model's first use "
        "downloads it, and says what and how big first",
    )
    # The second names are the ones members type in Discord (`/video prompt:… --frames 24`).
    generate.add_argument("--negative-prompt", "--neg", default="", help="what to avoid")
    # Left out, these take the chosen model's own defaults (see `videobot models`).
    generate.add_argument(
        "--num-frames", "--frames", type=int, default=None, help="default: the model's"
    )
    generate.add_argument("--fps", type=int, default=None, help="default: the model's")
    generate.add_argument("--width", type=int, default=None, help="default: the model's native")
    generate.add_argument("--height", type=int, default=None, help="default: the model's native")
    generate.add_argument(
        "--size", type=_size, default=None, metavar="WxH", help="width and height: 576x320"
    )
    generate.add_argument("--steps", type=int, default=None, help="default: the model's")
    generate.add_argument(
        "--guidance-scale", "--guidance", type=float, default=None, help="default: the model's"
    )
    generate.add_argument("--seed", type=int, default=None)
    generate.add_argument(
        "--scheduler", default=None, help=f"default: the model's; one of: {', '.join(SCHEDULERS)}"
    )
    generate.add_argument(
        "--image",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"animate this picture (image-to-video models: {', '.join(_picture_models())})",
    )
    generate.add_argument(
        "--end-image",
        type=Path,
        default=None,
        metavar="PATH",
        help="the picture the video ends on, with --image as its first (models that can: "
        f"{', '.join(_first_last_models())})",
    )
    generate.add_argument(
        "--ar",
        "--aspect",
        dest="aspect",
        default=None,
        metavar="W:H",
        help=f"the video's shape, sized for the model: {', '.join(ASPECTS)} (default: the "
        "model's native size; with --image, the picture's shape); --width/--height win",
    )
    generate.add_argument(
        "--interpolate",
        type=int,
        nargs="?",
        const=2,
        default=1,
        metavar="N",
        help="multiply the frame rate by N (2-4) with motion interpolation; N defaults to 2",
    )
    generate.add_argument(
        "--smooth",
        type=int,
        default=None,
        metavar="FPS",
        help="smooth the video to this frame rate (at most 60) with learned interpolation: RIFE "
        "4.26 ([enhance] device), else minterpolate; the largest whole multiple of --fps under "
        "it, same length; a --draft is not smoothed",
    )
    generate.add_argument("--loop", action="store_true", help="play forward then back, seamlessly")
    generate.add_argument(
        "--no-sound",
        dest="sound",
        action="store_false",
        help="a silent video from a model that makes sound (LTX-2); others are silent anyway",
    )
    generate.add_argument(
        "--sound",
        dest="soundtrack",
        action="store_true",
        help="a model without sound gets a soundtrack made from the prompt after the video "
        "([sound] soundtrack_model, else stable_audio_open: ~5 GB more GPU memory; ambience, "
        "not lip-sync)",
    )
    generate.add_argument(
        "--draft",
        action="store_true",
        help="a quick rough version: the model's step-distilled partner, or fewer steps",
    )
    generate.add_argument(
        "--previews",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the live previews of the forming video there, as DIR/step-NNN.gif",
    )
    _add_output(generate)

    edit = commands.add_parser("edit", help="trim, speed up, reverse, loop or interpolate a video")
    edit.add_argument("input", metavar="IN", type=Path)
    edit.add_argument("operation", metavar="OP", help=f"one of: {', '.join(EDIT_OPERATIONS)}")
    edit.add_argument("--start-frame", type=int, help="trim: the first frame kept")
    edit.add_argument("--end-frame", type=int, help="trim: the frame it stops before")
    edit.add_argument(
        "--start", type=_seconds, metavar="TIME", help="trim: where it starts, in seconds: 1.5s"
    )
    edit.add_argument("--end", type=_seconds, metavar="TIME", help="trim: where it ends: 4s")
    edit.add_argument("--speed-factor", type=float, help="speed: 2 is twice as fast, 0.5 half")
    edit.add_argument("--loops", type=int)
    edit.add_argument("--factor", type=int, help="interpolation factor (2-4)")
    edit.add_argument(
        "--fps",
        type=float,
        dest="target_fps",
        help="interpolate: or the frame rate to reach (at most 60), e.g. --fps 60",
    )
    _add_output(edit)

    upscale = commands.add_parser(
        "upscale", help="upscale a video: Real-ESRGAN at any size, or a video-to-video model"
    )
    upscale.add_argument("input", metavar="IN", type=Path)
    upscale.add_argument(
        "--upscaler",
        default=None,
        help=f"default: {DEFAULT_UPSCALER} (Real-ESRGAN, any size, a 67 MB download); "
        "zeroscope_xl for Zeroscope XL at 1024x576 (a large download, said before it starts); "
        "ltx2 for LTX-2's x2 latent upsampler on a video an LTX-2 model made (name it with "
        "--model); tiny_v2v for a quick test",
    )
    upscale.add_argument(
        "--scale", type=int, default=None, help="Real-ESRGAN: 2 or 4 times wider and taller"
    )
    upscale.add_argument(
        "--model",
        default=None,
        help="--upscaler ltx2: the LTX-2 model that made the video (ltx2, ltx2_distilled); "
        "its VAE and latent upsampler run the upscale",
    )
    upscale.add_argument("--prompt", default="", help="what the video shows (guides the upscaler)")
    upscale.add_argument("--strength", type=float, default=0.6)
    upscale.add_argument("--steps", type=int, default=20)
    upscale.add_argument("--seed", type=int, default=None)
    _add_output(upscale)

    restyle = _prompted_video_command(
        commands,
        "restyle",
        "redraw a video after a prompt (video-to-video on Wan 2.1)",
        "what the video should look like",
    )
    restyle.add_argument(
        "--strength", type=float, default=DEFAULT_STRENGTH, help=f"how far to go: {STRENGTH_HELP}"
    )
    restyle.add_argument(
        "--model",
        default=DEFAULT_RESTYLER,
        help=f"a model that restyles (default {DEFAULT_RESTYLER}): {', '.join(restyle_models())}",
    )
    _add_model_run(restyle)

    extend = _prompted_video_command(
        commands,
        "extend",
        "continue a clip from its last frames after a prompt (a model that extends)",
        "how the clip should go on",
    )
    extend.add_argument(
        "--model",
        default=None,
        help="a model that extends (default: [models] extender, else the first enabled of: "
        + ", ".join(extend_models())
        + "; for a clip with sound, one of those that makes sound first)",
    )
    extend.add_argument(
        "--frames",
        type=int,
        default=None,
        help="about how many frames to add (default: the model's own clip length; its frame "
        "rule decides the exact count)",
    )
    _add_model_run(extend)

    models = commands.add_parser("models", help="list the models, their sizes and memory needs")
    models.add_argument(
        "--json", action="store_true", help="the registry as JSON, with each model's memory plans"
    )
    models.add_argument(
        "--vram-gb",
        type=float,
        default=0.0,
        help="plan for a card of this many GB (default: the GPU here, if any)",
    )

    run = commands.add_parser("run", help="start the Discord bot (token from DISCORD_TOKEN)")
    run.add_argument(
        "--sync-commands",
        action="store_true",
        help="register the slash commands with Discord on start (after adding or changing them)",
    )

    worker = commands.add_parser(
        "worker",
        help="join this host's GPUs to the bot's Ray cluster ([executor] backend = \"ray\")",
        description="Runs `ray start` for this host (in the foreground: Ctrl-C leaves the "
        "cluster): --head on the first host, --address=HEAD:6379 on the others. Each GPU (or "
        "each unit of [executor] resource) becomes one worker of the bot. Ray's token "
        "authentication is on (RAY_AUTH_MODE=token): every host needs the cluster's token, "
        "made once with `ray get-auth-token --generate` and copied to ~/.ray/auth_token; "
        "[executor] node_ip picks the address this host announces.",
    )
    place = worker.add_mutually_exclusive_group()
    place.add_argument("--head", action="store_true", help="start the cluster's head node here")
    place.add_argument("--address", help="the head node to join, HOST:PORT ([executor] address)")
    worker.add_argument("--port", type=int, default=6379, help="the head node's port (--head)")
    worker.add_argument(
        "--workers", type=int, help="workers on this host ([executor] workers_per_host; 0: GPUs)"
    )
    worker.add_argument("--resource", help="the resource each worker takes ([executor] resource)")
    worker.add_argument(
        "--dry-run", action="store_true", help="print the `ray start` command instead of running it"
    )

    for sub in (generate, upscale, restyle, extend):
        for option in MANAGER_FLAGS:
            flag, text = f"--{option.name.replace('_', '-')}", option.metadata["help"]
            if option.default is False:
                sub.add_argument(flag, action="store_true", help=text)
            elif isinstance(option.default, float):
                sub.add_argument(flag, type=float, default=option.default, help=text)
            else:
                sub.add_argument(flag, default=option.default, help=text)
        sub.add_argument(
            "--no-speedups", action="store_true", help="no compile, fusion or layout speed-ups"
        )
    return parser


def _add_output(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.mp4")


def _prompted_video_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    prompt_help: str,
) -> argparse.ArgumentParser:
    """A command that remakes a video after a prompt (restyle, extend): the video and the
    required prompt come first; the caller adds its model's options, then
    :func:`_add_model_run`."""
    sub = commands.add_parser(name, help=summary)
    sub.add_argument("input", metavar="IN", type=Path)
    sub.add_argument("--prompt", required=True, help=prompt_help)
    return sub


def _add_model_run(sub: argparse.ArgumentParser) -> None:
    """The last options of a command that runs its model on a video: the steps (the model's own
    by default), the seed and the output file."""
    sub.add_argument("--steps", type=int, default=None, help="default: the model's own")
    sub.add_argument("--seed", type=int, default=None)
    _add_output(sub)


def _first_last_models() -> list[str]:
    """The models ``--end-image`` works with, from the registry (the tiny test models left out)."""
    from bot.core.registry import REGISTRY, first_last_frame_models

    return [key for key in first_last_frame_models() if not REGISTRY[key].tiny]


def _picture_models() -> list[str]:
    """The models ``--image`` works with, from the registry (the tiny test models left out)."""
    from bot.core.registry import REGISTRY, image_to_video_models

    return [key for key in image_to_video_models() if not REGISTRY[key].tiny]


def _seconds(text: str) -> float:
    """``1.5s`` or ``1.5``: a time in the video, in seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*s?\s*", text, re.IGNORECASE)
    if match is None:
        raise argparse.ArgumentTypeError(f"must be a time in seconds, like 1.5s (got {text!r})")
    return float(match[1])


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"must be WIDTHxHEIGHT, like 576x320 (got {text!r})")
    return int(match[1]), int(match[2])


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from bot.logs import configure_logging

    configure_logging(args.verbose, announce=args.command == "run")
    try:
        return _COMMANDS[args.command](args)
    except InvalidParameterError as exc:
        return _usage_error(args.command, _name_options(str(exc)))
    except MediaError as exc:
        return _usage_error(args.command, str(exc))
    except VideoBotError as exc:
        print(f"videobot {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _usage_error(command: str, message: str) -> int:
    print(f"videobot {command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _name_options(message: str) -> str:
    """Rewrite 'num_frames: ...' as '--num-frames: ...' for each part of the message."""
    parts = []
    for part in message.split("; "):
        field, sep, rest = part.partition(": ")
        parts.append(f"{_OPTION_OF_FIELD.get(field, field)}{sep}{rest}" if sep else part)
    return "; ".join(parts)


def _configure_manager(args: argparse.Namespace) -> None:
    from bot.core import get_model_manager
    from bot.core.speed import SpeedOptions

    speed = SpeedOptions.all_off() if args.no_speedups else SpeedOptions()
    chosen = {option.name: getattr(args, option.name) for option in MANAGER_FLAGS}
    try:
        ManagerOptions(**chosen, speed=speed)
    except ValueError as exc:
        key, _, allowed = str(exc).partition(": ")
        raise InvalidParameterError(key, allowed) from None
    _check_device_here(chosen["device"])
    get_model_manager().configure(**chosen, speed=speed)


def _check_device_here(device: str) -> None:
    """``--device cuda`` (or ``mps``) where this torch cannot reach one is a usage error naming
    what this torch has, before any load (diffusers would fail on it with advice about the
    model's folder)."""
    import torch

    if device.startswith("cuda"):
        if not torch.backends.cuda.is_built():
            raise InvalidParameterError(
                "device",
                f"{device}: this torch ({torch.__version__}) was built without CUDA; use "
                "--device cpu, or install a CUDA build of torch (https://pytorch.org)",
            )
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            seen = f"{count} GPU(s): cuda:0 to cuda:{count - 1}" if count else "no GPU"
            raise InvalidParameterError(
                "device", f"{device}: torch sees {seen}; use --device cpu or auto"
            )
    elif device == "mps" and not torch.backends.mps.is_available():
        raise InvalidParameterError(
            "device", "mps: this machine has no Apple GPU that torch can use; use --device cpu"
        )


def _picture_aspect(path: Path, model: str) -> str | None:
    """A picture job's shape when no size or aspect is given: the picture's own, except on a
    model whose image-to-video size is fixed (CogVideoX-5b-I2V)."""
    from bot.core.aspect import aspect_of
    from bot.core.images import load_image
    from bot.core.registry import get_spec

    if get_spec(model).image_size is not None:
        return None
    return aspect_of(*load_image(path).size)


def _soundtrack_model() -> str:
    """``--sound``'s model: ``[sound] soundtrack_model`` where the config names one (the same
    file and environment as the bot), else Stable Audio Open."""
    configured = _bot_settings().sound.soundtrack_model
    if importlib.util.find_spec("torchsde") is None:
        raise InvalidParameterError(
            "sound", "soundtracks need torchsde: pip install -e '.[soundtrack]' in the clone"
        )
    return configured or DEFAULT_SOUNDTRACK_MODEL


def _cmd_generate(args: argparse.Namespace) -> int:
    from bot.core import GenerationEngine, GenerationParams, get_generation_engine, soundtrack
    from bot.core.drafts import draft_recipe
    from bot.core.registry import get_spec

    width, height = args.width, args.height
    if args.size is not None:
        if (width, height) not in ((None, None), args.size):
            raise InvalidParameterError("size", "give --size or --width/--height, not both")
        width, height = args.size
    given = {
        "num_frames": args.num_frames,
        "fps": args.fps,
        "width": width,
        "height": height,
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance_scale,
        "scheduler": args.scheduler,
        "image": str(args.image) if args.image is not None else None,
        "end_image": str(args.end_image) if args.end_image is not None else None,
        "aspect": args.aspect,
    }
    model = get_spec(args.model).key if args.model else DEFAULT_MODEL
    if args.image is not None and (width, height, args.aspect) == (None, None, None):
        given["aspect"] = _picture_aspect(args.image, model)
    params = GenerationParams(
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        seed=args.seed,
        interpolate=args.interpolate,
        smooth=args.smooth,
        loop=args.loop,
        sound=args.sound,
        model=model,
        quality="draft" if args.draft else "full",
        **{name: value for name, value in given.items() if value is not None},
    )
    if args.soundtrack:
        if not args.sound:
            raise InvalidParameterError("sound", "give --sound or --no-sound, not both")
        params = soundtrack.requested(params, True, _soundtrack_model())
    previews = _preview_folder(args.previews)
    # --smooth runs on [enhance] device, read as the bot reads it (a mistake there is said first)
    smooth_on = _bot_limits().enhance_device if params.smooth is not None else "auto"
    _configure_manager(args)
    with _output_folder(args.output):
        recipe = draft_recipe(params)  # a draft may run on a step-distilled partner model
        runs = recipe.params if recipe is not None else params
        _load(runs.model or DEFAULT_MODEL, image=params.image is not None)
        engine = GenerationEngine(get_generation_engine().manager, enhance_device=smooth_on)
        with _ProgressBar(previews) as bar:
            result = engine.generate_video(params, bar.control)
        if result.error:
            raise VideoBotError(result.error)
        path = result.save_as_video(args.output, encoder=_encoder())
    print(
        f"saved {path}: {len(result.images)} frames at {result.frame_rate:g} fps, "
        f"{result.size[0]}x{result.size[1]}, model {result.metadata['model']}, "
        f"seed {result.seed_used}, {result.generation_time:.1f} s, "
        f"{'with sound' if result.sound is not None else 'silent'}"
    )
    if result.metadata.get("note"):  # e.g. why the soundtrack could not be made
        print(result.metadata["note"])
    draft = result.metadata.get("draft")
    if draft:
        print(f"draft: {draft['note']}; run it again without --draft for the full render")
    return 0


def _cmd_edit(args: argparse.Namespace) -> int:
    from bot.core import get_generation_engine, media
    from bot.core.edits import plan_edit

    kwargs: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("start_frame", "end_frame", "speed_factor", "loops", "factor", "target_fps")
        if getattr(args, name) is not None
    }
    for name, field in (("start", "start_s"), ("end", "end_s")):
        if getattr(args, name) is not None:
            kwargs[field] = getattr(args, name)
    limits = _bot_limits()
    with _output_folder(args.output):
        source = _existing(args.input)
        plan = plan_edit(
            args.operation,
            media.probe(source, limits.media),
            limits.media,
            time_limit_s=limits.edit_time_limit_s,
            **kwargs,
        )
        with _ProgressBar(delay_s=EDIT_BAR_DELAY_S) as bar:
            edited = get_generation_engine().edit_file(
                plan,
                source,
                args.output,
                limits=limits.media,
                encoder=_encoder(),
                timeout_s=limits.edit_time_limit_s,
                metadata={"source": source.name},
                control=bar.control,
                enhance_device=limits.enhance_device,
            )
    sound = _sound_word(edited)
    print(f"saved {args.output}: {len(edited.images)} frames at {edited.frame_rate:g} fps, {sound}")
    if edited.metadata.get("interpolator"):
        print(f"smoothed with {edited.metadata['interpolator']}")
    if edited.metadata.get("note"):
        print(edited.metadata["note"])
    return 0


@dataclass(frozen=True)
class _Limits:
    media: MediaLimits
    edit_time_limit_s: float
    enhance_device: str = "auto"
    """``[enhance] device``: where an interpolation's RIFE runs (``auto``: a GPU, else
    minterpolate)."""


def _bot_settings() -> Settings:
    """The configuration as the bot reads it (``config.toml`` or ``VIDEOBOT_CONFIG``, then the
    ``VIDEOBOT_*`` environment), so a command works as the bot would; a mistake in it is a usage
    error naming every wrong key."""
    from bot.config import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        raise InvalidParameterError("config", "; ".join(exc.lines)) from None


def _run_and_save(
    run: Callable[..., GenerationResult], args: argparse.Namespace
) -> tuple[GenerationResult, str]:
    """Run one engine job on a video (``run``: the engine's method, its own options bound) with
    the options every such command shares (``--prompt``, ``--steps``, ``--seed``) under a
    progress bar, and save what it made to ``--output``: a result that came back failed is the
    command's one-line error, and nothing is saved."""
    with _ProgressBar() as bar:
        result = run(
            prompt=args.prompt, num_inference_steps=args.steps, seed=args.seed, control=bar.control
        )
    if result.error:
        raise VideoBotError(result.error)
    return result, result.save_as_video(args.output, encoder=_encoder())


def _sound_word(video: GenerationResult) -> str:
    """How a saved video's summary line describes its sound."""
    return "with sound" if video.sound is not None else "silent"


def _bot_limits() -> _Limits:
    """``[limits]`` as the bot reads them (``config.toml`` or ``VIDEOBOT_CONFIG``, then
    ``VIDEOBOT_LIMITS__*``): the CLI opens, decodes and edits videos under the same limits and
    memory budget as the bot. A configuration mistake is a usage error naming it."""
    settings = _bot_settings()
    limits = settings.limits
    return _Limits(limits.media_limits(), limits.edit_time_limit_s, settings.enhance.device)


def _cmd_upscale(args: argparse.Namespace) -> int:
    from bot.core import GenerationResult, get_generation_engine

    _configure_manager(args)
    limits = _bot_limits().media
    with _output_folder(args.output):
        source = GenerationResult.from_video_file(_existing(args.input), limits)
        upscaler = _upscaler_key(args.upscaler or DEFAULT_UPSCALER, args.scale)
        model = _ltx2_upscale_model(upscaler, args.model, source)
        if model is not None:
            _load(model)
        elif learned_scale(upscaler) is None:
            _load(upscaler)
        result, path = _run_and_save(
            partial(
                get_generation_engine().upscale,
                source,
                upscaler=upscaler,
                model=model,
                strength=args.strength,
            ),
            args,
        )
    sound = _sound_word(result)
    print(f"saved {path}: {result.size[0]}x{result.size[1]}, {len(result.images)} frames, {sound}")
    return 0


def _cmd_restyle(args: argparse.Namespace) -> int:
    """The size and frames are fitted to the model's rules (``bot.core.restyle``); the strength,
    the model and a too-long video are refused before anything is loaded."""
    from bot.core import GenerationResult, get_generation_engine

    check_strength(args.strength)
    spec = restyler_spec(args.model)
    _configure_manager(args)
    with _output_folder(args.output):
        source = GenerationResult.from_video_file(_existing(args.input), _bot_limits().media)
        plan_restyle(spec, *source.size, len(source.images), source.frame_rate)
        _load(spec.key)
        result, path = _run_and_save(
            partial(
                get_generation_engine().restyle, source, model=spec.key, strength=args.strength
            ),
            args,
        )
    sound = _sound_word(result)
    print(
        f"saved {path}: {result.size[0]}x{result.size[1]}, {len(result.images)} frames at "
        f"{result.frame_rate:g} fps, {sound}"
    )
    return 0


def _cmd_extend(args: argparse.Namespace) -> int:
    """The original followed by its continuation (``bot.core.extend``): the model, the length and
    the memory are checked, and refused with the numbers, before anything is loaded. Unnamed,
    the model is the bot's choice for this clip (one that makes sound first for a clip with
    sound), so it is chosen once the clip is open."""
    from bot.core import GenerationResult, get_generation_engine

    key = extender_spec(args.model).key if args.model is not None else None
    _configure_manager(args)
    limits = _bot_limits().media
    with _output_folder(args.output):
        source = GenerationResult.from_video_file(_existing(args.input), limits)
        if key is None:
            models = _bot_settings().models
            key = choose_extender(
                models.enabled, models.extender, None, sound=source.sound is not None
            )
        width, height = source.size
        plan = plan_within_limits(
            get_spec(key), width, height, len(source.images), source.frame_rate, args.frames, limits
        )
        _load(key, image=plan.method == "last_frame")
        result, path = _run_and_save(
            partial(
                get_generation_engine().extend,
                source,
                model=key,
                new_frames=args.frames,
                limits=limits,
            ),
            args,
        )
    sound = _sound_word(result)
    seam = result.metadata["extend"]["seam_ratio"]
    print(
        f"saved {path}: {len(source.images)} + {plan.new_frames} frames on {key}, "
        f"{result.size[0]}x{result.size[1]} at {result.frame_rate:g} fps, {sound}; "
        f"seam ratio {seam:g}"
    )
    return 0


def _ltx2_upscale_model(upscaler: str, model: str | None, source: GenerationResult) -> str | None:
    """For ``--upscaler ltx2``, the LTX-2 model named by ``--model`` once the video fits its
    rules (sides in 32s, 8k+1 frames), before anything loads; None for any other upscaler, which
    takes no ``--model``."""
    from bot.core.enhance.names import check_ltx2_upscale, is_ltx2_upscaler, ltx2_upscale_spec

    if not is_ltx2_upscaler(upscaler):
        if model is not None:
            raise InvalidParameterError("model", "only --upscaler ltx2 takes --model")
        return None
    if model is None:
        raise InvalidParameterError(
            "model",
            "--upscaler ltx2 needs the LTX-2 model that made the video: --model ltx2 or "
            "--model ltx2_distilled; any video: --upscaler realesrgan",
        )
    spec = ltx2_upscale_spec(model)
    check_ltx2_upscale(spec, *source.size, len(source.images))
    return spec.key


def _upscaler_key(name: str, scale: int | None) -> str:
    """``realesrgan`` (with ``--scale``) as the engine's ``realesrgan_x2``/``_x4``;
    ``zeroscope_xl`` as Zeroscope XL's key; any other name as given (a registry upscaler)."""
    from bot.core.enhance import check_upscale
    from bot.core.enhance.names import (
        DIFFUSION_UPSCALER,
        LTX2_SCALE,
        LTX2_UPSCALER,
        is_ltx2_upscaler,
        learned_key,
    )

    learned = learned_scale(name)
    if learned is not None:
        chosen = learned if scale is None else scale
        check_upscale(1, 1, chosen)  # the scale alone: 2 or 4
        return learned_key(chosen)
    if is_ltx2_upscaler(name):
        if scale is not None and scale != LTX2_SCALE:
            raise InvalidParameterError(
                "scale", f"LTX-2's latent upsampler upscales 2x only (got {scale})"
            )
        return LTX2_UPSCALER
    if scale is not None:
        raise InvalidParameterError(
            "scale", f"only Real-ESRGAN takes a scale; {name} upscales to its own size"
        )
    return "zeroscope_v2_xl" if name.strip().lower() == DIFFUSION_UPSCALER else name


def _cmd_models(args: argparse.Namespace) -> int:
    import json

    from bot.core import get_model_manager
    from bot.core.registry import REGISTRY
    from bot.models_json import registry_json

    if args.vram_gb < 0:
        return _usage_error("models", f"--vram-gb must be 0 or more (got {args.vram_gb:g})")
    manager = get_model_manager()
    if args.vram_gb:
        manager.configure(vram_gb=args.vram_gb)
    if args.json:
        print(json.dumps(registry_json(manager), indent=1))
        return 0
    rows = manager.list_models()
    card = manager.card()
    print(
        f"{'key':<22} {'role':<9} {'native':>9} {'frames':>14} {'steps':>5} {'VRAM':>6} "
        f"{'image':<5} {'plan':<18} source"
    )
    for row in rows:
        spec = REGISTRY[row.key]
        native = f"{row.native_size[0]}x{row.native_size[1]}"
        rule = f" ({spec.frames.formula})" if spec.frames.formula else ""
        plan = (
            row.plan.chosen.key
            if row.plan and row.plan.chosen
            else ("none fits" if row.plan else "-")
        )
        print(
            f"{row.key:<22} {row.role:<9} {native:>9} {str(spec.default_frames) + rule:>14} "
            f"{spec.default_steps:>5} {row.vram_gb:>4g}GB {'yes' if spec.image_to_video else '-':<5}"
            f" {plan:<18} {row.source}"
        )
    if card is None:
        print("plan: none on the CPU; --vram-gb N shows the plans a card of N GB gets")
    else:
        print(f"plans for a {card.describe()}; `videobot models --json` says why")
    return 0


def _encoder() -> str:
    """The mp4 encoder the speed options chose (``--no-speedups``: libx264)."""
    from bot.core import get_model_manager

    return get_model_manager().options.speed.encoder


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise MediaError(f"IN: {path} is not a file")
    return path


@contextlib.contextmanager
def _output_folder(path: Path) -> Iterator[None]:
    """Check ``path`` can be written before any rendering, make its missing folders, and remove
    the folders it made if the command fails, so a failed run leaves nothing behind."""
    if path.suffix.lower() != ".mp4":
        raise InvalidParameterError("output", f"must end in .mp4 (got {path.name!r})")
    if path.is_dir():
        raise InvalidParameterError("output", f"{path} is a folder; name a file in it")
    if path.exists() and not os.access(path, os.W_OK):
        raise InvalidParameterError("output", f"{path} exists and cannot be overwritten")
    missing = []
    existing = path.absolute().parent
    while not existing.exists():
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidParameterError("output", f"{existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidParameterError("output", f"cannot write in {existing} (permission denied)")
    made: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            made.append(folder)
        yield
    except BaseException:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: never a file someone else put there
        raise


def _load(key: str, *, image: bool = False) -> None:
    """Load the model before the job, so a failure shows its real cause: diffusers' own message
    for a download that failed is "see the stacktrace above", and the CLI shows no stack trace.

    First the hub repos it needs that are not in the cache are said, with their sizes, before
    their download starts; offline or with the hub out of reach, the missing ones are named at
    once (:mod:`bot.core.hub`). A failed load names the repo that failed (the motion adapter,
    not the base it goes on)."""
    from bot.core import get_model_manager, hub
    from bot.core.errors import is_out_of_memory, load_failure_message
    from bot.core.registry import get_spec

    manager = get_model_manager()
    spec = get_spec(key)
    needs = hub.model_needs(manager, spec.key, image=image)
    if needs:
        dtype = manager.resolved_dtype(manager.resolved_device(), spec)
        downloads = hub.plan_downloads(spec.key, needs, dtype)
        if downloads:
            print(f"videobot: {hub.describe_downloads(spec.key, downloads)}", file=sys.stderr)
    try:
        manager.load_model(spec.key)
    except Exception as exc:
        if is_out_of_memory(exc):
            return  # the engine retries with the memory savers and explains
        source = hub.failed_repo(needs, exc, manager.source_of(spec))
        raise VideoBotError(load_failure_message(spec.key, source, exc)) from exc


def _preview_folder(folder: Path | None) -> Path | None:
    """``--previews DIR``, made now (with its parents) so a bad path fails before any rendering."""
    if folder is None:
        return None
    if folder.exists() and not folder.is_dir():
        raise InvalidParameterError("--previews", f"{folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameterError("--previews", f"cannot make {folder}: {exc.strerror}") from exc
    return folder


EDIT_BAR_DELAY_S = 1.0
"""An edit's progress bar shows once it has run this long: a quick trim draws none."""


class _ProgressBar:
    """A tqdm bar over denoising steps (or an edit's frames), fed by the engine's progress
    reports; with a previews folder, each new live preview is written there as
    ``step-NNN.gif``. ``delay_s``: the bar shows only once the job has run that long.

    Each stage's bar starts at the step of its first report, so its rate counts from there: the
    first report comes as the first step ends, and a rate over the moments since the bar was made
    read "144631 step/s"."""

    def __init__(self, previews: Path | None = None, *, delay_s: float = 0.0) -> None:
        self._previews = previews
        self._written: Any = None
        self._delay_s = delay_s

    def __enter__(self) -> _ProgressBar:
        from tqdm import tqdm

        from bot.core import JobControl

        self._bar: Any = None
        self._tqdm = tqdm
        self.control = JobControl(on_progress=self._update, previews=self._previews is not None)
        return self

    def _update(self, progress: Any) -> None:
        preview = progress.preview
        if self._previews is not None and preview is not None and preview is not self._written:
            (self._previews / f"step-{preview.step:03d}.gif").write_bytes(preview.data)
            self._written = preview
        if self._bar is None or self._bar.desc != progress.stage:
            if self._bar is not None:
                self._bar.close()
            unit = "frame" if progress.stage == "edit" else "step"
            self._bar = self._tqdm(
                total=progress.total,
                initial=progress.step,
                desc=progress.stage,
                unit=unit,
                delay=self._delay_s,
            )
        elif progress.step > self._bar.n:
            self._bar.update(progress.step - self._bar.n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


def _cmd_run(args: argparse.Namespace) -> int:
    from bot.config import NO_TOKEN_HELP, ConfigError, config_path, discord_token, load_settings

    token = discord_token()
    if token is None:
        print(NO_TOKEN_HELP, file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = load_settings()
    except ConfigError as exc:
        for line in exc.lines:
            print(f"videobot run: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    if settings.executor.backend == "ray":  # no Ray cluster without its token (or the opt-out)
        from bot.executors.ray_auth import RayAuthError, check_bot_auth

        try:
            check_bot_auth(settings.executor)
        except RayAuthError as exc:
            print(f"videobot run: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.sync_commands:
        settings.discord.sync_commands_on_start = True
    import logging

    path = config_path()
    logging.getLogger("bot").info(
        "config: %s", path.resolve() if path.is_file() else f"none ({path} not found): defaults"
    )
    from bot.client import VideoBot
    from bot.store import StoreError

    try:
        asyncio.run(_serve(VideoBot(settings), token))
    except StoreError as exc:  # a damaged, locked or newer database: one line, like the config
        print(f"videobot run: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        code, message = _start_failure(exc)
        if code is None:
            raise
        print(f"videobot run: error: {message}", file=sys.stderr)
        return code
    return 0


def _start_failure(exc: BaseException) -> tuple[int | None, str]:
    """The one line for what stops a first start: the token, the intent, the network."""
    import aiohttp
    import discord

    if isinstance(exc, discord.LoginFailure):
        return EXIT_USAGE, (
            "Discord refused the token in DISCORD_TOKEN (401 Unauthorized): copy it again from "
            "https://discord.com/developers/applications → your app → Bot → Reset Token"
        )
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return EXIT_USAGE, (
            "Discord refused the Message Content intent (gateway close 4014): enable "
            "'Message Content Intent' under Bot → Privileged Gateway Intents in the developer "
            "portal, or set message_content_intent = false in [discord] of the config"
        )
    if isinstance(exc, (aiohttp.ClientConnectorError, discord.GatewayNotFound, TimeoutError)):
        return EXIT_FAILED, (
            f"cannot reach Discord ({exc.__class__.__name__}: {exc}): check the network, DNS "
            "and any proxy or firewall, then start again"
        )
    if isinstance(exc, discord.ConnectionClosed):
        return EXIT_FAILED, f"Discord closed the connection (code {exc.code}): {exc}"
    return None, ""


async def _serve(bot: Any, token: str) -> None:
    """Run until SIGINT or SIGTERM, then close the bot cleanly (it drains the running job)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(bot.close()))
    async with bot:
        await bot.start(token)


def _cmd_worker(args: argparse.Namespace) -> int:
    """``ray start`` for a GPU host of the bot's cluster, from ``[executor]`` and the flags, with
    Ray's token authentication on: without a token here it refuses, saying what to do
    (:mod:`bot.executors.ray_auth`), unless ``[executor] allow_unauthenticated``."""
    import importlib.util
    import json
    import shlex
    import shutil

    from bot.config import ConfigError, load_settings

    try:
        section = load_settings().executor
    except ConfigError as exc:
        for line in exc.lines:
            print(f"videobot worker: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    address = args.address or (section.address if section.address not in ("", "auto") else "")
    if not args.head and not address:
        return _usage_error(
            "worker",
            "give --head (the first host) or --address=HEAD:6379 (the others), or set "
            "[executor] address",
        )
    workers = section.workers_per_host if args.workers is None else args.workers
    if workers < 0:
        return _usage_error("worker", f"--workers must be 0 or more (got {workers})")
    resource = args.resource or section.resource
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray is None or importlib.util.find_spec("ray") is None:
        print(
            "videobot worker: error: Ray is not installed: pip install -e '.[ray]' in the clone",
            file=sys.stderr,
        )
        return EXIT_FAILED
    from bot.executors.ray_auth import RayAuthError, cluster_auth

    try:
        auth = cluster_auth(section)
    except RayAuthError as exc:
        print(f"videobot worker: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if auth.warning:
        print(f"videobot worker: warning: {auth.warning}", file=sys.stderr)
    command = ["ray", "start", "--block", "--disable-usage-stats"]
    command += ["--head", f"--port={args.port}"] if args.head else [f"--address={address}"]
    if section.node_ip:
        command.append(f"--node-ip-address={section.node_ip}")
    if resource == "GPU":
        if workers:
            command.append(f"--num-gpus={workers}")
    else:
        command.append(f"--resources={json.dumps({resource: workers or 1})}")
    # RAY_AUTH_MODE only: the token stays where Ray reads it, never on a command line.
    shown = shlex.join([*(f"{key}={value}" for key, value in auth.environ.items()), *command])
    if args.dry_run:
        print(shown)
        return 0
    print(f"videobot worker: {shown}", file=sys.stderr)
    os.execve(ray, [ray, *command[1:]], {**os.environ, **auth.environ})
    return EXIT_FAILED  # not reached: execve replaced this process


_COMMANDS = {
    "run": _cmd_run,
    "worker": _cmd_worker,
    "generate": _cmd_generate,
    "edit": _cmd_edit,
    "upscale": _cmd_upscale,
    "restyle": _cmd_restyle,
    "extend": _cmd_extend,
    "models": _cmd_models,
}
