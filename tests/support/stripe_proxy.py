"""A Stripe-like proxy in front of localstripe, whose answers tests can lose on command.

localstripe ignores ``Idempotency-Key``; this proxy honours it as Stripe does: the first
request with a key (per API key) is forwarded and its answer stored; a later request with
that key and the same parameters gets the stored answer (``Idempotent-Replayed: true``),
with other parameters a 400 ``idempotency_error``, and while the first is still being
forwarded a 409. Requests without a key are forwarded as they are.

A test arms a ``Fault`` for PaymentIntent creations (``POST /v1/payment_intents``); it
applies to every such request, replays included, until disarmed, so the SDK's own retries
meet it too. The proxy runs uvicorn on a thread of its own (``running_proxy``), so a test
can wait for it without blocking it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn

from tests.support.processes import free_port

CREATE_INTENT = ("POST", "/v1/payment_intents")

#: Request headers not passed on: the proxy's connection is not the client's.
HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


class Fault(StrEnum):
    """What happens to a PaymentIntent creation while armed."""

    #: Executed (or replayed), then the connection closes in the middle of the answer.
    DROP = "drop"
    #: Executed (or replayed), answered only after ``delay_seconds`` (past the client's
    #: timeout), unless the client has gone by then.
    DELAY = "delay"
    #: Executed (or replayed), answered with a 500 ``api_error``.
    ERROR = "error"
    #: Held before it is forwarded until the client goes away (the test kills it); never
    #: forwarded.
    HOLD_BEFORE = "hold-before"
    #: Executed, then held until the client goes away; never answered.
    HOLD_AFTER = "hold-after"


class AnswerLost(Exception):
    """Raised after the response started: the server closes the connection mid-answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: str
    body: bytes


@dataclass
class StripeProxy:
    """The ASGI app; ``running_proxy`` serves it."""

    upstream: str
    delay_seconds: float = 5.0
    url: str = ""
    fault: Fault | None = None
    #: The idempotency keys of the requests held since the fault was armed.
    _held: set[str] = field(default_factory=set)
    _held_changed: threading.Condition = field(default_factory=threading.Condition)
    _answers: dict[tuple[str, str], tuple[list[tuple[str, str]], Answer]] = field(
        default_factory=dict
    )
    _running: set[tuple[str, str]] = field(default_factory=set)
    _http: httpx.AsyncClient | None = None

    def arm(self, fault: Fault) -> None:
        with self._held_changed:
            self._held.clear()
        self.fault = fault

    def disarm(self) -> None:
        self.fault = None

    def wait_held(self, count: int, timeout: float) -> bool:
        """Wait (blocking) until requests with ``count`` distinct idempotency keys are held."""
        with self._held_changed:
            return self._held_changed.wait_for(lambda: len(self._held) >= count, timeout)

    async def _hold(self, headers: list[tuple[str, str]], receive: Any) -> None:
        """Hold a request until its client goes away (the test kills it)."""
        key = next((v for k, v in headers if k.lower() == "idempotency-key"), "")
        with self._held_changed:
            self._held.add(key)
            self._held_changed.notify_all()
        await _client_gone(receive)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.decode("latin-1").lower() not in HOP_BY_HOP
        ]
        fault = self.fault if (scope["method"], scope["path"]) == CREATE_INTENT else None
        if fault is Fault.HOLD_BEFORE:
            await self._hold(headers, receive)
            return
        answer = await self._execute(scope, headers, body)
        if fault is Fault.HOLD_AFTER:
            await self._hold(headers, receive)
            return
        await self._answer(fault, answer, receive, send)

    async def _execute(
        self, scope: dict[str, Any], headers: list[tuple[str, str]], body: bytes
    ) -> Answer:
        """Forward the request, or answer from the idempotency store as Stripe would."""
        named = {k.lower(): v for k, v in headers}
        key = named.get("idempotency-key")
        if key is None or scope["method"] != "POST":
            return await self._forward(scope, headers, body)
        slot = (named.get("authorization", ""), key)
        params = sorted(parse_qsl(body.decode(), keep_blank_values=True))
        if slot in self._answers:
            first_params, answer = self._answers[slot]
            if first_params != params:
                return _stripe_error(
                    400,
                    "idempotency_error",
                    f"Keys for idempotent requests can only be used with the same "
                    f"parameters they were first used with. Try using a key other than "
                    f"'{key}' if you meant to execute a different request.",
                )
            return answer
        if slot in self._running:
            return _stripe_error(
                409,
                "idempotency_error",
                "There is currently another in-progress request using this "
                "Idempotent Key (that probably means you submitted twice, and the other "
                "request is still going through).",
            )
        self._running.add(slot)
        try:
            answer = await self._forward(scope, headers, body)
        finally:
            self._running.discard(slot)
        self._answers[slot] = (params, answer)
        return answer

    async def _forward(
        self, scope: dict[str, Any], headers: list[tuple[str, str]], body: bytes
    ) -> Answer:
        assert self._http is not None
        query = scope.get("query_string", b"").decode("latin-1")
        r = await self._http.request(
            scope["method"],
            scope["path"] + (f"?{query}" if query else ""),
            headers=headers,
            content=body,
        )
        return Answer(r.status_code, r.headers.get("content-type", "application/json"), r.content)

    async def _answer(self, fault: Fault | None, answer: Answer, receive: Any, send: Any) -> None:
        if fault is Fault.ERROR:
            answer = _stripe_error(500, "api_error", "An unknown error occurred")
        elif fault is Fault.DELAY:
            try:
                await asyncio.wait_for(_client_gone(receive), self.delay_seconds)
                return
            except TimeoutError:
                pass
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", answer.content_type.encode()),
                    (b"content-length", str(len(answer.body)).encode()),
                ],
            }
        )
        if fault is Fault.DROP:
            raise AnswerLost()
        await send({"type": "http.response.body", "body": answer.body})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._http = httpx.AsyncClient(base_url=self.upstream, timeout=30)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._http is not None:
                    await self._http.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _client_gone(receive: Any) -> None:
    """Wait until the client disconnects (its request was read in full)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _stripe_error(status: int, kind: str, message: str) -> Answer:
    body = httpx.Response(status, json={"error": {"type": kind, "message": message}}).content
    return Answer(status, "application/json", body)


@contextmanager
def running_proxy(upstream: str, *, delay_seconds: float = 5.0) -> Iterator[StripeProxy]:
    """A ``StripeProxy`` in front of ``upstream``, served on a free loopback port."""
    proxy = StripeProxy(upstream, delay_seconds=delay_seconds)
    port = free_port()
    proxy.url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(
        proxy,
        host="127.0.0.1",
        port=port,
        log_level="critical",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="stripe-proxy", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the Stripe proxy did not start")
        time.sleep(0.02)
    try:
        yield proxy
    finally:
        server.should_exit = True
        thread.join(timeout=10)
