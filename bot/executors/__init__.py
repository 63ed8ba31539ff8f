"""Choosing where GPU jobs run: ``[executor] backend``.

``local`` is :class:`bot.jobs.GpuExecutor` (one GPU thread in this process); ``ray`` is
:class:`bot.executors.ray.RayExecutor` (one worker per GPU of a Ray cluster). Ray is imported only
when chosen, so the default install runs without it. Who may use the Ray cluster (its token, always
on) is :mod:`bot.executors.ray_auth`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.jobs import GpuExecutor, JobExecutor
from bot.lifecycle import DEFAULT_RETRY_POLICY, RetryPolicy

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.core.engine import GenerationEngine


def make_executor(
    settings: Settings, engine: GenerationEngine, retry: RetryPolicy = DEFAULT_RETRY_POLICY
) -> JobExecutor:
    """The executor the settings ask for. The Ray backend's workers build their own engines with
    this bot's model options (``[models]`` and ``[speed]``)."""
    if settings.executor.backend == "ray":
        from bot.executors.ray import RayExecutor

        return RayExecutor(
            settings.executor,
            settings.models.manager_options(settings.speed.options()),
            max_queue=settings.limits.max_queue,
            retry=retry,
        )
    return GpuExecutor(max_queue=settings.limits.max_queue, engine=engine, retry=retry)


__all__ = ["make_executor"]
