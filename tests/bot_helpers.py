"""Helpers for the bot's end-to-end tests: settings on the tiny models, a bot factory, and ways to
wait for a job's final message on the fake Discord."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import imageio_ffmpeg
import numpy as np
import pytest
from fake_discord import FAST_CLIENT_OPTIONS, FakeDiscord, StoredMessage, Upload, default_intents

from bot.admission import Requester
from bot.config import Settings
from bot.core import media

if TYPE_CHECKING:
    from bot.core.manager import ModelManager
    from bot.service import VideoService
    from tests.local_hub.server import LocalHub

TINY_MODELS = ["tiny_t2v", "tiny_animatediff", "tiny_v2v"]

WAN21_KEY = "wan2_1_1_3b"
"""The restyler the restyle tests run: Wan 2.1 T2V 1.3B's registry key, on the local hub's tiny
replica of its repo (:func:`wan21_restyler`)."""


def make_settings(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {
        # The fake Discord dispatches only commands the bot registered, as Discord does.
        "discord": {"sync_commands_on_start": True},
        # /upscale goes through the tiny diffusion upscaler here; Real-ESRGAN, the default
        # upscaler, is tested against the local hub (tests/test_enhance_wiring.py).
        "models": {"enabled": TINY_MODELS, "default": "tiny_t2v", "upscaler": "tiny_v2v"},
        "limits": {"progress_interval_s": 0.2},
        "storage": {
            "database": tmp_path / "videobot.sqlite3",
            "output_dir": tmp_path / "outputs",
        },
    }
    for name, changes in sections.items():
        values[name] = {**values.get(name, {}), **changes}
    return Settings(**values)


def make_bot(settings: Settings, manager: Any) -> Any:
    from bot.client import VideoBot

    return VideoBot(settings, manager=manager, intents=default_intents(), **FAST_CLIENT_OPTIONS)


def has_video(message: StoredMessage) -> bool:
    """Whether a message carries a result video; a running job's live preview (a GIF) does not
    count."""
    return any(a.filename.endswith(".mp4") for a in message.attachments)


def final_message(fake: FakeDiscord, interaction: Any) -> StoredMessage | None:
    """The interaction's response once it holds a result (a video or an error embed); a running
    job's live preview is an attachment too, but not a result."""
    message = fake.original_response(interaction)
    if message is None:
        return None
    results = [a for a in message.attachments if not a.filename.startswith("preview")]
    if results or any("❌" in (e.get("description") or "") for e in message.embeds):
        return message
    if "cancelled" in message.content:
        return message
    return None


async def wait_for_result(
    fake: FakeDiscord, interaction: Any, timeout: float = 60.0
) -> StoredMessage:
    return await fake.wait_until(
        lambda: final_message(fake, interaction), timeout=timeout, what="the job's result"
    )


def decode_attachment(message: StoredMessage, tmp_path: Path) -> tuple[np.ndarray, float]:
    [attachment] = message.attachments
    path = tmp_path / f"att-{attachment.id}.mp4"
    path.write_bytes(attachment.data)
    frames, fps = media.decode(path)
    return np.stack([np.asarray(f) for f in frames]), fps


def custom_ids(message: StoredMessage) -> list[str]:
    return [
        component["custom_id"]
        for row in message.components
        for component in row.get("components", [])
        if "custom_id" in component
    ]


__all__ = ["decode_attachment", "io"]


async def edit_upload(fake: FakeDiscord, operation: str, video: bytes, **options: Any) -> Any:
    """``/edit operation:`` with ``options`` on ``video`` uploaded as ``clip.mp4``: the
    interaction, to wait on for its result or its refusal."""
    return await fake.run_slash_command(
        "edit",
        {"operation": operation, **options, "video": Upload("clip.mp4", video, "video/mp4")},
    )


async def edit_refusal(
    fake: FakeDiscord, operation: str, video: bytes, **options: Any
) -> StoredMessage:
    """The follow-up that refuses :func:`edit_upload`'s request: the member's one-line answer."""
    return await fake.wait_for_followup(await edit_upload(fake, operation, video, **options))


def wan21_replica(model_cache: Path) -> Path:
    """The local hub's tiny replica of Wan 2.1 T2V 1.3B's repo (a ``WanPipeline`` in the real
    layout: 16 latent channels, the 2.1 VAE, UniPC), built unless an up-to-date copy is there:
    the folder an owner's ``sources`` override names."""
    from tests.local_hub.hub_tiny import build_hub_tiny_model

    target = model_cache / "hub_tiny_wan21"
    build_hub_tiny_model("hub_tiny_wan21", target)
    return target / "t2v"


