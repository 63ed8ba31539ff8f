"""Nobody without the token uses the bot's Ray cluster.

The real multi-host set-up of the README, on this machine: ``ray get-auth-token --generate`` on
the head host, the token file copied to the other hosts, ``videobot worker --head`` and
``videobot worker --address`` as real processes (their own homes, ports and Ray temp dir, apart
from the session's cluster). A client that knows only the address is refused, and so is one with a
wrong token; the bot, joining with the copied token, runs a job on the joined host's worker. And
without a token the bot refuses to start, saying what to do, unless the owner allows it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ExecutorSettings
from bot.core.manager import ManagerOptions

# Ray tests share one test worker (the session cluster lives there; this module keeps its own
# cluster apart from it: other ports, homes and temp dir, every client in a subprocess).
pytestmark = pytest.mark.xdist_group("ray")

ROOT = Path(__file__).resolve().parents[1]
RESOURCE = "videobot_auth_test"
QUICK_REFUSAL = {"RAY_gcs_server_port_wait_time_s": "3"}
"""A refused client gives up after ~3 s rather than Ray's 20."""


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process as a host with no Ray token: its own home, no token variables."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_videobot_run_refuses_to_join_a_cluster_without_a_token(
    host: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[executor]\nbackend = "ray"\naddress = "10.0.0.5:6379"\n')
    monkeypatch.setenv("VIDEOBOT_CONFIG", str(config))
    monkeypatch.setenv("DISCORD_TOKEN", "not-used: the bot stops before Discord")
    assert main(["run"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("videobot run: error: no Ray auth token on this host")
    assert "ray get-auth-token --generate" in line and "allow_unauthenticated = true" in line


async def test_the_bot_refuses_to_join_without_a_token_and_warns_at_each_start_when_allowed(
    host: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.executors.ray import RayExecutor
    from bot.executors.ray_auth import RayAuthError

    settings = ExecutorSettings(backend="ray", address="10.0.0.5:6379")
    refused = RayExecutor(settings, ManagerOptions())
    with pytest.raises(RayAuthError, match="no Ray auth token"):
        await refused.start()
    assert refused._dispatcher is None  # nothing started

    reached: list[str] = []

    def unreachable(self: RayExecutor) -> None:  # no cluster at that address: never ray.init here
        reached.append(self.settings.address)
        raise ConnectionError("no cluster in this test")

    monkeypatch.setattr(RayExecutor, "_connect", unreachable)
    allowed = settings.model_copy(update={"allow_unauthenticated": True})
    with caplog.at_level(logging.WARNING, logger="bot.executors.ray"):
        for _ in range(2):  # each start says so
            executor = RayExecutor(allowed, ManagerOptions())
            await executor.start()
            while not reached:
                await asyncio.sleep(0.01)
            await executor.stop()
            reached.clear()
    warnings = [r.getMessage() for r in caplog.records if "authentication is OFF" in r.getMessage()]
    assert len(warnings) == 2 and "anyone who reaches" in warnings[0]


def test_the_in_process_cluster_gets_a_fresh_token_of_its_own() -> None:
    from bot.executors.ray_auth import private_auth

    first, second = private_auth(), private_auth()
    assert first.environ["RAY_AUTH_MODE"] == "token"
    assert len(first.environ["RAY_AUTH_TOKEN"]) >= 32
    assert first.environ["RAY_AUTH_TOKEN"] != second.environ["RAY_AUTH_TOKEN"]


# --- the real processes --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


class Hosts:
    """Homes (each a "host" with its own ~/.ray) and the environment of their processes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ray_tmp = root / "ray"
        self.config = root / "config.toml"
        self.config.write_text("")

    def home(self, name: str) -> Path:
        home = self.root / name
        home.mkdir(exist_ok=True)
        return home

    def env(self, home: str, **extra: str) -> dict[str, str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        environment.update(
            HOME=str(self.home(home)),
            RAY_TMPDIR=str(self.ray_tmp),
            RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",  # stop at once when the test ends
            VIDEOBOT_CONFIG=str(self.config),
            PYTHONPATH=str(ROOT),
        )
        environment.update(extra)
        return environment


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    # Short: Ray's unix sockets live under it, and their paths have a length limit.
    root = Path(tempfile.mkdtemp(prefix="vbauth-", dir="/tmp"))
    try:
        yield Hosts(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_worker(hosts: Hosts, home: str, *flags: str) -> subprocess.Popen[bytes]:
    log = (hosts.root / f"{home}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "worker", *flags],
        env=hosts.env(home),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped below with its children
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


def python(hosts: Hosts, home: str, script: str, *args: str, **env: str) -> subprocess.Popen[str]:
    """A Python process on ``home``'s host, started; ``.communicate()`` waits for its output."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=hosts.env(home, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def outcome(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=600)
    return process.returncode, out, err


STRANGER = """
import os, sys, ray
ray.init(address=sys.argv[1], log_to_driver=False)
@ray.remote(num_cpus=0)
def whoami():
    return os.getuid()
print("RAN as uid", ray.get(whoami.remote(), timeout=60))
"""

BOT = """
import asyncio, json, logging, sys
from bot.config import ExecutorSettings
from bot.core.manager import ManagerOptions
from bot.core.params import GenerationParams
from bot.executors.ray import RayExecutor
from bot.jobs import Job
from bot.jobspec import JobSpec
from bot.lifecycle import JobKind

logging.basicConfig(level=logging.INFO)

async def main():
    settings = ExecutorSettings(backend="ray", address=sys.argv[1], resource=sys.argv[2],
                                workers=1, namespace="videobot-auth")
    executor = RayExecutor(settings, ManagerOptions())
    await executor.start()
    try:
        await executor.wait_for_workers(1, timeout=300)
        params = GenerationParams(prompt="a key", model="tiny_t2v", width=64, height=64,
                                  num_frames=8, num_inference_steps=10, seed=1)
        job = Job(id=1, kind=JobKind.GENERATE, user_id=1, user_name="a", guild_id=1,
                  channel_id=1, model="tiny_t2v", prompt="a key",
                  spec=JobSpec(JobKind.GENERATE, "tiny_t2v", params.model_dump(mode="json")))
        executor.submit(job)
        result = await asyncio.wait_for(job.wait(), 300)
        [state] = await executor.workers()
        print(json.dumps({"ok": result.ok, "error": result.error, "node": state.node}))
    finally:
        await executor.stop()
        await executor.shutdown_workers()

asyncio.run(main())
"""

WRONG_TOKEN_BOT = """
import asyncio, logging, sys
from bot.config import ExecutorSettings
from bot.core.manager import ManagerOptions
from bot.executors.ray import RayExecutor

said = []

class Said(logging.Handler):
    def emit(self, record):
        if "does not answer" in record.getMessage():
            said.append(record.getMessage())

async def main():
    logging.getLogger("bot.executors.ray").addHandler(Said())
    executor = RayExecutor(ExecutorSettings(backend="ray", address=sys.argv[1]), ManagerOptions())
    await executor.start()
    for _ in range(1200):
        if said:
            break
        await asyncio.sleep(0.1)
    await executor.stop()
    print(said[0] if said else "nothing said")

asyncio.run(main())
"""


@pytest.mark.slow
def test_real_hosts_with_the_token_run_jobs_and_a_client_without_it_is_refused(
    hosts: Hosts,
) -> None:
    # The owner makes the token once, on the head host, and copies the file to every other host.
    made = subprocess.run(
        [str(Path(sys.executable).parent / "ray"), "get-auth-token", "--generate"],
        env=hosts.env("head"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    token_file = hosts.home("head") / ".ray" / "auth_token"
    assert made.returncode == 0 and token_file.read_text().strip(), made.stderr
    for other in ("gpu-host", "bot-host"):
        (hosts.home(other) / ".ray").mkdir()
        shutil.copy(token_file, hosts.home(other) / ".ray" / "auth_token")

    port = free_port()
    head = start_worker(hosts, "head", "--head", f"--port={port}")
    joined: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 120
        while not listening(port):
            assert head.poll() is None, (hosts.root / "head.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the head never listened"
            time.sleep(0.3)
        address = f"127.0.0.1:{port}"
        joined = start_worker(
            hosts, "gpu-host", f"--address={address}", f"--resource={RESOURCE}", "--workers=1"
        )
        head_log = (hosts.root / "head.log").read_text()
        assert "RAY_AUTH_MODE=token ray start --block --disable-usage-stats --head" in head_log

        # Someone who knows only the address (no token on their host), someone with a token of
        # their own, and a bot whose token is not the head's (at once: each waits on refusals).
        stranger = python(hosts, "stranger", STRANGER, address, **QUICK_REFUSAL)
        guess = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "a-guess", **QUICK_REFUSAL}
        guessed = python(hosts, "stranger", STRANGER, address, **guess)
        wrong = {"RAY_AUTH_TOKEN": "not-the-head's", **QUICK_REFUSAL}
        wrong_bot = python(hosts, "stranger", WRONG_TOKEN_BOT, address, **wrong)

        code, out, err = outcome(stranger)
        assert code != 0 and "RAN" not in out  # refused: ran nothing
        assert "InvalidAuthToken" in err or "Unauthenticated" in err, err[-3000:]
        code, out, err = outcome(guessed)
        assert code != 0 and "RAN" not in out
        code, out, err = outcome(wrong_bot)
        assert "refused this host's Ray token" in out, err[-3000:]

        # The bot on a host holding the copied token joins and runs a job on the joined host.
        code, out, err = outcome(python(hosts, "bot-host", BOT, address, RESOURCE))
        assert code == 0, err[-3000:]
        result = json.loads(out.strip().splitlines()[-1])
        assert result["ok"], result["error"]
        assert joined.poll() is None, (hosts.root / "gpu-host.log").read_text()[-3000:]
        joined_log = (hosts.root / "gpu-host.log").read_text()
        assert (
            f"RAY_AUTH_MODE=token ray start --block --disable-usage-stats --address={address}"
            in (joined_log)
        )
    finally:
        for process in (joined, head):
            if process is not None:
                stop(process)


IN_PROCESS_BOT = """
import asyncio, os, sys
from pathlib import Path
import ray
from bot.config import ExecutorSettings
from bot.core.manager import ManagerOptions
from bot.executors.ray import RayExecutor

async def main():
    executor = RayExecutor(ExecutorSettings(backend="ray"), ManagerOptions())
    await executor.start()
    await asyncio.wait_for(executor.connected.wait(), 180)
    print(ray.get_runtime_context().gcs_address, flush=True)
    print(os.environ["RAY_AUTH_MODE"], (Path.home() / ".ray" / "auth_token").exists(), flush=True)
    sys.stdin.readline()  # until the test is done with it
    await executor.stop()
    await executor.shutdown_workers()
    ray.shutdown()

asyncio.run(main())
"""


@pytest.mark.slow
def test_the_cluster_inside_the_bot_has_a_token_of_its_own_and_leaves_no_file(
    hosts: Hosts,
) -> None:
    """No address: the bot starts Ray in its own process, with a fresh token nobody else has
    (its ports are open on the network like any Ray node's) and nothing left in ~/.ray."""
    log = hosts.root / "bot.log"
    with log.open("w") as errors:
        bot = subprocess.Popen(
            [sys.executable, "-c", IN_PROCESS_BOT],
            env=hosts.env("bot-host"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    try:
        assert bot.stdout is not None and bot.stdin is not None
        address = bot.stdout.readline().strip()
        assert address, log.read_text()[-3000:]
        assert bot.stdout.readline().split() == ["token", "False"]
        code, out, err = outcome(python(hosts, "stranger", STRANGER, address, **QUICK_REFUSAL))
        assert code != 0 and "RAN" not in out
        assert "InvalidAuthToken" in err or "Unauthenticated" in err, err[-3000:]
        bot.stdin.write("\n")
        bot.stdin.flush()
        assert bot.wait(120) == 0
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.wait(30)
