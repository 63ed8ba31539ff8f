"""What members type as text: ``--flags`` after a prompt, and commands in replies to a video.

Pure functions with no Discord import, so the cogs stay thin and every rule here is tested without a
client. Parsing checks only the *kind* of each value (a whole number, a number, ``WIDTHxHEIGHT``);
ranges stay with :class:`~bot.core.params.GenerationParams` and
:func:`~bot.core.params.validate_edit`, the one owner of validation. Every mistake raises
:class:`~bot.core.errors.InvalidParameterError` with a message written for the member: which flag or
command was wrong, what it takes, and an example.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bot.core.errors import InvalidParameterError
from bot.core.restyle import STRENGTH_HELP
from bot.core.rules import INTERPOLATE_FACTOR, LOOPS, SPEED

if TYPE_CHECKING:
    from collections.abc import Collection


@dataclass(frozen=True)
class PromptFlags:
    """A prompt with its flags taken out; ``options`` holds ``GenerationParams`` keyword arguments.

    ``options`` is typed ``Any`` because mypy checks ``GenerationParams(prompt=p, **options)``
    against each field's type (pydantic's dataclass transform): with ``object`` every caller would
    need a cast.
    """

    prompt: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplyCommand:
    """An edit (or ``upscale``, ``help``) asked for in a reply; ``arguments`` are ``validate_edit``
    keyword arguments. An argument the member left out is absent, so ``validate_edit`` applies its
    own default (``loop`` and ``interpolate`` default to 2, ``trim`` to the last frame)."""

    operation: str
    arguments: dict[str, object] = field(default_factory=dict)


REPLY_COMMAND_MAX_CHARS = 200
"""Longer addressed messages are refused: a command is a few words, and a wall of text is chat."""


def parse_prompt_flags(text: str) -> PromptFlags:
    """Split ``a cat surfing --seed 7 --neg blurry, low quality`` into the prompt and options.

    The prompt is the text before the first flag; each flag's value runs up to the next flag, so
    ``--neg`` takes a phrase with commas and spaces. A flag starts a word with ``--`` or with the
    em or en dash that phone keyboards make of ``--``, followed by a letter (``--seed=7`` works too);
    a dash inside a word or followed by a space is prompt text. Flag names are case-insensitive and
    ``_`` equals ``-``. Setting the same option twice (``--seed 1 --seed 2``, or ``--size`` with
    ``--width``) is an error rather than "last wins": a member who typed two values meant one of
    them, and guessing which would make a video they did not ask for.

    Text without flags comes back unchanged with no options.
    """
    matches = list(_FLAG.finditer(text))
    if not matches:
        return PromptFlags(text, {})
    options: dict[str, Any] = {}
    set_by: dict[str, str] = {}
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        flag = _lookup_flag(match.group("name"))
        for key, value in flag.convert(text[match.end() : end].strip()).items():
            if key in set_by:
                raise InvalidParameterError(
                    flag.label, f"sets {key} again (already set by {set_by[key]}); keep one"
                )
            set_by[key] = flag.label
            options[key] = value
    return PromptFlags(text[: matches[0].start()].rstrip(), options)


def parse_reply_command(
    text: str, *, bot_mention_ids: Collection[int] = (), prefix: str = "!"
) -> ReplyCommand | None:
    """The command in a reply addressed to the bot, or None when the reply is ordinary chat.

    A reply is addressed when its leading mentions (``<@id>``, ``<@!id>`` or the bot's role,
    ``<@&id>``) include one of ``bot_mention_ids``, or when it starts with ``prefix`` directly
    followed by a letter (``!trim``, not ``!!`` or ``! wow``). A bare mention asks for ``help``.
    An empty ``prefix`` means mentions only. Case and extra whitespace do not matter. An addressed
    reply that is not a known command with well-formed arguments raises InvalidParameterError
    whose message gives the syntax, so the bot can answer it as it is.
    """
    rest = _addressed_text(text, bot_mention_ids, prefix)
    if rest is None:
        return None
    head = rest.split(maxsplit=1)
    if head and head[0].lower() == "animate":
        # The rest is a prompt (with --flags), kept as typed: case matters to a prompt.
        return ReplyCommand("animate", {"prompt": head[1].strip() if len(head) > 1 else ""})
    if head and head[0].lower() == "restyle":
        return ReplyCommand("restyle", _restyle(head[1] if len(head) > 1 else ""))
    if head and head[0].lower() == "extend":
        return ReplyCommand("extend", _extend(head[1] if len(head) > 1 else ""))
    if len(rest) > REPLY_COMMAND_MAX_CHARS:
        raise InvalidParameterError(
            "command",
            f"too long ({len(rest)} characters; at most {REPLY_COMMAND_MAX_CHARS}); "
            f"try: {_COMMAND_LIST}",
        )
    words = rest.lower().split()
    if not words:
        return ReplyCommand("help", {})
    name, args = words[0], words[1:]
    operation = _COMMAND_ALIASES.get(name, name)
    if operation not in _COMMANDS:
        raise InvalidParameterError(
            "command", f"unknown command {_shorten(name)!r}; try: {_COMMAND_LIST}"
        )
    return ReplyCommand(operation, _COMMANDS[operation].parse(args))


# --- prompt flags --------------------------------------------------------------------------------

FlagKind = Literal["int", "float", "text", "word", "size", "switch"]

_FLAG = re.compile(r"(?:^|(?<=\s))(?:--|[\u2014\u2013])(?P<name>[^\W\d_][\w-]*)=?")

_WHAT: dict[FlagKind, str] = {
    "int": "a whole number",
    "float": "a number",
    "text": "text",
    "word": "one word",
    "size": "WIDTHxHEIGHT",
    "switch": "no value (or yes/no)",
}
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_SIZE = re.compile(r"([0-9]+)\s*[x×*]\s*([0-9]+)", re.IGNORECASE)
_SWITCH_VALUES = {
    **dict.fromkeys(("", "yes", "true", "on", "1"), True),
    **dict.fromkeys(("no", "false", "off", "0"), False),
}


@dataclass(frozen=True)
class _Flag:
    """One flag: the ``GenerationParams`` fields it sets, the kind of value and an example."""

    name: str
    fields: tuple[str, ...]
    kind: FlagKind
    example: str
    on_off: tuple[object, object] | None = None
    """For a switch that sets a field to one of two values (``--draft``: quality "draft" or
    "full") rather than to True or False."""

    @property
    def label(self) -> str:
        return f"--{self.name}"

    def convert(self, value: str) -> dict[str, object]:
        """The typed value(s) for this flag's fields; the value's kind is all that is checked."""
        converted = _convert(self.kind, value)
        if converted is None:
            takes = f"{_WHAT[self.kind]}, e.g. {self.label} {self.example}".rstrip()
            if not value and self.kind != "switch":
                raise InvalidParameterError(self.label, f"is missing its value; it takes {takes}")
            hint = "; write the prompt first, then the flags" if len(value.split()) > 1 else ""
            raise InvalidParameterError(
                self.label, f"takes {takes} (got {_shorten(value)!r}){hint}"
            )
        if self.on_off is not None:
            converted = self.on_off[0] if converted else self.on_off[1]
        values = converted if isinstance(converted, tuple) else (converted,)
        return dict(zip(self.fields, values, strict=True))


def _convert(kind: FlagKind, value: str) -> object | None:
    """The value converted to ``kind``, or None when it is not of that kind."""
    if kind == "switch":
        return _SWITCH_VALUES.get(value.lower())
    if not value:
        return None
    if kind == "text":
        return value
    if kind == "word":
        return None if len(value.split()) != 1 else value
    if kind == "int":
        return _to_int(value)
    if kind == "float":
        return _to_float(value)
    size = _SIZE.fullmatch(value)
    if size is None:
        return None
    width, height = _to_int(size.group(1)), _to_int(size.group(2))
    return None if width is None or height is None else (width, height)


def _to_float(value: str) -> float | None:
    """Plain decimals only: ``1e400``, ``nan`` and ``inf`` are not numbers a member means."""
    number = float(value) if _FLOAT.fullmatch(value) else math.nan
    return number if math.isfinite(number) else None


def _to_int(value: str) -> int | None:
    if not _INT.fullmatch(value):
        return None
    try:
        return int(value)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return None


_FLAGS: dict[str, _Flag] = {
    flag.name: flag
    for flag in (
        _Flag("seed", ("seed",), "int", "7"),
        _Flag("frames", ("num_frames",), "int", "24"),
        _Flag("neg", ("negative_prompt",), "text", "blurry, low quality"),
        _Flag("steps", ("num_inference_steps",), "int", "30"),
        _Flag("guidance", ("guidance_scale",), "float", "7.5"),
        _Flag("fps", ("fps",), "int", "12"),
        _Flag("size", ("width", "height"), "size", "576x320"),
        _Flag("width", ("width",), "int", "576"),
        _Flag("height", ("height",), "int", "320"),
        _Flag("ar", ("aspect",), "word", "16:9"),
        _Flag("model", ("model",), "word", "zeroscope_v2_576w"),
        _Flag("scheduler", ("scheduler",), "word", "euler_a"),
        _Flag("interpolate", ("interpolate",), "int", "2"),
        _Flag("smooth", ("smooth",), "int", "48"),
        _Flag("loop", ("loop",), "switch", ""),
        _Flag("draft", ("quality",), "switch", "", on_off=("draft", "full")),
        _Flag("quality", ("quality",), "word", "draft"),
        # A model that makes sound (LTX-2) makes it unless told: --silent, as the CLI's --no-sound.
        _Flag("silent", ("sound",), "switch", "", on_off=(False, True)),
    )
}
# Names other generation bots and the CLI use for the same options.
_FLAG_ALIASES = {
    "num-frames": "frames",
    "negative": "neg",
    "negative-prompt": "neg",
    "no": "neg",
    "num-inference-steps": "steps",
    "cfg": "guidance",
    "guidance-scale": "guidance",
    "sampler": "scheduler",
    "no-sound": "silent",
    "mute": "silent",
    "aspect": "ar",
    "aspect-ratio": "ar",
}
_KNOWN_FLAGS = ", ".join(flag.label for flag in _FLAGS.values())

FLAG_OF_FIELD: dict[str, str] = {key: flag.label for flag in _FLAGS.values() for key in flag.fields}
"""The flag that sets each ``GenerationParams`` field (``--width``, not ``--size``): its errors name
the field, and a cog can name the flag the member typed instead."""


def _lookup_flag(typed: str) -> _Flag:
    name = typed.lower().replace("_", "-")
    flag = _FLAGS.get(_FLAG_ALIASES.get(name, name))
    if flag is not None:
        return flag
    close = difflib.get_close_matches(name, [*_FLAGS, *_FLAG_ALIASES], n=1)
    guess = f"did you mean --{_FLAG_ALIASES.get(close[0], close[0])}? " if close else ""
    raise InvalidParameterError(
        f"--{_shorten(name)}", f"unknown option; {guess}known: {_KNOWN_FLAGS}"
    )


# --- reply commands ------------------------------------------------------------------------------

# Snowflakes have at most 20 digits; the bound also keeps int() within Python's digit limit.
_MENTIONS = re.compile(r"\s*((?:<@[!&]?[0-9]{1,20}>\s*)+)")
_MENTION_ID = re.compile(r"<@[!&]?([0-9]{1,20})>")
_FACTOR = re.compile(r"[x×]?(.+?)[x×]?")


def _addressed_text(text: str, bot_mention_ids: Collection[int], prefix: str) -> str | None:
    """The text after the bot's mention or the prefix, or None when the bot is not addressed."""
    rest = text.lstrip()
    mentions = _MENTIONS.match(rest)
    mentioned = False
    if mentions is not None:
        ids = {int(found) for found in _MENTION_ID.findall(mentions.group(1))}
        mentioned = not ids.isdisjoint(bot_mention_ids)
        rest = rest[mentions.end() :]
    if prefix and rest[: len(prefix)].lower() == prefix.lower():
        after = rest[len(prefix) :]
        if after[:1].isalpha():
            return after.strip()
    return rest.strip() if mentioned else None


