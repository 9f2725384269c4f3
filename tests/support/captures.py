"""billing.capturePayment over each transport's real client, its outcome normalized into an
``Answer``: the code, the problem's shared fields or the output, and whether it was an
idempotent replay."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tests.support import api
from tests.support.mcp_client import http_client, meta
from tests.support.stack import Stack

CAPTURE_FIELD = "billing_capturePayment"
CAPTURE_MUTATION = f"""
mutation Pay($input: CapturePaymentInput!) {{
  {CAPTURE_FIELD}(input: $input) {{ transactionId status receiptUrl }}
}}"""

#: The fields of a problem document that every transport must carry alike, where present
#: (``type``, ``code`` and ``requestId`` are checked on their own).
PROBLEM_FIELDS = ("status", "title", "detail", "retryable", "issues", "operation")


@dataclass(frozen=True)
class Answer:
    """One call's outcome, transport aside: ``code`` is ``OK`` or the problem's code;
    ``fields`` the output, or the problem's PROBLEM_FIELDS."""

    code: str
    fields: dict[str, Any]
    replayed: bool


def problem_answer(problem: dict[str, Any], request_id: str, replayed: bool) -> Answer:
    """The Answer of a problem document (REST body, GraphQL extensions, MCP structured
    content), after checking the parts every transport shares to the letter."""
    code = problem["code"]
    assert problem["type"] == f"https://specops.dev/problems/{code.lower().replace('_', '-')}"
    assert problem["requestId"] == request_id, problem
    return Answer(
        code, {name: problem[name] for name in PROBLEM_FIELDS if name in problem}, replayed
    )


async def via_rest(
    stack: Stack, token: str, payload: dict[str, Any], request_id: str, key: str | None
) -> Answer:
    async with stack.client(token) as http:
        r = await http.post(api.CAPTURE, json=payload, headers=api.headers(request_id, key))
    assert r.headers["x-request-id"] == request_id
    replayed = r.headers.get("idempotent-replayed") == "true"
    if r.status_code == 200:
        return Answer("OK", r.json(), replayed)
    assert r.headers["content-type"] == "application/problem+json", r.headers
    answer = problem_answer(r.json(), request_id, replayed)
    assert answer.fields["status"] == r.status_code
    return answer


async def via_graphql(
    stack: Stack, token: str, payload: dict[str, Any], request_id: str, key: str | None
) -> Answer:
    r = await api.post_graphql(
        stack,
        CAPTURE_MUTATION,
        {"input": payload},
        token=token,
        headers=api.headers(request_id, key),
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == request_id
    body = r.json()
    replayed_fields = (body.get("extensions") or {}).get("replayed", [])
    assert replayed_fields in ([], [CAPTURE_FIELD]), body
    replayed = replayed_fields == [CAPTURE_FIELD]
    assert (r.headers.get("idempotent-replayed") == "true") is replayed
    if "errors" not in body:
        return Answer("OK", body["data"][CAPTURE_FIELD], replayed)
    assert body["data"] == {CAPTURE_FIELD: None}, body
    [error] = body["errors"]
    assert error["path"] == [CAPTURE_FIELD]
    return problem_answer(error["extensions"], request_id, replayed)


async def via_mcp(
    stack: Stack, token: str, payload: dict[str, Any], request_id: str, key: str | None
) -> Answer:
    items = {"requestId": request_id} | ({"idempotencyKey": key} if key else {})
    async with http_client(stack.url + "/mcp", token) as client:
        result = await client.call_tool(CAPTURE_FIELD, payload, meta=meta(**items))
    assert result.meta is not None and result.meta["requestId"] == request_id
    assert result.meta["operation"] == api.CAPTURE_OP
    replayed = result.meta.get("replayed", False)
    body = result.structured_content
    assert isinstance(body, dict)
    if not result.is_error:
        return Answer("OK", body, replayed)
    return problem_answer(body, request_id, replayed)


Call = Callable[[Stack, str, dict[str, Any], str, str | None], Awaitable[Answer]]
CALLS: dict[str, Call] = {"rest": via_rest, "graphql": via_graphql, "mcp": via_mcp}
