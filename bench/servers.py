"""The two servers under test, as subprocesses on free loopback ports.

Ours is the real ``specops serve`` on a fresh SQLite database with one API key (REST,
GraphQL and stateless MCP); the baseline is ``bench.baseline_app`` (plain Starlette,
strawberry and the MCP SDK's servers). Both can be pinned to the same CPU with ``taskset``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.ops import KEY as OPS_KEY

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
SERVER_CPU = 1
CLIENT_CPU = 0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The benchmark cannot produce trustworthy figures."""


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def can_pin() -> bool:
    """Whether the server and wrk can each get a CPU of their own."""
    if shutil.which("taskset") is None:
        return False
    return {CLIENT_CPU, SERVER_CPU} <= os.sched_getaffinity(0)


def pinned(command: Sequence[str], cpu: int | None) -> list[str]:
    """``command`` prefixed with ``taskset -c cpu`` when a CPU is given."""
    return [*(["taskset", "-c", str(cpu)] if cpu is not None else []), *command]


@dataclass
class ServerProcess:
    """A running server: its base URL, process and log file."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float | None:
        """User plus system CPU time of the server process (all its threads), if readable."""
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 10 seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _start(name: str, command: list[str], env: dict[str, str], log_path: Path) -> ServerProcess:
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*command, "--host", HOST, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(name, f"http://{HOST}:{port}", proc, log_path)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: ServerProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(
                f"{server.name} exited with {server.proc.returncode} before answering:\n"
                + server.log_tail()
            )
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{server.name} did not answer within {timeout:g}s")


def mcp_settings() -> dict[str, str]:
    """Stateless MCP (no ``initialize``, no session: one POST per call), answering JSON
    instead of an SSE stream."""
    return {"SPECOPS_MCP_STATELESS": "true", "SPECOPS_MCP_JSON_RESPONSE": "true"}


def ours_env(workdir: Path) -> dict[str, str]:
    """The environment of every ``specops`` command the benchmark runs: default settings
    (no inherited ``SPECOPS_*``) on a fresh database, JSON logs at warning level, stateless
    MCP."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("SPECOPS_")}
    return {
        **inherited,
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        "SPECOPS_LOG_FORMAT": "json",
        "SPECOPS_LOG_LEVEL": "warning",
        "SPECOPS_EXTRA_OPERATIONS": "bench.ops:install",
        **mcp_settings(),
    }


def _specops(args: Sequence[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "specops.cli", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"specops {' '.join(args)} failed:\n{done.stderr.strip()}")
    return done.stdout


def prepare_database(env: dict[str, str], tenant: str, user: str) -> str:
    """Migrate the benchmark database and create an API key; returns its token."""
    _specops(["db", "upgrade"], env)
    out = _specops(["keys", "create", "--tenant", tenant, "--user", user, "--role", "user"], env)
    # The benchmark's own command (bench.ops) is granted to the key's role.
    grant = ["--tenant", tenant, "--role", "user", "--resource", "op", "--action", OPS_KEY]
    _specops(["policy", "grant", *grant], env)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    if not lines or not lines[-1].startswith("sk_"):
        raise BenchError(f"keys create printed no token: {out!r}")
    return lines[-1]


def start_ours(workdir: Path, env: dict[str, str], cpu: int | None) -> ServerProcess:
    """``specops serve`` on a free port."""
    command = pinned([sys.executable, "-m", "specops.cli", "serve"], cpu)
    return _start("ours", command, env, workdir / "ours.log")


def start_no_policy(workdir: Path, env: dict[str, str], cpu: int | None) -> ServerProcess:
    """Our server without the policy check (``bench.no_policy_app``), on our database and
    settings, on a free port."""
    command = pinned([sys.executable, "-m", "bench.no_policy_app"], cpu)
    return _start("no-policy", command, env, workdir / "no-policy.log")


def start_no_audit(workdir: Path, env: dict[str, str], cpu: int | None) -> ServerProcess:
    """Our server with auditing off (``bench.no_audit_app``), on our database and
    settings, on a free port."""
    command = pinned([sys.executable, "-m", "bench.no_audit_app"], cpu)
    return _start("no-audit", command, env, workdir / "no-audit.log")


def start_fastapi(workdir: Path, cpu: int | None) -> ServerProcess:
    """The FastAPI reference app (``bench.fastapi_app``) on a free port."""
    command = pinned([sys.executable, "-m", "bench.fastapi_app"], cpu)
    return _start("fastapi", command, dict(os.environ), workdir / "fastapi.log")


def start_baseline(workdir: Path, cpu: int | None) -> ServerProcess:
    """The baseline app on a free port."""
    command = pinned([sys.executable, "-m", "bench.baseline_app"], cpu)
    return _start("baseline", command, dict(os.environ), workdir / "baseline.log")
