"""The station, dashboard and review pages through the Flask test client (SQLite only: the
pages add no SQL of their own beyond what the API tests run on both backends; the review page's
COUNT, ORDER BY and OFFSET are plain SQL on the export's query)."""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile

import pytest

from tests.qc.service.conftest import png, upload

PAGES = ("/station", "/dashboard", "/review", "/reports")
ALLOWED = {"operator": {"/station"}, "manager": {"/dashboard", "/reports"},
           "engineer": set(PAGES), "admin": set(PAGES)}


@pytest.fixture(scope="module")
def db_url(tmp_path_factory):
    """SQLite only for this module (overrides the two-backend fixture)."""
    from qc.db import migrate

    url = f"sqlite:///{tmp_path_factory.mktemp('pages') / 'qc.sqlite3'}"
    migrate.upgrade(url)
    return url


def _embedded(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="dashboard-data">(.*?)</script>',
                      html, re.S)
    assert match, "no chart data in the page"
    return json.loads(match.group(1))


def _results(day: str, n: int, fails: list[str | None], station: str = "s1") -> list[dict]:
    return [{"id": str(uuid.uuid4()), "product": "widget", "station": station,
             "timestamp": f"{day}T10:00:00Z", "score": 0.9 if i < len(fails) else 0.1,
             "defect_type": fails[i] if i < len(fails) else None, "model_version": "tiny-1"}
            for i in range(n)]


def test_pages_send_anonymous_visitors_to_login(client):
    for page in PAGES:
        reply = client.get(page)
        assert reply.status_code == 302 and reply.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_each_role_opens_its_pages(client, plant, login, role):
    login(role, f"password-{role}")
    for page in PAGES:
        reply = client.get(page)
        expected = 200 if page in ALLOWED[role] else 403
        assert reply.status_code == expected, (role, page)
    html = client.get(sorted(ALLOWED[role])[0]).get_data(as_text=True)
    for page in PAGES:  # the header links to exactly the pages the role may open
        assert (f'href="{page}"' in html) == (page in ALLOWED[role]), (role, page)


def test_station_page_offers_products_and_stations(client, plant, login):
    login("operator", "password-operator")
    html = client.get("/station").get_data(as_text=True)
    assert '<option value="widget">widget</option>' in html
    assert 'value="s1"' in html and "line 1" in html
    assert 'data-inspect-url="/api/v1/inspections"' in html
    for field in ('id="lot"', 'id="serial"', 'id="photo"', 'id="verdict"'):
        assert field in html
    assert '<label for="serial">Serial</label>' in html


def test_operator_disagrees_with_own_result_only(client, plant, login):
    other = client.post("/api/v1/inspections", headers=plant.auth("station"),
                        data={"product": "widget", "image": upload(png(220))}).json
    token = login("operator", "password-operator")
    csrf = {"X-CSRFToken": token}
    own = client.post("/api/v1/inspections", headers=csrf, data={
        "product": "widget", "station": "s1", "serial": "SN-1", "image": upload(png(220))}).json
    url = f"/station/inspections/{own['id']}/disagree"
    assert client.post(url, json={}).status_code == 400  # no CSRF token
    reply = client.post(url, json={"note": "no scratch there"}, headers=csrf)
    assert reply.status_code == 200 and reply.json["operator_flag"]["by"] == "operator"
    assert client.post(f"/station/inspections/{other['id']}/disagree", json={},
                       headers=csrf).status_code == 404
    seen = client.get(f"/api/v1/inspections/{own['id']}", headers=plant.auth("engineer")).json
    assert seen["operator_flag"]["note"] == "no scratch there"
    assert seen["review"] is None  # a doubt, not a label: an engineer decides


