"""Statistical process control for attribute data: p-chart, Pareto, first-pass yield, and the
time buckets (hour, shift, day, week) that form the chart's subgroups. Pure functions, no I/O.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

log = logging.getLogger(__name__)

BUCKETS = ("hour", "shift", "day", "week")
SIGMAS = 3.0  # Shewhart limits: a false alarm about 3 times in 1000 in-control subgroups
DEFAULT_SHIFT_STARTS = (6, 14, 22)  # 06-14, 14-22, 22-06 local time
UNSPECIFIED = "unspecified"  # Pareto label for failures without a defect type


@dataclass(frozen=True)
class PChartPoint:
    """One subgroup on a p-chart."""

    bucket: datetime
    n: int
    defective: int
    p: float
    center: float
    ucl: float
    lcl: float
    out_of_control: bool

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {
            "bucket": self.bucket.isoformat(),
            "n": self.n,
            "defective": self.defective,
            "p": round(self.p, 6),
            "center": round(self.center, 6),
            "ucl": round(self.ucl, 6),
            "lcl": round(self.lcl, 6),
            "out_of_control": self.out_of_control,
        }


def control_limits(center: float, n: int, sigmas: float = SIGMAS) -> tuple[float, float]:
    """(LCL, UCL) of a subgroup of size n: p̄ ± k·√(p̄(1−p̄)/n), floored at 0 and capped at 1."""
    if n <= 0:
        raise ValueError("a subgroup needs n > 0")
    half = sigmas * math.sqrt(center * (1.0 - center) / n)
    return max(0.0, center - half), min(1.0, center + half)


def p_chart(groups: list[tuple[datetime, int, int]]) -> tuple[float, list[PChartPoint]]:
    """p-chart of (bucket, n, defective) subgroups: centre p̄ = Σd/Σn, per-subgroup limits.

    Empty subgroups (n = 0) are left out. Returns (centre, points).
    """
    groups = [(b, n, d) for b, n, d in groups if n > 0]
    total_n = sum(n for _, n, _ in groups)
    if total_n == 0:
        return 0.0, []
    center = sum(d for _, _, d in groups) / total_n
    points = []
    for bucket, n, d in groups:
        lcl, ucl = control_limits(center, n)
        p = d / n
        points.append(PChartPoint(bucket, n, d, p, center, ucl, lcl, p > ucl or p < lcl))
    return center, points


def pareto(counts: dict[str | None, int]) -> list[dict]:
    """Defect types by count, largest first, with share and cumulative share of all defects."""
    merged: dict[str, int] = {}
    for name, count in counts.items():
        key = name or UNSPECIFIED
        merged[key] = merged.get(key, 0) + int(count)
    total = sum(merged.values())
    rows, running = [], 0
    for name, count in sorted(merged.items(), key=lambda kv: (-kv[1], kv[0])):
        if count <= 0:
            continue
        running += count
        rows.append(
            {
                "defect_type": name,
                "count": count,
                "share": round(count / total, 6),
                "cumulative_share": round(running / total, 6),
            }
        )
    return rows


def first_pass_yield(passed: int, inspected: int) -> float | None:
    """Passed / inspected; None when nothing was inspected."""
    return passed / inspected if inspected else None


def parse_shift_starts(text: str | None) -> tuple[int, ...]:
    """Parse '6,14,22' (local start hours of the shifts) into a sorted tuple."""
    if not text:
        return DEFAULT_SHIFT_STARTS
    try:
        hours = sorted({int(part) for part in str(text).split(",") if part.strip()})
    except ValueError as exc:
        raise ValueError(f"shift starts must be hours like '6,14,22', not {text!r}") from exc
    if not hours or any(h < 0 or h > 23 for h in hours):
        raise ValueError(f"shift starts must be hours 0..23, not {text!r}")
    return tuple(hours)


def bucket_start(
    ts: datetime, bucket: str, tz: tzinfo, shift_starts: tuple[int, ...] = DEFAULT_SHIFT_STARTS
) -> datetime:
    """Start of the bucket holding the aware datetime ts, as an aware local datetime.

    Days and ISO weeks (Monday) start at local midnight; a shift belongs to the day it starts
    on, so the 22-06 night shift that began on Monday is labelled Monday 22:00.
    """
    if ts.tzinfo is None:
        raise ValueError("bucket_start needs an aware datetime")
    local = ts.astimezone(tz)
    if bucket == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        return _local(local.date(), 0, tz)
    if bucket == "week":
        return _local(local.date() - timedelta(days=local.weekday()), 0, tz)
    if bucket == "shift":
        earlier = [h for h in shift_starts if h <= local.hour]
        if earlier:
            return _local(local.date(), earlier[-1], tz)
        return _local(local.date() - timedelta(days=1), shift_starts[-1], tz)
    raise ValueError(f"bucket must be one of {BUCKETS}, not {bucket!r}")


def _local(day: date, hour: int, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=tz)