@dataclass(frozen=True)
class _Command:
    """A reply command's syntax, as shown to members, and the parser of its arguments."""

    usage: str
    parse: Callable[[list[str]], dict[str, object]]


_SECONDS = re.compile(r"(?P<number>.+?)\s*(?:s|sec|secs|seconds?)")


def _trim(args: list[str]) -> dict[str, object]:
    """``trim 5 20`` in frames, ``trim 1s 3s`` (or ``1.5sec``) in seconds; one of each works too."""
    if not 1 <= len(args) <= 2:
        raise _usage_error("trim", args)
    arguments: dict[str, object] = {}
    for (frame_key, seconds_key), arg in zip(
        (("start_frame", "start_s"), ("end_frame", "end_s")), args, strict=False
    ):
        seconds = _SECONDS.fullmatch(arg)
        if seconds is None:
            arguments[frame_key] = _whole("trim", arg)
            continue
        number = _to_float(seconds.group("number"))
        if number is None:
            raise _usage_error("trim", [arg], f"{_shorten(arg)!r} is not a time like 1.5s")
        arguments[seconds_key] = number
    return arguments


def _speed(args: list[str]) -> dict[str, object]:
    if len(args) != 1:
        raise _usage_error("speed", args)
    return {"speed_factor": _multiplier("speed", args[0], whole=False)}


