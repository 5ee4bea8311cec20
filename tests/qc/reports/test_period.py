"""The report's own arithmetic over the p-chart: months, episodes, periods asked for."""

from __future__ import annotations

from datetime import date

import pytest

from qc.reports.period import MAX_DAYS, ReportPeriod, months, stability
from qc.service.errors import ServiceError


def _point(day: str, n: int, d: int, ucl: float, out: bool, center: float = 0.05) -> dict:
    return {"bucket": f"{day}T00:00:00+01:00", "n": n, "defective": d, "p": d / n,
            "center": center, "ucl": ucl, "lcl": 0.0, "out_of_control": out}


POINTS = [
    _point("2026-01-30", 100, 4, 0.12, False),
    _point("2026-01-31", 100, 20, 0.12, True),
    _point("2026-02-01", 50, 15, 0.14, True),
    _point("2026-02-02", 100, 3, 0.12, False),
    _point("2026-02-03", 100, 25, 0.12, True),
]


def test_months_add_up_the_days():
    assert months(POINTS) == [
        {"month": "2026-01", "inspected": 200, "defective": 24, "defect_rate": 0.12,
         "first_pass_yield": 0.88, "days_out_of_control": 1},
        {"month": "2026-02", "inspected": 250, "defective": 43, "defect_rate": 0.172,
         "first_pass_yield": 0.828, "days_out_of_control": 2},
    ]


def test_episodes_join_consecutive_days_and_say_what_followed():
    out = stability(POINTS)
    assert (out["subgroups"], out["out_of_control"], out["center"]) == (5, 3, 0.05)
    first, last = out["episodes"]
    assert (first["first"][:10], first["last"][:10], first["subgroups"]) == (
        "2026-01-31", "2026-02-01", 2)
    assert first["direction"] == "above" and first["worst_p"] == 0.3
    assert first["then"] == {"bucket": POINTS[3]["bucket"], "p": 0.03, "in_control": True}
    assert last["subgroups"] == 1 and last["then"] is None  # still out at the end
    assert stability([]) == {"subgroups": 0, "out_of_control": 0, "center": None,
                             "episodes": []}


def test_a_period_is_whole_days_and_asks_stats_for_the_day_after():
    period = ReportPeriod.from_args({"from": "2026-03-01", "to": "2026-03-31",
                                     "product": " widget "})
    assert (period.first, period.last, period.product) == (date(2026, 3, 1),
                                                           date(2026, 3, 31), "widget")
    assert period.stats_args() == {"from": "2026-03-01", "to": "2026-04-01", "bucket": "day",
                                   "product": "widget"}
    assert ReportPeriod.from_args({"from": "2024-01-01", "to": "2024-12-31"}).product is None


@pytest.mark.parametrize("args, message", [
    ({"to": "2026-03-31"}, "give 'from'"),
    ({"from": "2026-03-01", "to": ""}, "give 'to'"),
    ({"from": "2026-02-30", "to": "2026-03-31"}, "must be a date"),
    ({"from": "yesterday", "to": "2026-03-31"}, "must be a date"),
    ({"from": "2026-03-01T00:00", "to": "2026-03-31"}, "must be a date"),
    ({"from": "20260301", "to": "2026-03-31"}, "must be a date"),
    ({"from": "2026-04-01", "to": "2026-03-31"}, "must not be after"),
    ({"from": "2000-01-01", "to": "2026-03-31"}, f"at most {MAX_DAYS} days"),
    ({"from": "0001-01-01", "to": "9999-12-31"}, f"at most {MAX_DAYS} days"),
])
def test_bad_periods_are_refused_with_what_to_fix(args, message):
    with pytest.raises(ServiceError, match=message) as caught:
        ReportPeriod.from_args(args)
    assert caught.value.status == 400
