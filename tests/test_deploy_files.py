"""The deployment files agree with the bot: the CPU trial config validates with tiny models only,
and docker-compose.yml and the systemd unit mount what the image declares and give the bot the
time its drain can take. Cheap: they read files, nothing is built or started (``make
image-check`` builds and runs the image itself; see docs/DOCKER.md)."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import EXIT_USAGE
from bot.client import SHUTDOWN_POST_TIMEOUT_S
from bot.config import LimitSettings, load_settings
from bot.core.registry import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
CPU_TRIAL = ROOT / "examples" / "config.cpu.toml"
COMPOSE = ROOT / "docker-compose.yml"
UNIT = ROOT / "deploy" / "videobot.service"

# The longest a stop can take with the default limits: the running job may run to its time limit,
# then its result gets SHUTDOWN_POST_TIMEOUT_S to post.
DRAIN_S = LimitSettings().job_time_limit_s + SHUTDOWN_POST_TIMEOUT_S


def _seconds(duration: str) -> float:
    """A Compose (Go) or systemd duration such as ``16m``, ``16min``, ``1h30m`` or ``90s``."""
    units = {"h": 3600, "min": 60, "m": 60, "s": 1}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(h|min|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration.replace(" ", ""), duration
    return sum(float(number) * units[unit] for number, unit in parts)


def _dockerfile_volumes() -> set[str]:
    """The paths of the Dockerfile's ``VOLUME [...]`` line."""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("VOLUME "):
            return set(json.loads(line.removeprefix("VOLUME ")))
    raise AssertionError("the Dockerfile declares no VOLUME")


# --- the CPU trial -------------------------------------------------------------------------------


def test_cpu_trial_config_validates_with_tiny_models_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VIDEOBOT_CONFIG", str(CPU_TRIAL))
    settings = load_settings()
    models = settings.models
    assert models.device == "cpu"
    not_tiny = [key for key in models.enabled if not REGISTRY[key].tiny]
    assert not_tiny == [], f"the CPU trial enables real models: {not_tiny}"
    assert models.preload, "the trial preloads a model so the first member does not wait"
    assert set(models.preload) <= set(models.enabled)
    assert REGISTRY[models.default_model].tiny
    # An upscaler is enabled, so /upscale works in the trial too.
    assert any(REGISTRY[key].role == "upscaler" for key in models.enabled)


def test_cpu_trial_config_keeps_its_limits_small_and_its_data_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VIDEOBOT_CONFIG", str(CPU_TRIAL))
    settings = load_settings()
    defaults = LimitSettings()
    assert settings.limits.max_queue < defaults.max_queue
    assert settings.limits.max_queued_per_user <= defaults.max_queued_per_user
    assert settings.limits.job_time_limit_s < defaults.job_time_limit_s
    assert settings.limits.max_upload_mb < defaults.max_upload_mb
    default_storage = type(settings.storage)()
    assert settings.storage.database.parent != default_storage.database.parent
    assert settings.storage.output_dir != default_storage.output_dir


# --- docker-compose.yml --------------------------------------------------------------------------


def _compose_service() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE.read_text())
    assert list(compose["services"]) == ["videobot"]
    service: dict[str, Any] = compose["services"]["videobot"]
    return service


