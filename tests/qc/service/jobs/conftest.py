"""Training-job fixtures: dataset zips built from the generated tiny dataset, an empty queue."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from qc.service.jobs.queue import get_queue

FAST = {"mode": "supervised", "size": "32x48", "epochs": "1"}  # seconds on a 2-core CPU


def zip_folder(root: Path, prefix: str = "") -> bytes:
    """root's files as a zip (paths relative to root, under prefix)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(root).as_posix())
    return buf.getvalue()


@pytest.fixture
def dataset_zip(tiny_dataset) -> bytes:
    """The tiny dataset (16 good, 6 scratch, 6 stain, masks) as an upload."""
    return zip_folder(tiny_dataset)


@pytest.fixture
def queue(app):
    """The app's job queue, emptied after the test."""
    with app.app_context():
        q = get_queue()
    yield q
    q.huey.flush()
