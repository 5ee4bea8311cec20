"""GET /api/v1/stats against hand-computed numbers (p-chart, Pareto, savings)."""

from __future__ import annotations

import uuid

import pytest

# Three days of results for 'widget' (UTC): (timestamp, n, [defect types of the fails])
DAYS = [
    ("2026-03-02T10:15:00Z", 50, ["scratch"] * 3 + ["stain"] * 2),
    ("2026-03-03T11:45:00Z", 40, ["stain"] * 2),
    ("2026-03-04T09:05:00Z", 10, ["scratch"] * 4 + [None]),
]


def _results(timestamp: str, n: int, fails: list, station: str | None = None) -> list[dict]:
    out = []
    for i in range(n):
        failed = i < len(fails)
        item = {"id": str(uuid.uuid4()), "product": "widget", "timestamp": timestamp,
                "score": 0.9 if failed else 0.1, "defect_type": fails[i] if failed else None,
                "model_version": "tiny-1"}
        if station:
            item["station"] = station
        out.append(item)
    return out


@pytest.fixture
def seeded(client, plant):
    """100 results over three days: 12 fails (7 scratch, 4 stain, 1 without type)."""
    for timestamp, n, fails in DAYS:
        reply = client.post("/api/v1/results", headers=plant.auth("station"),
                            json=_results(timestamp, n, fails))
        assert reply.json["accepted"] == n
    return plant


def _stats(client, plant, **args):
    reply = client.get("/api/v1/stats", headers=plant.auth("manager"), query_string=args)
    assert reply.status_code == 200, reply.json
    return reply.json


def test_totals_and_p_chart_by_day(client, seeded):
    stats = _stats(client, seeded, product="widget", bucket="day", **{"from": "2026-03-01",
                                                                     "to": "2026-03-05"})
    assert stats["totals"] == {"inspected": 100, "defective": 12, "passed": 88,
                               "defect_rate": 0.12, "first_pass_yield": 0.88}
    chart = stats["p_chart"]
    assert chart["center"] == pytest.approx(0.12)
    # hand-computed: UCL = 0.12 + 3*sqrt(0.12*0.88/n), LCL floored at 0
    expected = [
        ("2026-03-02T00:00:00+00:00", 50, 5, 0.10, 0.257870, False),
        ("2026-03-03T00:00:00+00:00", 40, 2, 0.05, 0.274143, False),
        ("2026-03-04T00:00:00+00:00", 10, 5, 0.50, 0.428286, True),
    ]
    assert len(chart["points"]) == 3
    for point, (bucket, n, d, p, ucl, out) in zip(chart["points"], expected):
        assert (point["bucket"], point["n"], point["defective"]) == (bucket, n, d)
        assert point["p"] == pytest.approx(p)
        assert point["ucl"] == pytest.approx(ucl, abs=2e-6)
        assert point["lcl"] == 0.0 and point["center"] == pytest.approx(0.12)
        assert point["out_of_control"] is out


def test_pareto(client, seeded):
    pareto = _stats(client, seeded, **{"from": "2026-03-01", "to": "2026-03-05"})["pareto"]
    assert [(r["defect_type"], r["count"]) for r in pareto] == [
        ("scratch", 7), ("stain", 4), ("unspecified", 1)]
    assert [r["cumulative_share"] for r in pareto] == pytest.approx([7 / 12, 11 / 12, 1.0])


def test_savings_hand_computed(client, seeded):
    savings = _stats(client, seeded, product="widget",
                     **{"from": "2026-03-01", "to": "2026-03-05"})["savings"]
    (entry,) = savings["products"]
    # q = 0.12, r = 0.95, f = 0.02 (tiny model metadata), default costs:
    # p = (0.12 - 0.02) / (0.95 - 0.02) = 0.107527
    # C_manual = 0.05 + p (0.2*25 + 0.8*2) = 0.759677
    # C_qc = 0.005 + p (0.05*25 + 0.95*2) + (1 - p) 0.02*0.5 = 0.352634
    a = entry["assumptions"]
    assert a["true_defect_rate"] == pytest.approx(0.107527, abs=1e-6)
    assert a["recall"] == 0.95 and a["false_reject_rate"] == 0.02 and a["source"] == "validation"
    assert a["escape_cost"] == 25.0 and a["manual_miss_rate"] == 0.2
    assert entry["cost_manual_per_unit"] == pytest.approx(0.759677, abs=1e-6)
    assert entry["cost_qc_per_unit"] == pytest.approx(0.352634, abs=1e-6)
    assert entry["per_unit"] == pytest.approx(0.407043, abs=1e-6)
    assert entry["total"] == pytest.approx(40.70, abs=0.01)
    assert savings["total"] == pytest.approx(40.70, abs=0.01) and savings["units"] == 100


def test_reviews_refine_the_rates(client, seeded):
    ids = [i["id"] for i in client.get("/api/v1/inspections?verdict=fail&limit=10",
                                       headers=seeded.auth("manager")).json["items"]]
    for inspection_id in ids:  # operators say all ten flagged parts were in fact good
        reply = client.post(f"/api/v1/inspections/{inspection_id}/review",
                            headers=seeded.auth("engineer"), json={"review": "disagree"})
        assert reply.status_code == 200 and reply.json["review"]["label"] == "good"
    stats = _stats(client, seeded, product="widget", **{"from": "2026-03-01", "to": "2026-03-05"})
    a = stats["savings"]["products"][0]["assumptions"]
    assert a["source"] == "validation+reviews" and a["reviews"] == 10
    assert a["false_reject_rate"] > 0.02  # more false rejects than validation said
    assert a["validation_false_reject_rate"] == 0.02


