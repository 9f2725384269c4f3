"""Serving the bench apps: our server with a part replaced, by uvicorn as ``specops serve`` does."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from starlette.applications import Starlette

from specops.app import Server, freeze_startup_objects
from specops.logging import configure_logging
from specops.settings import Settings


def server_app(adjust: Callable[[Server], None]) -> Starlette:
    """The app ``specops serve`` builds (same settings, logging and database), after
    ``adjust`` replaced a part of its server (an allow-all authorizer, say)."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)  # as the specops CLI does
    server = Server.build(settings)
    adjust(server)
    app = server.asgi()
    freeze_startup_objects()  # as specops.app:create_app does
    return app


def serve_factory(factory: str, description: str | None, argv: Sequence[str] | None) -> None:
    """``python -m bench.<app> --host H --port P``: one worker, warnings only, no access log."""
    import uvicorn

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        factory,
        factory=True,
        host=args.host,
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,
    )
