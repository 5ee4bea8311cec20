"""The pages in a real browser: headless Chromium (Debian package) driven by Playwright against a
live demo plant (tiny model, seeded history). Screenshots go to $QC_TEST_ARTIFACTS.

Skipped without /usr/bin/chromium, except under CI=true, where that fails.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from qc.db.models import Inspection
from qc.service import demo
from qc.service.database import get_session
from qc.service.storage import get_storage
from tests.support import browser as chrome
from tests.support.tiny_model import make_tiny_model

PHOTO = Path(__file__).resolve().parents[3] / "sample_images/defect/scratch/scratch_000.jpg"
CHARTS = ("trend", "pareto", "pchart", "savings")
READ_CHARTS = """keys => Object.fromEntries(keys.map(k => {
  const chart = Chart.getChart('chart-' + k), canvas = chart.canvas;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  return [k, {painted, labels: chart.data.labels, datasets: chart.data.datasets.map(
    d => ({label: d.label, data: d.data, pointStyle: d.pointStyle}))}];
}))"""
# An impatient operator: presses "Take photo" the instant it shows, before the camera may be ready.
SHOOT_AT_ONCE = """() => { const shoot = document.getElementById('shoot');
  new MutationObserver((_, watch) => { if (!shoot.hidden) { watch.disconnect(); shoot.click(); } })
    .observe(shoot, {attributes: true}); }"""


@pytest.fixture(scope="module")
def plant(tmp_path_factory):
    """A demo plant with a tiny model, served on a free port: (app, base URL)."""
    chrome.require_chromium()
    folder = tmp_path_factory.mktemp("browser")
    model = make_tiny_model(folder / "flange.onnx", product=demo.PRODUCT,
                            defect_types=tuple(demo.DEFECT_MIX))
    app, _done = demo.prepare(folder / "plant", model=model)
    with chrome.live_server(app) as base:
        yield app, base


def camera_frame() -> np.ndarray:
    """The fake camera's picture: bright plate, dark ring, red bar; the tiny model fails it."""
    frame = np.full((480, 640, 3), (225, 215, 200), np.uint8)  # (H, W, 3) RGB
    cv2.circle(frame, (320, 240), 150, (70, 80, 110), 40)
    cv2.rectangle(frame, (40, 40), (110, 440), (210, 30, 30), -1)
    return frame


@pytest.fixture(scope="module")
def pw():
    """The module's Playwright, shared by its two browsers."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def context(pw):
    """One headless Chromium for the module."""
    with chrome.chromium(pw=pw) as ctx:
        yield ctx


@pytest.fixture(scope="module")
def camera_context(pw, tmp_path_factory):
    """A second headless Chromium, whose fake camera films camera_frame()."""
    video = chrome.write_y4m(tmp_path_factory.mktemp("camera") / "frame.y4m", camera_frame())
    with chrome.chromium(camera=video, pw=pw) as ctx:
        yield ctx


def watched_page(context):
    """A fresh page without cookies, whose console must stay free of errors."""
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)  # the 2-core machine is shared
    context.clear_cookies()
    tab = context.new_page()
    console = chrome.Console(tab)
    yield tab
    tab.close()
    assert not console.errors, console.errors


@pytest.fixture
def page(context):
    """A page of the module's Chromium (no camera)."""
    yield from watched_page(context)


@pytest.fixture
def camera_page(camera_context):
    """A page of the Chromium with a fake camera."""
    yield from watched_page(camera_context)


def test_operator_inspects_a_photo_and_disagrees(plant, page):
    from playwright.sync_api import expect

    app, base = plant
    chrome.log_in(page, base, "operator", "operator-demo", "/station")
    page.get_by_label("Product").select_option(demo.PRODUCT)
    page.get_by_label("Station", exact=True).select_option("L1-A")
    page.get_by_role("button", name="Start inspecting").click()
    page.get_by_label("Lot").fill("L-BROWSER")
    page.get_by_label("Lot").press("Enter")  # a scanner's Enter moves on to the serial
    expect(page.get_by_label("Serial")).to_be_focused()
    page.get_by_label("Serial").fill("SN-BROWSER-1")
    with page.expect_file_chooser() as chooser:
        page.get_by_label("Serial").press("Enter")  # no camera here: Enter opens the picker
    start = time.perf_counter()
    chooser.value.set_files(str(PHOTO))
    expect(page.locator("#verdict-word")).to_have_text(re.compile("^(PASS|FAIL)$"))
    seconds = time.perf_counter() - start
    page.wait_for_function("() => { const i = document.getElementById('heatmap');"
                           " return i.complete && i.naturalWidth > 0; }")
    page.screenshot(path=str(chrome.artifacts_dir() / "station.png"))
    page.get_by_role("button", name=re.compile("Disagree")).click()
    expect(page.locator("#disagree-state")).to_have_text("Flagged for review ✓")
    with app.app_context():
        insp = get_session().scalar(select(Inspection).where(Inspection.serial == "SN-BROWSER-1"))
        assert insp.lot == "L-BROWSER" and insp.operator == "operator"
        assert insp.flagged_by == "operator" and insp.review is None
        assert page.locator("#verdict-word").inner_text() == insp.verdict.upper()
    assert seconds < 3.0, f"verdict after {seconds:.2f} s"


