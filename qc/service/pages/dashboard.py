"""The manager's dashboard: KPIs, defect-rate trend, Pareto, p-chart and savings for a period.

The numbers are GET /api/v1/stats computed once on the server (KPIs rendered as HTML, so the
page reads without JavaScript) and embedded as JSON for the charts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, current_app, render_template, request

from qc import spc
from qc.service import stats
from qc.service.database import get_session
from qc.service.errors import ServiceError
from qc.service.pages import series
from qc.service.pages.common import page_roles, products, stations

log = logging.getLogger(__name__)

bp = Blueprint("dashboard", __name__)
DEFAULT_DAYS = {"hour": 2, "shift": 14, "day": 30, "week": 182}  # the span a bucket reads well at


@dataclass
class Period:
    """The dashboard's filters: whole local days from `first` to `last`, inclusive."""

    first: date
    last: date
    bucket: str = "day"
    product: str = ""
    station: str = ""

    @classmethod
    def from_args(cls, args: Any, today: date) -> Period:
        """From the filter form; unreadable dates raise ServiceError."""
        bucket = args.get("bucket") or "day"
        if bucket not in spc.BUCKETS:
            raise ServiceError(f"bucket must be one of {', '.join(spc.BUCKETS)}")
        try:
            last = date.fromisoformat(args["to"]) if args.get("to") else today
            first = (
                date.fromisoformat(args["from"])
                if args.get("from")
                else last - timedelta(days=DEFAULT_DAYS[bucket] - 1)
            )
        except (ValueError, OverflowError):
            raise ServiceError("dates must look like 2026-03-31, from 1970 on") from None
        if first.year < 1970 or last.year >= 9000:
            raise ServiceError("dates must lie between 1970 and 9000")
        if first > last:
            raise ServiceError("the first day must not be after the last day")
        return cls(first, last, bucket, args.get("product", ""), args.get("station", ""))

    def stats_args(self) -> dict[str, str]:
        """Query arguments of GET /api/v1/stats for this period (the end is exclusive)."""
        args = {
            "from": self.first.isoformat(),
            "to": (self.last + timedelta(days=1)).isoformat(),
            "bucket": self.bucket,
        }
        return {**args, **{k: v for k, v in (("product", self.product),
                                              ("station", self.station)) if v}}


def _today() -> date:
    return datetime.now(ZoneInfo(current_app.config["TIMEZONE"])).date()


def _period_and_stats(db: Any) -> tuple[Period, dict, stats.StatsRequest, str | None]:
    """The asked-for period and its stats, or the default period and an error message."""
    config = current_app.config
    try:
        period = Period.from_args(request.args, _today())
        req = stats.parse_request(db, period.stats_args(), config)
        error = None
    except ServiceError as exc:
        period, error = Period.from_args({}, _today()), exc.message
        req = stats.parse_request(db, period.stats_args(), config)
    return period, stats.compute(db, req, config["REVIEW_PRIOR_WEIGHT"]), req, error


@bp.get("/dashboard")
@page_roles("manager", "engineer")
def page() -> Any:
    """KPIs and charts for the filtered period."""
    db = get_session()
    period, numbers, req, error = _period_and_stats(db)
    labels = [p["bucket"] for p in numbers["p_chart"]["points"]]
    charts = {
        "stats": numbers,
        "stats_args": period.stats_args(),
        "trend": series.station_trend(db, req, labels),
        "savings": series.savings_over_time(
            db, req, labels, current_app.config["REVIEW_PRIOR_WEIGHT"]
        ),
    }
    out_of_control = sum(p["out_of_control"] for p in numbers["p_chart"]["points"])
    return render_template(
        "dashboard.html",
        period=period,
        buckets=spc.BUCKETS,
        products=[p.name for p in products(db)],
        stations=[s.name for s in stations(db)],
        s=numbers,
        charts=charts,
        out_of_control=out_of_control,
        error=error,
    )


@bp.app_template_filter("pct")
def pct(value: float | None, digits: int = 1) -> str:
    """0.0342 -> '3.4 %'; None -> '–'."""
    return "–" if value is None else f"{value * 100:.{digits}f} %"


@bp.app_template_filter("money")
def money(value: float | None) -> str:
    """12345.6 -> '12,345.60'; None -> '–'."""
    return "–" if value is None else f"{value:,.2f}"


def init_app(app: Flask) -> None:
    """Register the dashboard."""
    app.register_blueprint(bp)
