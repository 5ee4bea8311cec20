"""p-chart, Pareto, first-pass yield and time buckets against hand-computed numbers."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from qc import spc

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)


def test_p_chart_hand_computed():
    # n = 100, 50, 200; d = 4, 6, 2 -> p̄ = 12/350
    center, points = spc.p_chart([(T0, 100, 4), (T0, 50, 6), (T0, 200, 2)])
    assert center == pytest.approx(12 / 350)
    pbar = 12 / 350
    for point, n in zip(points, (100, 50, 200)):
        half = 3 * math.sqrt(pbar * (1 - pbar) / n)
        assert point.ucl == pytest.approx(pbar + half)
        assert point.lcl == pytest.approx(max(0.0, pbar - half))
    # UCL for n=50: 0.034286 + 3*sqrt(0.034286*0.965714/50) = 0.111486 -> 6/50 = 0.12 is out
    assert points[1].ucl == pytest.approx(0.111486, abs=1e-6)
    assert [p.out_of_control for p in points] == [False, True, False]
    assert points[0].lcl == 0.0  # floored: 0.034286 - 0.054589 < 0


def test_p_chart_lower_limit_and_cap():
    center, points = spc.p_chart([(T0, 1000, 500), (T0, 1000, 380), (T0, 1, 1)])
    assert center == pytest.approx(881 / 2001)
    assert points[1].lcl > 0 and points[1].out_of_control  # 0.38 below the LCL (~0.393)
    assert points[2].ucl == 1.0  # capped


def test_p_chart_skips_empty_groups_and_handles_nothing():
    assert spc.p_chart([]) == (0.0, [])
    assert spc.p_chart([(T0, 0, 0)]) == (0.0, [])
    center, points = spc.p_chart([(T0, 0, 0), (T0, 10, 0)])
    assert center == 0.0 and len(points) == 1 and points[0].ucl == 0.0
    with pytest.raises(ValueError):
        spc.control_limits(0.1, 0)


def test_pareto_orders_and_accumulates():
    rows = spc.pareto({"stain": 3, "scratch": 5, None: 1, "": 1, "dent": 0})
    assert [(r["defect_type"], r["count"]) for r in rows] == [
        ("scratch", 5), ("stain", 3), ("unspecified", 2)]
    assert [r["share"] for r in rows] == [0.5, 0.3, 0.2]
    assert [r["cumulative_share"] for r in rows] == [0.5, 0.8, 1.0]
    assert spc.pareto({}) == []


def test_first_pass_yield():
    assert spc.first_pass_yield(88, 100) == 0.88
    assert spc.first_pass_yield(0, 0) is None


BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("utc", "bucket", "expected"),
    [
        ("2026-03-04T09:35:00", "hour", "2026-03-04T10:00:00+01:00"),
        ("2026-03-04T22:59:00", "day", "2026-03-04T00:00:00+01:00"),
        ("2026-03-04T23:00:00", "day", "2026-03-05T00:00:00+01:00"),
        ("2026-03-04T09:35:00", "week", "2026-03-02T00:00:00+01:00"),  # Monday
        ("2026-03-04T05:00:00", "shift", "2026-03-04T06:00:00+01:00"),  # 06:00 local
        ("2026-03-04T04:59:00", "shift", "2026-03-03T22:00:00+01:00"),  # night of the 3rd
        ("2026-03-04T13:00:00", "shift", "2026-03-04T14:00:00+01:00"),
        ("2026-03-04T21:30:00", "shift", "2026-03-04T22:00:00+01:00"),
        ("2026-07-01T04:30:00", "shift", "2026-07-01T06:00:00+02:00"),  # summer time
    ],
)
def test_bucket_start_in_local_time(utc, bucket, expected):
    ts = datetime.fromisoformat(utc).replace(tzinfo=timezone.utc)
    assert spc.bucket_start(ts, bucket, BERLIN).isoformat() == expected


def test_bucket_start_refuses_naive_and_unknown():
    with pytest.raises(ValueError):
        spc.bucket_start(datetime(2026, 1, 1), "day", BERLIN)
    with pytest.raises(ValueError):
        spc.bucket_start(T0, "month", BERLIN)


def test_parse_shift_starts():
    assert spc.parse_shift_starts("22, 6,14") == (6, 14, 22)
    assert spc.parse_shift_starts(None) == (6, 14, 22)
    assert spc.parse_shift_starts("7,19") == (7, 19)
    for bad in ("6,24", "morning", ","):
        with pytest.raises(ValueError):
            spc.parse_shift_starts(bad)
    two = spc.bucket_start(datetime(2026, 1, 1, 3, tzinfo=timezone.utc), "shift", timezone.utc,
                           (7, 19))
    assert two == datetime(2025, 12, 31, 19, tzinfo=timezone.utc)
