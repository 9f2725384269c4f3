"""Run localstripe on 127.0.0.1 only (its own CLI listens on every interface)."""

from __future__ import annotations

import argparse

from aiohttp import web
from localstripe.server import app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
