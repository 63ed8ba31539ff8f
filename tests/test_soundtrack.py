"""Soundtracks for silent models (issue 24, section 3): a tiny Stable Audio twin scores a silent
model's clip from its prompt after the video, in the same job, as long as the clip; off unless the
owner names a soundtrack model and the member asks for sound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bot_helpers import make_bot, make_settings, wait_for_result
from test_sound import TOLERANCE_S, stream_ends

from bot.config import ConfigError, Settings
from bot.core import GenerationParams, media, soundtrack
from bot.core.errors import InvalidParameterError
from bot.core.progress import JobControl
from cogs.video import sound_note

pytest_plugins = ("fake_discord.fixtures",)

SILENT = "tiny_animatediff"
TINY_TRACK = "tiny_stable_audio"


def clip(**changes: Any) -> GenerationParams:
    """A 2 s clip (16 frames at 8 fps) of the silent tiny model, cheap to render."""
    values: dict[str, Any] = {
        "prompt": "rain on a forest at night",
        "model": SILENT,
        "num_frames": 16,
        "fps": 8,
        "width": 64,
        "height": 64,
        "num_inference_steps": 10,
        "seed": 5,
        **changes,
    }
    return GenerationParams(**values)


class Stages(JobControl):
    """Records the stages reported; cancels once ``cancel_at`` is reached."""

    def __init__(self, cancel_at: str | None = None) -> None:
        super().__init__()
        self.seen: list[str] = []
        self._cancel_at = cancel_at

    def step(self, stage: str, *args: Any, **kwargs: Any) -> Any:
        self.seen.append(stage)
        if stage == self._cancel_at:
            self.cancel()
        return super().step(stage, *args, **kwargs)


def assert_track_fits(path: Path, seconds: float) -> None:
    ends = stream_ends(path)
    assert "audio" in ends, f"{path.name} has no audio stream"
    assert abs(ends["audio"] - ends["video"]) <= TOLERANCE_S, ends
    assert abs(ends["video"] - seconds) <= TOLERANCE_S, ends


def test_a_silent_models_clip_gets_a_track_as_long_as_the_video(
    engine: Any, tmp_path: Path
) -> None:
    control = Stages()
    result = engine.generate_video(clip(soundtrack=TINY_TRACK), control)
    assert result.ok, result.error
    assert result.sound is not None and result.sound.rate == 44100
    assert result.metadata["soundtrack"] == TINY_TRACK and "note" not in result.metadata
    # After the video's frames, in the same job, reported as its own stage.
    assert "soundtrack" in control.seen
    assert control.seen.index("soundtrack") > control.seen.index("denoise")
    assert "soundtrack" in result.timings
    out = Path(result.save_as_video(tmp_path / "scored.mp4", encoder="libx264"))
    assert_track_fits(out, 2.0)


def test_a_clip_longer_than_the_longest_track_hears_it_repeated(
    engine: Any, tmp_path: Path
) -> None:
    # The tiny model's longest track is 64 * 2048 / 44100 = 2.97 s; this clip lasts 4 s.
    result = engine.generate_video(clip(fps=4, soundtrack=TINY_TRACK))
    assert result.ok, result.error
    assert result.sound is not None and result.sound.duration_s > 4.0
    assert any("aloop" in graph for graph in result.sound.filters)
    out = Path(result.save_as_video(tmp_path / "long.mp4", encoder="libx264"))
    assert_track_fits(out, 4.0)


def test_off_by_default_a_silent_model_stays_silent(engine: Any, tmp_path: Path) -> None:
    params = clip()
    assert params.soundtrack is None
    control = Stages()
    result = engine.generate_video(params, control)
    assert result.ok and result.sound is None and "soundtrack" not in control.seen
    out = Path(result.save_as_video(tmp_path / "silent.mp4", encoder="libx264"))
    assert media.probe(out).audio is None


def test_a_cancel_during_the_soundtrack_stops_the_job(engine: Any) -> None:
    result = engine.generate_video(clip(soundtrack=TINY_TRACK), Stages(cancel_at="soundtrack"))
    assert result.cancelled and not result.images


def test_a_failed_soundtrack_keeps_the_video_silent_with_a_note(
    engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_memory(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(soundtrack, "make_track", out_of_memory)
    result = engine.generate_video(clip(soundtrack=TINY_TRACK))
    assert result.ok and result.sound is None
    assert result.metadata["note"] == (
        "The soundtrack could not be made (out of GPU memory), so the video is silent."
    )


def test_only_a_soundtrack_model_may_score_a_clip() -> None:
    with pytest.raises(InvalidParameterError, match="must be a soundtrack model, one of"):
        clip(soundtrack="animatediff")
    assert clip(soundtrack=" Tiny_Stable_Audio ").soundtrack == TINY_TRACK


def test_the_members_request_becomes_a_soundtrack_only_where_the_owner_enabled_one() -> None:
    params = clip()
    # Enabled, and the member asked: the clip is scored, and the note says what to expect.
    scored = soundtrack.requested(params, True, TINY_TRACK)
    assert scored.soundtrack == TINY_TRACK
    assert "ambience, not lip-sync" in sound_note(scored, asked=True)
    # Left on by default (None) or off: nothing changes.
    assert soundtrack.requested(params, None, TINY_TRACK).soundtrack is None
    assert soundtrack.requested(params, False, TINY_TRACK).soundtrack is None
    # Disabled by the owner: the video stays silent and the member is told who can change it.
    silent = soundtrack.requested(params, True, "")
    assert silent.soundtrack is None
    assert sound_note(silent, asked=True) == (
        "tiny_animatediff makes no sound, so the video is silent. The bot's owner can turn on "
        "soundtracks made from the prompt."
    )
    # A model with sound of its own keeps it.
    ltx2 = GenerationParams(prompt="a cat", model="tiny_ltx2")
    assert soundtrack.requested(ltx2, True, TINY_TRACK).soundtrack is None


def test_the_config_key_is_off_by_default_and_names_what_is_allowed(tmp_path: Path) -> None:
    assert Settings().sound.soundtrack_model == ""
    assert make_settings(tmp_path, sound={"soundtrack_model": TINY_TRACK}).sound.soundtrack_model
    with pytest.raises((ConfigError, ValueError)) as info:
        make_settings(tmp_path, sound={"soundtrack_model": "animatediff"})
    assert "allowed: stable_audio_open, tiny_stable_audio" in str(info.value)


def test_the_cli_sound_flag_scores_a_silent_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIDEOBOT_SOUND__SOUNDTRACK_MODEL", TINY_TRACK)
    base = ["generate", "rain at night", "--model", SILENT, "--seed", "2", "--steps", "10"]
    assert main([*base, "--frames", "16", "--fps", "8", "--sound", "-o", "scored.mp4"]) == 0
    assert "with sound" in capsys.readouterr().out
    assert_track_fits(tmp_path / "scored.mp4", 2.0)
    assert main([*base, "--sound", "--no-sound", "-o", "both.mp4"]) == 2
    assert "give --sound or --no-sound, not both" in capsys.readouterr().err


async def test_video_sound_true_in_discord_posts_a_scored_mp4(
    fake_discord: Any, manager: Any, tmp_path: Path
) -> None:
    fake = fake_discord
    settings = make_settings(
        tmp_path,
        models={"enabled": [SILENT], "default": SILENT},
        sound={"soundtrack_model": TINY_TRACK},
    )
    async with fake.run_bot(make_bot(settings, manager)):
        message = await wait_for_result(
            fake,
            await fake.run_slash_command(
                "video",
                {"prompt": "rain at night --seed 4", "frames": 16, "fps": 8, "sound": True},
            ),
        )
    [attachment] = [a for a in message.attachments if a.filename.endswith(".mp4")]
    out = tmp_path / "posted.mp4"
    out.write_bytes(attachment.data)
    assert_track_fits(out, 2.0)
    assert any("ambience, not lip-sync" in (m.get("content") or "") for m in message.history)
