"""What inspection with a qc model saves per unit, compared with manual inspection.

Pure functions; every number they use is returned next to the result so a manager can audit it.
The formulas and the defaults are explained in docs/economics.md.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields

log = logging.getLogger(__name__)

# Defaults for a small plant, in the plant's currency per unit. Every product overrides them.
DEFAULT_COSTS = {
    "manual_inspection_cost": 0.05,  # a 3 s look by an inspector paid 60/h
    "manual_miss_rate": 0.2,  # people miss 20-30 % of visual defects on repetitive work
    "escape_cost": 25.0,  # a defect reaching the customer: complaint, return, shipping
    "internal_failure_cost": 2.0,  # a defect caught in-house: scrap or rework
    "false_reject_cost": 0.5,  # a good part rejected: re-check or scrap
    "qc_cost_per_unit": 0.005,  # camera, PC and upkeep spread over the units inspected
}
# Why 30: the validation metrics count as 30 reviews per verdict, so a handful of engineer reviews
# nudges recall and false-reject rate while a few hundred dominate them.
DEFAULT_PRIOR_WEIGHT = 30.0


@dataclass(frozen=True)
class CostParams:
    """Per-unit cost parameters of one product."""

    manual_inspection_cost: float = DEFAULT_COSTS["manual_inspection_cost"]
    manual_miss_rate: float = DEFAULT_COSTS["manual_miss_rate"]
    escape_cost: float = DEFAULT_COSTS["escape_cost"]
    internal_failure_cost: float = DEFAULT_COSTS["internal_failure_cost"]
    false_reject_cost: float = DEFAULT_COSTS["false_reject_cost"]
    qc_cost_per_unit: float = DEFAULT_COSTS["qc_cost_per_unit"]

    @classmethod
    def from_object(cls, obj: object) -> CostParams:
        """Read the cost fields from any object carrying them as attributes (e.g. a Product)."""
        return cls(**{f.name: float(getattr(obj, f.name)) for f in fields(cls)})


@dataclass(frozen=True)
class ReviewCounts:
    """Engineers' reviews of a model's verdicts: agree/disagree per verdict."""

    fail_agree: int = 0  # flagged and truly defective
    fail_disagree: int = 0  # flagged but good: false rejects
    pass_agree: int = 0  # passed and good
    pass_disagree: int = 0  # passed but defective: escapes

    @property
    def total(self) -> int:
        """Number of reviews."""
        return self.fail_agree + self.fail_disagree + self.pass_agree + self.pass_disagree


@dataclass(frozen=True)
class Rates:
    """Model recall r and false-reject rate f used for the savings, with where they came from."""

    recall: float
    false_reject_rate: float
    validation_recall: float
    validation_false_reject_rate: float
    reviews: int
    source: str  # "validation" | "validation+reviews"


def clip01(x: float) -> float:
    """Clip to [0, 1]."""
    return min(1.0, max(0.0, x))


def true_defect_rate(q: float, r: float, f: float) -> float:
    """p = (q − f)/(r − f) clipped to [0, 1]; q when the model does not separate (r ≤ f)."""
    if r - f <= 1e-9:
        return clip01(q)
    return clip01((q - f) / (r - f))


def refine_rates(
    q: float, r: float, f: float, reviews: ReviewCounts, weight: float = DEFAULT_PRIOR_WEIGHT
) -> Rates:
    """Update validation recall r and false-reject rate f with engineers' reviews.

    Reviews are taken per verdict (engineers review far more fails than passes, so pooling them
    would be biased): precision = P(defect | fail) and miss fraction = P(defect | pass) each get a
    Beta update whose prior, worth `weight` reviews, is what r, f and q imply. p, r and f follow.
    """
    if reviews.total == 0:
        return Rates(r, f, r, f, 0, "validation")
    prec0, miss0 = review_priors(q, r, f)
    prec, _n = _posterior(prec0, reviews.fail_agree, reviews.fail_agree + reviews.fail_disagree,
                          weight)
    miss, _n = _posterior(miss0, reviews.pass_disagree,
                          reviews.pass_agree + reviews.pass_disagree, weight)
    new_r, new_f = rates_from(q, prec, miss, r, f)
    return Rates(new_r, new_f, r, f, reviews.total, "validation+reviews")


def review_priors(q: float, r: float, f: float) -> tuple[float, float]:
    """What validation implies: (precision₀ = P(defect | fail), miss₀ = P(defect | pass))."""
    p0 = true_defect_rate(q, r, f)
    prec0 = clip01(r * p0 / q) if q > 0 else 1.0
    miss0 = clip01((1 - r) * p0 / (1 - q)) if q < 1 else 0.0
    return prec0, miss0


def _posterior(prior: float, hits: int, n: int, weight: float) -> tuple[float, float]:
    """Beta update of a share worth `weight` pseudo-reviews: (mean, effective count)."""
    return (weight * prior + hits) / (weight + n), weight + n


def rates_from(q: float, prec: float, miss: float, r: float, f: float) -> tuple[float, float]:
    """Recall and false-reject rate implied by q, precision and miss fraction (r, f: fallbacks)."""
    p = q * prec + (1 - q) * miss
    new_r = q * prec / p if p > 0 else r
    new_f = q * (1 - prec) / (1 - p) if p < 1 else f
    return clip01(new_r), clip01(new_f)


def wilson(share: float, n: float, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a share observed over n (default 95 %)."""
    if n <= 0:
        return 0.0, 1.0
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return clip01(centre - half), clip01(centre + half)


