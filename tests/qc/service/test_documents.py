"""Signed quality reports and lot certificates over HTTP (SQLite and PostgreSQL): the figures
are /api/v1/stats' and hand-computed ones, the PDFs render and verify offline, roles, bad input.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from pypdf import PdfReader
from sqlalchemy import select

from qc.db.models import Inspection, ModelActivation
from qc.reports.commands import keys, report
from qc.service.database import get_session
from tests.qc.service.conftest import png, upload
from tests.qc.service.test_stats import DAYS, _results
from tests.support.poppler import render_pages

LOT = "L/ä 1"  # a slash and a non-ASCII letter
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}


@pytest.fixture
def seeded(app, client, plant):
    """test_stats' 100 results (12 fails) with lots and serials: day 1 (50 units) lot LOT with
    serials, day 2 (40) lot LOT-2 with 20 serials, day 3 (10) neither; days 1-2 arrived 5
    minutes after inspection, day 3 late (sent months later)."""
    lots = [(LOT, 50), ("LOT-2", 20), None]
    for (timestamp, n, fails), lot in zip(DAYS, lots):
        items = _results(timestamp, n, fails)
        for i, item in enumerate(items):
            if lot:
                item["lot"] = lot[0]
                if i < lot[1]:
                    item["serial"] = f"SN-{timestamp[:10]}-{i:03d}"
        reply = client.post("/api/v1/results", headers=plant.auth("station"), json=items)
        assert reply.json["accepted"] == n
    with app.app_context():
        db = get_session()
        for insp in db.scalars(select(Inspection).where(Inspection.lot.is_not(None))):
            insp.received_at = insp.inspected_at + timedelta(minutes=5)
        db.commit()
    return plant


def _get(client, plant, url, role="manager", **args):
    reply = client.get(url, headers=plant.auth(role), query_string=args)
    assert reply.status_code == 200, reply.get_data(as_text=True)[:500]
    return reply


def _verify(app, data: bytes, tmp_path, name: str) -> tuple[int, str]:
    path = tmp_path / name
    path.write_bytes(data)
    result = CliRunner().invoke(report, ["verify", str(path), "--instance", app.instance_path])
    return result.exit_code, result.output


@pytest.mark.parametrize("product", [None, "widget"])
def test_report_figures_are_those_of_the_stats_api(client, seeded, product):
    args = {**MARCH, **({"product": product} if product else {})}
    document = _get(client, seeded, "/api/v1/reports/quality", **args).json
    payload = document["payload"]
    stats = _get(client, seeded, "/api/v1/stats", **payload["stats_query"]).json
    assert payload["stats"] == stats
    assert payload["stats_query"] == {"from": "2026-03-01", "to": "2026-04-01", "bucket": "day",
                                      **({"product": product} if product else {})}
    assert stats["totals"]["inspected"] == 100 and stats["savings"]["total"] == 40.70


def test_report_figures_hand_computed(client, seeded):
    payload = _get(client, seeded, "/api/v1/reports/quality", product="widget",
                   **MARCH).json["payload"]
    assert payload["period"] == {"first_day": "2026-03-01", "last_day": "2026-03-31",
                                 "product": "widget", "timezone": "UTC"}
    assert payload["issued_by"] == "manager" and payload["document"] == "quality-report"
    assert payload["months"] == [{"month": "2026-03", "inspected": 100, "defective": 12,
                                  "defect_rate": 0.12, "first_pass_yield": 0.88,
                                  "days_out_of_control": 1}]
    # p-chart (test_stats): only 2026-03-04 (5 of 10, UCL 0.428) is out, and nothing follows
    (episode,) = payload["stability"]["episodes"]
    assert episode["first"].startswith("2026-03-04") and episode["direction"] == "above"
    assert episode["worst_p"] == 0.5 and episode["then"] is None
    # cost of quality: n = 100, p = 0.107527, r = 0.95, f = 0.02, default costs
    # appraisal 100*0.005; internal 100*p*0.95*2; external 100*p*0.05*25; false 100*(1-p)*0.02*0.5
    (coq,) = payload["cost_of_quality"]["products"]
    assert coq["with_qc"] == {"appraisal": 0.5, "internal_failure": 20.43,
                              "external_failure": 13.44, "false_rejects": 0.89}
    assert (coq["with_qc_total"], coq["manual_total"], coq["savings"]) == (35.26, 75.97, 40.70)
    (perf,) = payload["model_performance"]
    assert perf["validation"] == {"recall": 0.95, "false_reject_rate": 0.02}
    assert perf["reviews"]["total"] == 0 and perf["refined"]["source"] == "validation"
    lo, hi = perf["refined"]["recall_interval"]
    assert lo < 0.95 < hi
    # coverage: 90 with lot, 70 with serial, no photos, the 10 of day 3 late
    total = payload["integrity"]["total"]
    assert {k: total[k] for k in ("inspected", "with_lot", "with_serial", "with_photo", "late",
                                  "from_edge")} == {"inspected": 100, "with_lot": 90,
                                                    "with_serial": 70, "with_photo": 0,
                                                    "late": 10, "from_edge": 100}
    assert total["share_with_lot"] == 0.9 and total["share_late"] == 0.1
    assert total["longest_delay_s"] > 3600 * 24 * 30
    assert [s["station"] for s in payload["integrity"]["stations"]] == ["s1"]
    # the tiny model was activated today, after March: nothing before or during the period
    assert payload["model_changes"] == {"active_at_start": [], "during": []}


def test_model_changes_name_who_and_when(app, client, seeded):
    with app.app_context():
        activated = get_session().scalar(select(ModelActivation.at))
    day = activated.date().isoformat()
    changes = _get(client, seeded, "/api/v1/reports/quality", **{"from": day, "to": day}
                   ).json["payload"]["model_changes"]
    (change,) = changes["during"]
    assert (change["product"], change["action"], change["by"]) == ("widget", "activate", "admin")
    assert change["model_version"] == "tiny-1" and change["at"] == activated.isoformat()
    following = (activated.date() + timedelta(days=1)).isoformat()
    later = _get(client, seeded, "/api/v1/reports/quality", **{"from": following,
                                                              "to": following}).json
    assert later["payload"]["model_changes"]["active_at_start"] == [change]


def test_report_pdf_renders_on_a4_and_letter_and_verifies(app, client, seeded, tmp_path):
    sizes = {}
    for paper in ("a4", "letter"):
        pdf = _get(client, seeded, "/api/v1/reports/quality", format="pdf", paper=paper,
                   product="widget", **MARCH)
        assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
        reader = PdfReader(io.BytesIO(pdf.data))
        box = reader.pages[0].mediabox
        sizes[paper] = (round(float(box.width)), round(float(box.height)))
        (tmp_path / f"report-{paper}.pdf").write_bytes(pdf.data)
        pages = render_pages(tmp_path / f"report-{paper}.pdf", tmp_path / paper)
        assert len(pages) == len(reader.pages) == 3, paper  # key figures, details, integrity
        assert all(p.stat().st_size > 3000 for p in pages)  # drawn, not blank
        text = reader.pages[0].extract_text()
        assert "Quality report" in text and "100" in text and "12.00 %" in text
        code, output = _verify(app, pdf.data, tmp_path, f"r-{paper}.pdf")
        assert code == 0 and "OK" in output
    assert sizes == {"a4": (595, 842), "letter": (612, 792)}


def test_tampered_documents_fail_verification(app, client, seeded, tmp_path):
    text = _get(client, seeded, "/api/v1/reports/quality", **MARCH).get_data(as_text=True)
    assert _verify(app, text.encode(), tmp_path, "ok.json")[0] == 0
    changed = text.replace('"inspected":100', '"inspected":101', 1)
    assert changed != text
    code, output = _verify(app, changed.encode(), tmp_path, "changed.json")
    assert code == 1 and "FAILED" in output
    pdf = _get(client, seeded, "/api/v1/reports/quality", format="pdf", **MARCH).data
    at = pdf.index(b"/Title")  # the document's title in its metadata
    tampered = pdf[:at + 8] + bytes([pdf[at + 8] ^ 0x20]) + pdf[at + 9:]
    code, output = _verify(app, tampered, tmp_path, "changed.pdf")
    assert code == 1 and "changed after signing" in output


def test_keys_show_and_a_rotated_out_key_still_verifies(app, client, seeded, tmp_path):
    runner = CliRunner()
    shown = runner.invoke(keys, ["show", "--instance", app.instance_path]).output
    old = _get(client, seeded, "/api/v1/reports/quality", format="pdf", **MARCH).data
    old_json = _get(client, seeded, "/api/v1/reports/quality", **MARCH).json
    assert old_json["signature"]["key_fingerprint"] in shown and "BEGIN PUBLIC KEY" in shown
    rotated = runner.invoke(keys, ["rotate", "--instance", app.instance_path])
    assert rotated.exit_code == 0 and old_json["signature"]["key_fingerprint"] in rotated.output
    new_json = _get(client, seeded, "/api/v1/reports/quality", **MARCH).json
    assert new_json["signature"]["key_fingerprint"] != old_json["signature"]["key_fingerprint"]
    assert _verify(app, old, tmp_path, "old.pdf")[0] == 0
    shown = runner.invoke(keys, ["show", "--instance", app.instance_path]).output
    assert f"retired key, still verifies older documents: " \
           f"{old_json['signature']['key_fingerprint']}" in shown
    pem = tmp_path / "plant.pem"  # a customer holding only the new key rejects the old one
    pem.write_text(shown[shown.index("-----BEGIN"):shown.index("retired")])
    result = runner.invoke(report, ["verify", str(tmp_path / "old.pdf"), "--key", str(pem)])
    assert result.exit_code == 1 and "not among the trusted" in result.output


def test_lot_certificate_lists_every_unit_with_review_overrides(app, client, seeded, tmp_path):
    fails = client.get("/api/v1/inspections", headers=seeded.auth("manager"),
                       query_string={"lot": LOT, "verdict": "fail"}).json["items"]
    assert len(fails) == 5
    fails.sort(key=lambda item: item["defect_type"])  # a scratch is overridden, not a stain
    reply = client.post(f"/api/v1/inspections/{fails[0]['id']}/review",
                        headers=seeded.auth("engineer"), json={"review": "disagree",
                                                               "label": "good"})
    assert reply.status_code == 200
    url = f"/api/v1/lots/{quote(LOT, safe='')}/certificate"
    payload = _get(client, seeded, url, format="json").json["payload"]
    assert payload["lot"] == LOT and len(payload["units"]) == 50
    s = payload["summary"]
    assert (s["units"], s["passed"], s["failed"], s["reviewed"], s["overridden"]) == (
        50, 45, 5, 1, 1)
    assert (s["conforming"], s["nonconforming"], s["all_conform"]) == (46, 4, False)
    assert s["nonconforming_by_label"] == {"scratch": 2, "stain": 2}  # 3 scratches, 1 good
    assert s["with_serial"] == 50 and s["stations"] == ["s1"]
    overridden = next(u for u in payload["units"] if u["id"] == fails[0]["id"])
    assert overridden["verdict"] == "fail" and overridden["final_label"] == "good"
    assert overridden["conforming"] and overridden["reviewed_by"] == "engineer"
    pdf = _get(client, seeded, f"/api/v1/lots/{LOT}/certificate").data  # raw slash works too
    (tmp_path / "lot.pdf").write_bytes(pdf)
    pages = render_pages(tmp_path / "lot.pdf", tmp_path / "lot")
    assert len(pages) == len(PdfReader(io.BytesIO(pdf)).pages) == 2  # 50 rows need 2 pages
    assert LOT in PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert _verify(app, pdf, tmp_path, "c.pdf")[0] == 0


@pytest.mark.parametrize("role, status", [(None, 401), ("station", 403), ("operator", 403),
                                          ("manager", 200), ("engineer", 200), ("admin", 200)])
def test_who_may_issue_documents(client, seeded, role, status):
    for url, args in (("/api/v1/reports/quality", MARCH),
                      ("/api/v1/lots/LOT-2/certificate", {"format": "json"})):
        reply = client.get(url, headers=seeded.auth(role), query_string=args)
        assert reply.status_code == status, (url, role)
        if status == 200:
            assert reply.json["payload"]["issued_by"] == role
        else:
            assert "payload" not in reply.json and reply.json["error"]["message"]


@pytest.mark.parametrize("args, status, message", [
    ({}, 400, "give 'from'"),
    ({"from": "2026-03-01"}, 400, "give 'to'"),
    ({"from": "2026-13-01", "to": "2026-03-31"}, 400, "must be a date"),
    ({"from": "2026-03-01'; DROP TABLE inspections; --", "to": "2026-03-31"}, 400,
     "must be a date"),
    ({"from": "2026-03-31", "to": "2026-03-01"}, 400, "must not be after"),
    ({"from": "1900-01-01", "to": "2099-12-31"}, 400, "at most 366 days"),
    ({**MARCH, "product": "nope"}, 404, "no product named 'nope'"),
    ({**MARCH, "format": "xml"}, 400, "format must be one of json, pdf"),
    ({**MARCH, "paper": "a3"}, 400, "paper must be one of a4, letter"),
])
def test_bad_report_requests_are_refused_with_what_to_fix(client, seeded, args, status,
                                                          message):
    reply = client.get("/api/v1/reports/quality", headers=seeded.auth("manager"),
                       query_string=args)
    assert reply.status_code == status and message in reply.json["error"]["message"]
    assert _get(client, seeded, "/api/v1/stats", **MARCH).json["totals"]["inspected"] == 100


@pytest.mark.parametrize("lot, status, message", [
    ("nope", 404, "no inspections in lot 'nope'"),
    ("L/ä 2", 404, "no inspections in lot 'L/ä 2'"),
    ("x" * 65, 400, "1 to 64 characters"),
    ("LOT-2?product=gear", 404, "no inspections in lot"),
])
def test_unknown_or_impossible_lots(client, seeded, lot, status, message):
    reply = client.get(f"/api/v1/lots/{quote(lot, safe='')}/certificate",
                       headers=seeded.auth("manager"))
    assert reply.status_code == status and message in reply.json["error"]["message"]
    other_product = client.get("/api/v1/lots/LOT-2/certificate", headers=seeded.auth("manager"),
                               query_string={"product": "gear"})
    assert other_product.status_code == 404


def test_reports_page_issues_documents_and_explains_bad_input(client, seeded, login):
    login("manager", "password-manager")
    html = client.get("/reports").get_data(as_text=True)
    assert 'id="key-fingerprint"' in html and "BEGIN PUBLIC KEY" in html
    pem = client.get("/reports/plant.pem")
    assert pem.status_code == 200 and pem.get_data(as_text=True) in html
    reply = client.get("/reports", query_string={"action": "report", "format": "pdf",
                                                  "paper": "letter", **MARCH})
    assert reply.status_code == 303
    pdf = client.get(reply.headers["Location"])
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    reply = client.get("/reports", query_string={"action": "certificate", "lot": LOT})
    assert reply.status_code == 303 and client.get(reply.headers["Location"]).status_code == 200
    for bad, message in (({"action": "report", "from": "2026-03-31", "to": "2026-03-01"},
                          "must not be after"),
                         ({"action": "report", "product": "<script>", **MARCH},
                          "no product named"),
                         ({"action": "certificate", "lot": "nope"}, "no inspections in lot"),
                         ({"action": "certificate", "lot": " "}, "give the lot number")):
        page = client.get("/reports", query_string=bad)
        text = page.get_data(as_text=True)
        assert page.status_code == 200 and message in text and "<script>" not in text
    login("operator", "password-operator")
    assert client.get("/reports").status_code == 403
    assert client.get("/reports/plant.pem").status_code == 403


def test_openapi_describes_the_document_endpoints(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    report = paths["/reports/quality"]["get"]
    assert {p["name"] for p in report["parameters"]} >= {"from", "to", "product", "format"}
    assert "403" in report["responses"] and "application/pdf" in report["responses"]["200"][
        "content"]
    assert "/lots/{lot}/certificate" in paths


def test_review_and_dashboard_pages_link_to_documents(client, seeded, login):
    reply = client.post("/api/v1/inspections", headers=seeded.auth("station"),
                        data={"product": "widget", "lot": LOT, "image": upload(png(200))})
    assert reply.status_code == 201  # the review page lists results with a photo
    login("engineer", "password-engineer")
    review = client.get("/review?show=all").get_data(as_text=True)
    assert f'href="/api/v1/lots/{quote(LOT)}/certificate"' in review
    dashboard = client.get("/dashboard?from=2026-03-01&to=2026-03-31").get_data(as_text=True)
    assert "/reports?from=2026-03-01&amp;to=2026-03-31" in dashboard


def _recipe(heading: str, fence: str) -> str:
    """The code block under a heading of docs/reports.md (what an outside reader runs)."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "reports.md").read_text()
    section = text[text.index(heading):]
    start = section.index(f"```{fence}\n") + len(fence) + 4
    return section[start:section.index("```", start)]


