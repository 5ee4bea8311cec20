"""Hostile dataset zips get a 400 that says what is wrong, and nothing is kept."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.qc.service.jobs.conftest import FAST


def png(value: int = 90) -> bytes:
    ok, buf = cv2.imencode(".png", np.full((24, 32, 3), value, np.uint8))
    assert ok
    return buf.tobytes()


def make_zip(entries: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buf.getvalue()


def good_and_defects(n_good=12, n_defect=6, prefix="") -> dict[str, bytes]:
    files = {f"{prefix}good/g{i}.png": png(80 + i) for i in range(n_good)}
    files.update({f"{prefix}defect/dent/d{i}.png": png(200 - i) for i in range(n_defect)})
    return files


def with_link() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in good_and_defects().items():
            archive.writestr(name, data)
        link = zipfile.ZipInfo("good/evil.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    return buf.getvalue()


CASES = {
    "not a zip": (b"PK\x03\x04 this is not really a zip", "not a readable zip"),
    "empty zip": (make_zip({}), "no good/ or defect/<type>/ folder"),
    "traversal": (make_zip({**good_and_defects(), "../../evil.png": png()}), "unsafe path"),
    "absolute": (make_zip({**good_and_defects(), "/tmp/evil.png": png()}), "unsafe path"),
    "link": (with_link(), "links are not allowed"),
    "bomb": (make_zip({**good_and_defects(), "good/bomb.png": b"\0" * 5_000_000},
                      zipfile.ZIP_DEFLATED), "zip bomb"),
    "not an image": (make_zip({**good_and_defects(), "good/notes.txt": b"hello"}),
                     "is not an image"),
    "fake png": (make_zip({**good_and_defects(), "good/fake.png": b"\x89PNG garbage"}),
                 "not readable images"),
    "mislabelled": (make_zip({"goood/a.png": png(), "defects/b.png": png()}),
                    "no good/ or defect/<type>/ folder"),
    "defect without type": (make_zip({**good_and_defects(), "defect/x.png": png()}),
                            "belongs in defect/<type>/"),
    "too few": (make_zip(good_and_defects(n_good=3, n_defect=1)), "too few images"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_zip_is_refused_with_reason(app, client, plant, queue, case):
    data, message = CASES[case]
    form = {"product": plant.product, **FAST, "dataset": (io.BytesIO(data), "d.zip")}
    response = client.post("/api/v1/training-jobs", data=form, headers=plant.auth("engineer"))
    assert response.status_code == 400, response.get_json()
    assert message in response.get_json()["error"]["message"]
    uploads = Path(app.config["DATA_DIR"]) / "jobs" / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())  # nothing kept
    assert queue.huey.pending_count() == 0


def test_zip_inside_one_folder_is_accepted(client, plant, queue):
    data = make_zip(good_and_defects(prefix="widget-dataset-20260101/"))
    form = {"product": plant.product, **FAST, "dataset": (io.BytesIO(data), "d.zip")}
    response = client.post("/api/v1/training-jobs", data=form, headers=plant.auth("engineer"))
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize("form, message", [
    ({"product": "nope"}, "no product named 'nope'"),
    ({"product": "widget", "mode": "magic"}, "mode must be one of"),
    ({"product": "widget", "size": "huge"}, "size"),
    ({"product": "widget", "size": "4"}, "16 to 1024"),
    ({"product": "widget", "epochs": "-1"}, "epochs must be"),
    ({"product": "widget", "epochs": "many"}, "epochs must be a number"),
])
def test_bad_options_are_refused(client, plant, queue, form, message):
    response = client.post("/api/v1/training-jobs", data=form, headers=plant.auth("engineer"))
    assert response.status_code in (400, 404)
    assert message in response.get_json()["error"]["message"]
