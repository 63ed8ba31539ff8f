"""Discord-style error responses and the fault-injection queue.

Error bodies use Discord's real JSON error codes because bots (and discord.py) branch on them:
``NotFound`` vs ``Forbidden`` vs plain ``HTTPException``, ``e.code == 10062`` and so on.
"""

from __future__ import annotations

import fnmatch
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .models import RecordedRequest
from .payloads import rate_limit_bucket

# Discord JSON error codes the fake uses.
UNKNOWN_CHANNEL = 10003
UNKNOWN_GUILD = 10004
UNKNOWN_MEMBER = 10007
UNKNOWN_MESSAGE = 10008
UNKNOWN_WEBHOOK = 10015
UNKNOWN_USER = 10013
UNKNOWN_EMOJI = 10014
UNKNOWN_APPLICATION_COMMAND = 10063
UNKNOWN_INTERACTION = 10062
MISSING_ACCESS = 50001
CANNOT_SEND_EMPTY_MESSAGE = 50006
CANNOT_EDIT_OTHERS_MESSAGE = 50005
MISSING_PERMISSIONS = 50013
INVALID_WEBHOOK_TOKEN = 50027
INVALID_FORM_BODY = 50035
ALREADY_ACKNOWLEDGED = 40060
REQUEST_TOO_LARGE = 40005

Matcher = Callable[[RecordedRequest], bool]


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON with ``Content-Type: application/json`` exactly, no charset parameter.

    discord.py compares the header with ``==`` and treats anything else as text, so aiohttp's
    ``json_response`` (which appends ``; charset=utf-8``) would break every parser.
    """
    body = json.dumps(data, separators=(",", ":")).encode()
    return web.Response(
        body=body, status=status, headers={**(headers or {}), "Content-Type": "application/json"}
    )


def error_response(
    status: int,
    code: int,
    message: str,
    *,
    errors: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors is not None:
        body["errors"] = errors
    return json_response(body, status=status, headers=headers)


def form_error(path: list[str], code: str, message: str) -> web.Response:
    """A 400 Invalid Form Body (50035) with Discord's nested ``errors`` tree."""
    tree: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        tree = {key: tree}
    return error_response(400, INVALID_FORM_BODY, "Invalid Form Body", errors=tree)


def not_found(code: int, what: str) -> web.Response:
    return error_response(404, code, f"Unknown {what}")


def missing_permissions() -> web.Response:
    return error_response(403, MISSING_PERMISSIONS, "Missing Permissions")


def compile_matcher(match: str | Matcher | None) -> Matcher:
    """Turn ``"POST /channels/*/messages"`` (fnmatch on method + path) into a predicate.

    The pattern is tried against both the concrete path and the route template, so
    ``"PATCH /webhooks/{webhook_id}/{token}/messages/@original"`` and
    ``"PATCH /webhooks/*/@original"`` both work. Without a method, any method matches.
    """
    if match is None:
        return lambda _request: True
    if callable(match):
        return match
    method, _, pattern = match.partition(" ") if " " in match else ("*", "", match)

    def matcher(request: RecordedRequest) -> bool:
        if not fnmatch.fnmatchcase(request.method, method.upper()):
            return False
        return fnmatch.fnmatchcase(request.path, pattern) or fnmatch.fnmatchcase(
            request.route, pattern
        )

    return matcher


@dataclass(eq=False)
class Fault:
    """The next ``remaining`` requests matching ``matcher`` get ``respond()`` instead."""

    kind: str
    matcher: Matcher
    remaining: int
    build: Callable[[RecordedRequest], web.StreamResponse]
    hits: list[RecordedRequest] = field(default_factory=list)

    @property
    def exhausted(self) -> bool:
        return self.remaining <= 0


def rate_limit_response(
    request: RecordedRequest,
    *,
    retry_after: float,
    is_global: bool,
    scope: str,
    via_cloudflare_proxy: bool = True,
) -> web.Response:
    """A 429 exactly as discord.py expects it.

    discord.py only honours ``retry_after`` when the response carries a ``Via`` header and a JSON
    body; a 429 without ``Via`` is treated as a Cloudflare ban and raised immediately. So a
    "cloudflare" fault just drops ``Via`` and answers with text.
    """
    reset_after = max(retry_after, 0.0)
    headers = {
        "Retry-After": str(max(1, math.ceil(reset_after))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": rate_limit_bucket(request.key),
        "X-RateLimit-Scope": scope,
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
        del headers["X-RateLimit-Bucket"]
    if not via_cloudflare_proxy:
        return web.Response(
            status=429, text="error code: 1015", headers={"Retry-After": headers["Retry-After"]}
        )
    headers["Via"] = "1.1 google"
    body: dict[str, Any] = {
        "message": "You are being rate limited.",
        "retry_after": reset_after,
        "global": is_global,
    }
    if is_global:
        body["code"] = 0
    return json_response(body, status=429, headers=headers)


def too_large_response() -> web.Response:
    return error_response(413, REQUEST_TOO_LARGE, "Request entity too large")
