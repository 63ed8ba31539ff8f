"""Uploads that cannot exhaust memory (issue 22): the decode budget checked from the probe before
anything is decoded, streamed edits, the bounded edit queue, results that can be edited again,
and admission before any download."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from bot_helpers import lavfi_clip, make_bot, make_settings
from fake_discord import Upload
from PIL import Image

from bot import budget
from bot.admission import RequestRefused
from bot.budget import DecodeBudget, EditQueue
from bot.config import Settings
from bot.core import edits, media
from bot.core.errors import InvalidParameterError, MediaError

pytest_plugins = ("fake_discord.fixtures",)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """11 s at 60 fps: 660 frames, past the old flat cap of 600."""
    return lavfi_clip(tmp_path_factory.mktemp("budget") / "long.mp4", "32x32", 60, 660)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 frames at 8 fps, as the bot makes them."""
    return lavfi_clip(tmp_path_factory.mktemp("budget") / "short.mp4", "32x32", 8, 64)


# --- the budget replaces the flat caps ---------------------------------------------------------


def test_native_portrait_1080x1920_is_not_refused_for_its_codec_padding(tmp_path: Path) -> None:
    """The decoder pads 1080 to 1088: a frame exactly at the pixel limit must still decode."""
    clip = lavfi_clip(tmp_path / "portrait.mp4", "1080x1920", 10, 2)
    frames, _ = media.decode(clip, media.MediaLimits(max_pixels=1080 * 1920))
    assert [frame.size for frame in frames] == [(1080, 1920)] * 2


def test_a_long_60_fps_clip_can_be_trimmed_under_the_default_limits(
    long_clip: Path, tmp_path: Path
) -> None:
    limits = Settings().limits.media_limits()
    info = media.probe(long_clip, limits)
    assert (info.frame_count, info.fps) == (660, 60)
    plan = edits.plan_edit("trim", info, limits, start_frame=600, end_frame=630)
    result = edits.run_edit(plan, long_clip, tmp_path / "trimmed.mp4", limits)
    assert (result.frame_count, result.fps) == (30, 60)


def test_what_does_not_fit_the_budget_is_refused_with_the_numbers(long_clip: Path) -> None:
    info = media.probe(long_clip)
    need = 32 * 32 * 3 * 660
    limit = need - 1
    with pytest.raises(MediaError) as refused:
        media.decode(long_clip, media.MediaLimits(max_decoded_bytes=limit))
    assert str(refused.value) == (
        f"decoding this video would take {media.format_size(need)} of memory (32x32 x 660 "
        f"frames); the limit is {media.format_size(limit)}"
    )
    assert info.decoded_bytes == need
    assert len(media.decode(long_clip, media.MediaLimits(max_decoded_bytes=need))[0]) == 660


def test_reverse_is_charged_every_frame_a_streamed_edit_only_a_window(long_clip: Path) -> None:
    info = media.probe(long_clip)
    roomy = media.MediaLimits(max_decoded_bytes=1 << 30)
    window = media.FRAMES_IN_FLIGHT * info.frame_bytes
    for operation, arguments in [
        ("trim", {"start_frame": 1}),
        ("speed", {"speed_factor": 2}),
        ("loop", {"loops": 1}),
    ]:
        plan = edits.plan_edit(operation, info, roomy, **arguments)
        assert plan.memory_bytes == window, operation  # whatever the video's length
    reverse = edits.plan_edit("reverse", info, roomy)
    assert reverse.memory_bytes >= window + 660 * info.frame_bytes
    tight = media.MediaLimits(max_decoded_bytes=reverse.memory_bytes - 1)
    edits.plan_edit("trim", info, tight, start_frame=1)  # still fits
    with pytest.raises(MediaError, match=r"^reversing this video would take .* of memory") as no:
        edits.plan_edit("reverse", info, tight)
    assert "(32x32 x 660 frames)" in str(no.value) and str(no.value).endswith("trim it first")


def test_an_interpolation_that_would_run_too_long_is_refused_up_front(short_clip: Path) -> None:
    info = media.probe(short_clip)
    plan = edits.plan_edit("interpolate", info, media.MediaLimits(), factor=2)
    assert plan.seconds == pytest.approx(32 * 32 * 128 / media.INTERPOLATE_PIXELS_PER_S)
    assert plan.memory_bytes > media.INTERPOLATE_BYTES_PER_PIXEL * 32 * 32  # its buffers count
    with pytest.raises(MediaError, match=r"^interpolating this video would take about .*32x32 x "):
        edits.plan_edit(
            "interpolate", info, media.MediaLimits(), time_limit_s=plan.seconds / 2, factor=2
        )


