"""Running the real ``videobot run`` as a process against the fake Discord: the config file it
reads, its environment, and the start itself (through ``fake_discord.launch``, which points
discord.py at the fake from outside the bot)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot_helpers import TINY_MODELS
from fake_discord.launch import URL_ENV

REPO = Path(__file__).resolve().parent.parent


def write_config(
    tmp_path: Path,
    guild_id: int,
    model_cache: Path,
    limits: Mapping[str, Any] | None = None,
) -> Path:
    """A ``config.toml`` on the tiny models, with the database and videos under ``tmp_path``."""

    def text(value: Any) -> str:  # JSON strings, numbers and lists are valid TOML values
        return json.dumps(str(value) if isinstance(value, Path) else value)

    limit_lines = "".join(f"{key} = {text(value)}\n" for key, value in (limits or {}).items())
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[discord]
guild_ids = [{guild_id}]

[models]
enabled = {text(TINY_MODELS)}
default = "tiny_t2v"
device = "cpu"
cache_dir = {text(model_cache)}

[limits]
{limit_lines}
[storage]
database = {text(tmp_path / "videobot.sqlite3")}
output_dir = {text(tmp_path / "outputs")}
"""
    )
    return config


def environment(base_url: str, config: Path, token: str, **extra: str) -> dict[str, str]:
    """This process's environment (the tiny-model cache, offline hub) with the bot's settings
    coming only from ``config``: ``VIDEOBOT_SECTION__KEY`` variables would override it."""
    env = {k: v for k, v in os.environ.items() if not (k.startswith("VIDEOBOT_") and "__" in k)}
    pythonpath = [str(REPO / "tests"), str(REPO), env.get("PYTHONPATH", "")]
    env.update(
        {
            URL_ENV: base_url,
            "DISCORD_TOKEN": token,
            "VIDEOBOT_CONFIG": str(config),
            "PYTHONPATH": os.pathsep.join(p for p in pythonpath if p),
            "HF_HUB_OFFLINE": "1",
            # Tiny models gain nothing from threads, and a second spinning thread on a busy
            # machine can slow every step many times over.
            "OMP_NUM_THREADS": "1",
            **extra,
        }
    )
    return env


async def start(args: list[str], env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """``videobot ARGS`` through the launcher, its output (both streams) in ``log``."""
    with log.open("wb") as output:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fake_discord.launch",
            *args,
            cwd=REPO,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )
