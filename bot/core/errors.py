"""The engine's error types.

Every error a caller can provoke with bad input derives from :class:`VideoBotError`, whose message is
written for the person who typed the input: what was wrong and what is allowed. The CLI and the bot
show that message as it is, never a traceback.
"""

from __future__ import annotations

import re


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


class ModelLoadError(VideoBotError):
    """A model's files could not be loaded (not downloaded, no network, corrupt); the message
    names the root cause and what to do (:func:`load_failure_message`)."""


def load_failure_message(key: str, source: str, exc: BaseException) -> str:
    """One line for a failed load, shown to members, printed by the CLI and logged: the failure,
    the exception at the root of its chain, and what to do about it."""
    return f"Could not load {key} from {source}: {describe_failure(exc)} {load_failure_advice(exc)}"


def describe_failure(exc: BaseException) -> str:
    """The failure and the exception at the root of its chain, in one line. Diffusers re-raises a
    failed download as "Please check out the root cause in the stacktrace above", and neither a
    member nor the CLI sees a stack trace."""
    chain = exception_chain(exc)
    top = re.sub(r"\s*Please check out the root cause in the stacktrace above\.?", "", str(exc))
    text = f"{type(exc).__name__}: {top.strip().rstrip('.')}"
    root = chain[-1]
    if root is not exc:
        text += (
            f"; caused by {type(root).__name__}: {str(root).strip().rstrip('.') or '(no message)'}"
        )
    return " ".join(text.split()) + "."


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes (``raise … from``) or contexts, outermost first, each once."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


_TOKENIZER_PACKAGES = ("sentencepiece", "protobuf", "tiktoken", "google.protobuf")
_NETWORK_ERRORS = {
    "ConnectError",
    "ConnectTimeout",
    "ConnectionError",
    "ConnectionRefusedError",
    "TimeoutException",
    "OfflineModeIsEnabled",
    "LocalEntryNotFoundError",
    "gaierror",
}


def load_failure_advice(exc: BaseException) -> str:
    """What to do about a failed load, from its real cause (the whole exception chain): a missing
    tokenizer package, a repo or file the hub does not have, no network, or something else."""
    chain = exception_chain(exc)
    names = {type(error).__name__ for error in chain}
    text = " ".join(str(error) for error in chain)
    if any(package in text for package in _TOKENIZER_PACKAGES):
        return (
            "Its tokenizer ships only a SentencePiece spiece.model, which transformers reads with the "
            "sentencepiece and protobuf packages: install them (pip install sentencepiece protobuf; "
            "videobot's own install declares both)."
        )
    if names & {"RepositoryNotFoundError", "GatedRepoError"}:
        return (
            "The Hugging Face hub has no such repo, or it is private or gated: check the id "
            "(renamed repos keep working under their old id only while the hub redirects it)."
        )
    if "LoraError" in names:
        return (
            'The model\'s LoRA file must be one made for it: check its sources["key:lora"] in '
            "[models.sources], or remove the override to use the registry's."
        )
    if names & {"EntryNotFoundError", "RevisionNotFoundError"}:
        return "The repo lacks a file this model needs: check that it is a diffusers folder."
    if names & _NETWORK_ERRORS:
        return (
            "The first use downloads the weights from the Hugging Face hub: check the network "
            "(and HF_HUB_OFFLINE), or point the model at a local folder."
        )
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:
        return "The disk is full: free space where HF_HOME keeps the weights."
    return "Check that the source is a complete diffusers folder for this model."


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is the device running out of memory: torch's ``OutOfMemoryError``, or an
    error that says so (a pipeline may wrap it). The engine steps such a job down to a smaller
    memory plan; a soundtrack says so instead of the raw text."""
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()