@dataclass(frozen=True)
class RateIntervals:
    """95 % intervals of recall and false-reject rate after refine_rates."""

    recall: tuple[float, float]
    false_reject_rate: tuple[float, float]


def rate_intervals(
    q: float, r: float, f: float, reviews: ReviewCounts, weight: float = DEFAULT_PRIOR_WEIGHT
) -> RateIntervals:
    """Intervals around refine_rates' r and f: Wilson intervals of precision and miss fraction
    (validation counted as `weight` reviews per verdict, plus the reviews), carried through."""
    prec0, miss0 = review_priors(q, r, f)
    n_fail = reviews.fail_agree + reviews.fail_disagree
    n_pass = reviews.pass_agree + reviews.pass_disagree
    prec_lo, prec_hi = wilson(*_posterior(prec0, reviews.fail_agree, n_fail, weight))
    miss_lo, miss_hi = wilson(*_posterior(miss0, reviews.pass_disagree, n_pass, weight))
    worst, best = rates_from(q, prec_lo, miss_hi, r, f), rates_from(q, prec_hi, miss_lo, r, f)
    return RateIntervals((worst[0], best[0]), (best[1], worst[1]))


def manual_cost(p: float, c: CostParams) -> float:
    """C_manual = manual_inspection_cost + p·(m·escape_cost + (1−m)·internal_failure_cost)."""
    m = c.manual_miss_rate
    return c.manual_inspection_cost + p * (m * c.escape_cost + (1 - m) * c.internal_failure_cost)


def qc_cost(p: float, r: float, f: float, c: CostParams) -> float:
    """C_qc = qc_cost_per_unit + p·((1−r)·escape + r·internal) + (1−p)·f·false_reject_cost."""
    return sum(qc_cost_parts(p, r, f, c).values())


def qc_cost_parts(p: float, r: float, f: float, c: CostParams) -> dict[str, float]:
    """C_qc per unit split into the cost-of-quality categories (appraisal, failures)."""
    return {
        "appraisal": c.qc_cost_per_unit,
        "internal_failure": p * r * c.internal_failure_cost,
        "external_failure": p * (1 - r) * c.escape_cost,
        "false_rejects": (1 - p) * f * c.false_reject_cost,
    }


@dataclass(frozen=True)
class Savings:
    """Savings of one product over a period, with every input used."""

    units: int
    flagged: int
    flagged_fraction: float  # q
    true_defect_rate: float  # p
    cost_manual: float  # per unit
    cost_qc: float  # per unit
    per_unit: float
    total: float
    costs: CostParams
    rates: Rates

    def to_dict(self) -> dict:
        """JSON-ready: the result and, under 'assumptions', everything it rests on."""
        return {
            "units": self.units,
            "per_unit": round(self.per_unit, 6),
            "total": round(self.total, 2),
            "cost_manual_per_unit": round(self.cost_manual, 6),
            "cost_qc_per_unit": round(self.cost_qc, 6),
            "assumptions": {
                **asdict(self.costs),
                "flagged": self.flagged,
                "flagged_fraction": round(self.flagged_fraction, 6),
                "true_defect_rate": round(self.true_defect_rate, 6),
                **{
                    k: (round(v, 6) if isinstance(v, float) else v)
                    for k, v in asdict(self.rates).items()
                },
            },
        }


def savings(units: int, flagged: int, rates: Rates, costs: CostParams) -> Savings:
    """Savings over a period of `units` inspected, `flagged` of them failed by the model."""
    q = flagged / units if units else 0.0
    r, f = rates.recall, rates.false_reject_rate
    p = true_defect_rate(q, r, f)
    c_manual, c_qc = manual_cost(p, costs), qc_cost(p, r, f, costs)
    per_unit = c_manual - c_qc
    return Savings(units, flagged, q, p, c_manual, c_qc, per_unit, per_unit * units, costs, rates)