def _loop(args: list[str]) -> dict[str, object]:
    if len(args) > 1:
        raise _usage_error("loop", args)
    return {"loops": _multiplier("loop", args[0], whole=True)} if args else {}


_FPS = re.compile(r"(?:fps\s*=?\s*(?P<before>[^\s=]+)|(?P<after>[^\s=]+?)\s*fps)")


def _interpolate(args: list[str]) -> dict[str, object]:
    """``interpolate 3`` (or ``3x``) by a factor; ``interpolate 60fps``, ``fps=60`` or ``fps 60``
    up to a frame rate (what ``validate_edit`` takes as ``target_fps``)."""
    text = " ".join(args)
    if not args:
        return {}
    rate = _FPS.fullmatch(text)
    if rate is not None:
        number = _to_float(rate.group("before") or rate.group("after"))
        if number is None:
            raise _usage_error("interpolate", args, f"{_shorten(text)!r} is not a rate like 60fps")
        return {"target_fps": number}
    if len(args) > 1:
        raise _usage_error("interpolate", args)
    return {"factor": _multiplier("interpolate", args[0], whole=True)}


_UPSCALER_WORDS = {
    "realesrgan": "realesrgan",
    "real-esrgan": "realesrgan",
    "esrgan": "realesrgan",
    "zeroscope": "zeroscope_xl",
    "zeroscope_xl": "zeroscope_xl",
    "zeroscope-xl": "zeroscope_xl",
    "xl": "zeroscope_xl",
    "ltx2": "ltx2",
    "ltx-2": "ltx2",
}


