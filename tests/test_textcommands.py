"""Text that members type: prompt flags and reply commands, parsed into the engine's parameters.

Examples pin each flag, command and error message; property tests check that no text, however odd,
escapes as anything but InvalidParameterError, and that parsed options go straight into
GenerationParams and validate_edit.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core import GenerationParams, InvalidParameterError
from bot.core.params import validate_edit
from bot.textcommands import (
    FLAG_OF_FIELD,
    REPLY_COMMAND_HELP,
    REPLY_COMMAND_MAX_CHARS,
    PromptFlags,
    ReplyCommand,
    parse_prompt_flags,
    parse_reply_command,
)

BOT = 123
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- prompt flags --------------------------------------------------------------------------------


def test_text_without_flags_is_unchanged() -> None:
    for text in ("a cat surfing", "", "  spaced  ", "state-of-the-art 1990–2000, a cat—dog -- ok"):
        assert parse_prompt_flags(text) == PromptFlags(text, {})


def test_every_flag_of_the_brief() -> None:
    flags = parse_prompt_flags(
        "a cat surfing --seed 7 --frames 24 --neg blurry, low quality --steps 30 --guidance 9 "
        "--fps 12 --model zeroscope_v2_576w --scheduler euler_a --interpolate 2 --loop"
    )
    assert flags.prompt == "a cat surfing"
    assert flags.options == {
        "seed": 7,
        "num_frames": 24,
        "negative_prompt": "blurry, low quality",
        "num_inference_steps": 30,
        "guidance_scale": 9.0,
        "fps": 12,
        "model": "zeroscope_v2_576w",
        "scheduler": "euler_a",
        "interpolate": 2,
        "loop": True,
    }
    assert type(flags.options["guidance_scale"]) is float
    assert type(flags.options["seed"]) is int


@pytest.mark.parametrize(
    ("flags", "options"),
    [
        ("--size 576x320", {"width": 576, "height": 320}),
        ("--size 576 X 320", {"width": 576, "height": 320}),
        ("--size 576×320", {"width": 576, "height": 320}),
        ("--width 576 --height 320", {"width": 576, "height": 320}),
        ("--guidance 7.5", {"guidance_scale": 7.5}),
        ("--guidance .5", {"guidance_scale": 0.5}),
        ("--seed -1", {"seed": -1}),
        ("--seed=7", {"seed": 7}),
        ("--SEED 7", {"seed": 7}),
        ("--loop no", {"loop": False}),
        ("--loop yes", {"loop": True}),
        ("--num_frames 16", {"num_frames": 16}),
        (
            "--cfg 8 --no text, watermark --sampler ddim",
            {"guidance_scale": 8.0, "negative_prompt": "text, watermark", "scheduler": "ddim"},
        ),
    ],
)
def test_flag_forms(flags: str, options: dict[str, object]) -> None:
    assert parse_prompt_flags(f"a cat {flags}") == PromptFlags("a cat", options)


def test_phone_dashes_are_flags() -> None:
    assert parse_prompt_flags("a cat —seed 7 –frames 24").options == {"seed": 7, "num_frames": 24}


def test_value_runs_to_the_next_flag_across_lines() -> None:
    flags = parse_prompt_flags("a cat\n--neg blurry,\n  low quality\n--loop")
    assert flags == PromptFlags(
        "a cat", {"negative_prompt": "blurry,\n  low quality", "loop": True}
    )


def test_flags_only_give_an_empty_prompt_that_generation_refuses() -> None:
    flags = parse_prompt_flags("--seed 3")
    assert flags == PromptFlags("", {"seed": 3})
    with pytest.raises(InvalidParameterError, match="prompt: must not be empty"):
        GenerationParams(prompt=flags.prompt, **flags.options)


def test_unknown_flag_lists_the_known_ones_and_guesses() -> None:
    with pytest.raises(InvalidParameterError) as info:
        parse_prompt_flags("a cat --sed 7")
    assert info.value.field == "--sed"
    message = str(info.value)
    assert message.startswith("--sed: unknown option; did you mean --seed?")
    for flag in ("--seed", "--frames", "--neg", "--size", "--loop", "--interpolate"):
        assert flag in message


def test_aspect_ratio_flag_sets_the_aspect() -> None:
    """``--ar 9:16`` (and ``--aspect``) ask for a shape; the model sizes it (bot.core.aspect)."""
    assert parse_prompt_flags("a cat --ar 9:16").options == {"aspect": "9:16"}
    assert parse_prompt_flags("a cat --aspect 21:9").options == {"aspect": "21:9"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a cat --seed", "--seed: is missing its value; it takes a whole number, e.g. --seed 7"),
        ("a cat --seed 7.5", "--seed: takes a whole number, e.g. --seed 7 (got '7.5')"),
        ("a cat --frames many", "--frames: takes a whole number, e.g. --frames 24 (got 'many')"),
        ("a cat --guidance high", "--guidance: takes a number, e.g. --guidance 7.5 (got 'high')"),
        ("a cat --guidance nan", "--guidance: takes a number"),
        ("a cat --guidance 1e999", "--guidance: takes a number"),
        ("a cat --size 576", "--size: takes WIDTHxHEIGHT, e.g. --size 576x320 (got '576')"),
        ("a cat --neg", "--neg: is missing its value; it takes text"),
        ("a cat --model", "--model: is missing its value; it takes one word"),
        ("a cat --loop please", "--loop: takes no value (or yes/no), e.g. --loop (got 'please')"),
        (
            "--seed 7 a cat",
            "--seed: takes a whole number, e.g. --seed 7 (got '7 a cat'); write the prompt first, then the flags",
        ),
        (
            "a cat --seed 1 --seed 2",
            "--seed: sets seed again (already set by --seed); keep one",
        ),
        ("a cat --size 64x64 --width 64", "--width: sets width again (already set by --size)"),
        ("a cat --cfg 2 --guidance 3", "--guidance: sets guidance_scale again"),
    ],
)
def test_flag_errors_name_the_flag_and_what_it_takes(text: str, message: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        parse_prompt_flags(text)
    assert message in str(info.value)


def test_echoed_values_are_cut_short() -> None:
    with pytest.raises(InvalidParameterError) as info:
        parse_prompt_flags("a cat --seed " + "x" * 5000)
    assert len(str(info.value)) < 200


def test_no_range_checks_in_parsing_generation_params_does_them() -> None:
    flags = parse_prompt_flags("a cat --frames 999 --size 100x100")
    assert flags.options == {"num_frames": 999, "width": 100, "height": 100}
    with pytest.raises(InvalidParameterError, match="num_frames: must be between 8 and 64"):
        GenerationParams(prompt=flags.prompt, **flags.options)


def test_parsed_flags_make_generation_params() -> None:
    flags = parse_prompt_flags(
        "a cat surfing --seed 7 --frames 24 --neg blurry --steps 30 --guidance 9 --fps 12 "
        "--size 576x320 --model zeroscope_v2_576w --scheduler euler_a --interpolate 2 --loop"
    )
    params = GenerationParams(prompt=flags.prompt, **flags.options)
    assert (params.width, params.height, params.num_frames, params.seed) == (576, 320, 24, 7)
    assert params.loop is True and params.scheduler == "euler_a"


def test_flag_of_field_covers_every_option() -> None:
    # A picture cannot be typed: it comes as an attachment or a reply (`animate`). The soundtrack
    # model is the owner's choice ([sound] soundtrack_model), set when a member asks for sound.
    assert set(FLAG_OF_FIELD) == set(GenerationParams.model_fields) - {
        "prompt",
        "image",
        "end_image",
        "soundtrack",
    }
    assert FLAG_OF_FIELD["width"] == "--width"


# --- reply commands ------------------------------------------------------------------------------


def reply(text: str) -> ReplyCommand | None:
    return parse_reply_command(text, bot_mention_ids={BOT}, prefix="!")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!trim 5 20", ReplyCommand("trim", {"start_frame": 5, "end_frame": 20})),
        ("!trim 5", ReplyCommand("trim", {"start_frame": 5})),
        ("!speed 2", ReplyCommand("speed", {"speed_factor": 2.0})),
        ("!speed 2x", ReplyCommand("speed", {"speed_factor": 2.0})),
        ("!speed 0.5", ReplyCommand("speed", {"speed_factor": 0.5})),
        ("!speed x1.5", ReplyCommand("speed", {"speed_factor": 1.5})),
        ("!reverse", ReplyCommand("reverse", {})),
        ("!loop", ReplyCommand("loop", {})),
        ("!loop 3", ReplyCommand("loop", {"loops": 3})),
        ("!loop 3x", ReplyCommand("loop", {"loops": 3})),
        ("!interpolate", ReplyCommand("interpolate", {})),
        ("!interpolate 4", ReplyCommand("interpolate", {"factor": 4})),
        ("!smooth 3", ReplyCommand("interpolate", {"factor": 3})),
        ("!upscale", ReplyCommand("upscale", {})),
        ("!help", ReplyCommand("help", {})),
        ("  !TRIM   5 \t 20  ", ReplyCommand("trim", {"start_frame": 5, "end_frame": 20})),
        ("!Speed 2X", ReplyCommand("speed", {"speed_factor": 2.0})),
    ],
)
def test_every_command(text: str, expected: ReplyCommand) -> None:
    assert reply(text) == expected


@pytest.mark.parametrize("mention", [f"<@{BOT}>", f"<@!{BOT}>", f"<@&{BOT}>"])
def test_mentions_in_every_form(mention: str) -> None:
    expected = ReplyCommand("trim", {"start_frame": 5, "end_frame": 20})
    assert reply(f"{mention} trim 5 20") == expected
    assert reply(f"  {mention}trim 5 20") == expected
    assert reply(f"<@456> {mention} trim 5 20") == expected
    assert reply(f"{mention} !trim 5 20") == expected


def test_a_bare_mention_asks_for_help() -> None:
    assert reply(f"<@{BOT}>") == ReplyCommand("help", {})


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nice video!",
        "trim 5 20",
        "<@456> trim 5 20",
        f"trim 5 20 <@{BOT}>",
        "!",
        "!!!",
        "! wow",
        "!5 stars",
        "?trim 5 20",
    ],
)
def test_chat_not_addressed_to_the_bot_is_ignored(text: str) -> None:
    assert reply(text) is None


def test_other_prefixes_and_no_prefix() -> None:
    assert parse_reply_command("vb!reverse", prefix="vb!") == ReplyCommand("reverse", {})
    assert parse_reply_command("VB!reverse", prefix="vb!") == ReplyCommand("reverse", {})
    assert parse_reply_command("!reverse", prefix="vb!") is None
    assert parse_reply_command("reverse", prefix="") is None
    assert parse_reply_command(f"<@{BOT}> reverse", prefix="") is None  # no ids: mentions ignored
    assert parse_reply_command(f"<@{BOT}> reverse", bot_mention_ids=[BOT], prefix="") == (
        ReplyCommand("reverse", {})
    )


def test_unknown_command_lists_every_command_with_its_syntax() -> None:
    with pytest.raises(InvalidParameterError) as info:
        reply("!blur 3")
    message = str(info.value)
    assert message.startswith(
        "command: unknown command 'blur'; try: trim START [END], speed FACTOR"
    )
    for usage in ("reverse", "loop [N]", "interpolate [2-4]", "upscale", "help"):
        assert usage in message
    with pytest.raises(InvalidParameterError, match="unknown command 'thanks'"):
        reply(f"<@{BOT}> thanks")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!trim", "trim: missing arguments; usage: trim START [END]"),
        ("!trim a b", "trim: 'a' is not a whole number; usage: trim START [END]"),
        ("!trim 1.5", "trim: '1.5' is not a whole number"),
        ("!trim 1 2 3", "trim: got '1 2 3'; usage: trim START [END]"),
        ("!speed", "speed: missing arguments; usage: speed FACTOR (0.25-4, e.g. 2x or 0.5)"),
        ("!speed fast", "speed: 'fast' is not a number"),
        ("!speed inf", "speed: 'inf' is not a number"),
        ("!speed 2 3", "speed: got '2 3'"),
        ("!loop twice", "loop: 'twice' is not a whole number; usage: loop [N] (1-10"),
        ("!loop 2.5", "loop: '2.5' is not a whole number"),
        ("!interpolate x", "interpolate: 'x' is not a whole number; usage: interpolate [2-4]"),
        ("!reverse now", "reverse: got 'now'; usage: reverse"),
        ("!upscale blurry", "upscale: 'blurry' is not 2x, 4x, zeroscope or ltx2; usage: upscale"),
    ],
)
def test_malformed_arguments_give_the_syntax(text: str, message: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        reply(text)
    assert message in str(info.value)


def test_overlong_commands_are_refused_and_long_chat_ignored() -> None:
    with pytest.raises(
        InvalidParameterError, match=f"too long .*at most {REPLY_COMMAND_MAX_CHARS}"
    ):
        reply("!trim " + "1 " * REPLY_COMMAND_MAX_CHARS)
    assert reply("lovely " * 1000) is None


def test_ranges_are_left_to_validate_edit() -> None:
    command = reply("!speed 100")
    assert command == ReplyCommand("speed", {"speed_factor": 100.0})
    with pytest.raises(InvalidParameterError, match=r"speed_factor: must be between 0\.25 and 4"):
        validate_edit(command.operation, 16, **command.arguments)


@pytest.mark.parametrize(
    ("text", "arguments", "frames"),
    [
        ("!trim 1s 3s", {"start_s": 1.0, "end_s": 3.0}, (8, 24)),
        ("!trim 1.5s", {"start_s": 1.5}, (12, 32)),
        ("!trim 4 2.5sec", {"start_frame": 4, "end_s": 2.5}, (4, 20)),
    ],
)
def test_trim_takes_seconds_with_an_s(
    text: str, arguments: dict[str, float], frames: tuple[int, int]
) -> None:
    """Plain numbers are frames (``!trim 5 20``); with an ``s``, seconds, at the video's rate."""
    command = reply(text)
    assert command == ReplyCommand("trim", arguments)
    request = validate_edit("trim", 32, fps=8.0, **command.arguments)  # a 4 s video
    assert (request.start_frame, request.end_frame) == frames


