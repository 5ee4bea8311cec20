"""The /models page and the compare page through the test client (SQLite only, like
test_pages.py: the pages read through the API's queries, tested on both backends)."""

from __future__ import annotations

import pytest

from tests.qc.service.test_compare import candidate, reviewed


@pytest.fixture(scope="module")
def db_url(tmp_path_factory):
    """SQLite only for this module (overrides the two-backend fixture)."""
    from qc.db import migrate

    url = f"sqlite:///{tmp_path_factory.mktemp('models') / 'qc.sqlite3'}"
    migrate.upgrade(url)
    return url


@pytest.mark.parametrize("role", ["operator", "manager"])
def test_models_pages_are_for_engineers(client, plant, login, role):
    login(role, "password-" + role)
    assert client.get("/models").status_code == 403
    assert client.get("/models/1/compare").status_code == 403
    assert "/models" not in client.get("/").get_data(as_text=True)


def test_models_page_compare_activate_and_history(app, client, plant, login, tmp_path):
    reviewed(client, plant, 20, None)
    reviewed(client, plant, 100, None)
    model_id = candidate(app, tmp_path)
    token = login("engineer", "password-engineer")
    html = client.get("/models?product=widget").get_data(as_text=True)
    assert "tiny-1</b>" in html and "tiny-strict" in html and 'id="jobs"' in html
    assert "<b>2</b> good, <b>0</b> defect" in html  # the data a job would train on
    assert '<option selected>supervised</option>' in html or "<option>supervised</option>" in html
    page = client.get(f"/models/{model_id}/compare").get_data(as_text=True)
    assert "tiny-strict against the active model" in page
    assert "Disagreements: 1" in page and 'id="activate"' in page
    reply = client.post(f"/api/v1/models/{model_id}/activate", headers={"X-CSRFToken": token})
    assert reply.status_code == 200
    html = client.get("/models?product=widget").get_data(as_text=True)
    assert "activate of <b>tiny-strict</b> by engineer" in html
    assert client.get(f"/models/{model_id}/compare").get_data(as_text=True).count(
        "This model is active") == 1
    assert client.get("/models/999/compare").status_code == 404
