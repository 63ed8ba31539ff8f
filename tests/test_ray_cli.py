"""``videobot worker``: the ``ray start`` a GPU host runs to join the bot's cluster, built from
``[executor]`` and the flags (printed with ``--dry-run``), a clear refusal without a place, and the
real command joining the session's cluster as a third node."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main

pytest_plugins = ("ray_fixtures",)


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


def test_videobot_worker_joins_a_running_cluster_as_another_host(
    ray_cluster: Any, tmp_path: Path
) -> None:
    """The real ``videobot worker --address=…`` (``ray start --address``) adds a node offering its
    resource; stopping it takes the node away again."""
    import ray

    def offered() -> float:
        return float(ray.cluster_resources().get("videobot_joined", 0))

    log = (tmp_path / "worker.log").open("w")
    config = tmp_path / "config.toml"
    config.write_text("")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "worker",
            f"--address={ray_cluster.address}",
            "--resource=videobot_joined",
            "--workers=2",
        ],
        env={**os.environ, "VIDEOBOT_CONFIG": str(config)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped below by its id, with its children
    )
    try:
        deadline = time.monotonic() + 240
        while offered() != 2:
            assert process.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the worker host never joined"
            time.sleep(0.5)
        alive = [node for node in ray.nodes() if node["Alive"]]
        assert len(alive) == 3  # the session's two nodes and this one
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        log.close()
    deadline = time.monotonic() + 120
    while offered():
        assert time.monotonic() < deadline, "the stopped host still offers its resource"
        time.sleep(0.5)
