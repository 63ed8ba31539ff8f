"""Settings: config.toml, the environment over it, and the token only from DISCORD_TOKEN."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.cli import main
from bot.config import load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_example_config_documents_every_key(tmp_path: Path, monkeypatch) -> None:
    from bot.config import Settings

    example = (ROOT / "config.example.toml").read_text()
    for section, model in Settings.model_fields.items():
        assert f"[{section}]" in example
        for key in model.annotation.model_fields:  # type: ignore[union-attr]
            assert (
                f"{key} =" in example or f"# {key} =" in example or f"[{section}.{key}]" in example
            ), key
    shutil.copy(ROOT / "config.example.toml", tmp_path / "config.toml")
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.models.enabled[0] == "zeroscope_v2_576w"
    assert settings.limits.max_queued_per_user == 3


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "bot.toml").write_text("[limits]\nmax_queued_per_user = 4\ncooldown_s = 10\n")
    monkeypatch.setenv("VIDEOBOT_CONFIG", str(tmp_path / "bot.toml"))
    monkeypatch.setenv("VIDEOBOT_LIMITS__MAX_QUEUED_PER_USER", "7")
    monkeypatch.setenv("VIDEOBOT_MODELS__ENABLED", '["tiny_t2v", "tiny_v2v"]')
    settings = load_settings()
    assert settings.limits.max_queued_per_user == 7
    assert settings.limits.cooldown_s == 10
    assert settings.models.enabled == ["tiny_t2v", "tiny_v2v"]
    assert settings.models.default_model == "tiny_t2v"


def test_bad_values_and_token_in_file_are_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VIDEOBOT_CONFIG", str(tmp_path / "bot.toml"))
    (tmp_path / "bot.toml").write_text('[models]\nenabled = ["sora"]\n')
    with pytest.raises(ValidationError, match="unknown model 'sora'"):
        load_settings()
    (tmp_path / "bot.toml").write_text('token = "abc"\n')
    with pytest.raises(ValidationError, match="token"):
        load_settings()


def test_run_without_token_explains_how_to_get_one(monkeypatch, capsys) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "set the DISCORD_TOKEN environment variable" in err
    assert "discord.com/developers/applications" in err
