"""FastAPI doing only what the plain Starlette baseline does: the issue's reference point.

Issue 2 states its REST target against this figure: FastAPI, validating the same input
alone, reaches about 0.55 of the plain Starlette endpoint, and our full pipeline should
reach 0.70. Measuring FastAPI in the same run tells how this machine compares with the
one that figure came from. ``/ping`` and ``/capture`` validate the models our contracts
use, as ``bench.baseline_app``'s endpoints do, and FastAPI answers its own 422 on invalid
input. No OpenAPI or docs routes; ``/healthz`` tells the benchmark it is up. Served by
uvicorn exactly as ``specops serve`` serves our app (factory, one worker, log level
warning, no access log).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from bench import BENCH_ACTOR
from bench.serve import serve_factory
from specs.billing.capture_payment import CapturePaymentInput
from specs.system.ping import PingInput, PingOutput


def create_app() -> FastAPI:
    """The ASGI app for ``uvicorn --factory bench.fastapi_app:create_app``."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/ping")
    async def ping(body: PingInput) -> PingOutput:
        return PingOutput(message=body.message, actor_id=BENCH_ACTOR, tenant_id=BENCH_ACTOR)

    @app.post("/capture")
    async def capture(body: CapturePaymentInput) -> dict[str, str]:
        return {"invoiceId": body.invoice_id, "status": "accepted"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Serve it with the uvicorn settings ``specops serve`` uses."""
    serve_factory("bench.fastapi_app:create_app", __doc__, argv)


if __name__ == "__main__":
    main()
