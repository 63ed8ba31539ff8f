"""The fake's HTTP side: REST API v10 routes, the CDN (attachments, avatars) and the gateway URL.

A single middleware records every request (parsed JSON or multipart, files kept byte-for-byte)
before anything else happens, then applies injected faults, auth and the upload limit, then the
route handler. Unknown routes answer Discord's 404 body and are flagged on the record so a test
can assert ``fake.unknown_requests == []``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from . import faults as F
from . import payloads as P
from . import validation as V
from .gateway import MESSAGE_CONTENT, content_for_app
from .models import (
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    RecordedRequest,
    StoredAttachment,
    StoredMessage,
    Upload,
    UploadedFile,
    iso_now,
    new_snowflake,
    walk_components,
)
from .server import (
    _ONE_PIXEL_PNG,
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    sanitize_filename,
)

if TYPE_CHECKING:
    from .server import FakeDiscord

Handler = Callable[[web.Request, RecordedRequest], Awaitable[web.StreamResponse]]

RECORD_KEY = web.RequestKey("fake_discord_record", RecordedRequest)
API_PREFIX = re.compile(r"^/api/v(\d+|\{version\})")

EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_EMBEDS = 1 << 2
SUPPRESS_NOTIFICATIONS = 1 << 12
IS_COMPONENTS_V2 = 1 << 15
_SENDABLE_FLAGS = SUPPRESS_EMBEDS | EPHEMERAL | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2
_CHANNEL_FLAGS = _SENDABLE_FLAGS & ~EPHEMERAL

# Interaction callback types allowed per interaction type.
_ALLOWED_CALLBACKS = {
    APPLICATION_COMMAND: {4, 5, 9, 12},
    MESSAGE_COMPONENT: {4, 5, 6, 7, 9, 12},
    AUTOCOMPLETE: {8},
    MODAL_SUBMIT: {4, 5, 6, 7},
}


def build_app(server: FakeDiscord) -> web.Application:
    api = RestApi(server)
    app = web.Application(middlewares=[api.middleware], client_max_size=1024 * 1024 * 1024)
    api.register(app)
    return app


class RestApi:
    """Route handlers; all state lives on the :class:`FakeDiscord` they serve."""

    def __init__(self, server: FakeDiscord) -> None:
        self.server = server

    # ------------------------------------------------------------------ routing

    def register(self, app: web.Application) -> None:
        s = self
        api_routes: list[tuple[str, str, Handler, bool]] = [
            # method, path, handler, needs bot auth
            ("GET", "/gateway", s.get_gateway, False),
            ("GET", "/gateway/bot", s.get_gateway_bot, True),
            ("GET", "/users/@me", s.get_me, True),
            ("POST", "/users/@me/channels", s.create_dm, True),
            ("GET", "/users/{user_id}", s.get_user, True),
            ("DELETE", "/users/@me/guilds/{guild_id}", s.leave_guild, True),
            ("GET", "/oauth2/applications/@me", s.get_application, True),
            ("GET", "/applications/@me", s.get_application, True),
            ("GET", "/applications/{application_id}/commands", s.list_commands, True),
            ("PUT", "/applications/{application_id}/commands", s.put_commands, True),
            ("POST", "/applications/{application_id}/commands", s.post_command, True),
            ("GET", "/applications/{application_id}/commands/{command_id}", s.get_command, True),
            (
                "PATCH",
                "/applications/{application_id}/commands/{command_id}",
                s.patch_command,
                True,
            ),
            (
                "DELETE",
                "/applications/{application_id}/commands/{command_id}",
                s.delete_command,
                True,
            ),
            (
                "GET",
                "/applications/{application_id}/guilds/{guild_id}/commands/permissions",
                s.command_permissions,
                True,
            ),
            (
                "GET",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                s.list_commands,
                True,
            ),
            (
                "PUT",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                s.put_commands,
                True,
            ),
            (
                "POST",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                s.post_command,
                True,
            ),
            (
                "GET",
                "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}",
                s.get_command,
                True,
            ),
            (
                "PATCH",
                "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}",
                s.patch_command,
                True,
            ),
            (
                "DELETE",
                "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}",
                s.delete_command,
                True,
            ),
            ("POST", "/interactions/{interaction_id}/{token}/callback", s.callback, False),
            ("POST", "/webhooks/{webhook_id}/{token}", s.webhook_execute, False),
            ("GET", "/webhooks/{webhook_id}/{token}/messages/{message_id}", s.webhook_get, False),
            (
                "PATCH",
                "/webhooks/{webhook_id}/{token}/messages/{message_id}",
                s.webhook_edit,
                False,
            ),
            (
                "DELETE",
                "/webhooks/{webhook_id}/{token}/messages/{message_id}",
                s.webhook_delete,
                False,
            ),
            ("GET", "/channels/{channel_id}", s.get_channel, True),
            ("GET", "/channels/{channel_id}/messages", s.list_messages, True),
            ("POST", "/channels/{channel_id}/messages", s.create_message, True),
            ("GET", "/channels/{channel_id}/messages/{message_id}", s.get_message, True),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", s.edit_message, True),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", s.delete_message, True),
            ("POST", "/channels/{channel_id}/typing", s.typing, True),
            (
                "GET",
                "/channels/{channel_id}/thread-members/{user_id}",
                s.get_thread_member,
                True,
            ),
            (
                "PUT",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
                s.add_reaction,
                True,
            ),
            (
                "DELETE",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user_id}",
                s.remove_reaction,
                True,
            ),
            (
                "DELETE",
                "/channels/{channel_id}/messages/{message_id}/reactions",
                s.clear_reactions,
                True,
            ),
            ("GET", "/guilds/{guild_id}", s.get_guild, True),
            ("GET", "/guilds/{guild_id}/channels", s.get_guild_channels, True),
            ("GET", "/guilds/{guild_id}/roles", s.get_guild_roles, True),
            ("GET", "/guilds/{guild_id}/members", s.list_members, True),
            ("GET", "/guilds/{guild_id}/members/{user_id}", s.get_member, True),
        ]
        self.auth_required: dict[str, bool] = {}
        for method, path, handler, auth in api_routes:
            route = app.router.add_route(method, "/api/v{version:\\d+}" + path, self._wrap(handler))
            self.auth_required[route.resource.canonical] = auth  # type: ignore[union-attr]
        for scope in ("attachments", "ephemeral-attachments"):
            for prefix in ("", "/proxy"):
                app.router.add_get(
                    f"{prefix}/{scope}/{{scope_id}}/{{attachment_id}}/{{filename}}",
                    self._wrap(self.get_attachment),
                )
        app.router.add_get("/cdn/{tail:.*}", self._wrap(self.get_cdn_asset))
        app.router.add_get("/gateway/", self.server.gateway.handle)
        app.router.add_get("/resume-gateway/", self.server.gateway.handle)

    def _wrap(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            return await handler(request, request[RECORD_KEY])

        return wrapped

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path in ("/gateway/", "/resume-gateway/"):
            return await handler(request)
        record = await self._record(request)
        request[RECORD_KEY] = record
        response = await self._answer(request, handler, record)
        record.status = response.status
        record.answered_at = time.monotonic()
        if isinstance(response, web.Response) and response.content_type == "application/json":
            # Kept so tests can assert on exactly what the bot was told.
            body = response.body
            if isinstance(body, bytes | bytearray):
                record.response = json.loads(body)
        self.server._notify()
        return response

    async def _answer(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        record: RecordedRequest,
    ) -> web.StreamResponse:
        if request.match_info.http_exception is not None:
            record.unknown_route = True
            status = request.match_info.http_exception.status
            reason = "Method Not Allowed" if status == 405 else "Not Found"
            return F.error_response(status, 0, f"{status}: {reason}")
        fault = self.server._take_fault(record)
        if fault is not None:
            record.fault = fault.kind
            return fault.build(record)
        canonical = request.match_info.route.resource.canonical  # type: ignore[union-attr]
        authorized = request.headers.get("Authorization") == f"Bot {self.server.token}"
        if record.api and self.auth_required.get(canonical, True) and not authorized:
            return F.error_response(401, 0, "401: Unauthorized")
        # Discord's limit is per file (the interaction's attachment_size_limit), not per request.
        if any(f.size > self.server.max_upload_size for f in record.files):
            record.fault = "upload_limit"
            return F.too_large_response()
        if record.api and self.server.validate_requests:
            invalid = self._validate(record)
            if invalid is not None:
                return invalid
        response = await handler(request)
        if record.api and response.status != 429:
            self._add_rate_limit_headers(response, record)
        return response

    def _validate(self, record: RecordedRequest) -> web.Response | None:
        """Check the request against Discord's spec and documented limits (see validation.py)."""
        has_body = record.json is not None or record.multipart
        _, errors = V.default_validator().validate(
            record.method, record.path, record.query, record.json, has_body
        )
        if not errors:
            return None
        record.invalid = errors
        return F.json_response(V.error_body(errors), status=400)

    @staticmethod
    def _add_rate_limit_headers(response: web.StreamResponse, record: RecordedRequest) -> None:
        """Realistic, generous bucket headers: discord.py parses them on every response."""
        response.headers["X-RateLimit-Limit"] = "50"
        response.headers["X-RateLimit-Remaining"] = "49"
        response.headers["X-RateLimit-Reset"] = f"{time.time() + 1:.3f}"
        response.headers["X-RateLimit-Reset-After"] = "1.000"
        response.headers["X-RateLimit-Bucket"] = P.rate_limit_bucket(record.key)

    async def _record(self, request: web.Request) -> RecordedRequest:
        canonical = ""
        if request.match_info.http_exception is None:
            canonical = request.match_info.route.resource.canonical  # type: ignore[union-attr]
        api = request.path.startswith("/api/")
        path = API_PREFIX.sub("", request.path)
        route = API_PREFIX.sub("", canonical) if canonical else path
        record = RecordedRequest(
            index=len(self.server.requests),
            method=request.method,
            path=path,
            route=route,
            params={k: v for k, v in request.match_info.items() if k != "version"},
            query=dict(request.query),
            headers=dict(request.headers),
            api=api,
        )
        self.server.requests.append(record)
        if request.content_type == "application/json":
            raw = await request.read()
            record.json = json.loads(raw) if raw else None
        elif request.content_type.startswith("multipart/"):
            record.multipart = True
            await self._read_multipart(request, record)
        else:
            await request.read()
        if "channel_id" in record.params and record.params["channel_id"].isdigit():
            record.channel_id = int(record.params["channel_id"])
        self.server._notify()
        return record

    @staticmethod
    async def _read_multipart(request: web.Request, record: RecordedRequest) -> None:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                return
            if not isinstance(part, BodyPartReader):
                continue  # nested multipart: discord.py never sends it
            data = await part.read(decode=False)
            name = part.name or ""
            if name == "payload_json":
                record.json = json.loads(data)
            elif part.filename is not None:
                record.files.append(
                    UploadedFile(
                        field_name=name,
                        filename=part.filename,
                        content_type=part.headers.get("Content-Type", "application/octet-stream"),
                        data=bytes(data),
                    )
                )
            elif name:
                # Form fields other than payload_json (e.g. "content") are merged like Discord.
                body = record.json if isinstance(record.json, dict) else {}
                body[name] = data.decode()
                record.json = body

    # ------------------------------------------------------------------ small helpers

    def _json(self, data: Any, status: int = 200) -> web.Response:
        return F.json_response(data, status=status)

    @staticmethod
    def _no_content() -> web.Response:
        return web.Response(status=204)

    def _channel(self, record: RecordedRequest) -> FakeChannel | None:
        return self.server.channels.get(_int(record.params.get("channel_id")))

    # ------------------------------------------------------------------ gateway / users / app

    async def get_gateway(self, request: web.Request, record: RecordedRequest) -> web.Response:
        return self._json({"url": self.server.gateway_url})

    async def get_gateway_bot(self, request: web.Request, record: RecordedRequest) -> web.Response:
        return self._json(
            {
                "url": self.server.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def get_me(self, request: web.Request, record: RecordedRequest) -> web.Response:
        return self._json(P.current_user_payload(self.server.bot_user))

    async def get_user(self, request: web.Request, record: RecordedRequest) -> web.Response:
        user = self.server.users.get(_int(record.params["user_id"]))
        if user is None:
            return F.not_found(F.UNKNOWN_USER, "User")
        return self._json(P.user_payload(user))

    async def create_dm(self, request: web.Request, record: RecordedRequest) -> web.Response:
        user = self.server.users.get(_int(record.body.get("recipient_id")))
        if user is None:
            return F.form_error(["recipient_id"], "NUMBER_TYPE_COERCE", "Value is not snowflake.")
        channel = self.server.dm_channel(user)
        return self._json(P.dm_channel_payload(channel, user))

    async def get_application(self, request: web.Request, record: RecordedRequest) -> web.Response:
        server = self.server
        return self._json(
            P.application_payload(
                server.application_id, server.bot_user, server.user, server.application_team
            )
        )

    # ------------------------------------------------------------------ application commands

    def _command_scope(self, record: RecordedRequest) -> tuple[int | None, web.Response | None]:
        if _int(record.params.get("application_id")) != self.server.application_id:
            return None, F.error_response(
                403, 20012, "You are not authorized to perform this action on this application"
            )
        guild_id = record.params.get("guild_id")
        if guild_id is None:
            return None, None
        if _int(guild_id) not in self.server.guilds:
            return None, F.error_response(403, F.MISSING_ACCESS, "Missing Access")
        return _int(guild_id), None

    async def list_commands(self, request: web.Request, record: RecordedRequest) -> web.Response:
        scope, error = self._command_scope(record)
        if error:
            return error
        return self._json(list(self.server.commands.get(scope, {}).values()))

    async def put_commands(self, request: web.Request, record: RecordedRequest) -> web.Response:
        """Bulk overwrite: ids survive for commands with the same name and type (as on Discord)."""
        scope, error = self._command_scope(record)
        if error:
            return error
        body = record.json
        if not isinstance(body, list):
            return F.form_error([], "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        # Names, lengths, counts and duplicates were checked by the middleware (validation.py).
        existing = {
            (c["name"], c.get("type", 1)): c for c in self.server.commands.get(scope, {}).values()
        }
        stored: dict[int, dict[str, Any]] = {}
        for command in body:
            old = existing.get((command["name"], command.get("type", 1)))
            full = self._full_command(command, scope, old)
            stored[int(full["id"])] = full
        self.server.commands[scope] = stored
        return self._json(list(stored.values()))

    async def post_command(self, request: web.Request, record: RecordedRequest) -> web.Response:
        scope, error = self._command_scope(record)
        if error:
            return error
        commands = self.server.commands.setdefault(scope, {})
        key = (record.body["name"], record.body.get("type", 1))
        old = next((c for c in commands.values() if (c["name"], c.get("type", 1)) == key), None)
        full = self._full_command(record.body, scope, old)
        commands[int(full["id"])] = full
        return self._json(full, status=200 if old else 201)

    def _find_command(
        self, record: RecordedRequest
    ) -> tuple[int | None, dict[str, Any] | None, web.Response | None]:
        scope, error = self._command_scope(record)
        if error:
            return scope, None, error
        command = self.server.commands.get(scope, {}).get(_int(record.params.get("command_id")))
        if command is None:
            return scope, None, F.not_found(F.UNKNOWN_APPLICATION_COMMAND, "application command")
        return scope, command, None

    async def get_command(self, request: web.Request, record: RecordedRequest) -> web.Response:
        _, command, error = self._find_command(record)
        return error or self._json(command)

    async def patch_command(self, request: web.Request, record: RecordedRequest) -> web.Response:
        scope, command, error = self._find_command(record)
        if error or command is None:
            return error or F.not_found(F.UNKNOWN_APPLICATION_COMMAND, "application command")
        merged = {**command, **record.body}
        if merged.get("type", 1) == 1 and not merged.get("description"):
            return F.form_error(
                ["description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        full = self._full_command(merged, scope, command)
        self.server.commands[scope][int(full["id"])] = full
        return self._json(full)

    async def delete_command(self, request: web.Request, record: RecordedRequest) -> web.Response:
        scope, command, error = self._find_command(record)
        if error or command is None:
            return error or F.not_found(F.UNKNOWN_APPLICATION_COMMAND, "application command")
        del self.server.commands[scope][int(command["id"])]
        return self._no_content()

    async def command_permissions(
        self, request: web.Request, record: RecordedRequest
    ) -> web.Response:
        _, error = self._command_scope(record)
        return error or self._json([])

    def _full_command(
        self, command: dict[str, Any], scope: int | None, old: dict[str, Any] | None
    ) -> dict[str, Any]:
        ctype = command.get("type", 1)
        full: dict[str, Any] = {
            "id": old["id"] if old else str(new_snowflake()),
            "application_id": str(self.server.application_id),
            "version": str(new_snowflake()),
            "type": ctype,
            "name": command["name"],
            "name_localizations": command.get("name_localizations"),
            "description": command.get("description", ""),
            "description_localizations": command.get("description_localizations"),
            "default_member_permissions": command.get("default_member_permissions"),
            "nsfw": command.get("nsfw", False),
            "contexts": command.get("contexts"),
            "integration_types": command.get("integration_types") or [0],
        }
        if command.get("options"):
            full["options"] = command["options"]
        if scope is not None:
            full["guild_id"] = str(scope)
        else:
            full["dm_permission"] = command.get("dm_permission", True)
        return full

    # ------------------------------------------------------------------ interaction callback

    async def callback(self, request: web.Request, record: RecordedRequest) -> web.Response:
        server = self.server
        interaction = server.interactions.get(_int(record.params["interaction_id"]))
        if interaction is None or interaction.token != record.params["token"]:
            return F.not_found(F.UNKNOWN_INTERACTION, "interaction")
        record.interaction_id = interaction.id
        record.channel_id = interaction.channel_id
        if interaction.responded:
            return F.error_response(
                400, F.ALREADY_ACKNOWLEDGED, "Interaction has already been acknowledged."
            )
        if interaction.callback_window_closed():
            return F.not_found(F.UNKNOWN_INTERACTION, "interaction")
        body = record.body
        rtype = body.get("type")
        data = body.get("data") or {}
        if rtype not in _ALLOWED_CALLBACKS.get(interaction.type, set()):
            return F.form_error(
                ["type"],
                "INTERACTION_RESPONSE_TYPE_INVALID",
                "Interaction response type is invalid",
            )
        if rtype in (6, 7) and interaction.source_message_id is None:
            return F.error_response(400, 40061, "This interaction cannot update a message")
        result = await self._apply_callback(interaction, rtype, data, record)
        if isinstance(result, web.Response):
            return result
        interaction.response_type = rtype
        interaction.response_data = data
        interaction.responded_at = time.monotonic()
        server._notify()
        if request.query.get("with_response", "").lower() not in ("1", "true"):
            return self._no_content()
        return self._json(self._callback_response(interaction, rtype, result))

    async def _apply_callback(
        self,
        interaction: FakeInteraction,
        rtype: int,
        data: dict[str, Any],
        record: RecordedRequest,
    ) -> StoredMessage | web.Response | None:
        server = self.server
        channel = server.channels[interaction.channel_id or 0]
        if rtype == 4:
            problem = validate_message(data, record.files)
            if problem:
                return problem
            msg_type = 0
            if interaction.type == APPLICATION_COMMAND:
                msg_type = 23 if interaction.payload["data"].get("type", 1) != 1 else 20
            message = await self._create(
                channel, data, record, interaction=interaction, msg_type=msg_type
            )
            if isinstance(message, web.Response):
                return message
            interaction.original_message_id = message.id
            return message
        if rtype == 5:
            flags = LOADING | (data.get("flags", 0) & EPHEMERAL)
            message = server._new_message(
                channel,
                server.bot_user,
                flags=flags,
                type=20 if interaction.type == APPLICATION_COMMAND else 0,
                webhook_id=server.application_id,
                application_id=server.application_id,
                interaction_id=interaction.id,
            )
            interaction.original_message_id = message.id
            record.message_id = message.id
            await server._emit_create(message)
            return message
        if rtype == 6:
            interaction.original_message_id = interaction.source_message_id
            return None
        if rtype == 7:
            message = server.messages[interaction.source_message_id or 0]
            problem = validate_message(data, record.files, existing=message)
            if problem:
                return problem
            edited = await self._edit(message, data, record)
            if isinstance(edited, web.Response):
                return edited
            interaction.original_message_id = message.id
            return message
        if rtype == 8:
            interaction.autocomplete_choices = list(data.get("choices", []))
            return None
        if rtype == 9:
            missing = [k for k in ("custom_id", "title", "components") if not data.get(k)]
            if missing:
                return F.form_error(
                    ["data", missing[0]], "BASE_TYPE_REQUIRED", "This field is required"
                )
            interaction.modal = data
            return None
        return None

    def _callback_response(
        self, interaction: FakeInteraction, rtype: int, message: StoredMessage | None
    ) -> dict[str, Any]:
        info: dict[str, Any] = {"id": str(interaction.id), "type": interaction.type}
        if message is not None:
            info["response_message_id"] = str(message.id)
            info["response_message_loading"] = message.loading
            info["response_message_ephemeral"] = message.ephemeral
        resource: dict[str, Any] = {"type": rtype}
        if message is not None:
            resource["message"] = self.server.message_payload(message)
        return {"interaction": info, "resource": resource}

    # ------------------------------------------------------------------ webhooks (follow-ups)

    def _webhook_interaction(
        self, record: RecordedRequest
    ) -> tuple[FakeInteraction | None, web.Response | None]:
        token = record.params["token"]
        interaction = next((i for i in self.server.interactions.values() if i.token == token), None)
        if interaction is None or _int(record.params["webhook_id"]) != self.server.application_id:
            return None, F.not_found(F.UNKNOWN_WEBHOOK, "Webhook")
        record.interaction_id = interaction.id
        record.channel_id = interaction.channel_id
        if interaction.token_expired():
            return None, F.error_response(401, F.INVALID_WEBHOOK_TOKEN, "Invalid Webhook Token")
        if not interaction.responded:
            return None, F.not_found(F.UNKNOWN_WEBHOOK, "Webhook")
        return interaction, None

    def _webhook_message(
        self, interaction: FakeInteraction, record: RecordedRequest
    ) -> StoredMessage | web.Response:
        raw = record.params["message_id"]
        if raw == "@original":
            message_id = interaction.original_message_id
        else:
            message_id = _int(raw)
            allowed = {interaction.original_message_id, *interaction.followup_message_ids}
            if message_id not in allowed:
                message_id = None
        message = self.server.messages.get(message_id or 0)
        if message is None or message.deleted:
            return F.not_found(F.UNKNOWN_MESSAGE, "Message")
        record.message_id = message.id
        return message

    async def webhook_execute(self, request: web.Request, record: RecordedRequest) -> web.Response:
        interaction, error = self._webhook_interaction(record)
        if error or interaction is None:
            return error or F.not_found(F.UNKNOWN_WEBHOOK, "Webhook")
        data = record.body
        problem = validate_message(data, record.files)
        if problem:
            return problem
        original = self.server.original_response(interaction)
        replaces_deferred = (
            self.server.followup_replaces_deferred
            and interaction.response_type == 5
            and original is not None
            and original.loading
            and not original.deleted
        )
        if replaces_deferred:
            assert original is not None
            edited = await self._edit(original, data, record, keep_flags=True)
            if isinstance(edited, web.Response):
                return edited
            message = original
        else:
            channel = self.server.channels[interaction.channel_id or 0]
            created = await self._create(channel, data, record, interaction=interaction)
            if isinstance(created, web.Response):
                return created
            message = created
        interaction.followup_message_ids.append(message.id)
        self.server._notify()
        if request.query.get("wait", "").lower() in ("1", "true"):
            return self._json(self.server.message_payload(message))
        return self._no_content()

    async def webhook_get(self, request: web.Request, record: RecordedRequest) -> web.Response:
        interaction, error = self._webhook_interaction(record)
        if error or interaction is None:
            return error or F.not_found(F.UNKNOWN_WEBHOOK, "Webhook")
        message = self._webhook_message(interaction, record)
        if isinstance(message, web.Response):
            return message
        return self._json(self.server.message_payload(message))

    async def webhook_edit(self, request: web.Request, record: RecordedRequest) -> web.Response:
        interaction, error = self._webhook_interaction(record)
        if error or interaction is None:
            return error or F.not_found(F.UNKNOWN_WEBHOOK, "Webhook")
        message = self._webhook_message(interaction, record)
        if isinstance(message, web.Response):
            return message
        problem = validate_message(record.body, record.files, existing=message)
        if problem:
            return problem
        edited = await self._edit(message, record.body, record, keep_flags=True)
        if isinstance(edited, web.Response):
            return edited
        return self._json(self.server.message_payload(message))

    async def webhook_delete(self, request: web.Request, record: RecordedRequest) -> web.Response:
        interaction, error = self._webhook_interaction(record)
        if error or interaction is None:
            return error or F.not_found(F.UNKNOWN_WEBHOOK, "Webhook")
        message = self._webhook_message(interaction, record)
        if isinstance(message, web.Response):
            return message
        message.deleted = True
        self.server._notify()
        await self.server._emit_delete(message)
        return self._no_content()

    # ------------------------------------------------------------------ channels & messages

    def _check_channel_access(
        self, record: RecordedRequest, *needed: str
    ) -> tuple[FakeChannel | None, web.Response | None]:
        channel = self._channel(record)
        if channel is None:
            return None, F.not_found(F.UNKNOWN_CHANNEL, "Channel")
        if channel.guild_id is None:
            return channel, None
        server = self.server
        if not server.has_permissions(channel, "view_channel"):
            return None, F.error_response(403, F.MISSING_ACCESS, "Missing Access")
        if channel.is_thread:  # a thread takes Send Messages in Threads, not Send Messages
            needed = tuple(
                "send_messages_in_threads" if n == "send_messages" else n for n in needed
            )
        if needed and not server.has_permissions(channel, *needed):
            return None, F.missing_permissions()
        return channel, None

    def _channel_message(
        self, channel: FakeChannel, record: RecordedRequest
    ) -> StoredMessage | web.Response:
        message = self.server.messages.get(_int(record.params.get("message_id")))
        if (
            message is None
            or message.deleted
            or message.channel_id != channel.id
            or message.ephemeral
        ):
            return F.not_found(F.UNKNOWN_MESSAGE, "Message")
        record.message_id = message.id
        return message

    async def get_channel(self, request: web.Request, record: RecordedRequest) -> web.Response:
        channel, error = self._check_channel_access(record)
        if error or channel is None:
            return error or F.not_found(F.UNKNOWN_CHANNEL, "Channel")
        if channel.type == 1:
            recipient = self.server.users[channel.recipient_id or 0]
            return self._json(P.dm_channel_payload(channel, recipient))
        return self._json(P.channel_payload(channel))

    async def list_messages(self, request: web.Request, record: RecordedRequest) -> web.Response:
        channel, error = self._check_channel_access(record, "read_message_history")
        if error or channel is None:
            return error or F.not_found(F.UNKNOWN_CHANNEL, "Channel")
        limit = max(1, min(100, int(record.query.get("limit", 50))))
        messages = [m for m in self.server.messages_in(channel) if not m.ephemeral]
        before, after = _int(record.query.get("before")), _int(record.query.get("after"))
        if before:
            messages = [m for m in messages if m.id < before]
        if after:
            messages = [m for m in messages if m.id > after][:limit]
        newest_first = sorted(messages, key=lambda m: m.id, reverse=True)[:limit]
        return self._json([self._readable(m) for m in newest_first])

    async def create_message(self, request: web.Request, record: RecordedRequest) -> web.Response:
        needed = ["send_messages"] + (["attach_files"] if record.files else [])
        channel, error = self._check_channel_access(record, *needed)
        if error or channel is None:
            return error or F.not_found(F.UNKNOWN_CHANNEL, "Channel")
        data = dict(record.body)
        problem = validate_message(data, record.files)
        if problem:
            return problem
        if channel.guild_id is not None and not self.server.has_permissions(channel, "embed_links"):
            data["embeds"] = []  # Discord silently drops embeds without Embed Links.
        message = await self._create(channel, data, record)
        if isinstance(message, web.Response):
            return message
        return self._json(self.server.message_payload(message))

    async def get_message(self, request: web.Request, record: RecordedRequest) -> web.Response:
        channel, error = self._check_channel_access(record, "read_message_history")
        if error or channel is None:
            return error or F.not_found(F.UNKNOWN_CHANNEL, "Channel")
        message = self._channel_message(channel, record)
        if isinstance(message, web.Response):
            return message
        return self._json(self._readable(message))

    def _readable(self, message: StoredMessage) -> dict[str, Any]:
        """A message as REST returns it: Discord empties content over REST as over the gateway
        for an app whose Message Content intent is off in the developer portal (its docs,
        "Message Content Intent": "across the API"), with the same exemptions."""
        payload = self.server.message_payload(message)
        if self.server.privileged_intents & MESSAGE_CONTENT:
            return payload
        # REST message objects carry no guild_id: the channel says whether it is a DM.
        in_guild = message.guild_id is not None
        return content_for_app(payload, self.server.bot_user.id, in_guild=in_guild)

    async def edit_message(self, request: web.Request, record: RecordedRequest) -> web.Response:
        channel, error = self._check_channel_access(record)
        if error or channel is None:
            return error or F.not_found(F.UNKNOWN_CHANNEL, "Channel")
        message = self._channel_message(channel, record)
        if isinstance(message, web.Response):
            return message
        if message.author.id != self.server.bot_user.id:
            only_flags = set(record.body) <= {"flags"}
            if not (only_flags and self.server.has_permissions(channel, "manage_messages")):
                return F.error_response(
                    403,
                    F.CANNOT_EDIT_OTHERS_MESSAGE,
                    "Cannot edit a message authored by another user",
                )
        problem = validate_message(record.body, record.files, existing=message)
        if problem:
            return problem
        if record.files and not self.server.has_permissions(channel, "attach_files"):
            return F.missing_permissions()
        edited = await self._edit(message, record.body, record)
        if isinstance(edited, web.Response):
            return edited
        return self._json(self.server.message_payload(message))

    async def delete_message(self, request: web.Request, record: RecordedRequest) -> web.Response:
        channel, error = self._check_channel_access(record)
        if error or channel is None:
            return error or F.not_found(F.UNKNOWN_CHANNEL, "Channel")
        message = self._channel_message(channel, record)
        if isinstance(message, web.Response):
            return message
        own = message.author.id == self.server.bot_user.id
        if not own and not self.server.has_permissions(channel, "manage_messages"):
            return F.missing_permissions()
        message.deleted = True
        self.server._notify()
        await self.server._emit_delete(message)
        return self._no_content()

    async def typing(self, request: web.Request, record: RecordedRequest) -> web.Response:
        channel, error = self._check_channel_access(record, "send_messages")
        if error or channel is None:
            return error or F.not_found(F.UNKNOWN_CHANNEL, "Channel")
        return self._no_content()

    async def add_reaction(self, request: web.Request, record: RecordedRequest) -> web.Response:
        channel, error = self._check_channel_access(record, "read_message_history", "add_reactions")
        if error or channel is None:
            return error or F.not_found(F.UNKNOWN_CHANNEL, "Channel")
        message = self._channel_message(channel, record)
        if isinstance(message, web.Response):
            return message
        emoji = record.params["emoji"]
        if emoji.isascii() and not re.fullmatch(r"\w+:\d+", emoji):
            return F.error_response(400, F.UNKNOWN_EMOJI, "Unknown Emoji")
        message.reactions.setdefault(emoji, set()).add(self.server.bot_user.id)
        self.server._notify()
        return self._no_content()

    async def remove_reaction(self, request: web.Request, record: RecordedRequest) -> web.Response:
        channel, error = self._check_channel_access(record, "read_message_history")
        if error or channel is None:
            return error or F.not_found(F.UNKNOWN_CHANNEL, "Channel")
        message = self._channel_message(channel, record)
        if isinstance(message, web.Response):
            return message
        raw_user = record.params["user_id"]
        user_id = self.server.bot_user.id if raw_user == "@me" else _int(raw_user)
        if user_id != self.server.bot_user.id and not self.server.has_permissions(
            channel, "manage_messages"
        ):
            return F.missing_permissions()
        message.reactions.get(record.params["emoji"], set()).discard(user_id)
        self.server._notify()
        return self._no_content()

    async def clear_reactions(self, request: web.Request, record: RecordedRequest) -> web.Response:
        channel, error = self._check_channel_access(record, "manage_messages")
        if error or channel is None:
            return error or F.not_found(F.UNKNOWN_CHANNEL, "Channel")
        message = self._channel_message(channel, record)
        if isinstance(message, web.Response):
            return message
        message.reactions.clear()
        self.server._notify()
        return self._no_content()

    # ------------------------------------------------------------------ guilds

    def _guild(self, record: RecordedRequest) -> FakeGuild | None:
        return self.server.guilds.get(_int(record.params.get("guild_id")))

    async def get_guild(self, request: web.Request, record: RecordedRequest) -> web.Response:
        guild = self._guild(record)
        if guild is None:
            return F.not_found(F.UNKNOWN_GUILD, "Guild")
        data = P.guild_payload(guild)
        if record.query.get("with_counts", "").lower() in ("1", "true"):
            data["approximate_member_count"] = len(guild.members)
            data["approximate_presence_count"] = 0
        return self._json(data)

    async def get_guild_channels(
        self, request: web.Request, record: RecordedRequest
    ) -> web.Response:
        guild = self._guild(record)
        if guild is None:
            return F.not_found(F.UNKNOWN_GUILD, "Guild")
        return self._json([P.channel_payload(c) for c in guild.channels])

    async def get_guild_roles(self, request: web.Request, record: RecordedRequest) -> web.Response:
        guild = self._guild(record)
        if guild is None:
            return F.not_found(F.UNKNOWN_GUILD, "Guild")
        return self._json([P.role_payload(r) for r in guild.roles])

    async def list_members(self, request: web.Request, record: RecordedRequest) -> web.Response:
        guild = self._guild(record)
        if guild is None:
            return F.not_found(F.UNKNOWN_GUILD, "Guild")
        limit = max(1, min(1000, int(record.query.get("limit", 1))))
        after = _int(record.query.get("after"))
        members = sorted((m for m in guild.members.values() if m.id > after), key=lambda m: m.id)
        return self._json([P.member_payload(m) for m in members[:limit]])

    async def get_member(self, request: web.Request, record: RecordedRequest) -> web.Response:
        guild = self._guild(record)
        if guild is None:
            return F.not_found(F.UNKNOWN_GUILD, "Guild")
        member = guild.members.get(_int(record.params["user_id"]))
        if member is None:
            return F.not_found(F.UNKNOWN_MEMBER, "Member")
        return self._json(P.member_payload(member))

    async def leave_guild(self, request: web.Request, record: RecordedRequest) -> web.Response:
        """The bot leaves: 204, then GUILD_DELETE without ``unavailable`` (it was removed)."""
        guild = self._guild(record)
        if guild is None or self.server.bot_user.id not in guild.members:
            return F.not_found(F.UNKNOWN_GUILD, "Guild")
        del guild.members[self.server.bot_user.id]
        await self.server.dispatch("GUILD_DELETE", {"id": str(guild.id)})
        return self._no_content()

    async def get_thread_member(
        self, request: web.Request, record: RecordedRequest
    ) -> web.Response:
        """A thread member, or 404 Unknown Member for a user not in the thread (Discord's docs:
        "returns a 404 response otherwise"); a thread the bot cannot view answers 403 Missing
        Access, as any channel does."""
        channel, error = self._check_channel_access(record)
        if error or channel is None:
            return error or F.not_found(F.UNKNOWN_CHANNEL, "Channel")
        if not channel.is_thread:
            return F.not_found(F.UNKNOWN_CHANNEL, "Channel")
        user_id = _int(record.params.get("user_id"))
        if user_id not in channel.thread_member_ids:
            return F.not_found(F.UNKNOWN_MEMBER, "Member")
        data = P.thread_member_payload(channel, user_id)
        guild = self.server.guilds[channel.guild_id or 0]
        if record.query.get("with_member", "").lower() == "true" and user_id in guild.members:
            data["member"] = P.member_payload(guild.members[user_id])
        return self._json(data)

    # ------------------------------------------------------------------ CDN

    async def get_attachment(self, request: web.Request, record: RecordedRequest) -> web.Response:
        attachment = self.server.attachments.get(_int(record.params["attachment_id"]))
        if attachment is None or attachment.filename != record.params["filename"]:
            return web.Response(status=404, text="Not Found")
        return web.Response(
            body=attachment.data,
            content_type=(attachment.content_type or "application/octet-stream").split(";")[0],
        )

    async def get_cdn_asset(self, request: web.Request, record: RecordedRequest) -> web.Response:
        return web.Response(body=_ONE_PIXEL_PNG, content_type="image/png")

    # ------------------------------------------------------------------ message mutation

    async def _create(
        self,
        channel: FakeChannel,
        data: dict[str, Any],
        record: RecordedRequest,
        *,
        interaction: FakeInteraction | None = None,
        msg_type: int = 0,
    ) -> StoredMessage | web.Response:
        server = self.server
        attachments = self._attachments(channel, data, record, existing=[])
        if isinstance(attachments, web.Response):
            return attachments
        reference = data.get("message_reference")
        referenced: StoredMessage | None = None
        if reference:
            referenced = server.messages.get(_int(reference.get("message_id")))
            if referenced is None or referenced.deleted:
                if reference.get("fail_if_not_exists", True):
                    return F.form_error(
                        ["message_reference"],
                        "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                        "Unknown message",
                    )
                reference = None
            else:
                reference = {
                    "type": reference.get("type", 0),
                    "message_id": str(referenced.id),
                    "channel_id": str(referenced.channel_id),
                    **({"guild_id": str(referenced.guild_id)} if referenced.guild_id else {}),
                }
                msg_type = 19 if msg_type == 0 else msg_type
        is_webhook = interaction is not None
        message = server._new_message(
            channel,
            server.bot_user,
            content=data.get("content") or "",
            embeds=_normalize_embeds(data.get("embeds") or []),
            components=list(data.get("components") or []),
            attachments=attachments,
            # EPHEMERAL only means something on interaction responses; Discord drops it elsewhere.
            flags=(data.get("flags") or 0) & (_SENDABLE_FLAGS if is_webhook else _CHANNEL_FLAGS),
            type=msg_type,
            tts=bool(data.get("tts", False)),
            message_reference=reference,
            webhook_id=server.application_id if is_webhook else None,
            application_id=server.application_id if is_webhook else None,
            interaction_id=interaction.id if interaction else None,
            poll=data.get("poll"),
            sticker_ids=[int(s) for s in data.get("sticker_ids") or []],
            nonce=data.get("nonce"),
            **self._mentions(data, referenced),
        )
        record.message_id = message.id
        await server._emit_create(message)
        return message

    async def _edit(
        self,
        message: StoredMessage,
        data: dict[str, Any],
        record: RecordedRequest,
        *,
        keep_flags: bool = False,
    ) -> StoredMessage | web.Response:
        channel = self.server.channels[message.channel_id]
        attachments = self._attachments(
            channel, data, record, existing=message.attachments, editing=True
        )
        if isinstance(attachments, web.Response):
            return attachments
        self.server._snapshot(message)
        was_loading = message.loading
        if "content" in data:
            message.content = data["content"] or ""
        if "embeds" in data:
            message.embeds = _normalize_embeds(data["embeds"] or [])
        if "components" in data:
            message.components = list(data["components"] or [])
        if "poll" in data:
            message.poll = data["poll"]
        message.attachments = attachments
        if "flags" in data and data["flags"] is not None:
            toggled = SUPPRESS_EMBEDS | IS_COMPONENTS_V2
            message.flags = (message.flags & ~toggled) | (data["flags"] & toggled)
        message.flags &= ~LOADING
        if "allowed_mentions" in data or "content" in data:
            mentions = self._mentions({**data, "content": message.content}, None)
            message.mention_user_ids = mentions["mention_user_ids"]
            message.mention_role_ids = mentions["mention_role_ids"]
        if not (was_loading and keep_flags):
            message.edited_timestamp = iso_now()
        record.message_id = message.id
        self.server._notify()
        await self.server._emit_update(message)
        return message

    def _attachments(
        self,
        channel: FakeChannel,
        data: dict[str, Any],
        record: RecordedRequest,
        *,
        existing: list[StoredAttachment],
        editing: bool = False,
    ) -> list[StoredAttachment] | web.Response:
        """Resolve the ``attachments`` array: keep listed existing ones, add new uploads.

        discord.py lists new files as ``{"id": <index>}`` matching ``files[<index>]`` and keeps
        old attachments by their snowflake; without an ``attachments`` key everything old is
        kept and new files are appended. With the key, an edit (``PATCH``) leaves exactly what it
        lists: old attachments it leaves out are removed, and new files it leaves out are not
        attached (Discord's docs, "Editing Message Attachments": "only files listed in the
        attachments parameter will be appended to the message. Any previously-added files that
        aren't included will be removed"; API v10 changelog). A new message keeps every file.
        """
        by_index = {_file_index(f, i): f for i, f in enumerate(record.files)}
        old = {a.id: a for a in existing}
        spec = data.get("attachments")
        if spec is None:
            return list(existing) + [self._store(channel, f, {}) for f in record.files]
        result: list[StoredAttachment] = []
        used: set[int] = set()
        for position, entry in enumerate(spec):
            ident = _int(entry.get("id"))
            if ident in old:
                result.append(old[ident])
            elif ident in by_index:
                used.add(ident)
                result.append(self._store(channel, by_index[ident], entry))
            else:
                return F.form_error(
                    ["attachments", str(position)],
                    "ATTACHMENT_NOT_FOUND",
                    "Attachment data not found",
                )
        if not editing:
            result += [self._store(channel, f, {}) for i, f in by_index.items() if i not in used]
        return result

    def _store(
        self, channel: FakeChannel, file: UploadedFile, entry: dict[str, Any]
    ) -> StoredAttachment:
        filename = entry.get("filename") or file.filename
        upload = Upload(
            filename=sanitize_filename(filename),
            data=file.data,
            content_type=None
            if file.content_type == "application/octet-stream"
            else file.content_type,
            description=entry.get("description"),
        )
        stored = self.server.store_upload(upload, scope="attachments", scope_id=channel.id)
        if entry.get("title"):
            stored.title = entry["title"]
        return stored

    def _mentions(self, data: dict[str, Any], referenced: StoredMessage | None) -> dict[str, Any]:
        """Who actually gets mentioned, honouring ``allowed_mentions`` like Discord does."""
        content = data.get("content") or ""
        allowed = data.get("allowed_mentions")
        parse = set(allowed.get("parse", [])) if allowed else {"users", "roles", "everyone"}
        explicit_users = {_int(u) for u in (allowed or {}).get("users", [])}
        explicit_roles = {_int(r) for r in (allowed or {}).get("roles", [])}
        users = [int(u) for u in re.findall(r"<@!?(\d+)>", content)]
        users = [u for u in users if "users" in parse or u in explicit_users]
        roles = [int(r) for r in re.findall(r"<@&(\d+)>", content)]
        roles = [r for r in roles if "roles" in parse or r in explicit_roles]
        if referenced is not None and (allowed or {}).get("replied_user", True):
            users.append(referenced.author.id)
        everyone = "everyone" in parse and ("@everyone" in content or "@here" in content)
        return {
            "mention_user_ids": [u for u in dict.fromkeys(users) if u in self.server.users],
            "mention_role_ids": list(dict.fromkeys(roles)),
            "mention_everyone": everyone,
        }


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


def validate_message(
    data: dict[str, Any],
    files: list[UploadedFile],
    *,
    existing: StoredMessage | None = None,
) -> web.Response | None:
    """What Discord checks against the message's state; the body's own shape and lengths were
    checked by the middleware against the spec and the documented limits (validation.py)."""
    if len(files) > 10:
        return F.form_error(["files"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    components = data.get("components") or []
    custom_ids = [c["custom_id"] for c in walk_components(components) if "custom_id" in c]
    if len(custom_ids) != len(set(custom_ids)):
        return F.form_error(
            ["components"],
            "COMPONENT_CUSTOM_ID_DUPLICATED",
            "Component custom id cannot be duplicated",
        )
    if existing is None and not _has_body(data, files):
        return F.error_response(400, F.CANNOT_SEND_EMPTY_MESSAGE, "Cannot send an empty message")
    if existing is not None and not existing.loading:
        merged = {
            "content": data.get("content", existing.content),
            "embeds": data.get("embeds", existing.embeds),
            "components": data.get("components", existing.components),
            "attachments": data.get("attachments", existing.attachments),
            "poll": existing.poll,
        }
        if not _has_body(merged, files):
            return F.error_response(
                400, F.CANNOT_SEND_EMPTY_MESSAGE, "Cannot send an empty message"
            )
    return None


def _has_body(data: dict[str, Any], files: list[UploadedFile]) -> bool:
    return bool(
        (data.get("content") or "").strip()
        or data.get("embeds")
        or data.get("components")
        or files
        or data.get("attachments")
        or data.get("sticker_ids")
        or data.get("poll")
    )


def _normalize_embeds(embeds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Discord stamps every embed it stores with ``type: rich`` and a content scan version."""
    return [{"type": "rich", **e, "content_scan_version": 0} for e in embeds]


def _file_index(file: UploadedFile, position: int) -> int:
    match = re.fullmatch(r"files\[(\d+)\]", file.field_name)
    return int(match.group(1)) if match else position


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
