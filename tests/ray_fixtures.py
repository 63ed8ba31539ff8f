"""One local Ray cluster per test session, shared by every Ray test: two nodes on this machine
(the head and a second node, as ``ray start --head`` and ``ray start --address`` would make them),
each offering one unit of a custom resource, so each holds one CPU worker and the two stand in for
two GPU hosts.

Use from a test module with ``pytest_plugins = ("ray_fixtures",)``. The workers are named and
detached, so every test (and every bot a test starts) finds the same two, models loaded; they are
killed and the cluster shut down when the session ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

RESOURCE = "videobot_test_worker"
NAMESPACE = "videobot-tests"
WORKERS = 2


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "resources": {RESOURCE: 1}}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
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


@pytest.fixture
def ray_settings(ray_cluster: Any) -> dict[str, Any]:
    """``[executor]`` for a bot on the session's cluster."""
    return {"backend": "ray", "resource": RESOURCE, "namespace": NAMESPACE, "workers": WORKERS}