def test_docs_recipes_verify_with_standard_tools(app, client, seeded, tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is missing")
    shown = CliRunner().invoke(keys, ["show", "--instance", app.instance_path]).output
    (tmp_path / "plant.pem").write_text(shown[shown.index("-----BEGIN"):])
    (tmp_path / "report.json").write_bytes(
        _get(client, seeded, "/api/v1/reports/quality", **MARCH).data)
    (tmp_path / "report.pdf").write_bytes(
        _get(client, seeded, "/api/v1/reports/quality", format="pdf", **MARCH).data)
    (tmp_path / "check.py").write_text(_recipe("### A JSON document, with Python", "python"))

    def run(script: str, python: bool = False) -> subprocess.CompletedProcess:
        argv = ([sys.executable, script, "report.json", "plant.pem"] if python
                else ["bash", "-e", "-c", script])
        return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60)

    python = run("check.py", python=True)
    assert python.returncode == 0 and "signature valid" in python.stdout, python.stderr
    for heading in ("### A JSON document, with openssl", "### A PDF, with openssl"):
        done = run(_recipe(heading, "sh"))
        assert done.returncode == 0 and "Signature Verified Successfully" in done.stdout, (
            heading, done.stdout, done.stderr)
    lines = run(_recipe("### A PDF, with openssl", "sh")).stdout.split()
    assert lines[0] == lines[2] == seeded_fingerprint(shown)  # the fingerprint two ways
    pdf = (tmp_path / "report.pdf").read_bytes()
    at = len(pdf) // 2  # a byte inside the page content
    (tmp_path / "report.pdf").write_bytes(pdf[:at] + bytes([pdf[at] ^ 0x01]) + pdf[at + 1:])
    changed = run(_recipe("### A PDF, with openssl", "sh"))
    assert changed.returncode != 0 and "Signature Verified Successfully" not in changed.stdout
    text = (tmp_path / "report.json").read_text().replace('"defective":12', '"defective":2')
    (tmp_path / "report.json").write_text(text)
    assert run("check.py", python=True).returncode != 0
    assert run(_recipe("### A JSON document, with openssl", "sh")).returncode != 0


def seeded_fingerprint(shown: str) -> str:
    """The fingerprint `qc keys show` printed."""
    return shown.split("):", 1)[1].split()[0]


def test_an_empty_period_and_a_product_without_model_still_make_documents(client, seeded,
                                                                          tmp_path, app):
    created = client.post("/api/v1/products", headers=seeded.auth("admin"),
                          json={"name": "gear"})
    assert created.status_code == 201, created.json
    for product in ("widget", "gear"):
        args = {"from": "2020-01-01", "to": "2020-01-31", "product": product}
        payload = _get(client, seeded, "/api/v1/reports/quality", **args).json["payload"]
        assert payload["stats"]["totals"]["inspected"] == 0 and payload["months"] == []
        assert payload["integrity"]["total"]["share_with_lot"] is None
        pdf = _get(client, seeded, "/api/v1/reports/quality", format="pdf", **args).data
        assert _verify(app, pdf, tmp_path, f"empty-{product}.pdf")[0] == 0
        assert len(render_pages(tmp_path / f"empty-{product}.pdf", tmp_path / product)) >= 1
    (perf,) = payload["model_performance"]
    assert perf == {"product": "gear", "model_version": None,
                    "reason": "no active model (recall unknown)"}
