"""The seed's public API: parameters, results, the model manager and the generation engine.

This floor knows nothing of Discord, asyncio or SQLite; the CLI and the bot build on it.
"""

from bot.core.engine import GenerationEngine, GenerationFailed, get_generation_engine
from bot.core.errors import (
    GenerationCancelled,
    InvalidParameterError,
    MediaError,
    UnknownModelError,
    VideoBotError,
)
from bot.core.manager import ManagerOptions, ModelManager, get_model_manager
from bot.core.params import GenerationParams
from bot.core.progress import JobControl, Progress
from bot.core.registry import ModelSpec
from bot.core.result import GenerationResult

__all__ = [
    "GenerationCancelled",
    "GenerationEngine",
    "GenerationFailed",
    "GenerationParams",
    "GenerationResult",
    "InvalidParameterError",
    "JobControl",
    "ManagerOptions",
    "MediaError",
    "ModelManager",
    "ModelSpec",
    "Progress",
    "UnknownModelError",
    "VideoBotError",
    "get_generation_engine",
    "get_model_manager",
]
