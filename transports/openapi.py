"""The OpenAPI 3.1 document of the REST transport, generated from the registry."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic.json_schema import JsonSchemaMode, models_json_schema

from registry.contract import Contract
from registry.errors import CATALOGUE, ErrorSpec
from registry.model import WireModel
from registry.registry import Operation, Registry

REF = "#/components/schemas/{model}"
SCALARS = {"string", "integer", "number", "boolean"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details with a stable code",
    "required": ["type", "title", "status", "code", "detail", "requestId"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "retryable": {"type": "boolean"},
        "issues": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "code", "message"],
                "properties": {
                    "path": {"type": "string"},
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
        "operation": {
            "type": "object",
            "required": ["key", "version", "kind"],
            "properties": {
                "key": {"type": "string"},
                "version": {"type": "string"},
                "kind": {"type": "string", "enum": ["command", "query"]},
            },
        },
        "requestId": {"type": "string"},
    },
}

COMMON_ERRORS: tuple[ErrorSpec, ...] = (
    CATALOGUE.MALFORMED_REQUEST,
    CATALOGUE.UNAUTHENTICATED,
    CATALOGUE.FORBIDDEN,
    CATALOGUE.OP_NOT_FOUND,
    CATALOGUE.PAYLOAD_TOO_LARGE,
    CATALOGUE.INVALID_INPUT,
    CATALOGUE.RATE_LIMITED,
    CATALOGUE.INTERNAL,
    CATALOGUE.UPSTREAM_UNAVAILABLE,
    CATALOGUE.TIMEOUT,
)
POST_ERRORS = (CATALOGUE.UNSUPPORTED_MEDIA_TYPE,)
COMMAND_ERRORS = (CATALOGUE.IDEMPOTENCY_BUSY, CATALOGUE.IDEMPOTENCY_MISMATCH)


def _schemas(registry: Registry) -> tuple[dict[tuple[type[WireModel], str], Any], dict[str, Any]]:
    models: list[tuple[type[WireModel], JsonSchemaMode]] = []
    for op in registry.operations():
        models.append((op.contract.input, "validation"))
        models.append((op.contract.output, "serialization"))
    refs, defs = models_json_schema(models, ref_template=REF, by_alias=True)
    return dict(refs), defs.get("$defs", {})


def _error_responses(errors: list[ErrorSpec]) -> dict[str, Any]:
    by_status: dict[int, list[ErrorSpec]] = defaultdict(list)
    for error in errors:
        if error not in by_status[error.status]:
            by_status[error.status].append(error)
    responses: dict[str, Any] = {}
    for status in sorted(by_status):
        specs = by_status[status]
        described = "; ".join(f"{e.code}: {e.title}" for e in specs)
        responses[str(status)] = {
            "description": described,
            "content": {
                "application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}
            },
        }
    return responses


def _query_parameters(
    model: type[WireModel], schema: dict[str, Any], defs: dict[str, Any]
) -> list[dict[str, Any]] | None:
    """Query parameters for a GET, or None when a field is not a scalar."""
    resolved = defs.get(schema.get("$ref", "").rsplit("/", 1)[-1], schema)
    properties: dict[str, Any] = resolved.get("properties", {})
    required = set(resolved.get("required", []))
    params = []
    for name, prop in properties.items():
        options = prop.get("anyOf", [prop])
        kinds = set()
        for option in options:
            target = defs.get(option.get("$ref", "").rsplit("/", 1)[-1], option)
            kinds.add(target.get("type", "object"))
        if not kinds <= SCALARS | {"null"}:
            return None
        params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    return params


def _operation(
    op: Operation, refs: dict[tuple[type[WireModel], str], Any], method: str, defs: dict[str, Any]
) -> dict[str, Any] | None:
    c: Contract = op.contract
    input_schema = refs[(c.input, "validation")]
    errors = list(COMMON_ERRORS) + list(c.errors)
    if c.kind == "command":
        errors += COMMAND_ERRORS
    if method == "post":
        errors += POST_ERRORS
    doc: dict[str, Any] = {
        "operationId": f"{c.key.replace('.', '_')}_v{str(c.version).replace('.', '_')}_{method}",
        "summary": c.title,
        "description": f"{c.description}\n\nGoal: {c.goal}\n\nContext: {c.context}",
        "tags": [c.domain],
        "x-specops": {
            "key": c.key,
            "version": str(c.version),
            "kind": c.kind,
            "stability": c.stability,
            "owners": list(c.owners),
            "tags": list(c.tags),
            "auth": c.policy.auth,
            "rules": [
                {"resource": r.resource, "action": r.action, "condition": r.condition}
                for r in c.policy.rules
            ],
        },
        "responses": {
            "200": {
                "description": "Success",
                "content": {"application/json": {"schema": refs[(c.output, "serialization")]}},
            },
            **_error_responses(errors),
        },
    }
    if c.deprecated:
        doc["deprecated"] = True
    if c.policy.auth == "anonymous":
        doc["security"] = [{}, {"bearer": []}]
    if method == "post":
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": input_schema}},
        }
        if c.kind == "command":
            doc["parameters"] = [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "Retries with the same key replay the first result",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                }
            ]
    else:
        params = _query_parameters(c.input, input_schema, defs)
        if params is None:
            return None
        doc["parameters"] = params
    return doc


def openapi_document(
    registry: Registry, *, title: str = "specops", version: str = "0.1.0"
) -> dict[str, Any]:
    """The whole document: one path per latest key, one per pinned version."""
    refs, defs = _schemas(registry)
    paths: dict[str, Any] = {}
    for op in registry.operations():
        c = op.contract
        item: dict[str, Any] = {}
        for method in ("get", "post") if c.kind == "query" else ("post",):
            doc = _operation(op, refs, method, defs)
            if doc is not None:
                item[method] = doc
        paths[f"/api/ops/{c.key}/v{c.version}"] = item
        if registry.is_latest(op):
            latest = {
                m: {
                    **d,
                    "operationId": d["operationId"].replace(
                        f"_v{str(c.version).replace('.', '_')}", ""
                    ),
                }
                for m, d in item.items()
            }
            paths[f"/api/ops/{c.key}"] = latest
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Operations generated from contracts. Errors are RFC 9457 problems.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {**defs, "Problem": PROBLEM_SCHEMA},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
