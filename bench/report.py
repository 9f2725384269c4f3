"""Medians, ratios and their presentation as a table or JSON."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.wrk import WrkResult

#: Below this share of one CPU the server was starved (by other processes), not saturated.
BUSY_WARNING = 0.9


@dataclass(frozen=True)
class Run:
    """One measured wrk run, with the server's CPU time over it."""

    wrk: WrkResult
    duration: int
    cpu_seconds: float | None

    @property
    def cpu_us_per_request(self) -> float | None:
        if self.cpu_seconds is None or not self.wrk.requests:
            return None
        return self.cpu_seconds / self.wrk.requests * 1e6

    @property
    def server_busy(self) -> float | None:
        """The server's CPU time as a share of the run's duration (1.0 = one full CPU)."""
        return None if self.cpu_seconds is None else self.cpu_seconds / self.duration

    def as_dict(self) -> dict[str, Any]:
        cpu = self.cpu_us_per_request
        busy = self.server_busy
        return {
            **self.wrk.as_dict(),
            "server_cpu_us_per_request": None if cpu is None else round(cpu, 1),
            "server_busy": None if busy is None else round(busy, 3),
        }


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


@dataclass
class Side:
    """Every measured round of one server in one scenario."""

    runs: list[Run] = field(default_factory=list)

    @property
    def median_rps(self) -> float:
        return statistics.median(r.wrk.requests_per_sec for r in self.runs) if self.runs else 0.0

    @property
    def median_cpu_us(self) -> float | None:
        return _median([r.cpu_us_per_request for r in self.runs])

    @property
    def min_busy(self) -> float | None:
        known = [r.server_busy for r in self.runs if r.server_busy is not None]
        return min(known) if known else None

    def as_dict(self) -> dict[str, Any]:
        cpu = self.median_cpu_us
        return {
            "median_rps": round(self.median_rps, 2),
            "median_server_cpu_us_per_request": None if cpu is None else round(cpu, 1),
            "rounds": [r.as_dict() for r in self.runs],
        }


@dataclass
class ScenarioResult:
    """Ours against the baseline in one scenario."""

    name: str
    description: str
    #: The ratio ours / baseline should reach.
    target: float
    ours: Side = field(default_factory=Side)
    baseline: Side = field(default_factory=Side)
    #: How the MCP endpoints answered (``json`` or ``sse``), for MCP scenarios.
    modes: dict[str, str] = field(default_factory=dict)

    def side(self, which: str) -> Side:
        """``ours`` or ``baseline``."""
        if which not in ("ours", "baseline"):
            raise ValueError(which)
        return self.ours if which == "ours" else self.baseline

    @property
    def ratio(self) -> float:
        """Our median requests/second over the baseline's."""
        base = self.baseline.median_rps
        return self.ours.median_rps / base if base else 0.0

    @property
    def cpu_ratio(self) -> float | None:
        """The baseline's CPU time per request over ours: the throughput ratio both would
        reach with a whole CPU each, whatever else the machine was running."""
        ours, base = self.ours.median_cpu_us, self.baseline.median_cpu_us
        return base / ours if ours and base else None

    def starved(self) -> bool:
        """Whether some run had the server well below one busy CPU."""
        busy = [b for b in (self.ours.min_busy, self.baseline.min_busy) if b is not None]
        return any(b < BUSY_WARNING for b in busy)

    def as_dict(self) -> dict[str, Any]:
        cpu_ratio = self.cpu_ratio
        return {
            "name": self.name,
            "description": self.description,
            "ours": self.ours.as_dict(),
            "baseline": self.baseline.as_dict(),
            **({"response_modes": self.modes} if self.modes else {}),
            "ratio": round(self.ratio, 3),
            "cpu_ratio": None if cpu_ratio is None else round(cpu_ratio, 3),
            "target_ratio": self.target,
            "meets_target": self.ratio >= self.target,
            "cpu_meets_target": None if cpu_ratio is None else cpu_ratio >= self.target,
            "server_starved": self.starved(),
        }


@dataclass(frozen=True)
class CrossResult:
    """One side of a scenario over one side of another, by requests/second and by CPU time
    per request (both measured in the same interleaved rounds)."""

    label: str
    numerator: str
    denominator: str
    ratio: float | None
    cpu_ratio: float | None
    target: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "cpu_ratio": None if self.cpu_ratio is None else round(self.cpu_ratio, 3),
            "target_ratio": self.target,
            "meets_target": None
            if self.target is None or self.ratio is None
            else self.ratio >= self.target,
        }


def cross(
    results: list[ScenarioResult],
    label: str,
    numerator: tuple[str, str],
    denominator: tuple[str, str],
    target: float | None = None,
) -> CrossResult | None:
    """``numerator`` over ``denominator``, each ``(scenario, side)``; None when either
    scenario did not run."""
    by_name = {r.name: r for r in results}
    if numerator[0] not in by_name or denominator[0] not in by_name:
        return None
    top = by_name[numerator[0]].side(numerator[1])
    bottom = by_name[denominator[0]].side(denominator[1])
    ratio = top.median_rps / bottom.median_rps if bottom.median_rps else None
    top_cpu, bottom_cpu = top.median_cpu_us, bottom.median_cpu_us
    cpu_ratio = bottom_cpu / top_cpu if top_cpu and bottom_cpu else None
    return CrossResult(label, "/".join(numerator), "/".join(denominator), ratio, cpu_ratio, target)


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _verdict(ratio: float | None, target: float | None) -> str:
    if target is None or ratio is None:
        return ""
    return "met" if ratio >= target else "NOT met"


def _align(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def table(results: list[ScenarioResult], comparisons: list[CrossResult] | None = None) -> str:
    """A fixed-width table: requests/second of each side, their ratio against the
    scenario's target, the same comparison by server CPU time per request; then the
    ratios across scenarios."""
    header = (
        "scenario",
        "ours rps",
        "baseline rps",
        "ratio",
        "target",
        "by rps",
        "ours cpu us/req",
        "baseline cpu us/req",
        "cpu ratio",
        "by cpu",
    )
    rows = [
        (
            r.name,
            f"{r.ours.median_rps:,.0f}",
            f"{r.baseline.median_rps:,.0f}",
            f"{r.ratio:.2f}",
            f"{r.target:.2f}",
            _verdict(r.ratio, r.target),
            fmt(r.ours.median_cpu_us, ",.0f"),
            fmt(r.baseline.median_cpu_us, ",.0f"),
            fmt(r.cpu_ratio, ".2f"),
            _verdict(r.cpu_ratio, r.target),
        )
        for r in results
    ]
    lines = _align(header, rows)
    modes = [
        f"{r.name}: {', '.join(f'{k} {v}' for k, v in r.modes.items())}" for r in results if r.modes
    ]
    if modes:
        lines.append("MCP response modes: " + "; ".join(modes))
    starved = [r.name for r in results if r.starved()]
    if starved:
        lines.append(
            f"note: in {', '.join(starved)} a server had less than {BUSY_WARNING:.0%} of a CPU "
            "in some run (other processes on the machine); the cpu ratio is the steadier figure"
        )
    if comparisons:
        cross_header = ("across scenarios", "ratio", "cpu ratio", "target", "by rps", "by cpu")
        cross_rows = [
            (
                c.label,
                fmt(c.ratio, ".2f"),
                fmt(c.cpu_ratio, ".2f"),
                fmt(c.target, ".2f") if c.target is not None else "",
                _verdict(c.ratio, c.target),
                _verdict(c.cpu_ratio, c.target),
            )
            for c in comparisons
        ]
        lines += ["", *_align(cross_header, cross_rows)]
    return "\n".join(lines)
