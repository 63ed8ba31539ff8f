"""The log handler's redaction: webhook and interaction URLs carry tokens, and ``-v`` shows
discord.py's request lines; no record, the libraries' included, prints one."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bot.logs import configure_logging, redact

TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OmFiY2RlZmdoaWprbG1ub3A"
BOT_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
WEBHOOK = f"https://discord.com/api/v10/webhooks/123456789012345678/{TOKEN}/messages/@original"
CALLBACK = f"https://discord.com/api/v10/interactions/998877665544332211/{TOKEN}/callback"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("verbose", [True, False])
def test_tokens_never_reach_the_log(
    restore_logging: None, capsys: pytest.CaptureFixture[str], verbose: bool
) -> None:
    configure_logging(verbose, announce=True)
    logging.getLogger("discord.webhook.async_").warning(
        "Webhook ID %s with PATCH %s has returned status code 200", 123, WEBHOOK
    )
    logging.getLogger("discord.http").warning("POST %s with None has returned 204", CALLBACK)
    logging.getLogger("bot.client").warning("token %s", BOT_TOKEN)
    try:
        raise RuntimeError(f"404, message='Not Found', url='{WEBHOOK}'")
    except RuntimeError:
        logging.getLogger("aiohttp.client").exception("request failed")
    output = capsys.readouterr().err
    assert TOKEN not in output and BOT_TOKEN not in output
    assert "/webhooks/123456789012345678/[redacted]/messages/@original" in output
    assert "/interactions/998877665544332211/[redacted]/callback" in output
    assert "has returned status code 200" in output  # the rest of the line is kept


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "loaded diffusion_pytorch_model.fp16.safetensors from models/tiny_t2v in 0.3 s"
    assert redact(text) == text