def _upscale(args: list[str]) -> dict[str, object]:
    """``upscale``, ``upscale 4x`` (Real-ESRGAN's scale), ``upscale zeroscope`` (the diffusion
    upscaler), ``upscale ltx2`` (LTX-2's latent upsampler, for LTX-2 results), ``upscale
    realesrgan 4x``: words in any order, each once."""
    arguments: dict[str, object] = {}
    for arg in args:
        digits = _FACTOR.fullmatch(arg)
        scale = _to_int(digits.group(1)) if digits is not None else None
        key: str
        value: object
        if arg in _UPSCALER_WORDS:
            key, value = "upscaler", _UPSCALER_WORDS[arg]
        elif scale is not None:
            key, value = "scale", scale
        else:
            raise _usage_error(
                "upscale", args, f"{_shorten(arg)!r} is not 2x, 4x, zeroscope or ltx2"
            )
        if key in arguments:
            raise _usage_error("upscale", args, f"{key} given twice")
        arguments[key] = value
    return arguments


def _restyle(text: str) -> dict[str, object]:
    """``restyle an oil painting`` or ``restyle 0.6 an oil painting``: a leading number is the
    strength (its range is checked by the service), the rest is the prompt, kept as typed."""
    prompt = text.strip()
    arguments: dict[str, object] = {}
    first, _, rest = prompt.partition(" ")
    strength = _to_float(first)
    if strength is not None:
        arguments["strength"] = strength
        prompt = rest.strip()
    if not prompt:
        raise _usage_error("restyle", [], "say what the video should look like")
    arguments["prompt"] = prompt
    return arguments


def _extend(text: str) -> dict[str, object]:
    """``extend the boat sails into the sunset``: the rest is the prompt, kept as typed."""
    prompt = text.strip()
    if not prompt:
        raise _usage_error("extend", [], "say how the clip should go on")
    return {"prompt": prompt}


