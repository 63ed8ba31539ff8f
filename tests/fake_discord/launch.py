"""Run the real ``videobot`` command in a process of its own, talking to a fake Discord that runs
in another process (the test's)::

    FAKE_DISCORD_URL=http://127.0.0.1:PORT PYTHONPATH=tests \\
        python -m fake_discord.launch run --sync-commands

In-process tests point discord.py at the fake with :func:`client.patch_discord`; a bot started as
a subprocess cannot be patched from the outside, so this launcher applies the same three patches
inside the new process and then hands its arguments, unchanged, to ``bot.cli.main``. The bot's own
code never learns about the fake: configuration, token, signals and exit status are those of a
real ``videobot run``. This is what lets a test send real SIGTERM and SIGKILL to a running bot.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from .client import patch_discord

URL_ENV = "FAKE_DISCORD_URL"
"""The fake's base URL, ``FakeDiscord.base_url`` of the test process (``http://127.0.0.1:PORT``)."""


@dataclass(frozen=True)
class RemoteFake:
    """The endpoints of a :class:`~fake_discord.server.FakeDiscord` known only by its base URL.

    The paths are the server's own (``FakeDiscord.api_base`` and ``gateway_url``); the process
    test checks that the two agree.
    """

    base_url: str

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"{self.base_url.replace('http://', 'ws://', 1)}/gateway/"


def main(argv: Sequence[str] | None = None) -> int:
    base_url = os.environ.get(URL_ENV, "").strip().rstrip("/")
    if not base_url.startswith("http://"):
        print(f"fake_discord.launch: set {URL_ENV} to the fake's http:// base URL", file=sys.stderr)
        return 2
    from bot.cli import main as videobot_main

    with patch_discord(RemoteFake(base_url)):
        return videobot_main(list(argv) if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
