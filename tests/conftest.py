"""Shared fixtures: one model cache per test session (tiny models are built once), a model manager
and an engine on it, and small default parameters that render in a fraction of a second."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Set before anything imports bot.core, so every manager in the session uses the same cache.
_CACHE = Path(os.environ.get("VIDEOBOT_TEST_CACHE", "/tmp/videobot-test-models"))
os.environ["VIDEOBOT_MODEL_CACHE"] = str(_CACHE)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# `make test` runs the tests on two pytest-xdist workers: each gets its share of the cores, so the
# two never fight over threads.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // _WORKERS))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` go first, so on two workers the longest ones start at once instead of
    running alone at the end (stable order otherwise)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """For the modules that render many tiny-model jobs (``pytestmark = pytest.mark.usefixtures(
    "one_torch_thread")``): the tiny models gain nothing from a second thread, and on a shared
    machine two OpenMP threads competing with another process for the cores run ten to twenty
    times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def model_cache() -> Path:
    return _CACHE


@pytest.fixture(scope="session")
def manager():  # type: ignore[no-untyped-def]
    from bot.core.manager import ManagerOptions, ModelManager

    manager = ModelManager(ManagerOptions(cache_dir=_CACHE))
    yield manager
    manager.unload_all()


@pytest.fixture(scope="session")
def engine(manager):  # type: ignore[no-untyped-def]
    from bot.core.engine import GenerationEngine

    return GenerationEngine(manager)


@pytest.fixture
def small_params():  # type: ignore[no-untyped-def]
    """Factory for fast parameters on a tiny model: 8 frames of 64x64, 10 steps, fixed seed."""
    from bot.core import GenerationParams

    def make(**changes: object) -> GenerationParams:
        values: dict[str, object] = {
            "prompt": "a paper boat on a pond",
            "model": "tiny_t2v",
            "width": 64,
            "height": 64,
            "num_frames": 8,
            "num_inference_steps": 10,
            "seed": 1234,
        }
        values.update(changes)
        return GenerationParams(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def fresh_manager(tmp_path: Path) -> Iterator[object]:
    """A manager of its own, for tests that change options or unload models."""
    from bot.core.manager import ManagerOptions, ModelManager

    manager = ModelManager(ManagerOptions(cache_dir=_CACHE))
    yield manager
    manager.unload_all()
