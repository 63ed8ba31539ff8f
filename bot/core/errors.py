"""The engine's error types.

Every error a caller can provoke with bad input derives from :class:`VideoBotError`, whose message is
written for the person who typed the input: what was wrong and what is allowed. The CLI and the bot
show that message as it is, never a traceback.
"""

from __future__ import annotations


class VideoBotError(Exception):
    """Base of every error whose message is safe and useful to show to a user."""


class InvalidParameterError(VideoBotError, ValueError):
    """A parameter is out of range or of the wrong kind; the message names it and what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        self.field = _printable(field)
        super().__init__(_printable(f"{field}: {message}"))


def _printable(text: str) -> str:
    """Messages quote what a user typed; a lone surrogate there could not be sent or logged."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class UnknownModelError(InvalidParameterError):
    """A model key that the registry does not know; the message lists the known keys."""

    def __init__(self, message: str) -> None:
        super().__init__("model", message)


class MediaError(VideoBotError):
    """A video file could not be read or written: not a video, truncated, or over a limit."""


class GenerationCancelled(VideoBotError):
    """Raised inside a pipeline callback to stop a job at once, before any further step or decode."""


class GenerationTimedOut(GenerationCancelled):
    """Raised like a cancel when a job runs past its time limit."""