def test_operator_flags_do_not_refine_the_rates(client, seeded):
    earlier = _results("2026-02-02T10:00:00Z", 10, ["scratch"] * 10)  # outside the period
    for item in earlier:
        item["operator"] = "operator"
    client.post("/api/v1/results", headers=seeded.auth("station"), json=earlier)
    for item in earlier:  # the operator doubts all ten fails of the active model
        reply = client.post(f"/station/inspections/{item['id']}/disagree",
                            headers=seeded.auth("operator"), json={})
        assert reply.status_code == 200, reply.json
    period = {"product": "widget", "from": "2026-03-01", "to": "2026-03-05"}
    a = _stats(client, seeded, **period)["savings"]["products"][0]["assumptions"]
    assert a["source"] == "validation" and a["reviews"] == 0
    assert a["recall"] == 0.95 and a["false_reject_rate"] == 0.02
    client.post(f"/api/v1/inspections/{earlier[0]['id']}/review",
                headers=seeded.auth("engineer"), json={"review": "disagree"})
    a = _stats(client, seeded, **period)["savings"]["products"][0]["assumptions"]
    assert a["source"] == "validation+reviews" and a["reviews"] == 1


def test_partial_hours_at_both_ends_are_exact(client, seeded):
    whole = _stats(client, seeded, **{"from": "2026-03-02T10:10:00Z",
                                      "to": "2026-03-04T09:10:00Z"})["totals"]
    assert whole["inspected"] == 100
    late = _stats(client, seeded, **{"from": "2026-03-02T10:20:00Z",
                                     "to": "2026-03-04T09:00:00Z"})["totals"]
    assert late["inspected"] == 40 and late["defective"] == 2
    inside = _stats(client, seeded, bucket="hour", **{"from": "2026-03-03T11:40:00Z",
                                                      "to": "2026-03-03T11:50:00Z"})
    assert inside["totals"]["inspected"] == 40


def test_buckets_week_and_shift_in_local_time(client, plant, app):
    app.config["TIMEZONE"] = "Europe/Berlin"  # UTC+1 in early March
    batch = (_results("2026-03-02T10:15:00Z", 4, ["scratch"])  # 11:15 local: morning shift
             + _results("2026-03-02T23:30:00Z", 2, ["stain"] * 2)  # 00:30 Mar 3: night of Mar 2
             + _results("2026-03-03T13:30:00Z", 3, []))  # 14:30 local: afternoon shift
    client.post("/api/v1/results", headers=plant.auth("station"), json=batch)
    span = {"from": "2026-03-01T00:00:00", "to": "2026-03-08T00:00:00"}
    shifts = _stats(client, plant, bucket="shift", **span)["p_chart"]["points"]
    assert [(p["bucket"], p["n"], p["defective"]) for p in shifts] == [
        ("2026-03-02T06:00:00+01:00", 4, 1),
        ("2026-03-02T22:00:00+01:00", 2, 2),
        ("2026-03-03T14:00:00+01:00", 3, 0),
    ]
    weeks = _stats(client, plant, bucket="week", **span)["p_chart"]["points"]
    assert [(p["bucket"], p["n"]) for p in weeks] == [("2026-03-02T00:00:00+01:00", 9)]


def test_station_filter(client, plant):
    client.post("/api/v1/stations", headers=plant.auth("admin"), json={"name": "s2"})
    batch = (_results("2026-03-02T10:00:00Z", 5, ["scratch"], station="s1")
             + _results("2026-03-02T10:00:00Z", 3, [], station="s2"))
    reply = client.post("/api/v1/results", headers=plant.auth("engineer"), json=batch)
    assert reply.json["accepted"] == 8
    span = {"from": "2026-03-02", "to": "2026-03-03"}
    assert _stats(client, plant, station="s2", **span)["totals"]["inspected"] == 3
    assert _stats(client, plant, station="s1", **span)["totals"]["defective"] == 1


def test_empty_period_and_product_without_model(client, plant):
    client.post("/api/v1/products", headers=plant.auth("admin"), json={"name": "gear"})
    stats = _stats(client, plant, product="gear", **{"from": "2026-01-01", "to": "2026-01-02"})
    assert stats["totals"]["inspected"] == 0 and stats["totals"]["defect_rate"] is None
    assert stats["p_chart"] == {"center": 0.0, "points": []} and stats["pareto"] == []
    assert "no active model" in stats["savings"]["products"][0]["reason"]


@pytest.mark.parametrize(
    ("args", "status", "needle"),
    [
        ({"bucket": "month"}, 400, "bucket"),
        ({"from": "2026-03-05", "to": "2026-03-01"}, 400, "before"),
        ({"from": "last week"}, 400, "ISO 8601"),
        ({"product": "ghost"}, 404, "ghost"),
        ({"bucket": "hour", "from": "2020-01-01", "to": "2026-01-01"}, 400, "coarser"),
    ],
)
def test_bad_stats_requests(client, plant, args, status, needle):
    reply = client.get("/api/v1/stats", headers=plant.auth("manager"), query_string=args)
    assert reply.status_code == status and needle in reply.json["error"]["message"]
