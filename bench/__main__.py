"""``python -m bench``: REST throughput of our pipeline against a plain Starlette endpoint.

Starts ``specops serve`` (fresh SQLite database, one API key) and the baseline app as
subprocesses on 127.0.0.1, checks one request of each scenario, then runs wrk in
interleaved rounds (ours, baseline, ours, baseline...) after a warm-up, and prints the
median requests/second of each side and their ratio. Both servers are stopped on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import servers, wrk
from bench.report import Run, ScenarioResult, Side, fmt, table
from bench.scenarios import Scenario, Target, preflight, scenarios
from bench.servers import BenchError, ServerProcess

TARGET_RATIO = 0.7
SETTLE_SECONDS = 0.5


@dataclass(frozen=True)
class Options:
    duration: int
    warmup: int
    connections: int
    threads: int
    rounds: int
    pin: bool
    as_json: bool


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="REST throughput of our full pipeline against a plain Starlette endpoint, "
        "as ratios (ours / baseline).",
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per server")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per server")
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="do not pin with taskset"
    )
    parser.add_argument(
        "--json",
        dest="as_json",
        action="store_true",
        help="print the results as JSON on stdout (the table then goes to stderr)",
    )
    args = parser.parse_args(argv)
    if args.duration < 1 or args.warmup < 0 or args.rounds < 1:
        parser.error("--duration and --rounds must be at least 1, --warmup at least 0")
    if args.connections < args.threads or args.threads < 1:
        parser.error("--connections must be at least --threads, which must be at least 1")
    return Options(
        args.duration,
        args.warmup,
        args.connections,
        args.threads,
        args.rounds,
        args.pin,
        args.as_json,
    )


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    return " ".join(f"{n:.2f}" for n in os.getloadavg())


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Runner:
    """Runs wrk against one server for one target, checking every answer's status."""

    def __init__(self, options: Options, scripts: Path, client_cpu: int | None) -> None:
        self.options = options
        self.scripts = scripts
        self.client_cpu = client_cpu

    def once(self, server: ServerProcess, target: Target, duration: int) -> Run:
        """One wrk run, then a short pause so trailing work (audit rows) is counted too."""
        request = target.request
        name = f"{server.name}-{request.path.strip('/').replace('/', '_')}.lua"
        script = wrk.write_script(request, self.scripts / name)
        cpu_before = server.cpu_seconds()
        result = wrk.run(
            server.url + request.path,
            script,
            duration=duration,
            connections=self.options.connections,
            threads=self.options.threads,
            cpu=self.client_cpu,
        )
        time.sleep(SETTLE_SECONDS)
        cpu_after = server.cpu_seconds()
        if server.proc.poll() is not None:
            raise BenchError(f"{server.name} exited during the run:\n{server.log_tail()}")
        if result.expected == 0 or result.unexpected:
            raise BenchError(
                f"{server.name} {request.path}: {result.unexpected} of {result.requests} "
                f"answers were not {request.expected_status} "
                f"(e.g. {result.last_unexpected_status}); the run is not comparable"
            )
        if result.socket_errors:
            progress(f"  warning: {result.socket_errors} socket errors ({server.name})")
        cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        return Run(result, duration, cpu)

    def scenario(
        self, scenario: Scenario, ours: ServerProcess, baseline: ServerProcess
    ) -> ScenarioResult:
        """Warm both up, then alternate measured runs: ours, baseline, ours, baseline..."""
        result = ScenarioResult(scenario.name, scenario.description)
        sides: list[tuple[ServerProcess, Target, Side]] = [
            (ours, scenario.ours, result.ours),
            (baseline, scenario.baseline, result.baseline),
        ]
        if self.options.warmup:
            for server, target, _ in sides:
                progress(f"{scenario.name}: warm-up {server.name} ({self.options.warmup}s)")
                self.once(server, target, self.options.warmup)
        for n in range(1, self.options.rounds + 1):
            for server, target, side in sides:
                run = self.once(server, target, self.options.duration)
                side.runs.append(run)
                progress(
                    f"{scenario.name}: round {n}/{self.options.rounds} {server.name}: "
                    f"{run.wrk.requests_per_sec:,.0f} req/s, server busy "
                    f"{fmt(run.server_busy, '.0%')}"
                )
        return result


def benchmark(options: Options, workdir: Path) -> list[ScenarioResult]:
    """Start both servers, measure every scenario, and stop the servers again."""
    pin = options.pin and servers.can_pin()
    server_cpu = servers.SERVER_CPU if pin else None
    client_cpu = servers.CLIENT_CPU if pin else None
    progress(
        f"pinning: server on CPU {server_cpu}, wrk on CPU {client_cpu}" if pin else "pinning: off"
    )
    env = servers.ours_env(workdir)
    token = servers.prepare_database(env, tenant="bench", user="bench")
    running: list[ServerProcess] = []
    try:
        ours = servers.start_ours(workdir, env, server_cpu)
        running.append(ours)
        baseline = servers.start_baseline(workdir, server_cpu)
        running.append(baseline)
        progress(
            f"ours: {ours.url} (pid {ours.pid}); baseline: {baseline.url} (pid {baseline.pid})"
        )
        plan = scenarios(token)
        for scenario in plan:
            preflight(ours.url, scenario.ours)
            preflight(baseline.url, scenario.baseline)
        runner = Runner(options, workdir, client_cpu)
        return [runner.scenario(scenario, ours, baseline) for scenario in plan]
    finally:
        for server in reversed(running):
            server.stop()
        progress(f"load average after: {load_average()}")


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the servers are stopped on the way out.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        with tempfile.TemporaryDirectory(prefix="specops-bench-") as tmp:
            results = benchmark(options, Path(tmp))
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    print(table(results, TARGET_RATIO), file=sys.stderr if options.as_json else sys.stdout)
    if options.as_json:
        document = {
            "settings": {
                "duration_s": options.duration,
                "warmup_s": options.warmup,
                "connections": options.connections,
                "threads": options.threads,
                "rounds": options.rounds,
                "pinned": options.pin and servers.can_pin(),
                "load_average_after": load_average(),
            },
            "target_ratio": TARGET_RATIO,
            "scenarios": [r.as_dict(TARGET_RATIO) for r in results],
        }
        print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
