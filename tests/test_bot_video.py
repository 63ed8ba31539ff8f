"""``/video`` end to end: the real discord.py bot on the tiny models against the fake Discord."""

from __future__ import annotations

import numpy as np
from bot_helpers import custom_ids, decode_attachment, make_bot, make_settings, wait_for_result

from bot.core import GenerationParams, media
from bot.core.engine import GenerationEngine

pytest_plugins = ("fake_discord.fixtures",)


async def test_video_defers_shows_progress_and_posts_the_mp4(
    fake_discord, manager, tmp_path
) -> None:
    fake = fake_discord
    settings = make_settings(tmp_path)
    async with fake.run_bot(make_bot(settings, manager)) as bot:
        interaction = await fake.run_slash_command(
            "video", {"prompt": "a paper boat --seed 7 --frames 8 --steps 12", "width": 64}
        )
        message = await wait_for_result(fake, interaction)
        job_id = int(message.embeds[0]["footer"]["text"].split("#")[1].split()[0])
        record = await bot.store.get_job(job_id)

    assert interaction.response_type == 5  # deferred first
    assert interaction.response_latency is not None and interaction.response_latency < 3
    progress = [m.get("content") for m in message.history if "step" in (m.get("content") or "")]
    assert progress, "no progress edit was shown"
    assert "/12" in progress[-1]
    embed = message.embeds[0]
    assert embed["title"] == "a paper boat"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Model"] == "tiny_t2v" and fields["Seed"] == "7"
    assert fields["Size"] == "64x64" and fields["Frames"] == "8 at 8 fps"
    assert custom_ids(message) == [
        f"vb:{action}:{job_id}"
        for action in ("reroll", "upscale", "reverse", "loop", "interpolate")
    ]
    frames, fps = decode_attachment(message, tmp_path)
    expected = GenerationEngine(manager).generate_video(
        GenerationParams(
            prompt="a paper boat",
            model="tiny_t2v",
            seed=7,
            num_frames=8,
            num_inference_steps=12,
            width=64,
            height=64,
        )
    )
    expected.save_as_video(tmp_path / "expected.mp4")
    reference, _ = media.decode(tmp_path / "expected.mp4")
    reference_frames = np.stack([np.asarray(f) for f in reference])
    assert frames.shape == reference_frames.shape == (8, 64, 64, 3) and fps == 8
    # The same frames through the same encoder: the bot sent exactly the expected video.
    assert np.abs(frames.astype(int) - reference_frames.astype(int)).max() <= 1
    assert record is not None and record.status == "done" and record.seed == 7
    assert record.params["num_frames"] == 8 and record.user_id == fake.user.id
