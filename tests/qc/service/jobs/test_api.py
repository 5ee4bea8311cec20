"""POST/GET /api/v1/training-jobs: start, run (in-process, as the worker would), read, cancel,
retry; one job per product; the job's model is the CLI's."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner

from qc.cli import cli
from qc.modelpack import read_info
from qc.service.database import get_session
from qc.service.jobs import runner, store
from qc.service.storage import get_storage
from tests.qc.service.jobs.conftest import FAST


def start(client, plant, role="engineer", data=None, **fields):
    form = {"product": plant.product, **FAST, **fields}
    if data is not None:
        form["dataset"] = (io.BytesIO(data), "data.zip")
    return client.post("/api/v1/training-jobs", data=form, headers=plant.auth(role))


@pytest.fixture(scope="session")
def cli_model(tiny_dataset, tmp_path_factory):
    """What `qc train` makes of the tiny dataset with the FAST options (trained once)."""
    out = tmp_path_factory.mktemp("cli") / "cli.onnx"
    result = CliRunner().invoke(cli, ["train", str(tiny_dataset), "--out", str(out),
                                      "--product", "widget", "--size", FAST["size"],
                                      "--mode", FAST["mode"], "--epochs", FAST["epochs"]])
    assert result.exit_code == 0, result.output
    return out


def test_job_trains_the_cli_model_and_reports(app, client, plant, queue, dataset_zip,
                                              cli_model):
    response = start(client, plant, data=dataset_zip)
    assert response.status_code == 201, response.get_json()
    job = response.get_json()
    assert job["state"] == "queued" and job["progress"] == 0 and job["created_by"] == "engineer"
    assert queue.huey.pending_count() == 1

    assert runner.run_job(app, job["id"]) == "succeeded"
    done = client.get(f"/api/v1/training-jobs/{job['id']}", headers=plant.auth("manager"))
    body = done.get_json()
    assert body["state"] == "succeeded" and body["progress"] == 1.0, body
    assert body["model_version"] and "trained and exported" in body["log"]
    report = client.get(body["report_url"], headers=plant.auth("engineer"))
    assert report.status_code == 200 and b"<html" in report.data.lower()

    with app.app_context():
        job_row = store.get_job(get_session(), job["id"])
        job_info = read_info(get_storage().resolve(job_row.model_version.path))
    cli_info = read_info(cli_model)
    assert job_info.data_fingerprint == cli_info.data_fingerprint
    assert (job_info.mode, job_info.input_size, job_info.product) == (
        cli_info.mode, cli_info.input_size, cli_info.product)
    # stored, not activated: the tiny model stays the product's active one
    products = client.get("/api/v1/products", headers=plant.auth("engineer")).get_json()
    assert products["items"][0]["active_model"]["id"] != body["model_id"]


def test_one_job_per_product_cancel_and_retry(app, client, plant, queue, dataset_zip):
    first = start(client, plant, data=dataset_zip).get_json()
    second = start(client, plant, data=dataset_zip)
    assert second.status_code == 409 and "already has a training job" in second.get_json()[
        "error"]["message"]
    cancelled = client.post(f"/api/v1/training-jobs/{first['id']}/cancel",
                            headers=plant.auth("engineer")).get_json()
    assert cancelled["state"] == "cancelled"
    assert runner.run_job(app, first["id"]) is None  # the queued task finds it cancelled
    again = client.post(f"/api/v1/training-jobs/{first['id']}/cancel",
                        headers=plant.auth("engineer"))
    assert again.status_code == 409
    retry = client.post(f"/api/v1/training-jobs/{first['id']}/retry",
                        headers=plant.auth("engineer"))
    assert retry.status_code == 201
    body = retry.get_json()
    assert body["retry_of"] == first["id"] and body["state"] == "queued"
    assert body["options"] == first["options"] and body["dataset"] == "upload"


def test_running_job_stops_when_cancelled(app, client, plant, queue, dataset_zip, monkeypatch):
    from qc.service.jobs import progress

    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.05)
    job = start(client, plant, data=dataset_zip, epochs="1000").get_json()

    real_beat = runner._beat

    def beat_then_cancel(app_, job_id):
        beat = real_beat(app_, job_id)

        def cancelling(p):
            beat(p)
            return p.value > 0.05  # training started: ask to stop

        return cancelling

    monkeypatch.setattr(runner, "_beat", beat_then_cancel)
    assert runner.run_job(app, job["id"]) == "cancelled"
    body = client.get(f"/api/v1/training-jobs/{job['id']}", headers=plant.auth("engineer"))
    assert body.get_json()["state"] == "cancelled" and body.get_json()["model_version"] is None


def test_job_on_reviewed_results_fails_with_reason_when_too_few(client, plant, queue):
    response = start(client, plant)
    assert response.status_code == 400
    assert "too few images" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("role", ["operator", "manager", "station"])
def test_only_engineers_start_cancel_retry(client, plant, queue, dataset_zip, role):
    assert start(client, plant, role=role, data=dataset_zip).status_code == 403
    job = start(client, plant, data=dataset_zip).get_json()
    for action in ("cancel", "retry"):
        url = f"/api/v1/training-jobs/{job['id']}/{action}"
        assert client.post(url, headers=plant.auth(role)).status_code == 403
    read = client.get(f"/api/v1/training-jobs/{job['id']}", headers=plant.auth(role))
    assert read.status_code == (200 if role == "manager" else 403)


def test_running_job_of_a_silent_worker_is_failed_when_read(app, client, plant, queue,
                                                            dataset_zip):
    from datetime import timedelta

    from qc.db.models import utcnow

    job = start(client, plant, data=dataset_zip).get_json()
    with app.app_context():
        db = get_session()
        assert store.claim(db, job["id"])
        row = store.get_job(db, job["id"])
        row.worker = "another-host:123"  # not this host: only the heartbeat can tell
        row.heartbeat_at = utcnow() - store.STALE_AFTER - timedelta(seconds=1)
        db.commit()
        assert store.recover(db) == [job["id"]]
    body = client.get(f"/api/v1/training-jobs/{job['id']}", headers=plant.auth("engineer"))
    assert body.get_json()["state"] == "failed"
    assert "worker stopped" in body.get_json()["error"]


def test_running_job_with_a_recent_heartbeat_is_left_alone(app, client, plant, queue,
                                                          dataset_zip):
    job = start(client, plant, data=dataset_zip).get_json()
    with app.app_context():
        db = get_session()
        assert store.claim(db, job["id"])
        store.get_job(db, job["id"]).worker = "another-host:123"
        db.commit()
        assert store.recover(db) == []
    body = client.get(f"/api/v1/training-jobs/{job['id']}", headers=plant.auth("engineer"))
    assert body.get_json()["state"] == "running"
