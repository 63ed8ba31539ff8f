"""Settings: config.toml, the environment over it, and the token only from DISCORD_TOKEN."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ConfigError, load_settings

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
    with pytest.raises(ConfigError, match="enabled: unknown model 'sora'"):
        load_settings()
    (tmp_path / "bot.toml").write_text('token = "abc"\n')
    with pytest.raises(ConfigError, match="never read from a file; set DISCORD_TOKEN"):
        load_settings()


def one_line_errors(monkeypatch, capsys, **env: str) -> list[str]:
    """``videobot run`` with a token and this config: exit 2, only the error lines, no traceback."""
    monkeypatch.setenv("DISCORD_TOKEN", "not-used")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert all(line.startswith("videobot run: error: ") for line in lines), lines
    return [line.removeprefix("videobot run: error: ") for line in lines]


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[moderation]\nblocked_word = ["spam"]\n',
            "[moderation] blocked_word: unknown key; did you mean blocked_words? "
            "allowed: blocked_words",
        ),
        (
            "[limits]\nmax_queued_per_usr = 2\n",
            "[limits] max_queued_per_usr: unknown key; did you mean max_queued_per_user?",
        ),
        (
            "[speed]\nenabeld = true\n",
            "[speed] enabeld: unknown key; allowed: vae_dtype, tf32",
        ),
        ("[discrod]\nguild_ids = []\n", "unknown section [discrod]; did you mean discord?"),
        ("[limits]\ncooldown_s =\n", "invalid TOML: Invalid value (at line 2, column 13)"),
        (
            "[limits]\nmax_queued_per_user = 0\n",
            "[limits] max_queued_per_user: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            '[models]\nenabled = ["tiny_t2v"]\ndefault = "animatediff"\n',
            "[models] default: 'animatediff' is not in models.enabled; add it there or pick one "
            "of: tiny_t2v",
        ),
        (
            '[models]\nenabled = ["tiny_t2v", "tiny_v2v"]\ndefault = "tiny_v2v"\n',
            "[models] default: 'tiny_v2v' is an upscaler, not a model that generates",
        ),
        (
            '[models]\nenabled = ["tiny_v2v"]\n',
            "[models] enabled: names no model that generates (only upscalers)",
        ),
        ('[models]\ndevice = "gpu"\n', "[models] device: must be auto, cpu, cuda, cuda:N"),
    ],
)
def test_config_file_mistakes_get_one_line_naming_file_and_key(
    tmp_path: Path, monkeypatch, capsys, toml: str, expected: str
) -> None:
    path = tmp_path / "bot.toml"
    path.write_text(toml)
    [line] = one_line_errors(monkeypatch, capsys, VIDEOBOT_CONFIG=str(path))
    assert line.startswith(f"{path}: "), line
    assert expected in line


def test_config_toml_in_the_working_directory_is_named(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("VIDEOBOT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text(
        "[limits]\nmax_queued_per_usr = 2\n[moderation]\nblocked_word = []\n"
    )
    lines = one_line_errors(monkeypatch, capsys)
    assert [line.split(": ")[0] for line in lines] == ["config.toml", "config.toml"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"VIDEOBOT_LIMITS__MAX_QUEUED_PER_USR": "5"},
            "VIDEOBOT_LIMITS__MAX_QUEUED_PER_USR: [limits] has no key 'max_queued_per_usr'; "
            "did you mean max_queued_per_user?",
        ),
        (
            {"VIDEOBOT_LIMITS__COOLDOWN_S": "soon"},
            "VIDEOBOT_LIMITS__COOLDOWN_S: [limits] cooldown_s: Input should be a valid number",
        ),
        (
            {"VIDEOBOT_MODELS__ENABLED": "tiny_t2v"},
            "VIDEOBOT_MODELS__ENABLED: must be JSON, for example "
            "VIDEOBOT_MODELS__ENABLED='[\"a\",\"b\"]' (got 'tiny_t2v')",
        ),
        (
            {"VIDEOBOT_MODELS__DEFAULT": "zeroscope_v2_xl"},
            "VIDEOBOT_MODELS__DEFAULT: [models] default: 'zeroscope_v2_xl' is an upscaler",
        ),
        (
            {"VIDEOBOT_MODERATON__BLOCKED_WORDS": "[]"},
            "VIDEOBOT_MODERATON__BLOCKED_WORDS: unknown section 'moderaton'; did you mean "
            "moderation?",
        ),
    ],
)
def test_environment_mistakes_name_the_variable(
    tmp_path: Path, monkeypatch, capsys, env: dict[str, str], expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VIDEOBOT_CONFIG", raising=False)
    [line] = one_line_errors(monkeypatch, capsys, **env)
    assert expected in line


def test_missing_config_file_named_by_the_environment(tmp_path: Path, monkeypatch, capsys) -> None:
    missing = tmp_path / "nowhere" / "bot.toml"
    [line] = one_line_errors(monkeypatch, capsys, VIDEOBOT_CONFIG=str(missing))
    assert (
        line
        == f"{missing}: no such file (VIDEOBOT_CONFIG names it; unset VIDEOBOT_CONFIG to use config.toml)"
    )


def test_no_config_file_at_all_is_fine(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VIDEOBOT_CONFIG", raising=False)
    settings = load_settings()
    assert settings.discord.message_content_intent is False
    assert settings.models.default_model == "zeroscope_v2_576w"


def test_run_without_token_explains_how_to_get_one(monkeypatch, capsys) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "set the DISCORD_TOKEN environment variable" in err
    assert "discord.com/developers/applications" in err


def test_engine_options_are_declared_once_and_reach_the_manager(monkeypatch) -> None:
    """``[speed]`` is ``SpeedOptions`` and ``[models]`` holds ``ManagerOptions``: the config keys,
    the CLI's flags and the manager's options are one declaration, so they cannot drift apart."""
    from dataclasses import fields

    from bot.cli import MANAGER_FLAGS
    from bot.config import ModelSettings, Settings, SpeedSettings
    from bot.core.manager import MEMORY_SWITCHES, ManagerOptions
    from bot.core.speed import SpeedOptions

    assert list(SpeedSettings.model_fields) == [f.name for f in fields(SpeedOptions)]
    manager_keys = [f.name for f in fields(ManagerOptions) if f.name != "speed"]
    assert set(ModelSettings.model_fields) == {
        *manager_keys,
        "enabled",
        "default",
        "preload",
        "upscaler",
        "extender",
    }
    assert {f.name for f in MANAGER_FLAGS} == {
        *MEMORY_SWITCHES,
        "device",
        "dtype",
        "plan",
        "vram_gb",
    }

    monkeypatch.setenv("VIDEOBOT_MODELS__VAE_TILING", "true")
    settings = Settings(
        models={"device": "cpu", "dtype": "float32", "sources": {"animatediff": "/m"}},
        speed={"tf32": "off", "decode_chunk": "4", "compile_frames": [16]},
    )
    options = settings.models.manager_options(settings.speed.options())
    assert (options.device, options.dtype, options.vae_tiling) == ("cpu", "float32", True)
    assert options.sources == {"animatediff": "/m"}
    assert (options.speed.tf32, options.speed.decode_chunk) == ("off", 4)
    assert options.speed.compile_frames == (16,)


def test_the_options_own_checks_name_the_key(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "config.toml").write_text('[models]\ndtype = "float8"\n[speed]\nencoder = "vp9"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.lines == [
        "config.toml: [models] dtype: must be auto, float16, bfloat16 or float32 (got 'float8')",
        "config.toml: [speed] encoder: must be one of auto, libx264, h264_nvenc (got 'vp9')",
    ]


def test_a_models_lora_file_is_set_in_models_sources(tmp_path: Path, monkeypatch) -> None:
    """The example's commented line, uncommented, reaches the manager's load of the model: the
    quoted ``key:part`` form TOML needs for the colon."""
    from bot.core.manager import ModelManager
    from bot.core.registry import get_spec

    example = (ROOT / "config.example.toml").read_text()
    line = next(
        text for text in example.splitlines() if text.startswith('# "wan2_1_14b_lightx2v:lora" =')
    )
    (tmp_path / "config.toml").write_text(
        example.replace(line, line.removeprefix("# ")).replace('device = "auto"', 'device = "cpu"')
    )
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    options = settings.models.manager_options(settings.speed.options())
    lora = "/models/loras/wan2.1_t2v_14b_lora_rank64_lightx2v_4step.safetensors"
    assert options.sources == {"wan2_1_14b_lightx2v:lora": lora}
    manager = ModelManager(options)
    request = manager._load_request(get_spec("wan2_1_14b_lightx2v"), "float32")
    assert request.lora_source == lora and request.source == "Wan-AI/Wan2.1-T2V-14B-Diffusers"
    # Without the override, the registry's file on the hub.
    plain = ModelManager(type(options)())
    assert plain._load_request(get_spec("wan2_1_14b_lightx2v"), "float32").lora_source == (
        "lightx2v/Wan2.1-Distill-Loras/wan2.1_t2v_14b_lora_rank64_lightx2v_4step.safetensors"
    )
