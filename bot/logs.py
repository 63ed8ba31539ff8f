"""Logging for the CLI and the bot: one readable line per message, tracebacks only when asked for,
and the libraries' own chatter (load progress bars, deprecation notices) kept out of the way."""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings

_SECRETS = (
    # Webhook and interaction URLs carry the interaction's token: /webhooks/<app id>/<token>,
    # /interactions/<id>/<token>/callback (discord.py logs each request's URL at debug level).
    (re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/\s?#'\"<>]+"), r"\1[redacted]"),
    # A bot token (three dot-separated base64 parts), wherever it appears, "Bot " header or not.
    (
        re.compile(r"\b[A-Za-z\d_-]{20,}\.[A-Za-z\d_-]{5,}\.[A-Za-z\d_-]{20,}\b"),
        "[redacted token]",
    ),
)


def redact(text: str) -> str:
    """``text`` without webhook or interaction tokens, nor bot tokens."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """On the handler, so it sees every record, the bot's and the libraries' alike (discord.py's
    and aiohttp's request lines at ``-v``): the message, and the traceback, lose their tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class _OneLineFormatter(logging.Formatter):
    """Drops tracebacks: a user reads what failed; ``--verbose`` shows where."""

    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord(record.__dict__)
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return super().format(record)


def configure_logging(verbose: bool = False, *, announce: bool = False) -> None:
    """``announce`` (the bot): the bot's own INFO lines (who logged in, the guilds, the models,
    the config file, what a shutdown waits for) show at the default level, with the time;
    libraries stay at warnings."""
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(levelname)s %(name)s: %(message)s"
    if announce:
        fmt = "%(asctime)s " + fmt
    handler.setFormatter(logging.Formatter(fmt) if verbose else _OneLineFormatter(fmt))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    if announce and not verbose:
        logging.getLogger("bot").setLevel(logging.INFO)
    if not verbose:
        quiet_libraries()


def quiet_libraries() -> None:
    """diffusers and transformers print progress bars and notices on every load; keep errors."""
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for library in ("diffusers", "transformers", "huggingface_hub", "accelerate", "torch"):
        warnings.filterwarnings("ignore", module=rf"{library}(\.|$)")
    # torchao (the quantising memory plans) is imported by diffusers when installed and warns
    # about CUDA-only kernels on every import; torch's pytree about its enums.
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import diffusers
    import huggingface_hub
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.logging.set_verbosity_error()
    logging.getLogger("bot.core.engine").setLevel(logging.CRITICAL)