def test_operator_inspects_with_the_camera(plant, camera_page):
    from playwright.sync_api import expect

    app, base, page = *plant, camera_page
    chrome.log_in(page, base, "operator", "operator-demo", "/station")
    page.get_by_label("Product").select_option(demo.PRODUCT)
    page.get_by_label("Station", exact=True).select_option("L1-A")
    page.get_by_role("button", name="Start inspecting").click()
    page.get_by_label("Lot").fill("L-CAMERA")
    page.get_by_label("Serial").fill("SN-CAMERA-1")
    page.evaluate(SHOOT_AT_ONCE)
    start = time.perf_counter()
    page.get_by_role("button", name="Start camera").click()
    expect(page.locator("#verdict-word")).to_have_text(re.compile("^(PASS|FAIL)$"))
    seconds = time.perf_counter() - start
    page.wait_for_function("() => { const i = document.getElementById('heatmap');"
                           " return i.complete && i.naturalWidth > 0; }")
    expect(page.get_by_label("Camera preview")).to_be_visible()
    expect(page.locator("#camera-hint")).to_be_hidden()
    page.screenshot(path=str(chrome.artifacts_dir() / "station-camera.png"))
    page.get_by_label("Serial").fill("SN-CAMERA-2")
    page.get_by_label("Serial").press("Enter")  # with the camera on, a scanner's Enter shoots
    expect(page.locator("#recent li")).to_have_count(2)
    frame = camera_frame()
    with app.app_context():
        rows = get_session().scalars(select(Inspection).where(
            Inspection.serial.in_(["SN-CAMERA-1", "SN-CAMERA-2"]))).all()
        assert len(rows) == 2, [r.serial for r in rows]
        for insp in rows:
            assert insp.lot == "L-CAMERA" and insp.operator == "operator"
            assert insp.verdict == "fail"  # the frame is bright: the tiny model's score is its mean
            assert insp.score == pytest.approx(frame.mean() / 255, abs=0.03)
            assert insp.image_path.endswith(".jpg") and insp.heatmap_path
            photo = cv2.imread(str(get_storage().resolve(insp.image_path)))[:, :, ::-1]
            assert photo.shape == frame.shape
            assert np.abs(photo.astype(int) - frame).mean() < 6  # the frame, not a black one
        assert page.locator("#verdict-word").inner_text() == "FAIL"
    assert seconds < 3.0, f"verdict after {seconds:.2f} s"


