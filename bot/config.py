"""The bot's settings: ``config.toml`` plus the environment, one pydantic model per section.

Every key can be set from the environment with the ``VIDEOBOT_`` prefix and ``__`` between section
and key (``VIDEOBOT_LIMITS__MAX_QUEUED_PER_USER=5``), the pydantic-settings convention, so
containers and tests configure the bot without files. The Discord token is read from
``DISCORD_TOKEN`` only, never from the file, so a config file can be shared without leaking it.
``config.example.toml`` documents every key.

A mistake in the file or the environment is a :class:`ConfigError` whose lines each name where
the value came from (the file or the variable), the key and what is allowed: a new owner's typo
(``blocked_word``) must stop the bot, not silently switch moderation off.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import tomllib
import typing
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError

from bot.budget import default_decode_memory_mb
from bot.core import media
from bot.core.manager import ManagerOptions, check_device
from bot.core.registry import REGISTRY, get_spec
from bot.core.speed import SpeedOptions
from bot.refusals import DirectMessages
from bot.wordfilter import words

TOKEN_ENV = "DISCORD_TOKEN"
CONFIG_ENV = "VIDEOBOT_CONFIG"
DEFAULT_CONFIG_PATH = Path("config.toml")
ENV_PREFIX = "VIDEOBOT_"
ENV_DELIMITER = "__"


__all__ = ["check_device"]


class ConfigError(ValueError):
    """The configuration cannot be used; ``lines`` are one clear line per mistake."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class Section(BaseModel):
    """A config section: an unknown key is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


def section_of(options: type, name: str, *, leave_out: tuple[str, ...] = ()) -> type[Section]:
    """A config section whose keys, types and defaults are the fields of the engine's own options
    dataclass (``SpeedOptions``, ``ManagerOptions``): each option is declared once, in
    ``bot.core``, and a switch added there is a config key at once."""
    hints = typing.get_type_hints(options)
    keys: dict[str, Any] = {}
    for option in dataclasses.fields(options):
        if option.name in leave_out:
            continue
        description = option.metadata.get("help")
        if option.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=option.default_factory, description=description)
        else:
            default = Field(default=option.default, description=description)
        keys[option.name] = (hints[option.name], default)
    section: type[Section] = create_model(name, __base__=Section, **keys)
    return section


class DiscordSettings(Section):
    command_prefix: str = "!"
    """Prefix for reply-to-video text commands (``!trim 5 20``); mentioning the bot also works."""
    guild_ids: list[int] = Field(default_factory=list)
    """Guilds to sync slash commands to instantly; empty syncs globally (can take up to an hour)."""
    moderator_role: str | None = None
    """Members with this role name may use moderator commands, besides Manage Server. Moderators
    control their own server only (its default model, limits, blocks, queue)."""
    owner_ids: list[int] = Field(default_factory=list)
    """User ids of the bot's owners besides the application's owner (or its team's admins and
    developers) in the developer portal: only owners load and unload models and see the workers,
    which affect every server."""
    allowed_guilds: list[int] = Field(default_factory=list)
    """The only servers the bot stays in: it leaves any other at start and on being invited (and
    logs it). Empty: any server that invites it (switch Public Bot off in the developer portal)."""
    sync_commands_on_start: bool = False
    message_content_intent: bool = False
    """Ask Discord for the privileged Message Content intent (enable it in the developer portal
    first). Off, the bot still serves slash commands, buttons, the message menu, DMs and reply
    commands that mention it; on, plain prefix replies (``!trim 5 20``) work too."""
    live_previews: bool = True
    """Show a small moving preview of the forming video in a running job's message, replaced at
    the progress cadence and by the video at the end. Off: the progress bar only."""

    @model_validator(mode="after")
    def _synced_guilds_allowed(self) -> DiscordSettings:
        if self.allowed_guilds:
            outside = [g for g in self.guild_ids if g not in self.allowed_guilds]
            if outside:
                raise ValueError(
                    f"guild_ids: {', '.join(map(str, outside))} not in allowed_guilds; the bot "
                    "would leave them. Add them to allowed_guilds or remove them from guild_ids"
                )
        return self


_ManagerKeys = section_of(ManagerOptions, "_ManagerKeys", leave_out=("speed",))


class ModelSettings(_ManagerKeys):  # type: ignore[misc,valid-type]
    """``[models]``: which models members may pick, plus every ``ManagerOptions`` key (device,
    dtype, the memory savers, cache_dir, sources, animatediff_base), declared in ``bot.core``."""

    enabled: list[str] = Field(
        default_factory=lambda: ["zeroscope_v2_576w", "animatediff", "modelscope_t2v"]
    )
    """The models members may pick; the first is the default unless ``default`` says otherwise."""
    default: str | None = None
    preload: list[str] = Field(default_factory=list)
    """Loaded at start so the first member does not wait for the download and load."""
    upscaler: str | None = None
    """What /upscale uses when the member names none: ``realesrgan`` (Real-ESRGAN through
    spandrel: any model's output at any size, 2x or 4x, a 67 MB download) or the key of an
    enabled diffusion upscaler (``zeroscope_v2_xl``: 1024x576 only, about 15 GB). Unset:
    Real-ESRGAN (a diffusion upscaler is still there by name: ``/upscale upscaler:zeroscope_xl``)."""
    extender: str | None = None
    """What Extend (``/edit operation:extend``, ``!extend``, the button) continues clips with: the
    key of an enabled model that can extend (``bot.core.extend``). Unset: for a clip with sound,
    the first enabled extender that makes sound (LTX-2, which continues it); otherwise the first
    enabled one in the order Wan VACE, LTX-2, LTX-Video 0.9.7 (the tail as a condition), an
    image-to-video model from the last frame."""

    @model_validator(mode="after")
    def _valid_manager_options(self) -> ModelSettings:
        self.manager_options(SpeedOptions())
        return self

    def manager_options(self, speed: SpeedOptions) -> ManagerOptions:
        """The manager's options from this section and ``[speed]``."""
        keys = {f.name for f in dataclasses.fields(ManagerOptions)} - {"speed"}
        return ManagerOptions(**self.model_dump(include=keys), speed=speed)

    @field_validator("enabled", "preload")
    @classmethod
    def _known_models(cls, keys: list[str]) -> list[str]:
        return [_model_key(key) for key in keys]

    @field_validator("upscaler")
    @classmethod
    def _known_upscaler(cls, key: str | None) -> str | None:
        from bot.core.enhance.names import LEARNED_UPSCALER

        if key is None or key.strip().lower() == LEARNED_UPSCALER:
            return None if key is None else LEARNED_UPSCALER
        upscalers = [k for k, spec in REGISTRY.items() if spec.role == "upscaler"]
        name = _model_key(key, among=[LEARNED_UPSCALER, *upscalers])
        if REGISTRY[name].role != "upscaler":
            raise ValueError(
                f"{name!r} is not an upscaler; pick one of: "
                + ", ".join([LEARNED_UPSCALER, *upscalers])
            )
        return name

    @field_validator("extender")
    @classmethod
    def _known_extender(cls, key: str | None, info: Any) -> str | None:
        if key is None:
            return None
        from bot.core.extend import extend_models

        able = extend_models()
        name = _model_key(key, among=able)
        if name not in able:
            raise ValueError(f"{name!r} cannot extend a clip; pick one of: {', '.join(able)}")
        if name not in (info.data.get("enabled") or []):
            raise ValueError(f"{name!r} is not in models.enabled; add it there too")
        return name

    @field_validator("default")
    @classmethod
    def _known_default(cls, key: str | None, info: Any) -> str | None:
        enabled = info.data.get("enabled") or []
        generators = [k for k in enabled if REGISTRY[k].role == "generator"]
        return _model_key(key, among=generators) if key else None

    @model_validator(mode="after")
    def _usable_default(self) -> ModelSettings:
        generators = [k for k in self.enabled if REGISTRY[k].role == "generator"]
        if self.default is not None:
            if REGISTRY[self.default].role != "generator":
                raise ValueError(
                    f"default: {self.default!r} is an {REGISTRY[self.default].role}, not a model "
                    f"that generates; pick one of: {', '.join(generators) or 'none enabled'}"
                )
            if self.default not in self.enabled:
                raise ValueError(
                    f"default: {self.default!r} is not in models.enabled; add it there or pick "
                    f"one of: {', '.join(generators) or 'none enabled'}"
                )
        elif not generators:
            raise ValueError(
                "enabled: names no model that generates (only upscalers); add one of: "
                + ", ".join(k for k, spec in REGISTRY.items() if spec.role == "generator")
            )
        return self

    @property
    def default_model(self) -> str:
        if self.default:
            return self.default
        generators = [k for k in self.enabled if REGISTRY[k].role == "generator"]
        if not generators:
            raise ValueError("models.enabled names no model that can generate")
        return generators[0]


class EnhanceSettings(Section):
    """``[enhance]``: the learned finishing of ``bot.core.enhance`` (docs/ENHANCE.md)."""

    device: str = "auto"
    """Where learned interpolation (RIFE 4.26) runs, for an edit and for ``/video smooth:``: ``auto`` uses a GPU when there is
    one and ffmpeg's ``minterpolate`` when there is none (RIFE on a few CPU cores is slower than
    it); ``cpu`` runs RIFE on the CPU all the same (slow: tests and small clips); ``cuda``,
    ``cuda:1`` or ``mps`` pick the device. On a GPU an interpolation takes the GPU's turn between
    generations. Upscaling runs on the worker's own device (``[models] device``)."""

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        return check_device(device)


class SoundSettings(Section):
    """``[sound]``: soundtracks for models that make no sound (docs/SOUND.md)."""

    soundtrack_model: str = ""
    """The model that scores a silent model's clip from its prompt when a member asks for sound
    (``/video sound:True``, ``videobot generate --sound``): ``stable_audio_open`` (Stable Audio
    Open 1.0, 1.35B parameters, about 5 GB more GPU memory in half precision, loaded beside the
    video model and run after the video in the same GPU job; it needs the ``soundtrack`` extra,
    torchsde), or ``tiny_stable_audio`` offline. Empty (the default): off, and asking a silent
    model for sound gives a silent video with a note saying the owner can turn this on. The
    track is ambience from the prompt, not lip-sync."""

    @field_validator("soundtrack_model")
    @classmethod
    def _soundtrack_model(cls, value: str) -> str:
        key = value.strip().lower()
        if not key:
            return ""
        models = [k for k, spec in REGISTRY.items() if spec.role == "soundtrack"]
        if key not in models:
            raise ValueError(f"unknown soundtrack model {value!r}; allowed: {', '.join(models)}")
        import importlib.util

        if importlib.util.find_spec("torchsde") is None:
            raise ValueError(
                f"{key} needs torchsde (its sampler): pip install -e '.[soundtrack]' in the clone"
            )
        return key


class LimitSettings(Section):
    max_queued_per_user: int = Field(default=3, ge=1, le=100)
    max_queued_per_user_total: int = Field(default=6, ge=1, le=200)
    """Most jobs one person may have queued or running across every server and DM together (the
    per-server cap, which each server's /limits can change, applies too)."""
    max_queue: int = Field(default=100, ge=1)
    cooldown_s: float = Field(default=0.0, ge=0)
    progress_interval_s: float = Field(default=2.0, ge=0.2)
    """How often a running job's message is edited: Discord rate-limits message edits."""
    max_upload_mb: float = Field(default=50.0, gt=0)
    """Largest video a member may upload for editing or upscaling."""
    max_upload_frames: int | None = Field(default=None, ge=8)
    """Deprecated: ``decode_memory_mb`` replaced this flat frame cap (a 60 fps clip over 10 s
    passed no cap of 600, even to be trimmed). A config that still sets it keeps it, as a cap on
    top of the memory budget; leave it out."""
    max_upload_seconds: float = Field(default=60.0, gt=0)
    """Longest video the bot opens, uploads and its own results alike. An edit whose result would
    last longer is refused up front, so every result the bot made can be edited again."""
    decode_memory_mb: float = Field(default_factory=default_decode_memory_mb, gt=0)
    """Memory the bot may spend on decoded video at once, all edits and uploads together (one
    budget for the process). A video costs width x height x 3 bytes per frame it holds: reverse
    and an upscale's source hold every frame, the other edits stream about 40 at a time. What
    cannot fit is refused with the numbers. Default: a quarter of this machine's memory (or of
    its container's limit), at most 1024 and at least 256."""
    history_page_size: int = Field(default=5, ge=1, le=10)
    job_time_limit_s: float = Field(default=900.0, gt=0)
    """A job running longer is stopped: a stuck or huge job must not hold the GPU forever."""
    edit_workers: int = Field(default=2, ge=1, le=32)
    """Edits (trim, speed, loop, interpolate) run on this many CPU threads at most; more wait."""
    max_waiting_edits: int = Field(default=4, ge=0, le=100)
    """Edits that may wait for an edit worker; past them the next is refused ("the edit queue is
    full"). A waiting edit holds nothing: its video is fetched when its turn comes."""
    edit_time_limit_s: float = Field(default=180.0, gt=0)
    """An edit running longer is stopped, and an interpolation estimated to take longer is
    refused before it starts (interpolating 1080p runs at about 1.6 frames a second)."""
    direct_messages: DirectMessages = DirectMessages.SAME_LIMITS
    """same_limits: members may use the bot in DMs with the default cap and cooldown (refused to
    members blocked in any server); off: the bot refuses requests in DMs."""

    @property
    def decode_memory_bytes(self) -> int:
        return int(self.decode_memory_mb * 2**20)

    def media_limits(self) -> media.MediaLimits:
        """What the bot (and the CLI, from the same settings) opens: uploads and its own results,
        checked against the memory budget before anything is decoded."""
        return media.MediaLimits(
            max_bytes=int(self.max_upload_mb * 2**20),
            max_frames=self.max_upload_frames,
            max_duration_s=self.max_upload_seconds,
            max_decoded_bytes=self.decode_memory_bytes,
        )


class ModerationSettings(Section):
    blocked_words: list[str] = Field(default_factory=list)
    """Prompts containing any of these words or phrases (whole words) are refused. Matched after
    normalising (NFKC, case folded, format characters removed) on Unicode's confusable skeleton,
    so full-width letters, hidden characters and look-alike letters do not get past it."""

    @field_validator("blocked_words")
    @classmethod
    def _matchable(cls, entries: list[str]) -> list[str]:
        empty = [entry for entry in entries if not words(entry)]
        if empty:
            raise ValueError(
                f"{', '.join(map(repr, empty))} has no letters or digits to match; each entry "
                "must be a word or a phrase"
            )
        return entries


class StorageSettings(Section):
    database: Path = Path("data/videobot.sqlite3")
    output_dir: Path = Path("data/outputs")
    max_output_mb: float = Field(default=5000.0, gt=0)
    """Disk budget for ``output_dir``: videos, members' pictures and any leftover partial files
    all count. Past it the oldest videos (and pictures no queued job needs) are deleted; their
    history rows stay, marked."""
    retention_days: float = Field(default=90.0, ge=0)
    """Finished jobs older than this are deleted: their rows (prompts, settings, errors), videos
    and pictures. 0 keeps them forever. Interaction tokens are always forgotten once Discord
    stops accepting them (15 minutes), whatever this says."""


class SpeedSettings(section_of(SpeedOptions, "_SpeedKeys")):  # type: ignore[misc]
    """``[speed]``: how loaded models are made fast, one key per ``SpeedOptions`` field
    (``bot.core.speed``). Every switch is ``auto`` (on for CUDA, off on the CPU), ``on`` or
    ``off``; a speed-up that fails is logged and left off."""

    @field_validator("decode_chunk", mode="before")
    @classmethod
    def _chunk(cls, value: Any) -> Any:
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @model_validator(mode="after")
    def _valid(self) -> SpeedSettings:
        self.options()
        return self

    def options(self) -> SpeedOptions:
        return SpeedOptions(**self.model_dump())


class ExecutorSettings(Section):
    """``[executor]``: where GPU jobs run. ``local`` (the default): one GPU thread in the bot's
    process, Ray never imported. ``ray``: one worker per GPU of a Ray cluster, each keeping its
    models loaded; the bot keeps the queue, its fairness and the database."""

    backend: typing.Literal["local", "ray"] = "local"
    address: str = ""
    """The Ray cluster: empty starts one inside the bot's process on this host; ``auto`` joins the
    one ``ray start`` runs here; ``host:6379`` joins the head node there."""
    resource: str = Field(default="GPU", min_length=1)
    """Each worker takes one unit of it: ``GPU``, or a custom resource hosts declare (``ray start
    --resources='{"videobot": 2}'``), for CPU-only hosts and tests."""
    workers: int = Field(default=0, ge=0, le=1024)
    """How many workers the bot starts; 0: one per unit of ``resource`` in the cluster."""
    workers_per_host: int = Field(default=0, ge=0, le=64)
    """Units of ``resource`` a host offers (``videobot worker`` and the in-process cluster); 0:
    one per GPU the host has."""
    namespace: str = Field(default="videobot", min_length=1)
    """The Ray namespace of the workers (named and detached: a restarted bot finds them, models
    still loaded). Two bots sharing a cluster need different namespaces."""
    allow_unauthenticated: bool = False
    """Start ``videobot worker`` and the bot's join even with no Ray auth token on this host, Ray's
    token authentication off (a warning at every start). Off, they refuse: whoever reaches an
    unauthenticated cluster's port runs code as the bot's user (``bot.executors.ray_auth``)."""
    node_ip: str = ""
    """This host's address on the network the Ray hosts share (``10.0.0.5``): the one Ray announces
    and the other hosts connect to. Empty: the one Ray picks (the default route's)."""

    @field_validator("node_ip")
    @classmethod
    def _node_ip_is_an_interface(cls, node_ip: str) -> str:
        """An address Ray can announce: not a name, and not loopback or 0.0.0.0, which Ray 2.60
        silently replaces with the default route's address."""
        import ipaddress

        if not node_ip:
            return node_ip
        try:
            address = ipaddress.ip_address(node_ip.strip())
        except ValueError:
            raise ValueError(
                f"not an IP address (got {node_ip!r}); give this host's address on the private "
                "network the Ray hosts share, e.g. 10.0.0.5, or leave it empty"
            ) from None
        if address.is_loopback or address.is_unspecified:
            raise ValueError(
                f"{node_ip} is not one interface (Ray would announce the default route's address "
                "instead); give this host's private address, e.g. 10.0.0.5, or leave it empty"
            )
        return str(address)

    @field_validator("backend")
    @classmethod
    def _ray_installed(cls, backend: str) -> str:
        """Say so at start, not at the first job, when Ray is chosen but not installed."""
        import importlib.util

        if backend == "ray" and importlib.util.find_spec("ray") is None:
            raise ValueError("\"ray\" needs Ray installed: pip install -e '.[ray]' in the clone")
        return backend


class Settings(BaseSettings):
    """All settings. Precedence: environment over ``config.toml`` over the defaults here."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, extra="forbid"
    )

    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    moderation: ModerationSettings = Field(default_factory=ModerationSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    speed: SpeedSettings = Field(default_factory=SpeedSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    enhance: EnhanceSettings = Field(default_factory=EnhanceSettings)
    sound: SoundSettings = Field(default_factory=SoundSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = config_path()
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )


def config_path() -> Path:
    """The file read: ``VIDEOBOT_CONFIG``, else ``config.toml`` in the working directory."""
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def load_settings(**overrides: Any) -> Settings:
    """Read ``config.toml`` (or the file ``VIDEOBOT_CONFIG`` names) and the environment.

    Raises :class:`ConfigError`, one line per mistake, for a missing ``VIDEOBOT_CONFIG`` file,
    invalid TOML, an unknown section or key (with the nearest valid one) and a bad value.
    """
    path = config_path()
    if os.environ.get(CONFIG_ENV) and not path.is_file():
        raise ConfigError(
            [f"{path}: no such file ({CONFIG_ENV} names it; unset {CONFIG_ENV} to use config.toml)"]
        )
    file_values = _read_toml(path)
    env_keys = _environment_keys()
    problems = _unknown_keys(file_values, str(path)) + _unknown_env_keys(env_keys)
    problems += _unparsable_env_values(env_keys)
    if problems:
        raise ConfigError(problems)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, env_keys)) from None
    except SettingsError as exc:
        raise ConfigError([f"environment: {exc}"]) from None


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot be read: {exc}"]) from None


def _sections() -> dict[str, type[BaseModel]]:
    return {
        name: field.annotation  # type: ignore[misc]
        for name, field in Settings.model_fields.items()
    }


def _model_key(key: str, among: list[str] | None = None) -> str:
    """A registry key (or a renamed alias of one), or one line with the nearest key: for the
    default, the nearest enabled generator and those it may be; else a pointer to the list
    (``videobot models``), not all of the registry's keys."""
    if isinstance(key, str) and key.strip().lower() in REGISTRY:
        return get_spec(key).key
    choices = among or [k for k, spec in REGISTRY.items() if not spec.tiny]
    close = difflib.get_close_matches(str(key).strip().lower(), choices, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    known = f"pick one of: {', '.join(among)}" if among else "`videobot models` lists them all"
    raise ValueError(f"unknown model {key!r}; {hint}{known}")


def _nearest(word: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(word.lower(), allowed, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"{hint}allowed: {', '.join(allowed)}"


def _unknown_keys(values: dict[str, Any], where: str) -> list[str]:
    sections = _sections()
    problems = []
    for name, table in values.items():
        if name == "token":
            problems.append(
                f"{where}: token: the bot token is never read from a file; set {TOKEN_ENV} "
                "in the environment"
            )
        elif name not in sections:
            problems.append(f"{where}: unknown section [{name}]; {_nearest(name, list(sections))}")
        elif not isinstance(table, dict):
            problems.append(f"{where}: {name} must be a section, written [{name}]")
        else:
            allowed = list(sections[name].model_fields)
            problems += [
                f"{where}: [{name}] {key}: unknown key; {_nearest(key, allowed)}"
                for key in table
                if key not in allowed
            ]
    return problems


def _environment_keys() -> dict[tuple[str, str], str]:
    """``VIDEOBOT_SECTION__KEY`` variables as (section, key) -> the variable's name."""
    found = {}
    for name in os.environ:
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and ENV_DELIMITER in upper:
            section, _, key = upper[len(ENV_PREFIX) :].partition(ENV_DELIMITER)
            found[(section.lower(), key.split(ENV_DELIMITER)[0].lower())] = name
    return found


def _unknown_env_keys(env_keys: dict[tuple[str, str], str]) -> list[str]:
    sections = _sections()
    problems = []
    for (section, key), name in env_keys.items():
        if section not in sections:
            problems.append(
                f"{name}: unknown section {section!r}; {_nearest(section, list(sections))}"
            )
        elif key not in sections[section].model_fields:
            allowed = list(sections[section].model_fields)
            problems.append(f"{name}: [{section}] has no key {key!r}; {_nearest(key, allowed)}")
    return problems


def _unparsable_env_values(env_keys: dict[tuple[str, str], str]) -> list[str]:
    """Lists and tables come from the environment as JSON; say so where one is not."""
    sections = _sections()
    problems = []
    for (section, key), name in env_keys.items():
        field = sections.get(section, Section).model_fields.get(key)
        origin = getattr(field.annotation, "__origin__", None) if field else None
        if origin not in (list, dict) or name.upper().count(ENV_DELIMITER) > 1:
            continue
        try:
            json.loads(os.environ[name])
        except ValueError:
            example = '\'["a","b"]\'' if origin is list else '\'{"key": "value"}\''
            problems.append(
                f"{name}: must be JSON, for example {name}={example} (got {os.environ[name]!r})"
            )
    return problems


def _describe(exc: ValidationError, path: Path, env_keys: dict[tuple[str, str], str]) -> list[str]:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        message = str(error["msg"]).removeprefix("Value error, ")
        fields = list(_sections().get(loc[0], Section).model_fields)
        first = message.replace(":", " ").split(" ", 1)[0]
        if len(loc) == 1 and first in fields:  # a section's own check names its key
            loc.append(first)
            message = message[len(first) :].lstrip(": ")
        elif len(loc) > 1 and message.startswith("model: "):  # get_spec's own field name
            message = message.removeprefix("model: ")
        section = loc[0]
        key = loc[1] if len(loc) > 1 else ""
        where = env_keys.get((section, key), str(path))
        name = f"[{section}] {key}" + "".join(f"[{part}]" for part in loc[2:])
        got = f" (got {error['input']!r})" if error["type"] != "value_error" else ""
        if error["type"] == "extra_forbidden":
            message, got = f"unknown key; {_nearest(key, fields)}", ""
        lines.append(f"{where}: {name.strip()}: {message}{got}")
    return lines


def discord_token() -> str | None:
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


NO_TOKEN_HELP = f"""No Discord bot token: set the {TOKEN_ENV} environment variable.

To get one: open https://discord.com/developers/applications, create an application, open
"Bot", press "Reset Token" and copy it. Then start the bot with

    {TOKEN_ENV}=your-token videobot run

(or put {TOKEN_ENV}=... in the environment of your service or container). The token is never read
from config.toml, so the file can be shared safely."""
