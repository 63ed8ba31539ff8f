"""What real Discord checks before it accepts a request: its OpenAPI schemas, then its documented limits.

Every REST request the fake receives goes through :meth:`RequestValidator.validate`:

1. **The spec.** The request body (JSON, or a multipart upload's ``payload_json``) is validated
   against the request schema Discord publishes for that route and method in its OpenAPI spec
   (``spec/openapi.json``, vendored from discord/discord-api-spec), with a Draft 2020-12
   validator over the spec's components; query parameters are checked against the spec's
   parameter schemas. Two of Discord's own coercions are applied, because real Discord accepts
   them and discord.py relies on them: a snowflake may be a JSON integer, and an integer may be a
   string of digits (``default_member_permissions: "32"``).
2. **The limits the schemas leave out**, from Discord's developer docs: message content 2000
   characters; embed title 256, description 4096, 25 fields of name 256 / value 1024, footer
   2048, author 256, 6000 characters across all embeds; 5 action rows of 5 buttons, ``custom_id``
   1-100, button label 80; modal title 45, labels 45, placeholders 100; command names, 1-100
   character descriptions on commands and every option, 25 options and 25 choices of 100
   characters, 4000 characters per command, 100 chat-input (15 user, 15 message) commands per
   scope.

A request that breaks any of them is answered as Discord answers: HTTP 400 with
``{"code": 50035, "message": "Invalid Form Body", "errors": {...}}``, where ``errors`` is
Discord's nested tree (``{"embeds": {"0": {"title": {"_errors": [{"code": ..., "message":
...}]}}}}``).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).with_name("spec") / "openapi.json"
_SPEC_URI = "urn:discord-openapi"

#: Discord's documented limits that the OpenAPI schemas do not carry.
MESSAGE_CONTENT = 2000
EMBEDS_PER_MESSAGE = 10
EMBED_TITLE = 256
EMBED_DESCRIPTION = 4096
EMBED_FIELDS = 25
EMBED_FIELD_NAME = 256
EMBED_FIELD_VALUE = 1024
EMBED_FOOTER = 2048
EMBED_AUTHOR = 256
EMBED_TOTAL = 6000
ACTION_ROWS = 5
BUTTONS_PER_ROW = 5
CUSTOM_ID = 100
BUTTON_LABEL = 80
MODAL_TITLE = 45
MODAL_LABEL = 45
PLACEHOLDER = 100
COMMAND_NAME = 32
COMMAND_DESCRIPTION = 100
COMMAND_OPTIONS = 25
OPTION_CHOICES = 25
CHOICE_NAME = 100
CHOICE_VALUE = 100
COMMAND_CHARACTERS = 4000
COMMANDS_PER_SCOPE = {1: 100, 2: 15, 3: 15}

IS_COMPONENTS_V2 = 1 << 15
_CHAT_INPUT_NAME = re.compile(r"^[-_'\w]{1,32}$")
_BUTTON, _ACTION_ROW, _TEXT_INPUT, _LABEL = 2, 1, 4, 18
_SELECTS = {3, 5, 6, 7, 8}

ErrorPath = tuple[str | int, ...]


@dataclass(frozen=True)
class FormError:
    """One entry of Discord's ``errors`` tree: where (``("embeds", 0, "title")``) and what."""

    path: ErrorPath
    code: str
    message: str

    def __str__(self) -> str:
        where = ".".join(str(p) for p in self.path) or "(body)"
        return f"{where}: {self.code}: {self.message}"


def error_tree(errors: Iterable[FormError]) -> dict[str, Any]:
    """Discord's nested ``errors`` object: one level per key or index, ``_errors`` at the leaf."""
    tree: dict[str, Any] = {}
    for error in errors:
        node = tree
        for key in error.path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": error.code, "message": error.message})
    return tree


def error_body(errors: Iterable[FormError]) -> dict[str, Any]:
    return {"code": 50035, "message": "Invalid Form Body", "errors": error_tree(errors)}


