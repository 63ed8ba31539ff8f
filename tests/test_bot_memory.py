"""A hostile upload against the real process: ``videobot run`` in a subprocess, talking to the fake
Discord, gets an mp4 of about 30 KB that decodes to 1920x1080 x 600 frames (3.5 GiB of RGB).

Before the decode budget, ``/edit reverse`` of such a file grew the bot by about 4.9 GiB. Now the
reverse is refused before anything is decoded, with the numbers, and a speed-up of the same file
is streamed through ffmpeg without the frames ever being held. The bot's peak resident memory
(``VmHWM``, read from /proc, reset just before the upload) is measured, not timed: it must stay
under 1.5 GiB above what the bot used before.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bot_helpers import lavfi_clip, wait_for_result
from fake_discord import FakeDiscord, Upload
from process_helpers import environment, start, write_config

from bot.core import media

pytest_plugins = ("fake_discord.fixtures",)

GROWTH_LIMIT = 1.5 * 2**30
START_TIMEOUT_S = 120.0


def hostile_mp4(path: Path) -> Path:
    """1920x1080, 600 frames at 10 fps of one flat colour at crf 51: tiny on disk, huge decoded."""
    return lavfi_clip(path, "1920x1080", 10, 600, crf=51, source="color=c=gray")


def memory_kib(pid: int, field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (its peak) of a process, in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None, f"no {field} in /proc/{pid}/status"
    return int(match.group(1))


def connected(fake: FakeDiscord) -> bool:
    """A live gateway session that has been sent READY and every guild."""
    return any(
        session.connected and session.seq >= 1 + len(fake.guilds)
        for session in fake.gateway.live_sessions()
    )


def reset_peak(pid: int) -> None:
    """Start ``VmHWM`` again from the current resident size (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
async def test_a_hostile_upload_cannot_grow_the_bot_process(
    fake_discord: FakeDiscord, model_cache: Path, tmp_path: Path
) -> None:
    fake = fake_discord
    clip = hostile_mp4(tmp_path / "hostile.mp4")
    info = media.probe(clip)
    assert clip.stat().st_size < 100_000
    assert (info.width, info.height, info.frame_count) == (1920, 1080, 600)
    assert info.decoded_bytes > 3 * 2**30  # what the old decode held
    config = write_config(tmp_path, fake.guild.id, model_cache, limits={"decode_memory_mb": 1024})
    process = await start(
        ["run", "--sync-commands"],
        environment(fake.base_url, config, fake.token),
        tmp_path / "bot.log",
    )
    try:
        await fake.wait_until(
            lambda: (
                process.returncode is not None
                or (fake.find_command("edit", guild=fake.guild) is not None and connected(fake))
            ),
            timeout=START_TIMEOUT_S,
            what="the bot to start, sync its commands and connect",
        )
        assert process.returncode is None, (tmp_path / "bot.log").read_text()[-3000:]
        before = memory_kib(process.pid, "VmRSS") * 1024
        reset_peak(process.pid)

        upload = Upload("hostile.mp4", clip.read_bytes(), "video/mp4")
        reverse = await fake.run_slash_command("edit", {"operation": "reverse", "video": upload})
        refusal = await fake.wait_for_followup(reverse, timeout=60)
        assert re.search(
            r"reversing this video would take [\d.]+ GiB of memory \(1920x1080 x 600 frames\); "
            r"the limit is 1 GiB: trim it first",
            refusal.content,
        ), refusal.content

        fast = await fake.run_slash_command(
            "edit", {"operation": "speed", "speed_factor": 4.0, "video": upload}
        )
        result = await wait_for_result(fake, fast, timeout=300)
        [attachment] = result.attachments
        made = tmp_path / "fast.mp4"
        made.write_bytes(attachment.data)
        out = media.probe(made)
        assert (out.width, out.height, out.frame_count) == (1920, 1080, 150)

        growth = memory_kib(process.pid, "VmHWM") * 1024 - before
        assert growth < GROWTH_LIMIT, f"the bot grew by {growth / 2**30:.2f} GiB"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
