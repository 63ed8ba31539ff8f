"""One local Ray cluster per test session, shared by every Ray test: two nodes on this machine
(the head and a second node, as ``ray start --head`` and ``ray start --address`` would make them),
each offering one unit of a custom resource, so each holds one CPU worker and the two stand in for
two GPU hosts. The head also offers one unit of a spare resource, for a test's own worker.

The cluster runs with Ray's token authentication on, as the bot's clusters do
(``bot.executors.ray_auth``): a random token in this process's environment, inherited by the
cluster's processes and by any ``videobot worker`` a test starts.

Use from a test module with ``pytest_plugins = ("ray_fixtures",)``. The workers are named and
detached, so every test (and every bot a test starts) finds the same two, models loaded; they are
killed and the cluster shut down when the session ends.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

RESOURCE = "videobot_test_worker"
TOKEN = secrets.token_urlsafe(24)
"""The session cluster's token (``RAY_AUTH_TOKEN`` while it runs)."""
SPARE = "videobot_test_spare"
NAMESPACE = "videobot-tests"
WORKERS = 2


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from bot.executors import ray_auth

    variables = (ray_auth.AUTH_MODE, ray_auth.TOKEN, ray_auth.TOKEN_PATH)
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.pop(ray_auth.TOKEN_PATH, None)
    ray_auth.apply(
        ray_auth.ClusterAuth({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}, "test")
    )
    node = {"num_cpus": 1, "resources": {RESOURCE: 1}}
    head = {"num_cpus": 1, "resources": {RESOURCE: 1, SPARE: 1}, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    cluster.add_node(**node)
    ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
    try:
        yield cluster
    finally:
        from bot.executors.ray import ACTOR_PREFIX

        for index in range(WORKERS):
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(f"{ACTOR_PREFIX}{index}", namespace=NAMESPACE))
        ray.shutdown()
        cluster.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def ray_settings(ray_cluster: Any) -> dict[str, Any]:
    """``[executor]`` for a bot on the session's cluster. The session's token is made this
    process's again first: a test that played a host without a token (its own environment, Ray's
    token loader read afresh) may have run since the cluster started, and Ray caches the token
    it read."""
    from bot.executors import ray_auth

    ray_auth.apply(
        ray_auth.ClusterAuth({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}, "test")
    )
    return {"backend": "ray", "resource": RESOURCE, "namespace": NAMESPACE, "workers": WORKERS}