# ---------------------------------------------------------------------------------------------
# the spec
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One route and method of the spec, with what its request must look like."""

    method: str
    template: str
    operation_id: str
    body_schema: dict[str, Any] | None
    body_required: bool
    query: dict[str, dict[str, Any]]


class RequestValidator:
    """Finds a request's operation in the spec and lists everything wrong with the request."""

    def __init__(self, spec: dict[str, Any]) -> None:
        spec = _with_discord_coercions(spec)
        registry: Registry[Any] = Registry().with_resource(
            _SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012)
        )
        self._registry = registry
        self._operations = list(_operations(spec))
        self._validators: dict[str, Any] = {}

    def find(self, method: str, path: str) -> Operation | None:
        """The spec operation for ``METHOD /path`` (API prefix stripped); literals beat params."""
        parts = path.rstrip("/").split("/")
        best: tuple[int, Operation] | None = None
        for operation in self._operations:
            if operation.method != method:
                continue
            template = operation.template.split("/")
            if len(template) != len(parts):
                continue
            literals = 0
            for want, got in zip(template, parts, strict=True):
                if want.startswith("{"):
                    continue
                if want != got:
                    break
                literals += 1
            else:
                if best is None or literals > best[0]:
                    best = (literals, operation)
        return best[1] if best else None

    def validate(
        self, method: str, path: str, query: dict[str, str], body: Any, has_body: bool
    ) -> tuple[Operation | None, list[FormError]]:
        operation = self.find(method, path)
        if operation is None:
            return None, []
        errors = list(self._check_query(operation, query))
        if operation.body_schema is not None and (has_body or operation.body_required):
            errors += self._check_schema(operation, body)
            if isinstance(body, dict | list):
                errors += documented_limits(operation.operation_id, body)
        return operation, _first_per_field(errors)

    def _check_query(self, operation: Operation, query: dict[str, str]) -> Iterator[FormError]:
        for name, schema in operation.query.items():
            if name not in query:
                continue
            value = _coerce_query(query[name], schema)
            validator = self._validator(f"{operation.operation_id}?{name}", schema)
            for error in validator.iter_errors(value):
                yield from _translate(error, (name,))

    def _check_schema(self, operation: Operation, body: Any) -> list[FormError]:
        assert operation.body_schema is not None
        validator = self._validator(operation.operation_id, operation.body_schema)
        errors: list[FormError] = []
        for error in validator.iter_errors(body):
            errors += _translate(error, ())
        return errors

    def _validator(self, key: str, schema: dict[str, Any]) -> Any:
        validator = self._validators.get(key)
        if validator is None:
            rooted = {"$id": f"{_SPEC_URI}-{key}", "$ref": "#/$defs/it", "$defs": {"it": schema}}
            validator = _DiscordValidator(rooted, registry=self._registry)
            self._validators[key] = validator
        return validator


@functools.cache
def default_validator() -> RequestValidator:
    """The validator over the vendored spec (parsed once per process: it is 1.2 MB)."""
    return RequestValidator(json.loads(SPEC_PATH.read_text(encoding="utf-8")))


def _operations(spec: dict[str, Any]) -> Iterator[Operation]:
    for template, item in spec["paths"].items():
        shared = [p for p in item.get("parameters", []) if p.get("in") == "query"]
        for method, op in item.items():
            if method == "parameters" or not isinstance(op, dict):
                continue
            params = shared + [p for p in op.get("parameters", []) if p.get("in") == "query"]
            request = op.get("requestBody") or {}
            content = request.get("content") or {}
            media = content.get("application/json") or next(iter(content.values()), None)
            body = _ref_spec(media["schema"]) if media else None
            yield Operation(
                method=method.upper(),
                template=template,
                operation_id=op.get("operationId", f"{method} {template}"),
                body_schema=body,
                body_required=bool(request.get("required")),
                query={p["name"]: _ref_spec(p.get("schema") or {}) for p in params},
            )


def _first_per_field(errors: list[FormError]) -> list[FormError]:
    """One error per field, as Discord reports: the schema's, else the documented limit's."""
    seen: set[ErrorPath] = set()
    kept = []
    for error in errors:
        key = tuple(str(p) for p in error.path)
        if key not in seen:
            seen.add(key)
            kept.append(error)
    return kept


def _ref_spec(schema: dict[str, Any]) -> dict[str, Any]:
    """Point a schema's local ``#/...`` refs at the spec resource, wherever it is validated."""
    text = json.dumps(schema).replace('"$ref": "#/', f'"$ref": "{_SPEC_URI}#/')
    result: dict[str, Any] = json.loads(text)
    return result


