"""Logging for the CLI and the bot: one readable line per message, tracebacks only when asked for,
and the libraries' own chatter (load progress bars, deprecation notices) kept out of the way."""

from __future__ import annotations

import logging
import os
import sys
import warnings


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
    import diffusers
    import huggingface_hub
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.logging.set_verbosity_error()
    logging.getLogger("bot.core.engine").setLevel(logging.CRITICAL)