def _no_arguments(operation: str) -> Callable[[list[str]], dict[str, object]]:
    def parse(args: list[str]) -> dict[str, object]:
        if args:
            raise _usage_error(operation, args)
        return {}

    return parse


def _whole(operation: str, arg: str) -> int:
    number = _to_int(arg)
    if number is None:
        raise _usage_error(operation, [arg], f"{_shorten(arg)!r} is not a whole number")
    return number


def _multiplier(operation: str, arg: str, *, whole: bool) -> int | float:
    """``2``, ``2x``, ``x2`` or ``0.5``: how members write a factor."""
    digits = _FACTOR.fullmatch(arg)
    number = None if digits is None else (_to_int if whole else _to_float)(digits.group(1))
    if number is None:
        kind = "a whole number" if whole else "a number"
        raise _usage_error(operation, [arg], f"{_shorten(arg)!r} is not {kind}")
    return number


def _usage_error(
    operation: str, args: list[str], problem: str | None = None
) -> InvalidParameterError:
    if problem is None:
        given = " ".join(args)
        problem = f"got {_shorten(given)!r}" if given else "missing arguments"
    return InvalidParameterError(operation, f"{problem}; usage: {_COMMANDS[operation].usage}")


_COMMANDS: dict[str, _Command] = {
    "trim": _Command("trim START [END]", _trim),
    "speed": _Command(f"speed FACTOR ({SPEED.low:g}-{SPEED.high:g}, e.g. 2x or 0.5)", _speed),
    "reverse": _Command("reverse", _no_arguments("reverse")),
    "loop": _Command(f"loop [N] ({LOOPS.low:g}-{LOOPS.high:g}, default 2)", _loop),
    "interpolate": _Command(
        f"interpolate [{INTERPOLATE_FACTOR.low:g}-{INTERPOLATE_FACTOR.high:g}] or interpolate 60fps",
        _interpolate,
    ),
    "upscale": _Command("upscale [2x|4x] [zeroscope|ltx2]", _upscale),
    "animate": _Command("animate [PROMPT]", _no_arguments("animate")),  # parsed before the rest
    "restyle": _Command(  # parsed before the rest, as animate
        f"restyle [STRENGTH] PROMPT (strength {STRENGTH_HELP}), e.g. restyle 0.6 an oil painting",
        _no_arguments("restyle"),
    ),
    "extend": _Command(  # parsed before the rest, as animate
        "extend PROMPT, e.g. extend the boat sails into the sunset", _no_arguments("extend")
    ),
    "help": _Command("help", _no_arguments("help")),
}
_COMMAND_ALIASES = {"smooth": "interpolate"}
_COMMAND_LIST = ", ".join(command.usage for command in _COMMANDS.values())

REPLY_COMMAND_HELP = f"""\
Reply to one of my videos with a command, mentioning me or starting it with the command prefix:
`trim START [END]`: keep frames START up to, not including, END (default: the last frame); in seconds with an s: `trim 1s 3s`
`speed FACTOR`: {SPEED.low:g} to {SPEED.high:g} times as fast, e.g. `speed 2x` or `speed 0.5`
`reverse`: play it backwards
`loop [N]`: play it N times, {LOOPS.low:g} to {LOOPS.high:g} (default 2)
`interpolate [{INTERPOLATE_FACTOR.low:g}-{INTERPOLATE_FACTOR.high:g}]` or `interpolate 60fps` (or `smooth`): add in-between frames for smoother motion, up to 60 fps
`upscale [2x|4x]`: a larger, sharper version (Real-ESRGAN); `upscale zeroscope`: Zeroscope XL at 1024x576; `upscale ltx2`: LTX-2's latent upsampler, 2x (LTX-2 videos)
`animate [prompt] [--flags]`: reply to a picture to bring it to life (image-to-video)
`restyle [strength] prompt`: redraw the video after the prompt, e.g. `restyle 0.6 an oil painting` (strength {STRENGTH_HELP})
`extend prompt`: continue the clip from its last frames, e.g. `extend the boat sails away`
`help`: this message"""
"""The bot's answer to ``help``; Discord markdown, under Discord's 2000-character limit."""


def _shorten(text: str, limit: int = 40) -> str:
    """Echoed input is cut short: it goes into a Discord message with a length limit."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
