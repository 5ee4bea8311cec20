"""The period quality report's payload: GET /api/v1/stats for the period (the same numbers),
plus months, stability episodes, cost of quality, model performance and data integrity.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qc import economics
from qc.db.models import Product
from qc.reports import integrity
from qc.service import stats
from qc.service.errors import ServiceError

log = logging.getLogger(__name__)

KIND = "quality-report"
FORMAT = 1
MAX_DAYS = 366  # one year (a leap year included); longer periods: one report per year
BUCKET = "day"  # the p-chart's subgroups: days (a year is 366 points at most)


@dataclass(frozen=True)
class ReportPeriod:
    """Whole plant-local days from `first` to `last` (inclusive), optionally one product."""

    first: date
    last: date
    product: str | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> ReportPeriod:
        """From ?from=YYYY-MM-DD&to=YYYY-MM-DD[&product=]; bad input raises ServiceError."""
        days = []
        for name in ("from", "to"):
            text = str(args.get(name) or "").strip()
            if not text:
                raise ServiceError(f"give '{name}' as a date like 2026-03-31", 400)
            try:
                if len(text) != 10:
                    raise ValueError(text)
                days.append(date.fromisoformat(text))
            except ValueError:
                raise ServiceError(f"'{name}' must be a date like 2026-03-31, not {text!r}",
                                   400) from None
        first, last = days
        if first > last:
            raise ServiceError("'from' must not be after 'to'", 400)
        if (last - first).days + 1 > MAX_DAYS:
            raise ServiceError(f"a report covers at most {MAX_DAYS} days; ask for one year at "
                               "a time", 400)
        return cls(first, last, str(args.get("product") or "").strip() or None)

    def stats_args(self) -> dict[str, str]:
        """The GET /api/v1/stats query whose answer the report carries (the end is exclusive)."""
        args = {"from": self.first.isoformat(), "to": (self.last + timedelta(days=1)).isoformat(),
                "bucket": BUCKET}
        return {**args, "product": self.product} if self.product else args


def build(db: Session, period: ReportPeriod, config: Mapping[str, Any], issued_by: str,
          now: datetime) -> dict:
    """The report's payload (to be signed)."""
    req = stats.parse_request(db, period.stats_args(), config)
    numbers = stats.compute(db, req, config["REVIEW_PRIOR_WEIGHT"])
    points = numbers["p_chart"]["points"]
    return {
        "document": KIND,
        "format": FORMAT,
        "issued_at": now.isoformat(),
        "issued_by": issued_by,
        "period": {"first_day": period.first.isoformat(), "last_day": period.last.isoformat(),
                   "product": period.product, "timezone": str(req.tz)},
        "stats_query": period.stats_args(),
        "stats": numbers,
        "months": months(points),
        "stability": stability(points),
        "cost_of_quality": cost_of_quality(numbers["savings"]),
        "model_performance": model_performance(db, numbers["savings"]),
        "integrity": integrity.coverage(db, req),
        "model_changes": integrity.model_changes(db, req),
    }


def months(points: list[dict]) -> list[dict]:
    """Per local month: units, failed, defect rate, first-pass yield and days out of control
    (sums of the p-chart's days, so they add up to the period's totals)."""
    acc: dict[str, list[int]] = {}
    for point in points:
        row = acc.setdefault(point["bucket"][:7], [0, 0, 0])
        row[0] += point["n"]
        row[1] += point["defective"]
        row[2] += int(point["out_of_control"])
    return [
        {"month": month, "inspected": n, "defective": d, "defect_rate": round(d / n, 6),
         "first_pass_yield": round((n - d) / n, 6), "days_out_of_control": ooc}
        for month, (n, d, ooc) in sorted(acc.items())
    ]


def stability(points: list[dict]) -> dict:
    """Runs of consecutive out-of-control days, each with what followed it."""
    episodes, run = [], []
    for point in [*points, None]:
        if point is not None and point["out_of_control"]:
            run.append(point)
            continue
        if run:
            episodes.append(_episode(run, point))
            run = []
    return {
        "subgroups": len(points),
        "out_of_control": sum(p["out_of_control"] for p in points),
        "center": points[0]["center"] if points else None,
        "episodes": episodes,
    }


def _episode(run: list[dict], after: dict | None) -> dict:
    above = [p["p"] > p["ucl"] for p in run]
    direction = "above" if all(above) else ("below" if not any(above) else "both")
    worst = max(run, key=lambda p: abs(p["p"] - p["center"]))
    return {
        "first": run[0]["bucket"], "last": run[-1]["bucket"], "subgroups": len(run),
        "direction": direction, "worst_p": worst["p"], "worst_bucket": worst["bucket"],
        "then": ({"bucket": after["bucket"], "p": after["p"], "in_control": True}
                 if after is not None else None),
    }


def cost_of_quality(savings: dict) -> dict:
    """Per product: the cost of quality with qc by category and of manual inspection, totals."""
    rows = []
    for entry in savings["products"]:
        if entry.get("total") is None:
            continue
        a, n = entry["assumptions"], entry["units"]
        costs = economics.CostParams(**{k: a[k] for k in economics.DEFAULT_COSTS})
        parts = economics.qc_cost_parts(a["true_defect_rate"], a["recall"],
                                        a["false_reject_rate"], costs)
        rows.append({
            "product": entry["product"], "units": n,
            "with_qc": {k: round(v * n, 2) for k, v in parts.items()},
            "with_qc_total": round(entry["cost_qc_per_unit"] * n, 2),
            "manual_total": round(entry["cost_manual_per_unit"] * n, 2),
            "savings": entry["total"],
        })
    return {"products": rows,
            "with_qc_total": round(sum(r["with_qc_total"] for r in rows), 2),
            "manual_total": round(sum(r["manual_total"] for r in rows), 2),
            "savings": savings["total"]}


def model_performance(db: Session, savings: dict) -> list[dict]:
    """Validation and review-refined recall / false-reject rate with 95 % intervals."""
    out = []
    for entry in savings["products"]:
        a = entry.get("assumptions")
        if a is None:
            out.append({"product": entry["product"], "model_version": entry.get("model_version"),
                        "reason": entry.get("reason")})
            continue
        product = db.scalar(select(Product).where(Product.name == entry["product"]))
        counts = stats.review_counts(db, product.active_model.id)
        ranges = economics.rate_intervals(
            a["flagged_fraction"], a["validation_recall"], a["validation_false_reject_rate"],
            counts, a["review_prior_weight"])
        out.append({
            "product": entry["product"], "model_version": entry["model_version"],
            "validation": {"recall": a["validation_recall"],
                           "false_reject_rate": a["validation_false_reject_rate"]},
            "refined": {"recall": a["recall"], "false_reject_rate": a["false_reject_rate"],
                        "recall_interval": [round(x, 6) for x in ranges.recall],
                        "false_reject_rate_interval": [round(x, 6)
                                                       for x in ranges.false_reject_rate],
                        "source": a["source"]},
            "reviews": {"total": counts.total, "fails_confirmed": counts.fail_agree,
                        "false_rejects": counts.fail_disagree, "passes_confirmed":
                        counts.pass_agree, "escapes_found": counts.pass_disagree},
            "prior_weight": a["review_prior_weight"],
        })
    return out