def test_dashboard_shows_the_numbers_of_the_stats_api(client, plant, login):
    client.post("/api/v1/results", headers=plant.auth("station"),
                json=_results("2026-03-02", 50, ["scratch"] * 3 + ["stain"] * 2)
                + _results("2026-03-03", 40, ["stain"] * 2)
                + _results("2026-03-04", 10, ["scratch"] * 4 + [None]))
    login("manager", "password-manager")
    page = client.get("/dashboard?product=widget&from=2026-03-01&to=2026-03-04&bucket=day")
    html = page.get_data(as_text=True)
    data = _embedded(html)
    assert data["stats_args"] == {"from": "2026-03-01", "to": "2026-03-05", "bucket": "day",
                                  "product": "widget"}
    api = client.get("/api/v1/stats", query_string=data["stats_args"]).json
    assert data["stats"]["totals"] == api["totals"] and data["stats"]["pareto"] == api["pareto"]
    assert data["stats"]["p_chart"] == api["p_chart"]
    assert data["savings"]["cumulative"][-1] == pytest.approx(api["savings"]["total"], abs=0.01)
    assert sum(data["savings"]["per_bucket"]) == pytest.approx(api["savings"]["total"], abs=0.02)
    assert [s["station"] for s in data["trend"]] == ["s1"]
    assert data["trend"][0]["rates"] == [p["p"] for p in api["p_chart"]["points"]]
    kpi = dict(re.findall(r'id="kpi-([a-z-]+)">([^<]+)<', html))
    assert kpi["inspected"] == "100" and kpi["defect-rate"] == "12.00 %"
    assert kpi["fpy"] == "88.00 %" and kpi["ooc"] == "1"
    assert kpi["savings"] == f"{api['savings']['total']:,.2f}"
    assert 'src="/static/vendor/chart.umd.js"' in html


def test_dashboard_survives_bad_filters(client, plant, login):
    login("manager", "password-manager")
    reply = client.get("/dashboard?from=yesterday&bucket=day")
    assert reply.status_code == 200 and "dates must look like" in reply.get_data(as_text=True)
    empty = client.get("/dashboard?product=widget").get_data(as_text=True)
    assert "No inspections in this period" in empty


def test_review_page_and_training_set_export(client, plant, login, tmp_path):
    key = plant.auth("engineer")
    bad = client.post("/api/v1/inspections", headers=key,
                      data={"product": "widget", "image": upload(png(230))}).json
    good = client.post("/api/v1/inspections", headers=key,
                       data={"product": "widget", "image": upload(png(20))}).json
    client.post(f"/api/v1/inspections/{bad['id']}/review", headers=key,
                json={"review": "agree", "label": "scratch"})
    client.post(f"/api/v1/inspections/{good['id']}/review", headers=key,
                json={"review": "agree"})
    login("engineer", "password-engineer")
    html = client.get("/review?product=widget&show=all").get_data(as_text=True)
    assert html.count('class="card item"') == 2 and "<code>good/</code> 1" in html
    assert "<code>defect/scratch/</code> 1" in html
    reply = client.get("/review/dataset.zip?product=widget")
    assert reply.status_code == 200 and reply.mimetype == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(reply.data)).namelist()
    root = names[0].split("/")[0]
    assert root.startswith("widget-dataset-")
    assert sorted(n.split("/", 1)[1] for n in names) == sorted(
        [f"good/{good['id']}.png", f"defect/scratch/{bad['id']}.png", "labels.csv"])
    assert client.get("/review/dataset.zip?product=ghost").status_code == 404
    api = client.get("/api/v1/dataset.zip?product=widget", headers=key)
    assert zipfile.ZipFile(io.BytesIO(api.data)).namelist() == names  # one export for both


def test_review_page_shows_operator_flags_and_quality_flags(client, plant, login):
    edge = _results("2026-03-02", 2, ["scratch"])
    edge[0]["flags"] = ["blurred", "drift:brightness"]
    client.post("/api/v1/results", headers=plant.auth("station"), json=edge)
    for item in edge:
        client.put(f"/api/v1/inspections/{item['id']}/image", headers=plant.auth("station"),
                   data={"image": upload(png(200))})
    doubted = client.post("/api/v1/inspections", headers=plant.auth("operator"),
                          data={"product": "widget", "image": upload(png(20))}).json
    client.post(f"/station/inspections/{doubted['id']}/disagree", headers=plant.auth("operator"),
                json={"note": "dent on the rim"})
    login("engineer", "password-engineer")
    flagged = client.get("/review?product=widget").get_data(as_text=True)  # the default list
    assert flagged.count('class="card item"') == 1 and f'data-id="{doubted["id"]}"' in flagged
    assert "Flagged by operator: dent on the rim" in flagged and "not reviewed" in flagged
    everything = client.get("/review?product=widget&show=all").get_data(as_text=True)
    badges = re.findall(r'<span class="badge"[^>]*>([^<]+)</span>', everything)
    assert badges == ["blurred", "drift:brightness"]