def test_trim_in_seconds_is_refused_in_seconds() -> None:
    with pytest.raises(InvalidParameterError, match=r"'xs' is not a time like 1\.5s"):
        reply("!trim xs")
    command = reply("!trim 5s")
    with pytest.raises(InvalidParameterError, match=r"start_s: must be from 0 to under 4\.00 s"):
        validate_edit("trim", 32, fps=8.0, **command.arguments)


def test_speed_without_a_factor_is_refused_not_copied() -> None:
    """``/edit operation:speed`` with no factor wrote an identical copy; ``!speed`` alone is a
    usage error, and so is the edit itself."""
    with pytest.raises(InvalidParameterError, match="speed: missing arguments"):
        reply("!speed")
    with pytest.raises(InvalidParameterError, match="speed_factor: speed needs a factor"):
        validate_edit("speed", 16)


@pytest.mark.parametrize("text", ["!trim 2 10", "!speed 2x", "!reverse", "!loop", "!smooth"])
def test_edit_commands_validate(text: str) -> None:
    command = reply(text)
    assert command is not None
    request = validate_edit(command.operation, 16, **command.arguments)
    assert request.operation == command.operation


def test_help_text_names_every_command() -> None:
    for word in ("trim START [END]", "speed FACTOR", "reverse", "loop [N]", "interpolate [2-4]"):
        assert word in REPLY_COMMAND_HELP
    assert "smooth" in REPLY_COMMAND_HELP and "upscale" in REPLY_COMMAND_HELP
    assert len(REPLY_COMMAND_HELP) < 2000