@contextlib.contextmanager
def wan21_restyler(model_cache: Path) -> Iterator[ModelManager]:
    """A manager serving :data:`WAN21_KEY` from :func:`wan21_replica`, with the key's sizes and
    frame rule shrunk (64x48 native, at most 17 frames, 4 steps) so a restyle takes a second;
    the registry is restored and the model unloaded on the way out."""
    from bot.core.manager import ManagerOptions, ModelManager
    from bot.core.registry import REGISTRY
    from bot.core.rules import FrameRule

    source = wan21_replica(model_cache)
    small = dataclasses.replace(
        REGISTRY[WAN21_KEY],
        native_width=64,
        native_height=48,
        min_size=32,
        max_size=128,
        frames=FrameRule(5, 17, step=4, offset=1),
        default_steps=4,
    )
    patch = pytest.MonkeyPatch()
    patch.setitem(REGISTRY, WAN21_KEY, small)
    manager = ModelManager(ManagerOptions(cache_dir=model_cache, sources={WAN21_KEY: str(source)}))
    try:
        yield manager
    finally:
        manager.unload_all()
        patch.undo()


def rendered_here(manager: Any, tmp_path: Path, **params: Any) -> np.ndarray:
    """What the engine in this process renders for the bot's test request ("a paper boat" on
    tiny_t2v at 64x64, plus ``params``), through the same encoder: the frames a result must hold."""
    from bot.core import GenerationParams
    from bot.core.engine import GenerationEngine

    wanted = {"prompt": "a paper boat", "model": "tiny_t2v", "width": 64, "height": 64, **params}
    result = GenerationEngine(manager).generate_video(GenerationParams(**wanted))
    path = result.save_as_video(tmp_path / "expected.mp4")
    frames, _ = media.decode(Path(path))
    return np.stack([np.asarray(f) for f in frames])


@contextlib.contextmanager
def hub_online(hub: LocalHub, cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    """huggingface_hub pointed at the local ``hub`` with an empty ``cache``, as ``HF_ENDPOINT``
    would, its request log cleared; the enhancers' loaded networks (RIFE, Real-ESRGAN) forgotten
    before and after, so each test downloads what it needs."""
    from huggingface_hub import constants

    from bot.core import enhance

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    enhance.unload()
    hub.requests.clear()
    try:
        yield hub
    finally:
        enhance.unload()


ALICE = Requester(user_id=7, user_name="alice", guild_id=70, channel_id=700)
"""The member who asks for jobs in the tests on the service without Discord."""
KITE = {
    "prompt": "a kite",
    "model": "tiny_t2v",
    "width": 32,
    "height": 32,
    "num_frames": 8,
    "num_inference_steps": 10,
    "seed": 1,
}
"""A job's parameters that render in a moment on the tiny models."""


@contextlib.asynccontextmanager
async def running_service(
    settings: Settings, manager: Any, now: Callable[[], datetime] | None = None
) -> AsyncIterator[VideoService]:
    """The real service, store and GPU executor on ``settings`` (no Discord), the store's clock
    ``now`` if given; stopped on the way out in the bot's order: executor, then the service's
    pending work, then the store."""
    from bot.core.engine import GenerationEngine
    from bot.jobs import GpuExecutor
    from bot.service import VideoService
    from bot.store import Store

    store = await Store.open(settings.storage.database, now=now)
    engine = GenerationEngine(manager)
    executor = GpuExecutor(max_queue=10, engine=engine)
    await executor.start()
    service = VideoService(settings, store, executor, engine)
    try:
        yield service
    finally:
        await executor.stop()
        await service.drain()
        await store.close()


def lavfi_clip(
    path: Path,
    size: str,
    rate: int,
    frames: int,
    *,
    crf: int = 23,
    source: str = "testsrc2",
) -> Path:
    """``frames`` frames of the lavfi ``source`` (a test pattern by default; ``color=c=gray`` for
    one flat colour) at ``size`` and ``rate``, made by the bundled ffmpeg as H.264 at ``crf``:
    any size, rate and length, quickly."""
    # a source that has options of its own takes size and rate after them
    options = f"{source}{':' if '=' in source else '='}s={size}:r={rate}"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            options,
            "-frames:v",
            str(frames),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            str(crf),
            "-pix_fmt",
            "yuv420p",
            "-y",
            str(path),
        ],
        check=True,
        timeout=120,
    )
    return path


async def private_reply(fake: FakeDiscord, interaction: Any, timeout: float = 60.0) -> str:
    """The text of the member-only answer (content, or its embeds), as a response or as a
    follow-up."""

    def check() -> str | None:
        followups = fake.followups(interaction)
        if followups and followups[-1].flags & 64:
            return followups[-1].content or str(followups[-1].embeds)
        data = interaction.response_data or {}
        if interaction.response_type == 4 and data.get("flags", 0) & 64:
            return data.get("content") or str(data.get("embeds"))
        return None

    return str(await fake.wait_until(check, what="a private reply", timeout=timeout))