def test_manager_sees_charts_with_the_numbers_of_the_stats_api(plant, page):
    _app, base = plant
    chrome.log_in(page, base, "manager", "manager-demo", "/dashboard")
    page.wait_for_function(f"{list(CHARTS)}.every(k => Chart.getChart('chart-' + k))")
    charts = page.evaluate(READ_CHARTS, list(CHARTS))
    args = page.evaluate("JSON.parse(document.getElementById('dashboard-data').textContent)"
                         ".stats_args")
    api = page.evaluate("async a => (await fetch('/api/v1/stats?' + new URLSearchParams(a)))"
                        ".json()", args)
    page.screenshot(path=str(chrome.artifacts_dir() / "dashboard.png"), full_page=True)
    for name, chart in charts.items():
        values = [v for d in chart["datasets"] for v in d["data"] if v]
        assert values and chart["painted"] > 5000, f"chart {name} is empty"
    points = api["p_chart"]["points"]
    by_label = {k: {d["label"]: d for d in c["datasets"]} for k, c in charts.items()}
    p_series = by_label["pchart"]["p (defect rate)"]
    assert p_series["data"] == pytest.approx([p["p"] * 100 for p in points], abs=1e-3)
    assert by_label["pchart"]["UCL"]["data"] == pytest.approx([p["ucl"] * 100 for p in points],
                                                             abs=1e-3)
    marked = [style == "triangle" for style in p_series["pointStyle"]]
    assert marked == [p["out_of_control"] for p in points] and any(marked)
    assert by_label["trend"]["All"]["data"] == pytest.approx([p["p"] * 100 for p in points],
                                                             abs=1e-3)
    assert charts["pareto"]["labels"] == [r["defect_type"] for r in api["pareto"]]
    assert by_label["pareto"]["Failed items"]["data"] == [r["count"] for r in api["pareto"]]
    cumulative = by_label["savings"]["Cumulative"]["data"]
    assert cumulative[-1] == pytest.approx(api["savings"]["total"], abs=0.01)
    assert page.locator("#kpi-inspected").inner_text() == f"{api['totals']['inspected']:,}"
    assert page.locator("#kpi-savings").inner_text() == f"{api['savings']['total']:,.2f}"
    rate = f"{api['totals']['defect_rate'] * 100:.2f} %"
    assert page.locator("#kpi-defect-rate").inner_text() == rate


def test_dashboard_filters_and_empty_periods_draw_without_errors(plant, page):
    _app, base = plant
    chrome.log_in(page, base, "engineer", "engineer-demo", "/dashboard?bucket=week")
    for query in ("bucket=week", "bucket=shift&station=L1-B", "bucket=hour&product=flange"):
        page.goto(f"{base}/dashboard?{query}")
        page.wait_for_function("Chart.getChart('chart-savings') !== undefined")
        assert page.locator("#kpi-inspected").inner_text() != "0", query
    page.goto(f"{base}/dashboard?from=2020-01-01&to=2020-01-02")
    assert page.get_by_text("No inspections in this period").is_visible()


def test_engineer_reviews_a_flagged_result(plant, page):
    from playwright.sync_api import expect

    _app, base = plant
    chrome.log_in(page, base, "engineer", "engineer-demo", "/review?show=all")
    items = page.locator("article.item")
    expect(items.first).to_be_visible()
    first = items.first
    first.get_by_label("Correct label").select_option("scratch")
    first.get_by_role("button", name="Save label").click()
    expect(first.locator(".saved")).to_have_text("Saved ✓")
    expect(first.locator(".state")).to_contain_text("by engineer: scratch")
    page.screenshot(path=str(chrome.artifacts_dir() / "review.png"), full_page=True)


def test_manager_issues_a_signed_report_from_the_reports_page(plant, page):
    from playwright.sync_api import expect

    _app, base = plant
    chrome.log_in(page, base, "manager", "manager-demo", "/reports")
    expect(page.locator("#key-fingerprint")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    page.screenshot(path=str(chrome.artifacts_dir() / "reports.png"), full_page=True)
    lot = page.get_by_role("region", name="Certificate of conformance for a lot")
    lot.get_by_label("Lot").fill("nope/ä")
    page.get_by_role("button", name="Issue certificate").click()
    expect(page.get_by_role("alert")).to_contain_text("no inspections in lot 'nope/ä'")
    # A JSON document has no <link rel=icon>: Chromium asks for /favicon.ico, which qc lacks.
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    period = page.get_by_role("region", name="Quality report for a period")
    period.get_by_label("Format").select_option("json")
    page.get_by_role("button", name="Issue report").click()
    page.wait_for_url(re.compile(r"/api/v1/reports/quality\?"))
    document = page.evaluate("JSON.parse(document.body.innerText)")
    stats = page.evaluate("async a => (await fetch('/api/v1/stats?' + new URLSearchParams(a)))"
                          ".json()", document["payload"]["stats_query"])
    assert document["payload"]["stats"]["totals"] == stats["totals"]
    assert stats["totals"]["inspected"] > 0
    pdf = page.evaluate("""async url => { const r = await fetch(url);
      return [r.status, r.headers.get('content-type'), (await r.arrayBuffer()).byteLength]; }""",
                        page.url.replace("format=json", "format=pdf"))
    assert pdf[0] == 200 and pdf[1] == "application/pdf" and pdf[2] > 10_000


def test_missing_chromium_is_a_skip_here_and_a_failure_under_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(chrome, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no-chromium is missing"):
        chrome.require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        chrome.require_chromium()