# --- properties ----------------------------------------------------------------------------------

_FLAG_WORDS = st.sampled_from(
    [
        "--seed",
        "--frames",
        "--neg",
        "--steps",
        "--guidance",
        "--fps",
        "--size",
        "--width",
        "--height",
        "--model",
        "--scheduler",
        "--interpolate",
        "--loop",
        "—seed",
        "--cfg",
        "--x",
    ]
)
_VALUES = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["576x320", "64x64", "zeroscope_v2_576w", "tiny_t2v", "euler_a", "yes", "no"]),
    st.text(max_size=12),
)
_FLAG_TEXT = st.lists(st.one_of(_FLAG_WORDS, _VALUES), max_size=10).map(" ".join)


@PROPERTY
@given(st.one_of(st.text(), _FLAG_TEXT))
def test_any_text_parses_or_raises_invalid_parameter(text: str) -> None:
    try:
        flags = parse_prompt_flags(text)
    except InvalidParameterError:
        return
    assert isinstance(flags.options, dict)
    assert set(flags.options) <= set(FLAG_OF_FIELD)


@PROPERTY
@given(st.text(min_size=1, max_size=40), _FLAG_TEXT)
def test_parsed_options_validate_or_raise_invalid_parameter(prompt: str, flags: str) -> None:
    try:
        parsed = parse_prompt_flags(f"{prompt} {flags}")
    except InvalidParameterError:
        return
    with contextlib.suppress(InvalidParameterError):
        GenerationParams(prompt=parsed.prompt, **parsed.options)


