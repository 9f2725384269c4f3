"""Our server with auditing off: the baseline of the ``audit-command`` scenario.

The very app ``specops serve`` builds, except that the pipeline's audit sink drops every
record (no structlog line, no table row). Never a production configuration: it exists so
that the benchmark can report audited throughput against unaudited in the same run.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette

from bench.serve import serve_factory, server_app
from registry.audit_record import AuditRecord
from specops.app import Server


class NoAudit:
    """An ``AuditSink`` that keeps nothing and is always available."""

    async def write(
        self,
        record: AuditRecord,
        *,
        durable: bool,
        wait: bool = False,
        closes: str | None = None,
    ) -> None:
        return None

    async def record_attempt(self, record: AuditRecord) -> str:
        return ""

    async def available(self) -> bool:
        return True


def create_app() -> Starlette:
    """The ASGI app for ``uvicorn --factory bench.no_audit_app:create_app``."""

    def without_audit(server: Server) -> None:
        server.pipeline.recorder.audit = NoAudit()

    return server_app(without_audit)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve it with the uvicorn settings ``specops serve`` uses."""
    serve_factory("bench.no_audit_app:create_app", __doc__, argv)


if __name__ == "__main__":
    main()
