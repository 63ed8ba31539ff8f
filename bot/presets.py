"""Presets: named styles a server's moderators define and members pick with ``/video preset:``.

A preset is text added to the member's prompt, a negative prompt, and settings (steps, guidance,
frames, fps, size, model). Its settings are checked against :class:`~bot.core.params.
GenerationParams`' rules when it is saved, so a preset that could never render is refused then,
in one line, rather than at every member's job. Applied, the preset fills in only what the member
left out: a member's own option or ``--flag`` always wins. Presets belong to one server: they are
looked up by the server the command came from and never from another (nor in direct messages).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.core.errors import InvalidParameterError
from bot.core.params import GenerationParams
from bot.core.registry import REGISTRY, get_spec
from bot.core.rules import PROMPT_MAX_CHARS
from bot.refusals import RequestRefused

if TYPE_CHECKING:
    from bot.store import PresetRecord, Store

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
"""A preset's name: lower-case letters, digits, ``-`` and ``_``, 1 to 32 characters."""
MAX_PRESETS = 25
"""Presets per server: as many as Discord's autocomplete shows at once."""
SUFFIX_MAX_CHARS = PROMPT_MAX_CHARS // 2
"""The text a preset adds, at most half a prompt: the member's own words keep room."""
SETTINGS = (
    "num_inference_steps",
    "guidance_scale",
    "num_frames",
    "fps",
    "width",
    "height",
    "model",
)
"""The ``GenerationParams`` fields a preset may set."""
_SIZE = re.compile(r"\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*")


@dataclass(frozen=True)
class PresetDraft:
    """A preset as given to ``/preset add``, checked: ready for the store."""

    name: str
    prompt_suffix: str
    negative_prompt: str
    settings: dict[str, Any]


def check_name(name: str) -> str:
    """The name as stored (lower case), or a refusal saying what a name may be."""
    key = name.strip().lower()
    if not NAME.fullmatch(key):
        raise InvalidParameterError(
            "name",
            f"{name[:40]!r} is not a preset name: use 1-32 lower-case letters, digits, - or _ "
            "(like cinematic or anime-soft)",
        )
    return key


def parse_size(text: str) -> tuple[int, int]:
    match = _SIZE.fullmatch(text)
    if match is None:
        raise InvalidParameterError(
            "size", f"must be WIDTHxHEIGHT, like 576x320 (got {text[:40]!r})"
        )
    return int(match[1]), int(match[2])


def check_preset(
    name: str,
    *,
    prompt_suffix: str,
    negative_prompt: str,
    settings: Mapping[str, Any],
    enabled: list[str],
    default_model: str,
) -> PresetDraft:
    """Check a preset as ``/preset add`` got it: a name, something to apply, a model this bot
    enables that generates, and settings ``GenerationParams`` accepts on that model (or, with no
    model, on the server's default model). Raises ``InvalidParameterError`` with the field and
    what it allows."""
    key = check_name(name)
    suffix = " ".join(prompt_suffix.split())
    negative = negative_prompt.strip()
    chosen = {field: value for field, value in settings.items() if value is not None}
    unknown = sorted(set(chosen) - set(SETTINGS))
    if unknown:
        raise InvalidParameterError(unknown[0], f"a preset sets only {', '.join(SETTINGS)}")
    if not (suffix or negative or chosen):
        raise InvalidParameterError(
            "preset", "is empty: give it a prompt suffix, a negative prompt or a setting"
        )
    if len(suffix) > SUFFIX_MAX_CHARS:
        raise InvalidParameterError(
            "suffix", f"must be at most {SUFFIX_MAX_CHARS} characters (got {len(suffix)})"
        )
    if "model" in chosen:
        spec = get_spec(str(chosen["model"]))
        if spec.key not in enabled or REGISTRY[spec.key].role != "generator":
            generators = [k for k in enabled if REGISTRY[k].role == "generator"]
            raise InvalidParameterError(
                "model",
                f"{spec.key} is not a model this bot generates with; enabled: "
                + ", ".join(generators),
            )
        chosen["model"] = spec.key
    model = chosen.get("model", default_model)
    GenerationParams(  # the rules every job on that model is held to
        prompt=f"a test of the preset, {suffix}".strip(", "),
        negative_prompt=negative,
        **{**chosen, "model": model},
    )
    return PresetDraft(key, suffix, negative, chosen)


def apply_preset(
    prompt: str, options: Mapping[str, Any], preset: PresetRecord
) -> tuple[str, dict[str, Any]]:
    """The member's prompt with the preset's text added, and the member's options over the
    preset's (its negative prompt and settings fill in only what the member left out)."""
    suffix = preset.prompt_suffix.strip(" ,;")
    base = prompt.strip().rstrip(",;").rstrip()
    text = f"{base}, {suffix}" if base and suffix else base or suffix
    merged: dict[str, Any] = dict(preset.settings)
    if preset.negative_prompt:
        merged["negative_prompt"] = preset.negative_prompt
    merged.update(options)
    return text, merged


async def find_preset(store: Store, guild_id: int | None, name: str) -> PresetRecord:
    """This server's preset ``name``, or a refusal naming the ones it has."""
    if guild_id is None:
        raise RequestRefused("presets belong to a server: use /video there, or leave preset out")
    key = name.strip().lower()
    record = await store.get_preset(guild_id, key) if NAME.fullmatch(key) else None
    if record is not None:
        return record
    names = [preset.name for preset in await store.list_presets(guild_id)]
    here = ", ".join(names) if names else "none yet (a moderator adds them with /preset add)"
    raise RequestRefused(f"this server has no preset {name[:40]!r}; its presets: {here}")


def describe(preset: PresetRecord) -> str:
    """One line about a preset for ``/preset list`` and ``/help``."""
    parts = []
    if preset.prompt_suffix:
        parts.append(f"adds “{preset.prompt_suffix[:80]}”")
    if preset.negative_prompt:
        parts.append(f"avoids “{preset.negative_prompt[:60]}”")
    names = {
        "num_inference_steps": "steps",
        "guidance_scale": "guidance",
        "num_frames": "frames",
        "fps": "fps",
        "model": "model",
    }
    settings = preset.settings
    shown = [f"{names[k]} {settings[k]}" for k in names if k in settings]
    if "width" in settings or "height" in settings:
        shown.append(f"size {settings.get('width', '?')}x{settings.get('height', '?')}")
    if shown:
        parts.append(", ".join(shown))
    return f"**{preset.name}**: " + ("; ".join(parts) or "no changes")
