"""Start and stop real server processes on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@dataclass
class Running:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_localstripe(tmp: Path) -> Running:
    port = free_port()
    log_path = tmp / "localstripe.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.localstripe_server", "--port", str(port)],
        cwd=ROOT,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/v1/customers", proc)
    return Running(url, proc, log_path)


def start_specops(tmp: Path, env: dict[str, str], factory: str | None = None) -> Running:
    """``specops serve`` on a free port, its environment ``env`` over this one's; or, given
    ``factory`` (``module:function``), ``uvicorn --factory`` serving that app instead (which,
    unlike ``serve``, does not migrate the database)."""
    port = free_port()
    log_path = tmp / f"specops-{port}.log"
    full_env = {**os.environ, "SPECOPS_LOG_FORMAT": "json", **env}
    where = ("--host", "127.0.0.1", "--port", str(port))
    if factory is None:
        command = [sys.executable, "-m", "specops.cli", "serve", *where]
    else:
        uvicorn = ("-m", "uvicorn", "--factory", factory, "--log-level", "warning")
        command = [sys.executable, *uvicorn, *where, "--no-access-log"]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=full_env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/healthz", proc, timeout=60)
    return Running(url, proc, log_path)
