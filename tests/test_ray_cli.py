"""``videobot worker``: the ``ray start`` a GPU host runs to join the bot's cluster, built from
``[executor]`` and the flags (printed with ``--dry-run``), always with Ray's token authentication
on; a clear refusal without a place or without a token; and the real command joining the session's
cluster (token auth on) as a third node that a running bot then uses."""

from __future__ import annotations

import asyncio
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
# One Ray cluster per session: on two test workers, every Ray test runs on the same one.
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A host with no Ray token yet: its own home, no token variables (the session cluster's are
    in this process's environment)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    return home


def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[executor]\nbackend = "ray"\n{executor}')
    monkeypatch.setenv("VIDEOBOT_CONFIG", str(config))


def test_worker_joins_the_configured_head_with_its_resource_and_token_auth(
    host: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (host / ".ray").mkdir()
    (host / ".ray" / "auth_token").write_text("copied-from-the-head")  # as the README says
    configure(
        tmp_path,
        monkeypatch,
        'address = "10.0.0.5:6379"\nresource = "videobot"\nworkers_per_host = 3\n'
        'node_ip = "10.0.0.7"\n',
    )
    assert main(["worker", "--dry-run"]) == 0
    printed = capsys.readouterr()
    assert printed.out.strip() == (
        "RAY_AUTH_MODE=token ray start --block --disable-usage-stats --address=10.0.0.5:6379 "
        """--node-ip-address=10.0.0.7 '--resources={"videobot": 3}'"""
    )
    assert "copied-from-the-head" not in printed.out + printed.err  # never on a command line
    assert main(["worker", "--dry-run", "--head", "--workers", "2", "--resource", "GPU"]) == 0
    assert capsys.readouterr().out.strip() == (
        "RAY_AUTH_MODE=token ray start --block --disable-usage-stats --head --port=6379 "
        "--node-ip-address=10.0.0.7 --num-gpus=2"
    )


def test_worker_without_a_token_refuses_with_what_to_do_unless_allowed(
    host: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure(tmp_path, monkeypatch, "")
    for flags in (["--head"], ["--address=10.0.0.5:6379"], ["--head", "--dry-run"]):
        assert main(["worker", *flags]) == 2
        captured = capsys.readouterr()
        [line] = captured.err.splitlines()
        assert line.startswith("videobot worker: error: no Ray auth token on this host")
        assert "ray get-auth-token --generate" in line and "allow_unauthenticated" in line
        assert captured.out == ""

    # A token path that names nothing: Ray would abort, so the refusal says which file.
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    assert main(["worker", "--head", "--dry-run"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert str(tmp_path / "missing") in line and "RAY_AUTH_TOKEN_PATH" in line
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")

    configure(tmp_path, monkeypatch, "allow_unauthenticated = true\n")
    assert main(["worker", "--head", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == (
        "RAY_AUTH_MODE=disabled ray start --block --disable-usage-stats --head --port=6379"
    )
    [warning] = captured.err.splitlines()
    assert warning.startswith("videobot worker: warning: Ray token authentication is OFF")


def test_a_node_ip_that_is_not_one_interface_is_refused(
    host: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for bad, says in (("head-host", "not an IP address"), ("127.0.0.1", "not one interface")):
        configure(tmp_path, monkeypatch, f'node_ip = "{bad}"\n')
        assert main(["worker", "--head", "--dry-run"]) == 2
        error = capsys.readouterr().err
        assert "node_ip" in error and says in error and "Traceback" not in error


def test_worker_without_a_head_says_what_to_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no config.toml: no address
    monkeypatch.delenv("VIDEOBOT_CONFIG", raising=False)
    assert main(["worker"]) == 2
    error = capsys.readouterr().err
    assert "give --head" in error and "--address=HEAD:6379" in error
    assert "Traceback" not in error


async def test_a_host_joining_with_videobot_worker_gets_workers_and_runs_jobs(
    ray_settings: dict[str, Any], tmp_path: Path
) -> None:
    """The real ``videobot worker --address=…`` (``ray start --address``) adds a node offering its
    resource; a bot already running on the cluster starts workers there and runs a job on one;
    stopping the host takes the node away again."""
    import ray

    from bot.config import ExecutorSettings
    from bot.core.manager import ManagerOptions
    from bot.core.params import GenerationParams
    from bot.executors.ray import RayExecutor
    from bot.jobs import Job
    from bot.jobspec import JobSpec
    from bot.lifecycle import JobKind

    def offered() -> float:
        return float(ray.cluster_resources().get("videobot_joined", 0))

    before = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    # The bot runs first, with workers on a resource no host offers yet: none start.
    section = {**ray_settings, "resource": "videobot_joined", "workers": 0}
    executor = RayExecutor(
        ExecutorSettings(**{**section, "namespace": "videobot-joined"}), ManagerOptions()
    )
    await executor.start()
    log = (tmp_path / "worker.log").open("w")
    config = tmp_path / "config.toml"
    config.write_text("")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "worker",
            f"--address={ray.get_runtime_context().gcs_address}",
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
            await asyncio.sleep(0.5)
        [joined] = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] not in before]

        await executor.wait_for_workers(2, timeout=300)  # found by the bot's periodic check
        states = await executor.workers()
        assert [state.node.split("/")[1] for state in states] == [joined[:8], joined[:8]]
        params = GenerationParams(
            prompt="joined",
            model="tiny_t2v",
            width=64,
            height=64,
            num_frames=8,
            num_inference_steps=10,
            seed=1,
        )
        job = Job(
            id=61,
            kind=JobKind.GENERATE,
            user_id=1,
            user_name="a",
            guild_id=1,
            channel_id=1,
            model="tiny_t2v",
            prompt="joined",
            spec=JobSpec(JobKind.GENERATE, "tiny_t2v", params.model_dump(mode="json")),
        )
        executor.submit(job)
        result = await asyncio.wait_for(job.wait(), 300)
        assert result.ok and result.metadata["worker"] in {state.name for state in states}
    finally:
        await executor.stop()
        await executor.shutdown_workers()
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
        await asyncio.sleep(0.5)
