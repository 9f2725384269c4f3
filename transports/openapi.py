"""The OpenAPI 3.1 document of the REST transport, generated from the registry."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import core_schema

from registry.contract import Contract
from registry.docs import ContractDoc
from registry.errors import CATALOGUE, ErrorSpec
from registry.model import WireModel
from registry.registry import Operation, Registry
from transports.rest import retirement_headers

REF = "#/components/schemas/{model}"
#: The JSON Schema (a $ref) of each (model, mode) pair.
Refs = dict[tuple[Any, JsonSchemaMode], Any]
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

#: What only a POST may answer besides what any call may (``registry.docs``).
POST_ERRORS = (CATALOGUE.UNSUPPORTED_MEDIA_TYPE,)

REQUEST_ID_HEADER: dict[str, Any] = {
    "description": "The caller's X-Request-Id when it is 8 to 128 of [A-Za-z0-9._:-], "
    "else a new one; audit records carry it",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{8,128}$"},
}
REPLAYED_HEADER: dict[str, Any] = {
    "description": "Present when this is the stored outcome of an earlier request with "
    "the same Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "enum": ["true"]},
}
RETRY_AFTER_HEADER: dict[str, Any] = {
    "description": "Seconds to wait before retrying",
    "required": False,
    "schema": {"type": "integer", "minimum": 0},
}


def _headers(kind: str, *, retryable: bool = False) -> dict[str, Any]:
    headers = {"X-Request-Id": REQUEST_ID_HEADER}
    if kind == "command":
        headers["Idempotent-Replayed"] = REPLAYED_HEADER
    if retryable:
        headers["Retry-After"] = RETRY_AFTER_HEADER
    return headers


#: The headers a retired version's answers carry (``transports.rest.retirement_headers``).
RETIREMENT_HEADERS: dict[str, str] = {
    "Deprecation": "When this version was retired (RFC 9745): @ and seconds since the epoch",
    "Sunset": "When this version stops working (RFC 8594)",
    "Link": 'The operation that replaces this version, rel="successor-version"',
}


def _retirement_headers(op: Operation) -> dict[str, Any]:
    """The retirement headers every answer of ``op`` carries, documented."""
    if not op.ref.deprecated:
        return {}
    return {
        name: {
            "description": RETIREMENT_HEADERS[name],
            "required": True,
            "schema": {"type": "string"},
        }
        for name in retirement_headers(op.ref)
    }


def decimal_pattern(schema: core_schema.DecimalSchema) -> str:
    """A regular expression for the decimal strings an input field accepts: plain notation
    (no exponent), at most ``decimal_places`` significant decimals, no more integer digits
    than ``max_digits`` and the bounds allow, no sign below a bound of 0, no zero above it.

    It errs on accepting: a value past a bound with as many digits as the bound
    (``999999999999.5`` for ``le=999999999999``) still matches. It only refuses strings
    the validator takes in exponent notation, which the document does not offer.
    """
    gt, ge, lt, le = schema.get("gt"), schema.get("ge"), schema.get("lt"), schema.get("le")
    lower = gt if gt is not None else ge
    upper = lt if lt is not None else le
    places = schema.get("decimal_places")
    max_digits = schema.get("max_digits")
    digits = None if max_digits is None else max_digits - (places or 0)
    if lower is not None and upper is not None:
        widest = len(str(int(max(abs(Decimal(lower)), abs(Decimal(upper))))))
        digits = widest if digits is None else min(digits, widest)
    # Leading zeros are not digits, nor are trailing zeros decimals.
    decimals = "[0-9]*" if places is None else f"[0-9]{{0,{places}}}0*"
    alternatives = []
    if digits is None or digits > 0:
        more = "*" if digits is None else f"{{0,{digits - 1}}}"
        alternatives.append(rf"0*[1-9][0-9]{more}(?:\.{decimals})?")
    if places is None or places > 0:
        before = "[0-9]*" if places is None else f"[0-9]{{0,{places - 1}}}"
        alternatives.append(rf"0*\.{before}[1-9]0*")
    if not ((gt is not None and gt >= 0) or (ge is not None and ge > 0)):
        alternatives.append(rf"0+(?:\.{decimals})?|0*\.0+")
    sign = r"\+?" if lower is not None and lower >= 0 else "[+-]?"
    return f"^{sign}(?:{'|'.join(alternatives)})$"


#: What ``strip_whitespace`` strips (Rust's ``char::is_whitespace``, not ``str.isspace``).
WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def stripped_length_pattern(low: int, high: int | None) -> str:
    """A regular expression for strings of ``low`` to ``high`` characters once the
    surrounding whitespace is stripped."""
    space, text = f"[{WHITESPACE}]", f"[^{WHITESPACE}]"
    middle = f"[\\s\\S]{{{max(low - 2, 0)},{'' if high is None else high - 2}}}"
    core = text if high == 1 else f"{text}(?:{middle}{text}){'' if low >= 2 else '?'}"
    if low == 0:
        core = f"(?:{core})?"
    return f"^{space}*{core}{space}*$"


class WireJsonSchema(GenerateJsonSchema):
    """Pydantic's JSON Schema, with inputs as tight as their validation, so that what the
    document calls valid is what the contract accepts.

    Pydantic describes a ``Decimal`` input as any number or any string; this adds
    ``multipleOf`` for ``decimal_places`` to the number and a pattern to the string. It
    measures a string with ``strip_whitespace`` before stripping; this moves the length
    bounds into a pattern that skips the surrounding whitespace (any other pattern still
    applies to the whole string).
    """

    def str_schema(self, schema: core_schema.StringSchema) -> dict[str, Any]:
        json_schema: dict[str, Any] = super().str_schema(schema)
        if self.mode != "validation" or not schema.get("strip_whitespace"):
            return json_schema
        low = json_schema.pop("minLength", 0)
        high = json_schema.pop("maxLength", None)
        if low == 0 and high is None:
            return json_schema
        if "pattern" in json_schema:
            json_schema["allOf"] = [{"pattern": json_schema["pattern"]}]
        json_schema["pattern"] = stripped_length_pattern(low, high)
        return json_schema

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> dict[str, Any]:
        json_schema: dict[str, Any] = super().decimal_schema(schema)
        if self.mode != "validation":
            return json_schema
        number, string = json_schema["anyOf"]
        places = schema.get("decimal_places")
        if places is not None and "multipleOf" not in number:
            number["multipleOf"] = 1 if places == 0 else float(Decimal(1).scaleb(-places))
        string["pattern"] = decimal_pattern(schema)
        return json_schema


def _schemas(registry: Registry) -> tuple[Refs, dict[str, Any]]:
    models: list[tuple[type[WireModel], JsonSchemaMode]] = []
    for op in registry.operations():
        models.append((op.contract.input, "validation"))
        models.append((op.contract.output, "serialization"))
    refs, defs = models_json_schema(
        models, ref_template=REF, by_alias=True, schema_generator=WireJsonSchema
    )
    return dict(refs), defs.get("$defs", {})


def _error_responses(errors: list[ErrorSpec], kind: str) -> dict[str, Any]:
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
            "headers": _headers(kind, retryable=any(e.retryable for e in specs)),
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


def _description(doc: ContractDoc) -> str:
    """The summary, the policy in words, and the notice of a retired version."""
    notice = doc.deprecation_notice
    return "\n\n".join((*doc.summary, doc.rules, *((notice,) if notice else ())))


def _operation(
    op: Operation, refs: Refs, method: str, defs: dict[str, Any]
) -> dict[str, Any] | None:
    c: Contract = op.contract
    input_schema = refs[(c.input, "validation")]
    contract_doc = ContractDoc(c)
    errors = list(contract_doc.errors)
    if method == "post":
        errors += POST_ERRORS
    doc: dict[str, Any] = {
        "operationId": f"{c.key.replace('.', '_')}_v{c.version_text.replace('.', '_')}_{method}",
        "summary": c.title,
        "description": _description(contract_doc),
        "tags": [c.domain],
        "x-specops": {
            "key": c.key,
            "version": c.version_text,
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
                "headers": {**_headers(c.kind), **_retirement_headers(op)},
                "content": {"application/json": {"schema": refs[(c.output, "serialization")]}},
            },
            **_error_responses(errors, c.kind),
        },
    }
    if c.deprecated:
        doc["deprecated"] = True
    if c.policy.auth == "anonymous":
        doc["security"] = [{}, {"bearer": []}]
    if method == "post":
        # An empty body is the input {}: required only when {} is not a valid input.
        name = input_schema.get("$ref", "").rsplit("/", 1)[-1]
        resolved: dict[str, Any] = defs.get(name) or input_schema
        doc["requestBody"] = {
            "required": bool(resolved.get("required")),
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
                        f"_v{c.version_text.replace('.', '_')}", ""
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