@PROPERTY
@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_whole_numbers_round_trip(number: int) -> None:
    assert parse_prompt_flags(f"a cat --seed {number}").options == {"seed": number}


_COMMAND_TEXT = st.tuples(
    st.sampled_from(["!", f"<@{BOT}> ", f"<@!{BOT}>", "<@9> ", "", " ! "]),
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "trim",
                    "speed",
                    "reverse",
                    "loop",
                    "interpolate",
                    "smooth",
                    "upscale",
                    "help",
                    "2x",
                    "x",
                    "0.5",
                    "-3",
                ]
            ),
            st.integers(min_value=-100, max_value=10**25).map(str),
            st.text(max_size=8),
        ),
        max_size=4,
    ).map(" ".join),
).map("".join)


@PROPERTY
@given(st.one_of(st.text(), _COMMAND_TEXT))
def test_any_reply_parses_is_ignored_or_raises_invalid_parameter(text: str) -> None:
    try:
        command = parse_reply_command(text, bot_mention_ids=[BOT])
    except InvalidParameterError:
        return
    if command is None or command.operation in ("upscale", "help"):
        return
    with contextlib.suppress(InvalidParameterError):
        validate_edit(command.operation, 16, **command.arguments)


def test_edit_ranges_are_declared_once_in_the_rules() -> None:
    """/edit's option bounds, the reply commands' help and validate_edit read one declaration."""

    from bot.core.rules import INTERPOLATE_FACTOR, LOOPS, SPEED
    from cogs.edit import EditCog

    options = {p.name: p for p in EditCog.edit.parameters}
    for name, rule in (("speed_factor", SPEED), ("loops", LOOPS), ("factor", INTERPOLATE_FACTOR)):
        assert (options[name].min_value, options[name].max_value) == (rule.low, rule.high)
        assert f"{rule.low:g}-{rule.high:g}" in options[name].description
    assert (
        f"interpolate [{INTERPOLATE_FACTOR.low:g}-{INTERPOLATE_FACTOR.high:g}]"
        in REPLY_COMMAND_HELP
    )
    validate_edit("interpolate", 8, factor=int(INTERPOLATE_FACTOR.high))
    with pytest.raises(InvalidParameterError, match="factor"):
        validate_edit("interpolate", 8, factor=int(INTERPOLATE_FACTOR.high) + 1)


def test_silent_turns_a_sound_models_sound_off() -> None:
    from bot.textcommands import parse_prompt_flags

    assert parse_prompt_flags("a drum solo --silent").options == {"sound": False}
    assert parse_prompt_flags("a drum solo --no-sound").options == {"sound": False}
    assert parse_prompt_flags("a drum solo").options == {}
