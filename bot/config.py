"""The bot's settings: ``config.toml`` plus the environment, one pydantic model per section.

Every key can be set from the environment with the ``VIDEOBOT_`` prefix and ``__`` between section
and key (``VIDEOBOT_LIMITS__MAX_QUEUED_PER_USER=5``), the pydantic-settings convention, so
containers and tests configure the bot without files. The Discord token is read from
``DISCORD_TOKEN`` only, never from the file, so a config file can be shared without leaking it.
``config.example.toml`` documents every key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bot.admission import DirectMessages
from bot.core.models import REGISTRY, get_spec
from bot.core.speed import SpeedOptions

TOKEN_ENV = "DISCORD_TOKEN"
CONFIG_ENV = "VIDEOBOT_CONFIG"
DEFAULT_CONFIG_PATH = Path("config.toml")


class DiscordSettings(BaseModel):
    command_prefix: str = "!"
    """Prefix for reply-to-video text commands (``!trim 5 20``); mentioning the bot also works."""
    guild_ids: list[int] = Field(default_factory=list)
    """Guilds to sync slash commands to instantly; empty syncs globally (can take up to an hour)."""
    moderator_role: str | None = None
    """Members with this role name may use moderator commands, besides Manage Server."""
    sync_commands_on_start: bool = False


class ModelSettings(BaseModel):
    enabled: list[str] = Field(
        default_factory=lambda: ["zeroscope_v2_576w", "animatediff", "modelscope_t2v"]
    )
    """The models members may pick; the first is the default unless ``default`` says otherwise."""
    default: str | None = None
    preload: list[str] = Field(default_factory=list)
    """Loaded at start so the first member does not wait for the download and load."""
    device: str = "auto"
    dtype: str = "auto"
    cpu_offload: bool = False
    vae_slicing: bool = False
    forward_chunking: bool = False
    vae_tiling: bool = False
    group_offload: bool = False
    layerwise_casting: bool = False
    cache_dir: Path | None = None
    animatediff_base: str | None = None
    sources: dict[str, str] = Field(default_factory=dict)

    @field_validator("enabled", "preload")
    @classmethod
    def _known_models(cls, keys: list[str]) -> list[str]:
        return [get_spec(key).key for key in keys]

    @field_validator("default")
    @classmethod
    def _known_default(cls, key: str | None) -> str | None:
        return get_spec(key).key if key else None

    @property
    def default_model(self) -> str:
        if self.default:
            return self.default
        generators = [k for k in self.enabled if REGISTRY[k].role == "generator"]
        if not generators:
            raise ValueError("models.enabled names no model that can generate")
        return generators[0]


class LimitSettings(BaseModel):
    max_queued_per_user: int = Field(default=3, ge=1, le=100)
    max_queue: int = Field(default=100, ge=1)
    cooldown_s: float = Field(default=0.0, ge=0)
    progress_interval_s: float = Field(default=2.0, ge=0.2)
    """How often a running job's message is edited: Discord rate-limits message edits."""
    max_upload_mb: float = Field(default=50.0, gt=0)
    """Largest video a member may upload for editing or upscaling."""
    max_upload_frames: int = Field(default=600, ge=8)
    max_upload_seconds: float = Field(default=60.0, gt=0)
    history_page_size: int = Field(default=5, ge=1, le=10)
    job_time_limit_s: float = Field(default=900.0, gt=0)
    """A job running longer is stopped: a stuck or huge job must not hold the GPU forever."""
    edit_workers: int = Field(default=2, ge=1, le=32)
    """Edits (trim, speed, loop, interpolate) run on this many CPU threads at most; more wait."""
    direct_messages: DirectMessages = DirectMessages.SAME_LIMITS
    """same_limits: members may use the bot in DMs with the default cap and cooldown (refused to
    members blocked in any server); off: the bot refuses requests in DMs."""


class ModerationSettings(BaseModel):
    blocked_words: list[str] = Field(default_factory=list)
    """Prompts containing any of these words (whole words, any case) are refused."""


class StorageSettings(BaseModel):
    database: Path = Path("data/videobot.sqlite3")
    output_dir: Path = Path("data/outputs")
    max_output_mb: float = Field(default=5000.0, gt=0)
    """Disk budget for finished videos: the oldest are deleted past it (their history stays)."""


class SpeedSettings(BaseModel):
    """How loaded models are made fast (``bot.core.speed``). Every switch is ``auto`` (on for CUDA,
    off on the CPU), ``on`` or ``off``; a speed-up that fails is logged and left off."""

    vae_dtype: str = "auto"
    """auto, pipeline, float32, bfloat16 or float16: the VAE's precision."""
    tf32: str = "auto"
    attention: str = "auto"
    """auto, sdpa, flash or off."""
    fuse_qkv: str = "auto"
    channels_last: str = "auto"
    cudnn_benchmark: str = "auto"
    decode_chunk: int | str = "auto"
    """auto, off or frames per VAE decode call."""
    compile: str = "auto"
    compile_mode: str = "default"
    """default or max-autotune."""
    compile_frames: list[int] = Field(default_factory=list)
    """Frame counts compiled at each model's native size; empty: 16, 24 and the model's default."""
    cuda_graphs: str = "auto"
    encoder: str = "auto"
    """auto, libx264 or h264_nvenc."""

    @field_validator("decode_chunk", mode="before")
    @classmethod
    def _chunk(cls, value: Any) -> Any:
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @model_validator(mode="after")
    def _valid(self) -> SpeedSettings:
        self.options()
        return self

    def options(self) -> SpeedOptions:
        return SpeedOptions(**{**self.model_dump(), "compile_frames": tuple(self.compile_frames)})


class Settings(BaseSettings):
    """All settings. Precedence: environment over ``config.toml`` over the defaults here."""

    model_config = SettingsConfigDict(
        env_prefix="VIDEOBOT_", env_nested_delimiter="__", extra="forbid"
    )

    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    moderation: ModerationSettings = Field(default_factory=ModerationSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    speed: SpeedSettings = Field(default_factory=SpeedSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_PATH))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )


def load_settings(**overrides: Any) -> Settings:
    """Read ``config.toml`` (or the file ``VIDEOBOT_CONFIG`` names) and the environment."""
    return Settings(**overrides)


def discord_token() -> str | None:
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


NO_TOKEN_HELP = f"""No Discord bot token: set the {TOKEN_ENV} environment variable.

To get one: open https://discord.com/developers/applications, create an application, open
"Bot", press "Reset Token" and copy it. Then start the bot with

    {TOKEN_ENV}=your-token videobot run

(or put {TOKEN_ENV}=... in the environment of your service or container). The token is never read
from config.toml, so the file can be shared safely."""