def test_compose_reserves_the_gpu() -> None:
    devices = _compose_service()["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)


def test_compose_mounts_every_volume_the_image_declares_and_the_config_read_only() -> None:
    service = _compose_service()
    short = [v for v in service["volumes"] if isinstance(v, str)]
    named = {v.split(":")[1]: v.split(":")[0] for v in short}
    assert set(named) == _dockerfile_volumes()
    compose = yaml.safe_load(COMPOSE.read_text())
    assert set(named.values()) <= set(compose["volumes"])
    binds = [v for v in service["volumes"] if isinstance(v, dict)]
    config = [v for v in binds if v["target"] == "/data/config.toml"]
    assert config and config[0]["read_only"] is True and config[0]["type"] == "bind"


def test_compose_gives_the_bot_time_to_drain() -> None:
    service = _compose_service()
    assert service.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert _seconds(service["stop_grace_period"]) >= DRAIN_S


def test_compose_env_file_has_a_template_that_stays_out_of_the_image() -> None:
    env_file = _compose_service()["env_file"]
    assert env_file == ".env"
    template = (ROOT / ".env.example").read_text()
    assert re.search(r"^DISCORD_TOKEN=$", template, re.MULTILINE), "an empty token to fill in"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and ".env.*" in ignored


# --- the systemd unit ----------------------------------------------------------------------------


def _unit() -> configparser.RawConfigParser:
    # Repeated keys (Environment=) are allowed in a unit: the last one wins here, which is enough
    # for the keys checked below; _environment reads every Environment= line.
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def _environment() -> dict[str, str]:
    lines = re.findall(r"^Environment=(\S+?)=(\S+)$", UNIT.read_text(), re.MULTILINE)
    return dict(lines)


def test_unit_runs_the_bot_and_gives_it_time_to_drain() -> None:
    service = _unit()["Service"]
    assert service["ExecStart"].endswith("/.venv/bin/videobot run")
    assert service["KillSignal"] == "SIGTERM"
    assert _seconds(service["TimeoutStopSec"]) >= DRAIN_S
    assert service["Restart"] == "on-failure"
    # A mistake in the config or the token exits EXIT_USAGE: restarting cannot fix it.
    assert service["RestartPreventExitStatus"] == str(EXIT_USAGE)
    assert service["EnvironmentFile"].startswith("/etc/")


def test_unit_is_hardened_and_can_write_only_its_data() -> None:
    service = _unit()["Service"]
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["User"] != "root"
    writable = service["ReadWritePaths"].split()
    env = _environment()
    data = [
        env["HF_HOME"],
        env["VIDEOBOT_MODEL_CACHE"],
        str(Path(env["VIDEOBOT_STORAGE__DATABASE"]).parent),
        env["VIDEOBOT_STORAGE__OUTPUT_DIR"],
    ]
    outside = [p for p in data if not any(Path(p).is_relative_to(w) for w in writable)]
    assert outside == [], f"ProtectSystem=strict would make these read-only: {outside}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """Verified in a root holding the system's units and a stand-in for the venv's videobot."""
    units = Path("/usr/lib/systemd/system")
    if not units.is_dir():
        pytest.skip("no systemd units on this machine to verify against")
    shutil.copytree(units, tmp_path / "usr/lib/systemd/system", symlinks=True)
    exec_start = Path(_unit()["Service"]["ExecStart"].split()[0])
    program = tmp_path / exec_start.relative_to("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    installed = tmp_path / "etc/systemd/system" / UNIT.name
    installed.parent.mkdir(parents=True)
    shutil.copy(UNIT, installed)
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={tmp_path}", str(installed)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


# --- the image check -----------------------------------------------------------------------------


def test_image_check_script_parses_and_is_left_out_of_make_test() -> None:
    script = ROOT / "scripts" / "image_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^image-check:.*\n\t.*scripts/image_check\.sh", makefile, re.MULTILINE)
    test_recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert test_recipe and "image" not in test_recipe.group(1)


def test_image_installs_the_makefiles_spandrel_and_knows_the_extras() -> None:
    """Real-ESRGAN, the default upscaler, loads through spandrel, which neither pyproject's
    dependencies nor ``pip install /tmp/src`` bring (it is installed without its torchvision):
    the image must install the Makefile's pin itself. ``EXTRAS`` names only groups that exist."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    pin = re.search(r"^SPANDREL_PIN := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert pin, "the Makefile names no spandrel pin"
    assert f"pip install --no-deps {pin[1]}" in dockerfile
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    named = re.findall(r'EXTRAS="([^"]+)"', dockerfile)
    assert named, "the Dockerfile gives no EXTRAS example"
    for example in named:
        assert set(example.split()) <= set(extras), example
