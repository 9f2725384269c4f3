"""The REST endpoint's own parsing: paths, headers and bodies read from raw ASGI."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from starlette.types import Message

from registry.invocation import OperationRef
from tests.support.doubles import Sink, make_pipeline
from transports.http import ClientGone, HttpCaller, read_body, read_caller, replay
from transports.rest import (
    MAX_BODY_BYTES,
    RestTransport,
    body_input,
    path_params,
    retirement_headers,
)


def caller(**headers: str) -> HttpCaller:
    """The caller of a request with ``headers`` (``content_length=...``)."""
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return read_caller({"headers": raw})


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/ops/system.ping", {"key": "system.ping"}),
        ("/api/ops/billing.getInvoice/v1.0.0", {"key": "billing.getInvoice", "version": "1.0.0"}),
        ("/api/ops/", None),
        ("/api/ops/system.ping/", None),  # not an operation path: 404
        ("/api/ops/system.ping/v", None),
        ("/api/ops/system.ping/1.0.0", None),
        ("/api/ops/a/v1/extra", None),
        ("/api/openapi.json", None),
        ("/graphql", None),
    ],
)
def test_paths_match_as_starlettes_routes_would(path: str, expected: object) -> None:
    assert path_params(path) == expected


def test_the_caller_is_read_in_one_pass_and_the_first_of_a_repeated_header_wins() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    scope = {
        "headers": [
            (b"authorization", b"Bearer one"),
            (b"authorization", b"Bearer two"),
            (b"x-request-id", b"req-12345678"),
            (b"content-type", b"application/json"),
            (b"traceparent", traceparent.encode()),
            (b"idempotency-key", b"k-1"),
            (b"accept", b"*/*"),
        ],
        "client": ("10.0.0.7", 5555),
    }
    found = read_caller(scope)
    assert found.credentials == "one"
    assert found.request_id == "req-12345678"
    assert found.content_type == "application/json"
    assert found.idempotency_key == "k-1"
    assert found.client == "10.0.0.7"
    assert found.traceparent == traceparent
    assert found.trace_id == "0af7651916cd43dd8448eb211c80319c"


def test_a_caller_without_a_sane_request_id_or_trace_gets_a_new_id_and_no_trace() -> None:
    found = read_caller({"headers": [(b"x-request-id", b"short"), (b"traceparent", b"junk")]})
    assert found.request_id != "short" and len(found.request_id) == 32
    assert found.trace_id is None and found.credentials is None and found.client is None


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"[" * 5000 + b"]" * 5000, "The body nests too deeply"),
        (b'{"a": 1', "The body is not valid JSON"),
        ('{"message": "hi"}'.encode("utf-16"), "The body is not valid JSON"),
        (b'{"message": "\\ud800"}', "The body is not valid JSON"),  # a lone surrogate
        (b'{"message": "\xff"}', "The body is not valid JSON"),
    ],
)
def test_a_body_that_is_not_utf8_json_is_malformed(body: bytes, detail: str) -> None:
    payload, error = body_input(body, "application/json")
    assert payload is None and error is not None
    assert (error.code, error.detail) == ("MALFORMED_REQUEST", detail)


def test_a_json_body_decodes_as_json_does() -> None:
    body = '{"a": [1, 2.5, -0.0, 1e400, 123456789012345678901234567890], "b": null, "c": "é"}'
    assert body_input(body.encode(), "application/json") == (json.loads(body), None)
    assert body_input(b"null", "application/json")[1] is not None  # not an object
    assert body_input(b"", "application/json") == ({}, None)
    assert body_input(b"", None) == ({}, None)


@pytest.mark.parametrize("body", [b"\t", b"  ", b"\r\n"])
def test_white_space_alone_is_not_an_empty_body(body: bytes) -> None:
    """schemathesis found ``-d $'\\t'`` answered 200 where the document promises 400."""
    payload, error = body_input(body, "application/json")
    assert payload is None and error is not None
    assert (error.code, error.detail) == ("MALFORMED_REQUEST", "The body is not valid JSON")


def _receiver(messages: list[Message]) -> Any:
    async def receive() -> Message:
        return messages.pop(0)

    return receive


async def test_a_chunked_body_is_joined() -> None:
    receive = _receiver(
        [
            {"type": "http.request", "body": b'{"a":', "more_body": True},
            {"type": "http.request", "body": b"1}", "more_body": False},
        ]
    )
    assert await read_body(receive, caller(), MAX_BODY_BYTES) == b'{"a":1}'


async def test_a_body_over_the_limit_is_refused_while_it_streams() -> None:
    chunk = b" " * (MAX_BODY_BYTES // 2 + 1)
    receive = _receiver(
        [
            {"type": "http.request", "body": chunk, "more_body": True},
            {"type": "http.request", "body": chunk, "more_body": True},
            # never read: the limit is known to be broken before
            {"type": "http.request", "body": b"", "more_body": False},
        ]
    )
    assert await read_body(receive, caller(), MAX_BODY_BYTES) is None
    declared = caller(content_length=str(MAX_BODY_BYTES + 1))
    assert await read_body(_receiver([]), declared, MAX_BODY_BYTES) is None


async def test_a_client_that_leaves_before_its_body_is_noticed() -> None:
    receive = _receiver([{"type": "http.disconnect"}])
    with pytest.raises(ClientGone):
        await read_body(receive, caller(content_length="10"), MAX_BODY_BYTES)


async def test_a_body_read_is_replayed_in_one_message_then_the_rest() -> None:
    receive = replay(b"{}", _receiver([{"type": "http.disconnect"}]))
    assert await receive() == {"type": "http.request", "body": b"{}", "more_body": False}
    assert await receive() == {"type": "http.disconnect"}


async def test_a_failure_of_the_endpoint_itself_answers_an_internal_problem() -> None:
    # A real pipeline, which is never reached:
    # the endpoint fails first, on a scope without a method.
    rest = RestTransport(make_pipeline(Sink()))
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "path": "/api/ops/system.ping",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 1234),
    }
    await rest.handle(scope, _receiver([]), send, {"key": "system.ping"})
    assert sent[0]["status"] == 500
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"application/problem+json"
    body = json.loads(sent[1]["body"])
    assert body["code"] == "INTERNAL" and "method" not in json.dumps(body)


class _Recorder:
    """An ASGI endpoint that notes each request it gets."""

    def __init__(self, name: str, seen: list[str]) -> None:
        self.name = name
        self.seen = seen

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append(f"{self.name} {scope['path']}")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


class _RestRecorder:
    """Stands in for the REST endpoint, of which the app only calls ``handle``."""

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    async def handle(self, scope: Any, receive: Any, send: Any, params: dict[str, str]) -> None:
        self.seen.append(f"rest {params}")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def test_the_app_hands_transport_requests_straight_to_their_endpoints() -> None:
    from starlette.routing import Route

    from transports.app import SpecopsApp

    seen: list[str] = []
    app = SpecopsApp(
        _RestRecorder(seen),  # type: ignore[arg-type]
        {"/graphql": _Recorder("graphql", seen)},
        routes=[Route("/other", _Recorder("starlette", seen))],
    )

    async def call(path: str, root_path: str = "") -> None:
        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "root_path": root_path,
            "query_string": b"",
            "headers": [],
        }
        await app(scope, _receiver([{"type": "http.request", "body": b""}]), _discard)

    await call("/graphql")
    await call("/api/ops/system.ping/v1.0.0")
    await call("/other")
    # Mounted under a root path, the same endpoints are reached the same way.
    await call("/base/graphql", root_path="/base")
    await call("/base/api/ops/system.ping", root_path="/base")
    await call("/api/ops/system.ping/")  # no such operation path: Starlette's 404
    assert seen == [
        "graphql /graphql",
        "rest {'key': 'system.ping', 'version': '1.0.0'}",
        "starlette /other",
        "graphql /base/graphql",
        "rest {'key': 'system.ping'}",
    ]


async def _discard(message: Message) -> None:
    return None


def test_a_retired_version_announces_its_retirement_sunset_and_successor() -> None:
    retired = OperationRef(
        "keys.listKeys",
        "1.0.0",
        "query",
        True,
        sunset=date(2027, 6, 1),
        successor=("keys.listKeys", "1.1.0"),
        since=date(2026, 11, 24),
    )
    assert retirement_headers(retired) == {
        "Deprecation": "@1795478400",
        "Sunset": "Tue, 01 Jun 2027 00:00:00 GMT",
        "Link": '</api/ops/keys.listKeys/v1.1.0>; rel="successor-version"',
    }
    bare = OperationRef("keys.listKeys", "1.0.0", "query", True)
    assert retirement_headers(bare) == {}


def test_a_successor_at_its_current_version_is_linked_by_its_unversioned_path() -> None:
    moved = OperationRef(
        "billing.pay", "1.0.0", "command", True, successor=("billing.payInvoice", None)
    )
    assert retirement_headers(moved) == {
        "Link": '</api/ops/billing.payInvoice>; rel="successor-version"'
    }


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
async def test_every_method_a_command_does_not_serve_is_refused_in_one_place(
    method: str,
) -> None:
    sink = Sink()
    rest = RestTransport(make_pipeline(sink))
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": "/api/ops/test.shout",
        "query_string": b"",
        "headers": [(b"authorization", b"Bearer someone"), (b"x-request-id", b"req-405-test")],
        "client": ("127.0.0.1", 1234),
    }
    await rest.handle(scope, _receiver([]), send, {"key": "test.shout"})
    assert sent[0]["status"] == 405
    assert dict(sent[0]["headers"])[b"allow"] == b"POST"
    body = json.loads(sent[1]["body"])
    assert body["detail"] == f"{method} is not supported here; use POST"
    assert body["operation"]["key"] == "test.shout"
    # Refused before any stage: one record, against the key, naming no one.
    [record] = sink.records
    assert (record.operation_key, record.status, record.actor_id) == ("test.shout", 405, None)
