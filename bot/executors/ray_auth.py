"""Who may use the bot's Ray cluster: Ray's token authentication, on for every cluster the bot uses.

Whoever can call a Ray cluster runs code on it, as the user its processes run as, next to
``DISCORD_TOKEN``, and the bot unpickles what its workers send back. Ray 2.60 answers only callers
that present the cluster's token when its processes run with ``RAY_AUTH_MODE=token``, but it turns
that mode on by itself only for a cluster ``ray.init()`` starts: ``ray start --head`` turns it on
only if that host already has a token, and ``ray start --address`` and ``ray.init(address=…)``
never do. A head started by hand on a fresh host therefore lets anyone who reaches its port in.
And ``--node-ip-address`` does not narrow that: Ray 2.60's GCS and raylets listen on every
interface whatever address they announce (measured with ``ss -ltn``).

So every Ray process videobot starts or joins runs with ``RAY_AUTH_MODE=token`` set here, and
without a token ``videobot worker`` and the bot refuse to start, saying what to do, unless the
owner sets ``[executor] allow_unauthenticated`` (then with a warning at every start).

The token is found where Ray looks for it, in Ray's order: the ``RAY_AUTH_TOKEN`` environment
variable, the file ``RAY_AUTH_TOKEN_PATH`` names, then ``~/.ray/auth_token`` (which
``ray get-auth-token --generate`` writes, and which the owner copies to every host). Ray's own
loader answers whether there is one, so this module never disagrees with what Ray will use.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import ExecutorSettings

AUTH_MODE = "RAY_AUTH_MODE"
TOKEN = "RAY_AUTH_TOKEN"
TOKEN_PATH = "RAY_AUTH_TOKEN_PATH"

NO_TOKEN = (
    "no Ray auth token on this host: run `ray get-auth-token --generate` on the head host, copy "
    "~/.ray/auth_token to the same place on every host of the cluster (or set RAY_AUTH_TOKEN), "
    "then start again; [executor] allow_unauthenticated = true starts without one, open to "
    "anyone who reaches the port"
)
UNAUTHENTICATED = (
    "Ray token authentication is OFF ([executor] allow_unauthenticated = true and no token): "
    "anyone who reaches this cluster's port can run code as this user; see `ray get-auth-token "
    "--generate` in the README"
)


class RayAuthError(RuntimeError):
    """The cluster cannot be used safely as configured; the message says what to do, in one line."""


@dataclass(frozen=True)
class ClusterAuth:
    """How a Ray process of the bot authenticates: the variables Ray reads (set in the environment
    of ``ray start``, or of this process before ``ray.init``), where the token comes from (for the
    log), and the warning to give at start, if any."""

    environ: Mapping[str, str]
    source: str
    warning: str | None = None


def cluster_auth(settings: ExecutorSettings) -> ClusterAuth:
    """For a head, a host joining one, and the bot joining a cluster (``[executor] address``).

    Raises :class:`RayAuthError` with no token on this host and ``allow_unauthenticated`` off.
    """
    if has_token():
        return ClusterAuth({AUTH_MODE: "token"}, token_source())
    if settings.allow_unauthenticated:
        return ClusterAuth({AUTH_MODE: "disabled"}, "none", UNAUTHENTICATED)
    raise RayAuthError(NO_TOKEN)


def private_auth() -> ClusterAuth:
    """For the cluster the bot starts inside its own process (no ``address``): a fresh random token
    each start, in this process's environment only, so only the bot and the Ray processes it
    starts (which inherit that environment) know it.

    Why a token at all for one host: the cluster's ports listen on every interface, so without
    one anyone on the network could run code there. Why a fresh one rather than Ray's default:
    ``ray.init()`` would write ``~/.ray/auth_token`` and keep it, and a later ``ray start --head``
    on this host would silently share it; this cluster ends with the bot, and so does its token.
    """
    return ClusterAuth(
        {AUTH_MODE: "token", TOKEN: secrets.token_urlsafe(32)}, "a token made for this start"
    )


def check_bot_auth(settings: ExecutorSettings) -> ClusterAuth:
    """What the bot will use for ``settings``: raises :class:`RayAuthError` before anything starts
    when it would have to join a cluster without a token."""
    return cluster_auth(settings) if settings.address else private_auth()


def has_token() -> bool:
    """Whether Ray finds a token on this host, asked of Ray's own loader (fresh: the environment
    may have changed since it last looked).

    Raises :class:`RayAuthError` when ``RAY_AUTH_TOKEN_PATH`` names a file Ray cannot read (Ray
    would abort on it).
    """
    # Ray's compiled module; its type stub leaves out the authentication API.
    from ray._raylet import AuthenticationTokenLoader  # type: ignore[attr-defined]
    from ray.exceptions import AuthenticationError

    loader = AuthenticationTokenLoader.instance()
    loader.reset_cache()
    try:
        return bool(loader.has_token(ignore_auth_mode=True))
    except AuthenticationError as exc:
        raise RayAuthError(f"{exc.message}; fix or unset {TOKEN_PATH}") from None


def token_source(environ: Mapping[str, str] = os.environ) -> str:
    """Where Ray reads the token from, in Ray's order, for the log (never the token itself)."""
    if environ.get(TOKEN, "").strip():
        return TOKEN
    if environ.get(TOKEN_PATH):
        return str(Path(environ[TOKEN_PATH]).expanduser())
    return str(Path.home() / ".ray" / "auth_token")


def apply(auth: ClusterAuth) -> None:
    """Make this process's next ``ray.init`` use ``auth``. Ray reads ``RAY_AUTH_MODE`` into its
    config when imported, so the config is read again, as Ray's own ``_enable_token_auth`` does."""
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    os.environ.update(auth.environ)
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def refused_for_token(error: BaseException) -> bool:
    """Whether a failed ``ray.init`` was the cluster refusing this process's token (Ray reports it
    as a connection error whose cause names the authentication error)."""
    cause = error.__cause__ or error.__context__
    text = f"{error} {cause}"
    return "AuthenticationError" in text or "InvalidAuthToken" in text


__all__ = [
    "ClusterAuth",
    "RayAuthError",
    "apply",
    "check_bot_auth",
    "cluster_auth",
    "has_token",
    "private_auth",
    "token_source",
]