def test_a_video_longer_than_the_edit_frame_limit_can_still_be_sped_up() -> None:
    """Uploads are no longer capped at 600 frames: 60 s at 60 fps is 3600. Speeding up only
    shortens it; slowing down still may not grow a video past the limit."""
    assert edits.validate_edit("speed", 3600, speed_factor=2.0).speed_factor == 2.0
    with pytest.raises(InvalidParameterError, match="speed_factor: the result would have"):
        edits.validate_edit("speed", 3600, speed_factor=0.5)


# --- every result the bot made can be edited again --------------------------------------------


def test_an_edit_whose_result_could_not_be_opened_again_is_refused(short_clip: Path) -> None:
    limits = media.MediaLimits(max_duration_s=60)
    info = media.probe(short_clip, limits)
    with pytest.raises(InvalidParameterError) as refused:
        edits.plan_edit("loop", info, limits, loops=10)
    assert str(refused.value) == (
        "loops: the result would last 80.0 s (640 frames at 8 fps); the limit is 60 s, so it "
        "could not be edited again"
    )
    # Interpolation is capped at 60 fps (what Discord plays), well under media.MAX_FPS.
    with pytest.raises(InvalidParameterError, match=r"^factor: 4x of the video's 120 fps would"):
        fast = media.VideoInfo(32, 32, 120.0, 1.0, 120, "h264", "mp4", 1000)
        edits.plan_edit("interpolate", fast, limits, factor=4)


def test_the_longest_allowed_result_opens_and_edits_again(short_clip: Path, tmp_path: Path) -> None:
    limits = media.MediaLimits(max_duration_s=60)
    info = media.probe(short_clip, limits)
    plan = edits.plan_edit("loop", info, limits, loops=7)  # 448 frames: 56 s
    looped = edits.run_edit(plan, short_clip, tmp_path / "looped.mp4", limits)
    assert looped.frame_count == 448 and looped.duration_s <= limits.max_duration_s
    again = edits.plan_edit("reverse", media.probe(tmp_path / "looped.mp4", limits), limits)
    assert again.frames == 448


# --- streamed edits produce the frames the in-memory edits do ---------------------------------