def _with_discord_coercions(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    schemas = spec["components"]["schemas"]
    # Discord parses snowflakes from JSON integers too; discord.py sends ids as ints.
    schemas["SnowflakeType"] = {
        "anyOf": [schemas["SnowflakeType"], {"type": "integer", "minimum": 0}],
    }
    return spec


def _is_integer(checker: Any, instance: Any) -> bool:
    # Discord coerces digit strings to integers (its NUMBER_TYPE_COERCE error is for the rest).
    if isinstance(instance, str):
        return re.fullmatch(r"-?\d+", instance) is not None
    return bool(Draft202012Validator.TYPE_CHECKER.is_type(instance, "integer"))


_DiscordValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


def _coerce_query(raw: str, schema: dict[str, Any]) -> Any:
    kinds = schema.get("type")
    kinds = set(kinds) if isinstance(kinds, list) else {kinds}
    if "boolean" in kinds and raw.lower() in ("true", "false", "1", "0"):
        return raw.lower() in ("true", "1")
    if kinds & {"integer", "number"}:
        try:
            return int(raw)
        except ValueError:
            try:
                return float(raw)
            except ValueError:
                return raw
    return raw


# ---------------------------------------------------------------------------------------------
# jsonschema errors -> Discord's codes
# ---------------------------------------------------------------------------------------------


def _translate(error: ValidationError, prefix: ErrorPath) -> list[FormError]:
    path: ErrorPath = (*prefix, *error.absolute_path)
    kind = error.validator
    value = error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind in ("anyOf", "oneOf"):
        return _translate_union(error, prefix)
    if kind == "required":
        instance = error.instance if isinstance(error.instance, dict) else {}
        return [
            FormError((*path, key), "BASE_TYPE_REQUIRED", "This field is required")
            for key in value
            if key not in instance
        ][:1] or [FormError(path, "BASE_TYPE_REQUIRED", "This field is required")]
    if kind in ("maxLength", "maxItems", "minLength", "minItems"):
        low = schema.get("minLength", schema.get("minItems"))
        high = schema.get("maxLength", schema.get("maxItems"))
        return [_length_error(path, low, high)]
    if kind in ("enum", "const"):
        choices = value if kind == "enum" else [value]
        shown = ", ".join(json.dumps(c) for c in choices)
        return [FormError(path, "BASE_TYPE_CHOICES", f"Value must be one of ({shown}).")]
    if kind in ("maximum", "exclusiveMaximum"):
        return [
            FormError(
                path, "NUMBER_TYPE_MAX", f"int value should be less than or equal to {value}."
            )
        ]
    if kind in ("minimum", "exclusiveMinimum"):
        return [
            FormError(
                path, "NUMBER_TYPE_MIN", f"int value should be greater than or equal to {value}."
            )
        ]
    if kind == "type":
        return [_type_error(path, value, error.instance)]
    if kind == "pattern":
        return [
            FormError(path, "STRING_TYPE_REGEX", "String value did not match validation regex.")
        ]
    if kind == "uniqueItems":
        return [FormError(path, "LIST_ITEM_VALUE_DUPLICATE", "List items must be unique.")]
    return [FormError(path, "BASE_TYPE_INVALID", error.message)]


def _translate_union(error: ValidationError, prefix: ErrorPath) -> list[FormError]:
    """Report the branch the request meant: the one whose ``type`` matched, or the closest."""
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context or []:
        branches.setdefault(int(sub.schema_path[0]), []).append(sub)
    if not branches:
        return []  # more than one branch matched: an ambiguity in the spec, not the request's
    instance = error.instance

    def wrong_discriminator(sub: ValidationError) -> bool:
        return list(sub.relative_path) == ["type"] or (
            not sub.relative_path and sub.validator == "type"
        )

    plausible = {i: subs for i, subs in branches.items() if not any(map(wrong_discriminator, subs))}
    if not plausible and isinstance(instance, dict) and "type" in instance:
        allowed = sorted({v for subs in branches.values() for v in _discriminators(subs)})
        shown = ", ".join(str(v) for v in allowed)
        return [
            FormError(
                (*prefix, *error.absolute_path),
                "UNION_TYPE_CHOICES",
                f'Value of field "type" must be one of ({shown}).',
            )
        ]
    pool = plausible or branches
    merged = _merged_choices(pool, prefix)
    if merged is not None:
        return [merged]
    best = min(pool.values(), key=lambda subs: (len(subs), -max(len(s.path) for s in subs)))
    result: list[FormError] = []
    for sub in best:
        result += _translate(sub, prefix)
    return result


def _merged_choices(pool: dict[int, list[ValidationError]], prefix: ErrorPath) -> FormError | None:
    """Branches that differ only in one field's allowed values (button styles): list them all."""
    singles = [subs[0] for subs in pool.values() if len(subs) == 1]
    if len(pool) < 2 or len(singles) != len(pool):
        return None
    if len({tuple(s.absolute_path) for s in singles}) != 1:
        return None
    if any(s.validator not in ("enum", "const") for s in singles):
        return None
    values: list[Any] = []
    for sub in singles:
        for value in sub.validator_value if sub.validator == "enum" else [sub.validator_value]:
            if value not in values:
                values.append(value)
    shown = ", ".join(json.dumps(v) for v in sorted(values, key=str))
    path = (*prefix, *singles[0].absolute_path)
    return FormError(path, "BASE_TYPE_CHOICES", f"Value must be one of ({shown}).")


def _discriminators(errors: list[ValidationError]) -> Iterator[Any]:
    for sub in errors:
        if list(sub.relative_path) == ["type"]:
            if sub.validator == "enum":
                yield from sub.validator_value
            elif sub.validator == "const":
                yield sub.validator_value


def _length_error(path: ErrorPath, low: int | None, high: int | None) -> FormError:
    if low and high is not None:
        return FormError(
            path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length."
        )
    if high is not None:
        return FormError(path, "BASE_TYPE_MAX_LENGTH", f"Must be {high} or fewer in length.")
    return FormError(path, "BASE_TYPE_MIN_LENGTH", f"Must be {low} or more in length.")


def _type_error(path: ErrorPath, expected: Any, instance: Any) -> FormError:
    kinds = set(expected) if isinstance(expected, list) else {expected}
    kinds.discard("null")
    shown = instance if isinstance(instance, str) else json.dumps(instance, default=str)
    if kinds & {"integer", "number"}:
        kind = "int" if "integer" in kinds else "float"
        return FormError(path, "NUMBER_TYPE_COERCE", f'Value "{shown}" is not {kind}.')
    if "string" in kinds:
        return FormError(path, "STRING_TYPE_CONVERT", f'Could not interpret "{shown}" as string.')
    if "boolean" in kinds:
        return FormError(path, "BOOLEAN_TYPE_CONVERT", f'Could not interpret "{shown}" as boolean.')
    if "array" in kinds:
        return FormError(path, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
    return FormError(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")


# ---------------------------------------------------------------------------------------------
# documented limits the schemas leave out
# ---------------------------------------------------------------------------------------------

_MESSAGE_OPERATIONS = {
    "create_message",
    "update_message",
    "execute_webhook",
    "update_webhook_message",
    "update_original_webhook_message",
}
_COMMAND_CREATE = {"create_application_command", "create_guild_application_command"}
_COMMAND_UPDATE = {"update_application_command", "update_guild_application_command"}
_COMMAND_BULK = {"bulk_set_application_commands", "bulk_set_guild_application_commands"}


def documented_limits(operation_id: str, body: Any) -> list[FormError]:
    """Discord's documented limits for the request of ``operation_id``, on a schema-valid body."""
    if operation_id in _MESSAGE_OPERATIONS and isinstance(body, dict):
        return list(message_limits(body, ()))
    if operation_id == "create_interaction_response" and isinstance(body, dict):
        data = body.get("data")
        if not isinstance(data, dict):
            return []
        if body.get("type") in (4, 7):
            return list(message_limits(data, ("data",)))
        if body.get("type") == 9:
            return list(modal_limits(data, ("data",)))
        return []
    if operation_id in _COMMAND_CREATE | _COMMAND_UPDATE and isinstance(body, dict):
        partial = operation_id in _COMMAND_UPDATE
        return list(command_limits(body, (), partial=partial))
    if operation_id in _COMMAND_BULK and isinstance(body, list):
        return list(command_list_limits(body))
    return []


def message_limits(data: dict[str, Any], at: ErrorPath) -> Iterator[FormError]:
    content = data.get("content")
    if isinstance(content, str) and len(content) > MESSAGE_CONTENT:
        yield _too_long((*at, "content"), MESSAGE_CONTENT)
    embeds = data.get("embeds") or []
    if len(embeds) > EMBEDS_PER_MESSAGE:
        yield _too_long((*at, "embeds"), EMBEDS_PER_MESSAGE)
    total = 0
    for index, embed in enumerate(embeds):
        yield from _embed_limits(embed, (*at, "embeds", index))
        total += _embed_characters(embed)
    if total > EMBED_TOTAL:
        yield FormError(
            (*at, "embeds"),
            "MAX_EMBED_SIZE_EXCEEDED",
            f"Embed size exceeds maximum size of {EMBED_TOTAL}",
        )
    components = data.get("components") or []
    v2 = bool((data.get("flags") or 0) & IS_COMPONENTS_V2)
    if not v2 and len(components) > ACTION_ROWS:
        yield _too_long((*at, "components"), ACTION_ROWS)
    yield from _component_limits(components, (*at, "components"), top=not v2)


def _embed_limits(embed: dict[str, Any], at: ErrorPath) -> Iterator[FormError]:
    checks: list[tuple[ErrorPath, Any, int]] = [
        (("title",), embed.get("title"), EMBED_TITLE),
        (("description",), embed.get("description"), EMBED_DESCRIPTION),
        (("footer", "text"), (embed.get("footer") or {}).get("text"), EMBED_FOOTER),
        (("author", "name"), (embed.get("author") or {}).get("name"), EMBED_AUTHOR),
    ]
    fields = embed.get("fields") or []
    if len(fields) > EMBED_FIELDS:
        yield _too_long((*at, "fields"), EMBED_FIELDS)
    for index, item in enumerate(fields):
        checks.append((("fields", index, "name"), item.get("name"), EMBED_FIELD_NAME))
        checks.append((("fields", index, "value"), item.get("value"), EMBED_FIELD_VALUE))
        for key in ("name", "value"):
            if not str(item.get(key) or "").strip():
                yield FormError(
                    (*at, "fields", index, key), "BASE_TYPE_REQUIRED", "This field is required"
                )
    for where, text, limit in checks:
        if isinstance(text, str) and len(text) > limit:
            yield _too_long((*at, *where), limit)


def _embed_characters(embed: dict[str, Any]) -> int:
    texts = [
        embed.get("title"),
        embed.get("description"),
        (embed.get("footer") or {}).get("text"),
        (embed.get("author") or {}).get("name"),
    ]
    for item in embed.get("fields") or []:
        texts += [item.get("name"), item.get("value")]
    return sum(len(t) for t in texts if isinstance(t, str))


def _component_limits(
    components: list[dict[str, Any]], at: ErrorPath, *, top: bool
) -> Iterator[FormError]:
    for index, component in enumerate(components):
        here = (*at, index)
        ctype = component.get("type")
        custom_id = component.get("custom_id")
        if custom_id is not None and not 1 <= len(str(custom_id)) <= CUSTOM_ID:
            yield _bad_length((*here, "custom_id"), 1, CUSTOM_ID)
        if ctype == _BUTTON:
            label = component.get("label")
            if isinstance(label, str) and len(label) > BUTTON_LABEL:
                yield _too_long((*here, "label"), BUTTON_LABEL)
        if ctype in (*_SELECTS, _TEXT_INPUT):
            placeholder = component.get("placeholder")
            if isinstance(placeholder, str) and len(placeholder) > PLACEHOLDER:
                yield _too_long((*here, "placeholder"), PLACEHOLDER)
        children = component.get("components") or []
        if ctype == _ACTION_ROW:
            buttons = sum(1 for c in children if c.get("type") == _BUTTON)
            if buttons > BUTTONS_PER_ROW:
                yield _too_long((*here, "components"), BUTTONS_PER_ROW)
            if any(c.get("type") in _SELECTS for c in children) and len(children) > 1:
                yield FormError(
                    (*here, "components"),
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                )
        if children:
            yield from _component_limits(children, (*here, "components"), top=False)
        child = component.get("component")
        if isinstance(child, dict):
            yield from _component_limits([child], (*here, "component"), top=False)
    del top


def modal_limits(data: dict[str, Any], at: ErrorPath) -> Iterator[FormError]:
    title = data.get("title")
    if isinstance(title, str) and not 1 <= len(title) <= MODAL_TITLE:
        yield _bad_length((*at, "title"), 1, MODAL_TITLE)
    custom_id = data.get("custom_id")
    if isinstance(custom_id, str) and not 1 <= len(custom_id) <= CUSTOM_ID:
        yield _bad_length((*at, "custom_id"), 1, CUSTOM_ID)
    components = data.get("components") or []
    if len(components) > ACTION_ROWS:
        yield _too_long((*at, "components"), ACTION_ROWS)
    for index, component in enumerate(components):
        here = (*at, "components", index)
        label = component.get("label")
        if isinstance(label, str) and len(label) > MODAL_LABEL:
            yield _too_long((*here, "label"), MODAL_LABEL)
        for position, inner in enumerate(component.get("components") or []):
            inner_label = inner.get("label")
            if isinstance(inner_label, str) and len(inner_label) > MODAL_LABEL:
                yield _too_long((*here, "components", position, "label"), MODAL_LABEL)
    yield from _component_limits(components, (*at, "components"), top=False)


def command_limits(
    command: dict[str, Any], at: ErrorPath, *, partial: bool = False
) -> Iterator[FormError]:
    ctype = command.get("type") or 1
    name = command.get("name")
    if isinstance(name, str) and ctype == 1 and not _valid_name(name):
        yield FormError(
            (*at, "name"), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
        )
    description = command.get("description")
    checked = ctype == 1 and not (partial and "description" not in command)
    if checked and not 1 <= len(description or "") <= COMMAND_DESCRIPTION:
        yield _bad_length((*at, "description"), 1, COMMAND_DESCRIPTION)
    if ctype in (2, 3) and description:
        yield FormError(
            (*at, "description"),
            "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
            "Context menu commands cannot have description",
        )
    options = command.get("options") or []
    if ctype == 1:
        yield from _option_limits(options, (*at, "options"))
    if _command_characters(command) > COMMAND_CHARACTERS:
        yield FormError(
            at,
            "APPLICATION_COMMAND_TOO_LARGE",
            f"Command exceeds maximum size ({COMMAND_CHARACTERS})",
        )


def command_list_limits(commands: list[Any]) -> Iterator[FormError]:
    seen: set[tuple[str, int]] = set()
    counts: dict[int, int] = {}
    for index, command in enumerate(commands):
        if not isinstance(command, dict):
            continue
        yield from command_limits(command, (index,))
        key = (str(command.get("name")), command.get("type") or 1)
        if key in seen:
            yield FormError(
                (index, "name"),
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                f"Application command names must be unique: {key[0]}",
            )
        seen.add(key)
        counts[key[1]] = counts.get(key[1], 0) + 1
    for ctype, count in counts.items():
        limit = COMMANDS_PER_SCOPE.get(ctype)
        if limit is not None and count > limit:
            yield FormError(
                (),
                "APPLICATION_COMMANDS_MAX_EXCEEDED",
                f"Maximum number of application commands of type {ctype} reached ({limit})",
            )


def _option_limits(options: list[dict[str, Any]], at: ErrorPath) -> Iterator[FormError]:
    if len(options) > COMMAND_OPTIONS:
        yield _too_long(at, COMMAND_OPTIONS)
    names: set[str] = set()
    seen_optional = False
    for index, option in enumerate(options):
        here = (*at, index)
        name = str(option.get("name") or "")
        if not _valid_name(name):
            yield FormError(
                (*here, "name"), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
            )
        if name in names:
            yield FormError(
                (*here, "name"),
                "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                "Option names must be unique",
            )
        names.add(name)
        if not 1 <= len(option.get("description") or "") <= COMMAND_DESCRIPTION:
            yield _bad_length((*here, "description"), 1, COMMAND_DESCRIPTION)
        choices = option.get("choices") or []
        if len(choices) > OPTION_CHOICES:
            yield _too_long((*here, "choices"), OPTION_CHOICES)
        for position, choice in enumerate(choices):
            if not 1 <= len(str(choice.get("name") or "")) <= CHOICE_NAME:
                yield _bad_length((*here, "choices", position, "name"), 1, CHOICE_NAME)
            value = choice.get("value")
            if isinstance(value, str) and not 1 <= len(value) <= CHOICE_VALUE:
                yield _bad_length((*here, "choices", position, "value"), 1, CHOICE_VALUE)
        if option.get("type") in (1, 2):
            yield from _option_limits(option.get("options") or [], (*here, "options"))
            continue
        if option.get("required") and seen_optional:
            yield FormError(
                here,
                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                "Required options must be placed before non-required options",
            )
        seen_optional = seen_optional or not option.get("required")


def _command_characters(command: dict[str, Any]) -> int:
    """Name, description, option names/descriptions and choice names/values, recursively."""

    def count(node: dict[str, Any]) -> int:
        total = len(str(node.get("name") or "")) + len(str(node.get("description") or ""))
        for choice in node.get("choices") or []:
            total += len(str(choice.get("name") or "")) + len(str(choice.get("value") or ""))
        return total + sum(count(o) for o in node.get("options") or [])

    return count(command)


def _valid_name(name: str) -> bool:
    return bool(_CHAT_INPUT_NAME.match(name)) and name == name.lower()


def _too_long(path: ErrorPath, limit: int) -> FormError:
    return FormError(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _bad_length(path: ErrorPath, low: int, high: int) -> FormError:
    return FormError(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")
