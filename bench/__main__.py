"""``python -m bench``: throughput of our pipeline against baselines without it.

Starts ``specops serve`` (fresh SQLite database, one API key, stateless MCP) and the
baseline app as subprocesses on 127.0.0.1, checks one request of each scenario, then runs
wrk after a warm-up in interleaved rounds: in each round every scenario's ours then its
baseline, so that ratios across scenarios (our GraphQL over our REST...) compare figures
measured side by side too. Prints the median requests/second and server CPU time per
request of each side and their ratios. Both servers are stopped on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import servers, wrk
from bench.report import CrossResult, Run, ScenarioResult, cross, fmt, table
from bench.scenarios import (
    BASELINE,
    FASTAPI,
    NO_AUDIT,
    NO_POLICY,
    OURS,
    Scenario,
    Target,
    comparisons,
    preflight,
    response_mode,
    scenarios,
)
from bench.servers import BenchError, ServerProcess

SETTLE_SECONDS = 0.5
SCENARIO_NAMES = tuple(s.name for s in scenarios(""))


@dataclass(frozen=True)
class Options:
    duration: int
    warmup: int
    connections: int
    threads: int
    rounds: int
    pin: bool
    as_json: bool
    scenarios: tuple[str, ...] = SCENARIO_NAMES


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Throughput of our full pipeline (REST, GraphQL, MCP) against baselines "
        "without it (plain Starlette, strawberry, the MCP SDK), as ratios (ours / baseline).",
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
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIO_NAMES),
        help=f"comma-separated subset to run (default: all of {','.join(SCENARIO_NAMES)})",
    )
    args = parser.parse_args(argv)
    chosen = tuple(dict.fromkeys(n.strip() for n in args.scenarios.split(",") if n.strip()))
    unknown = [n for n in chosen if n not in SCENARIO_NAMES]
    if unknown or not chosen:
        parser.error(
            f"--scenarios: unknown {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(SCENARIO_NAMES)}"
        )
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
        tuple(n for n in SCENARIO_NAMES if n in chosen),
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
            errors = f" or matched {request.error_pattern!r}" if request.error_pattern else ""
            raise BenchError(
                f"{server.name} {request.path}: {result.unexpected} of {result.requests} "
                f"answers were not {request.expected_status}{errors} "
                f"(e.g. {result.last_unexpected_status}); the run is not comparable"
            )
        if result.socket_errors:
            progress(f"  warning: {result.socket_errors} socket errors ({server.name})")
        cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        return Run(result, duration, cpu)

    def sides(
        self, scenario: Scenario, result: ScenarioResult, running: Mapping[str, ServerProcess]
    ) -> list[tuple[ServerProcess, Target, list[Run]]]:
        return [
            (running[scenario.ours_server], scenario.ours, result.ours.runs),
            (running[scenario.baseline_server], scenario.baseline, result.baseline.runs),
        ]

    def measure(
        self, plan: list[tuple[Scenario, ScenarioResult]], running: Mapping[str, ServerProcess]
    ) -> None:
        """Warm every side up, then alternate measured runs, round by round: in each round
        every scenario's ours, then its baseline."""
        if self.options.warmup:
            for scenario, result in plan:
                for server, target, _ in self.sides(scenario, result, running):
                    progress(f"{scenario.name}: warm-up {server.name} ({self.options.warmup}s)")
                    self.once(server, target, self.options.warmup)
        for n in range(1, self.options.rounds + 1):
            for scenario, result in plan:
                for server, target, runs in self.sides(scenario, result, running):
                    run = self.once(server, target, self.options.duration)
                    runs.append(run)
                    progress(
                        f"{scenario.name}: round {n}/{self.options.rounds} {server.name}: "
                        f"{run.wrk.requests_per_sec:,.0f} req/s, "
                        f"{fmt(run.cpu_us_per_request, ',.0f')} cpu us/req, server busy "
                        f"{fmt(run.server_busy, '.0%')}"
                    )


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
    running: dict[str, ServerProcess] = {}
    try:
        chosen = [s for s in scenarios(token) if s.name in options.scenarios]
        # Each server is started only when a chosen scenario measures it.
        starters: dict[str, Callable[[], ServerProcess]] = {
            OURS: lambda: servers.start_ours(workdir, env, server_cpu),
            BASELINE: lambda: servers.start_baseline(workdir, server_cpu),
            NO_POLICY: lambda: servers.start_no_policy(workdir, env, server_cpu),
            NO_AUDIT: lambda: servers.start_no_audit(workdir, env, server_cpu),
            FASTAPI: lambda: servers.start_fastapi(workdir, server_cpu),
        }
        needed = {s.ours_server for s in chosen} | {s.baseline_server for s in chosen}
        for name, start in starters.items():
            if name in needed:
                running[name] = start()
        progress("; ".join(f"{s.name}: {s.url} (pid {s.pid})" for s in running.values()))
        plan: list[tuple[Scenario, ScenarioResult]] = []
        for scenario in chosen:
            result = ScenarioResult(scenario.name, scenario.description, scenario.target)
            for server, target, side in [
                (running[scenario.ours_server], scenario.ours, "ours"),
                (running[scenario.baseline_server], scenario.baseline, "baseline"),
            ]:
                answer = preflight(server.url, target)
                if scenario.name.startswith("mcp"):
                    result.modes[side] = response_mode(answer)
            plan.append((scenario, result))
        Runner(options, workdir, client_cpu).measure(plan, running)
        return [result for _, result in plan]
    finally:
        for server in reversed(running.values()):
            server.stop()
        progress(f"load average after: {load_average()}")


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def cross_results(results: list[ScenarioResult]) -> list[CrossResult]:
    """The ratios across scenarios whose scenarios both ran."""
    found = (
        cross(results, c.label, (c.scenario, c.side), (c.reference, c.reference_side), c.target)
        for c in comparisons()
    )
    return [c for c in found if c is not None]


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
    across = cross_results(results)
    print(table(results, across), file=sys.stderr if options.as_json else sys.stdout)
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
                "scenarios": list(options.scenarios),
            },
            "scenarios": [r.as_dict() for r in results],
            "across_scenarios": [c.as_dict() for c in across],
        }
        print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
