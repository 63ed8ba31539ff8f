"""``videobot worker``: the ``ray start`` a GPU host runs to join the bot's cluster, built from
``[executor]`` and the flags (printed with ``--dry-run``), and a clear refusal without a place."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main


def test_worker_joins_the_configured_head_with_its_resource(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[executor]\nbackend = "ray"\naddress = "10.0.0.5:6379"\nresource = "videobot"\n'
        "workers_per_host = 3\n"
    )
    monkeypatch.setenv("VIDEOBOT_CONFIG", str(config))
    assert main(["worker", "--dry-run"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == (
        "ray start --block --disable-usage-stats --address=10.0.0.5:6379 "
        """'--resources={"videobot": 3}'"""
    )
    assert main(["worker", "--dry-run", "--head", "--workers", "2", "--resource", "GPU"]) == 0
    assert capsys.readouterr().out.strip() == (
        "ray start --block --disable-usage-stats --port=6379 --num-gpus=2"
    )


def test_worker_without_a_head_says_what_to_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no config.toml: no address
    monkeypatch.delenv("VIDEOBOT_CONFIG", raising=False)
    assert main(["worker"]) == 2
    error = capsys.readouterr().err
    assert "give --head" in error and "--address=HEAD:6379" in error
    assert "Traceback" not in error
