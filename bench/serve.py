"""Serve a bench app factory with the uvicorn settings ``specops serve`` uses."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


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
