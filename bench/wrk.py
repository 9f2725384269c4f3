"""Running ``wrk`` with a generated Lua script, and reading its report."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.servers import BenchError, pinned

STATUS_LINE = "BENCH_STATUS"

_LUA = """\
wrk.method = {method}
wrk.body = {body}
{headers}
local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  expected = 0
  unexpected = 0
  last_unexpected = 0
end

function response(status, headers, body)
  if status == {status} and not {error_check} then
    expected = expected + 1
  else
    unexpected = unexpected + 1
    last_unexpected = status
  end
end

function done(summary, latency, requests)
  local e, u, last = 0, 0, 0
  for _, t in ipairs(threads) do
    e = e + t:get("expected")
    u = u + t:get("unexpected")
    if t:get("last_unexpected") ~= 0 then last = t:get("last_unexpected") end
  end
  io.write(string.format("{marker} expected=%d unexpected=%d last=%d\\n", e, u, last))
end
"""


@dataclass(frozen=True)
class WrkRequest:
    """What every request of a run sends, and the status each answer must have."""

    method: str
    path: str
    body: str
    headers: tuple[tuple[str, str], ...]
    expected_status: int
    #: A Lua pattern: an answer whose body matches it is unexpected whatever its status
    #: (GraphQL and MCP report errors in a 200 answer).
    error_pattern: str | None = None


@dataclass(frozen=True)
class WrkResult:
    """The figures of one wrk run."""

    requests_per_sec: float
    requests: int
    expected: int
    unexpected: int
    last_unexpected_status: int
    socket_errors: int
    latency_avg_ms: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "requests_per_sec": self.requests_per_sec,
            "requests": self.requests,
            "expected_status": self.expected,
            "unexpected_status": self.unexpected,
            "socket_errors": self.socket_errors,
            "latency_avg_ms": self.latency_avg_ms,
        }


def _lua_string(value: str) -> str:
    if "]==]" in value:
        raise ValueError("value would end the Lua long string")
    return f"[==[{value}]==]"


def lua_script(request: WrkRequest) -> str:
    """A wrk script sending ``request`` and counting answers by status (and, with an
    ``error_pattern``, by body)."""
    headers = "\n".join(
        f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in request.headers
    )
    return _LUA.format(
        method=_lua_string(request.method),
        body=_lua_string(request.body),
        headers=headers,
        status=request.expected_status,
        error_check=(
            "false"
            if request.error_pattern is None
            else f"(body ~= nil and string.find(body, {_lua_string(request.error_pattern)}) ~= nil)"
        ),
        marker=STATUS_LINE,
    )


def write_script(request: WrkRequest, path: Path) -> Path:
    path.write_text(lua_script(request))
    return path


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse(output: str, errors_text: str = "") -> WrkResult:
    """The figures of a wrk report (with our script's status line)."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"^\s*(\d+) requests in", output, re.M)
    status = re.search(rf"^{STATUS_LINE} expected=(\d+) unexpected=(\d+) last=(\d+)", output, re.M)
    if rps is None or total is None or status is None:
        raise BenchError(f"could not read the wrk report:\n{output}\n{errors_text}".rstrip())
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    latency = re.search(r"^\s*Latency\s+([\d.]+)(us|ms|s|m)\b", output, re.M)
    return WrkResult(
        requests_per_sec=float(rps.group(1)),
        requests=int(total.group(1)),
        expected=int(status.group(1)),
        unexpected=int(status.group(2)),
        last_unexpected_status=int(status.group(3)),
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        latency_avg_ms=float(latency.group(1)) * _UNITS_MS[latency.group(2)] if latency else 0.0,
    )


def run(
    url: str,
    script: Path,
    *,
    duration: int,
    connections: int,
    threads: int = 1,
    cpu: int | None = None,
) -> WrkResult:
    """One wrk run of ``duration`` seconds against ``url`` (loopback only)."""
    if not url.startswith("http://127.0.0.1:"):
        raise BenchError(f"refusing to load anything but 127.0.0.1: {url}")
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed")
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    try:
        done = subprocess.run(
            pinned(command, cpu),
            capture_output=True,
            text=True,
            timeout=duration + 30,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish: {' '.join(command)}") from exc
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse(done.stdout, done.stderr)