def _seed_photos(client, plant, n: int) -> list[str]:
    """n failed edge results with photos, all with the same timestamp; their ids."""
    results = _results("2026-03-02", n, ["scratch"] * n)
    client.post("/api/v1/results", headers=plant.auth("station"), json=results)
    for item in results:
        client.put(f"/api/v1/inspections/{item['id']}/image", headers=plant.auth("station"),
                   data={"image": upload(png(200))})
    return [item["id"] for item in results]


def _pager(html: str) -> tuple[str | None, str | None, str | None]:
    """The first pager's Newer link, count text and Older link."""
    nav = re.search(r'<nav class="pager"[^>]*>(.*?)</nav>', html, re.S)
    if not nav:
        return None, None, None
    newer = re.search(r'rel="prev" href="([^"]+)"', nav.group(1))
    count = re.search(r'class="count">([^<]+)<', nav.group(1))
    older = re.search(r'rel="next" href="([^"]+)"', nav.group(1))
    return (newer and newer.group(1).replace("&amp;", "&"), count and count.group(1),
            older and older.group(1).replace("&amp;", "&"))


def test_review_page_pages_through_every_result(client, plant, login):
    from qc.service.pages.review import PAGE_SIZE

    seeded = _seed_photos(client, plant, PAGE_SIZE + 7)  # one timestamp: the id breaks the tie
    login("engineer", "password-engineer")
    first = client.get("/review?product=widget&show=failed").get_data(as_text=True)
    newer, count, older = _pager(first)
    assert newer is None and count == f"results 1–{PAGE_SIZE} of {PAGE_SIZE + 7}"
    assert older == "/review?product=widget&show=failed&page=2"
    second = client.get(older).get_data(as_text=True)
    newer, count, older = _pager(second)
    assert count == f"results {PAGE_SIZE + 1}–{PAGE_SIZE + 7} of {PAGE_SIZE + 7}"
    assert newer == "/review?product=widget&show=failed&page=1" and older is None
    shown = [re.findall(r'class="card item" data-id="([^"]+)"', html) for html in (first, second)]
    assert len(shown[0]) == PAGE_SIZE and len(shown[1]) == 7
    assert sorted(shown[0] + shown[1]) == sorted(seeded)  # each exactly once
    assert shown[0] + shown[1] == sorted(seeded, reverse=True)  # equal times: by id, descending
    assert "<code>defect/scratch/</code>" not in first  # export counts: reviewed photos only


@pytest.mark.parametrize("value", ["0", "-3", "abc", "1.5", ""])
def test_review_page_reads_a_bad_page_as_the_first(client, plant, login, value):
    _seed_photos(client, plant, 2)
    login("engineer", "password-engineer")
    reply = client.get(f"/review?product=widget&show=all&page={value}")
    html = reply.get_data(as_text=True)
    assert reply.status_code == 200 and html.count('class="card item"') == 2
    assert _pager(html) == (None, "results 1–2 of 2", None)


def test_review_page_past_the_end_links_back_to_the_last_page(client, plant, login):
    from qc.service.pages.review import PAGE_SIZE

    _seed_photos(client, plant, PAGE_SIZE + 1)
    login("engineer", "password-engineer")
    for page in (5, 10**30):  # a huge number must not reach the database as an offset
        reply = client.get(f"/review?product=widget&show=flagged&page={page}")
        assert reply.status_code == 200  # no flagged result: the plain empty state
        assert "no result is flagged at the station" in reply.get_data(as_text=True)
        reply = client.get(f"/review?product=widget&show=unreviewed&page={page}")
        html = reply.get_data(as_text=True)
        assert reply.status_code == 200 and 'class="card item"' not in html
        assert f"Page {page} is past the end: {PAGE_SIZE + 1} results, 2 pages." in html
        assert 'href="/review?product=widget&amp;show=unreviewed&amp;page=2"' in html


def test_chart_library_is_served_with_its_licence(client):
    script = client.get("/static/vendor/chart.umd.js")
    assert script.status_code == 200 and b"Released under the MIT License" in script.data[:400]
    assert b"MIT License" in client.get("/static/vendor/chart.js-LICENSE.md").data
