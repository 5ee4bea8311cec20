"""Training jobs in a real browser (headless Chromium) against a demo plant and a real
`qc worker` process: an operator teaches a photo for the product without a model; an engineer
starts a job, watches it progress and finish, compares and activates the model, which the
station then offers. Screenshots go to $QC_TEST_ARTIFACTS (docs/img uses them).

Skipped without /usr/bin/chromium, except under CI=true, where that fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from qc.db.models import Product, TrainingJob
from qc.service import demo
from qc.service.database import get_session
from qc.service.jobs.demo import NEW_PRODUCT
from tests.support import browser as chrome
from tests.support.tiny_model import make_tiny_model

ROOT = Path(__file__).resolve().parents[4]
PHOTO = ROOT / "sample_images/defect/crack/crack_000.jpg"
JOB_S = 240_000  # ms: the 2-core machine is shared


@pytest.fixture(scope="module")
def db_url(tmp_path_factory):
    """SQLite only: the demo is SQLite by definition."""
    from qc.db import migrate

    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'qc.sqlite3'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="module")
def plant(tmp_path_factory):
    """The demo plant (tiny flange model, short history), a live server and a `qc worker`."""
    chrome.require_chromium()
    folder = tmp_path_factory.mktemp("jobs-browser")
    model = make_tiny_model(folder / "flange.onnx", product=demo.PRODUCT,
                            defect_types=tuple(demo.DEFECT_MIX))
    app, _done = demo.prepare(folder / "plant", model=model, plan=demo.Plan(days=3))
    env = {**os.environ, "QC_DATABASE_URL": app.config["DATABASE_URL"],
           "QC_DATA_DIR": app.config["DATA_DIR"], "QC_INSTANCE_PATH": app.instance_path,
           "QC_AUTO_MIGRATE": "0"}
    worker = subprocess.Popen([sys.executable, "-m", "qc.cli", "worker"], cwd=ROOT, env=env)
    try:
        with chrome.live_server(app) as base:
            yield app, base
    finally:
        worker.terminate()
        worker.wait(20)


@pytest.fixture
def page(plant):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    with chrome.chromium() as context:
        tab = context.new_page()
        console = chrome.Console(tab)
        yield tab
        assert not console.errors, console.errors


def test_operator_teaches_then_engineer_trains_compares_and_activates(plant, page):
    from playwright.sync_api import expect

    app, base = plant
    shots = chrome.artifacts_dir()
    chrome.log_in(page, base, "operator", "operator-demo", "/station")
    expect(page.locator("#teach-count")).to_contain_text(f"{NEW_PRODUCT}: 12 good, 6 defect")
    page.get_by_label("This part is").select_option("defect")
    page.get_by_label("Defect type").fill("crack")
    page.locator("#teach-photo").set_input_files(str(PHOTO))
    expect(page.locator("#teach-count")).to_contain_text("12 good, 7 defect")
    expect(page.locator("#teach-count")).to_contain_text("ready to train")
    page.locator("#teach").screenshot(path=str(shots / "teach.png"))
    chrome.log_out(page)

    chrome.log_in(page, base, "engineer", "engineer-demo", f"/models?product={NEW_PRODUCT}")
    expect(page.locator("#data-summary")).to_contain_text("12 good, 7 defect")
    page.get_by_label("Mode", exact=True).select_option("anomaly")
    page.get_by_label("Size", exact=True).fill("64")
    page.get_by_role("button", name="Start training").click()
    expect(page.locator("#start-result")).to_contain_text("queued")
    row = page.locator("#jobs tr").first
    expect(row).to_have_attribute("data-state", "running", timeout=JOB_S)
    page.wait_for_function("() => document.querySelector('#jobs progress').value > 0",
                           timeout=JOB_S)
    page.screenshot(path=str(shots / "models-progress.png"), full_page=True)
    expect(row).to_have_attribute("data-state", "succeeded", timeout=JOB_S)
    expect(row.locator("progress")).to_have_attribute("value", "1")
    versions = page.get_by_role("table", name="Model versions")
    expect(versions).to_contain_text(f"{NEW_PRODUCT}-")  # the page reloaded with the new version
    expect(row).to_have_attribute("data-state", "succeeded")
    page.screenshot(path=str(shots / "models.png"), full_page=True)

    row.get_by_role("link", name="Compare and activate").click()
    expect(page.locator("#compare-title")).to_contain_text("against the active model")
    page.screenshot(path=str(shots / "compare.png"), full_page=True)
    page.get_by_role("button", name=re.compile("^Activate")).click()
    expect(page.locator("#activate-result")).to_contain_text("Activated")
    with app.app_context():
        db = get_session()
        product = db.scalar(select(Product).where(Product.name == NEW_PRODUCT))
        job = db.scalar(select(TrainingJob).where(TrainingJob.product_id == product.id))
        assert job.state == "succeeded" and job.created_by == "engineer"
        assert product.active_model_id == job.model_version_id
    page.goto(f"{base}/models?product={NEW_PRODUCT}")
    expect(page.locator("#history")).to_contain_text("activate of")
    expect(page.locator("#history")).to_contain_text("by engineer")
    chrome.log_out(page)

    chrome.log_in(page, base, "operator", "operator-demo", "/station")
    option = page.locator(f'#product option[value="{NEW_PRODUCT}"]')
    expect(option).not_to_have_attribute("disabled", "")  # the station now inspects it
