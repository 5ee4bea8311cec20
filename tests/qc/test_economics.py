"""The savings model against hand-computed numbers, and how reviews refine recall and
false-reject rate."""

from __future__ import annotations

import pytest

from qc import economics as eco

COSTS = eco.CostParams(manual_inspection_cost=0.10, manual_miss_rate=0.25, escape_cost=40.0,
                       internal_failure_cost=4.0, false_reject_cost=1.0, qc_cost_per_unit=0.02)


def test_true_defect_rate():
    assert eco.true_defect_rate(0.12, 0.95, 0.02) == pytest.approx(0.1 / 0.93)
    assert eco.true_defect_rate(0.01, 0.95, 0.02) == 0.0  # fewer flags than false rejects
    assert eco.true_defect_rate(0.99, 0.90, 0.02) == 1.0  # clipped
    assert eco.true_defect_rate(0.3, 0.5, 0.5) == 0.3  # a useless model: take q


def test_costs_hand_computed():
    # p = 0.05: C_manual = 0.10 + 0.05 (0.25*40 + 0.75*4) = 0.10 + 0.05*13 = 0.75
    assert eco.manual_cost(0.05, COSTS) == pytest.approx(0.75)
    # C_qc = 0.02 + 0.05 (0.1*40 + 0.9*4) + 0.95*0.03*1 = 0.02 + 0.38 + 0.0285 = 0.4285
    assert eco.qc_cost(0.05, 0.9, 0.03, COSTS) == pytest.approx(0.4285)


def test_savings_over_a_period():
    rates = eco.Rates(0.9, 0.03, 0.9, 0.03, 0, "validation")
    # q = 765/10000 = 0.0765 -> p = (0.0765 - 0.03)/(0.9 - 0.03) = 0.0534483
    result = eco.savings(10_000, 765, rates, COSTS)
    p = 0.0465 / 0.87
    assert result.true_defect_rate == pytest.approx(p)
    c_manual = 0.10 + p * 13
    c_qc = 0.02 + p * 7.6 + (1 - p) * 0.03
    assert result.cost_manual == pytest.approx(c_manual)
    assert result.cost_qc == pytest.approx(c_qc)
    assert result.per_unit == pytest.approx(c_manual - c_qc)
    assert result.total == pytest.approx((c_manual - c_qc) * 10_000)
    # by hand: C_manual = 0.794828; C_qc = 0.02 + 0.406207 + 0.028397 = 0.454604
    assert result.per_unit == pytest.approx(0.340224, abs=1e-6)
    shown = result.to_dict()
    assert shown["assumptions"]["escape_cost"] == 40.0
    assert shown["assumptions"]["recall"] == 0.9 and shown["assumptions"]["flagged"] == 765


def test_no_units_no_savings():
    rates = eco.Rates(0.9, 0.03, 0.9, 0.03, 0, "validation")
    result = eco.savings(0, 0, rates, COSTS)
    assert result.total == 0 and result.flagged_fraction == 0


def test_refine_without_reviews_is_validation():
    rates = eco.refine_rates(0.12, 0.95, 0.02, eco.ReviewCounts())
    assert (rates.recall, rates.false_reject_rate, rates.source) == (0.95, 0.02, "validation")


def test_refine_with_reviews_that_agree_keeps_the_rates():
    # reviews in exactly the proportions validation implies change nothing
    q, r, f = 0.12, 0.95, 0.02
    p = eco.true_defect_rate(q, r, f)
    precision = r * p / q  # share of fails that are true defects
    fails = eco.ReviewCounts(fail_agree=round(1000 * precision), fail_disagree=round(
        1000 * (1 - precision)))
    rates = eco.refine_rates(q, r, f, fails)
    assert rates.recall == pytest.approx(r, abs=2e-3)
    assert rates.false_reject_rate == pytest.approx(f, abs=2e-3)
    assert rates.reviews == 1000 and rates.source == "validation+reviews"


def test_refine_false_rejects_raise_f_and_escapes_lower_r():
    q, r, f = 0.12, 0.95, 0.02
    false_rejects = eco.refine_rates(q, r, f, eco.ReviewCounts(fail_disagree=30))
    assert false_rejects.false_reject_rate > f
    escapes = eco.refine_rates(q, r, f, eco.ReviewCounts(pass_agree=70, pass_disagree=30))
    assert escapes.recall < r
    # hand-computed: prior weight 30; p0 = 0.107527, miss0 = 0.05*p0/0.88 = 0.006109
    # miss = (30*0.006109 + 30)/(30 + 100) = 0.232179; precision stays r p0 / q = 0.851254
    # p = 0.12*0.851254 + 0.88*0.232179 = 0.306468; r = 0.102150/0.306468 = 0.333314
    assert escapes.recall == pytest.approx(0.333314, abs=1e-5)


def test_cost_params_from_object():
    class Row:
        manual_inspection_cost, manual_miss_rate, escape_cost = 1, 0.5, 9
        internal_failure_cost, false_reject_cost, qc_cost_per_unit = 3, 2, 0.1

    params = eco.CostParams.from_object(Row())
    assert params.escape_cost == 9.0 and isinstance(params.escape_cost, float)


def test_cost_of_quality_parts_add_up_to_the_qc_cost():
    # hand-computed with the service test's numbers: p = 0.107527, r = 0.95, f = 0.02, defaults
    parts = eco.qc_cost_parts(0.107527, 0.95, 0.02, eco.CostParams())
    assert parts["appraisal"] == 0.005
    assert parts["internal_failure"] == pytest.approx(0.107527 * 0.95 * 2.0)  # 0.204301
    assert parts["external_failure"] == pytest.approx(0.107527 * 0.05 * 25.0)  # 0.134409
    assert parts["false_rejects"] == pytest.approx(0.892473 * 0.02 * 0.5)  # 0.008925
    assert sum(parts.values()) == pytest.approx(0.352634, abs=1e-6)
    assert eco.qc_cost(0.107527, 0.95, 0.02, eco.CostParams()) == pytest.approx(0.352634,
                                                                               abs=1e-6)


def test_wilson_interval_hand_computed():
    # 8 of 10: centre (0.8 + 1.92/10)/(1 + 3.84/10) = 0.71675, half 0.22838 (z = 1.96)
    lo, hi = eco.wilson(0.8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert eco.wilson(0.5, 0) == (0.0, 1.0)


def test_rate_intervals_hold_the_estimate_and_narrow_with_reviews():
    q, r, f = 0.12, 0.95, 0.02
    p = eco.true_defect_rate(q, r, f)
    precision = r * p / q
    few = eco.ReviewCounts(fail_agree=17, fail_disagree=3, pass_agree=20)
    many = eco.ReviewCounts(fail_agree=850, fail_disagree=150, pass_agree=1000)
    widths = []
    for counts in (eco.ReviewCounts(), few, many):
        rates = eco.refine_rates(q, r, f, counts)
        ranges = eco.rate_intervals(q, r, f, counts)
        assert ranges.recall[0] <= rates.recall <= ranges.recall[1]
        assert ranges.false_reject_rate[0] <= rates.false_reject_rate \
            <= ranges.false_reject_rate[1]
        widths.append(ranges.recall[1] - ranges.recall[0])
    assert widths[0] > widths[1] > widths[2] > 0
    assert precision == pytest.approx(0.851254, abs=1e-6)