def test_streamed_edits_pick_the_frames_the_in_memory_edits_do(tmp_path: Path) -> None:
    """Grey levels number the frames, so each output frame names its source."""
    source = tmp_path / "numbered.mp4"
    frames = [Image.new("RGB", (32, 32), (i * 20, i * 20, i * 20)) for i in range(12)]
    media.encode(frames, source, 8)
    limits = media.MediaLimits()
    info = media.probe(source, limits)
    for operation, arguments, expected in [
        ("trim", {"start_frame": 3, "end_frame": 7}, [3, 4, 5, 6]),
        ("speed", {"speed_factor": 3.0}, [0, 3, 6, 9]),
        ("speed", {"speed_factor": 0.5}, [i // 2 for i in range(24)]),
        ("reverse", {}, list(range(11, -1, -1))),
        ("loop", {"loops": 2}, list(range(12)) * 2),
    ]:
        out = tmp_path / f"{operation}-{len(expected)}.mp4"
        plan = edits.plan_edit(operation, info, limits, **arguments)
        edits.run_edit(plan, source, out, limits)
        result = media.VideoFrames(out, media.probe(out, limits), limits)
        got = [round(frame.getpixel((16, 16))[0] / 20) for frame in result]  # type: ignore[index]
        assert got == expected, operation
        assert len(result) == len(expected) and result.size == (32, 32)
        assert [f.getpixel((16, 16)) for f in result[::3]] == [  # type: ignore[union-attr]
            f.getpixel((16, 16)) for f in list(result)[::3]
        ]
    # What delivery does with a result over Discord's limit: re-encoded from the file, streamed.
    smaller = media.encode_within(result, tmp_path / "fitted.mp4", 8, out.stat().st_size - 1)
    assert smaller.size_bytes < out.stat().st_size


# --- the process-wide budget and the edit queue ------------------------------------------------


async def test_the_budget_waits_in_turn_and_gives_back_on_any_exit() -> None:
    pool = DecodeBudget(100)
    order: list[str] = []
    first_in = asyncio.Event()
    release_first = asyncio.Event()

    async def hold(name: str, amount: int, until: asyncio.Event | None = None) -> None:
        async with pool.reserve(amount):
            order.append(name)
            if until is not None:
                first_in.set()
                await until.wait()

    first = asyncio.create_task(hold("first", 70, release_first))
    await first_in.wait()
    big = asyncio.create_task(hold("big", 60))
    small = asyncio.create_task(hold("small", 10))  # fits now, but waits behind "big"
    await asyncio.sleep(0)
    assert order == ["first"] and pool.in_use == 70
    release_first.set()
    await asyncio.gather(first, big, small)
    assert order == ["first", "big", "small"] and pool.in_use == 0

    with pytest.raises(RuntimeError):
        async with pool.reserve(100):
            raise RuntimeError("the edit failed")
    assert pool.in_use == 0
    async with pool.reserve(100):
        waiting = asyncio.create_task(hold("cancelled", 50))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert pool.in_use == 0 and not pool.fits(101)
    with pytest.raises(ValueError):
        async with pool.reserve(101):
            pass


async def test_the_edit_queue_refuses_past_its_waiting_places() -> None:
    queue = EditQueue(workers=1, waiting=1)
    running = asyncio.Event()
    finish = asyncio.Event()
    entered: list[str] = []

    async def edit(name: str) -> None:
        async with queue.place():
            entered.append(name)
            running.set()
            await finish.wait()

    first = asyncio.create_task(edit("first"))
    await running.wait()
    second = asyncio.create_task(edit("second"))
    await asyncio.sleep(0)
    assert entered == ["first"] and queue.inside == 2  # the second waits, holding nothing
    with pytest.raises(RequestRefused, match="the edit queue is full"):
        async with queue.place():
            pass
    finish.set()
    await asyncio.gather(first, second)
    assert entered == ["first", "second"] and queue.inside == 0


def test_the_default_budget_is_a_quarter_of_memory_within_bounds(monkeypatch) -> None:
    monkeypatch.setattr(budget, "_cgroup_limit", lambda: None)
    monkeypatch.setattr(budget, "_physical_memory", lambda: 2 * 2**30)
    assert budget.default_decode_memory_mb() == 512
    monkeypatch.setattr(budget, "_physical_memory", lambda: 64 * 2**30)
    assert budget.default_decode_memory_mb() == budget.DECODE_MEMORY_MAX_MB
    monkeypatch.setattr(budget, "_cgroup_limit", lambda: 512 * 2**20)  # a small container
    assert budget.default_decode_memory_mb() == budget.DECODE_MEMORY_MIN_MB


def test_limits_config_sets_the_budget_and_keeps_the_old_frame_cap_working() -> None:
    limits = Settings(limits={"decode_memory_mb": 300, "max_upload_seconds": 20}).limits
    assert limits.media_limits().max_decoded_bytes == 300 * 2**20
    assert limits.media_limits().max_duration_s == 20
    assert limits.media_limits().max_frames is None  # no flat cap unless a config sets one
    old = Settings(limits={"max_upload_frames": 600}).limits  # a config from before the budget
    assert old.media_limits().max_frames == 600


# --- admission before any download --------------------------------------------------------------


def attachment_fetches(fake) -> list[object]:  # type: ignore[no-untyped-def]
    return [r for r in fake.requests if r.method == "GET" and "attachments/" in r.path]


async def test_a_blocked_members_upload_is_never_downloaded(fake_discord, manager, tmp_path):  # type: ignore[no-untyped-def]
    fake = fake_discord
    clip = tmp_path / "clip.mp4"
    media.encode([Image.new("RGB", (32, 32), (9 * i, 80, 40)) for i in range(8)], clip, 8)
    upload = Upload("clip.mp4", clip.read_bytes(), "video/mp4")
    async with fake.run_bot(make_bot(make_settings(tmp_path), manager)) as bot:
        await bot.store.block(fake.guild.id, fake.user.id, moderator_id=1, reason="test")
        for operation in ("edit", "upscale"):
            options = {"operation": "reverse", "video": upload} if operation == "edit" else {}
            refused = await fake.run_slash_command(operation, {**options, "video": upload})
            followup = await fake.wait_for_followup(refused)
            assert "blocked you" in followup.content and followup.flags & 64
        assert attachment_fetches(fake) == []
        assert await bot.store.count_history(fake.user.id, fake.guild.id) == 0

        await bot.store.unblock(fake.guild.id, fake.user.id)  # the control: now it is fetched
        allowed = await fake.run_slash_command("edit", {"operation": "reverse", "video": upload})
        await fake.wait_until(
            lambda: (
                fake.original_response(allowed)
                and any(
                    a.filename.endswith(".mp4") for a in fake.original_response(allowed).attachments
                )
            ),
            timeout=60,
        )
        assert len(attachment_fetches(fake)) == 1


async def test_an_upscale_over_the_budget_is_refused_before_it_is_queued(
    fake_discord, manager, tmp_path
):  # type: ignore[no-untyped-def]
    fake = fake_discord
    clip = tmp_path / "clip.mp4"
    media.encode([Image.new("RGB", (64, 64), (9 * i, 80, 40)) for i in range(8)], clip, 8)
    need = 64 * 64 * 3 * 8
    settings = make_settings(tmp_path, limits={"decode_memory_mb": need / 2 / 2**20})
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        refused = await fake.run_slash_command(
            "upscale", {"video": Upload("clip.mp4", clip.read_bytes(), "video/mp4")}
        )
        followup = await fake.wait_for_followup(refused)
        assert (
            f"upscaling this video would take {media.format_size(need)} of memory (64x64 x 8 "
            f"frames); the limit is {media.format_size(need // 2)}: trim it first"
        ) in followup.content
        assert await bot.store.count_history(fake.user.id, fake.guild.id) == 0
