"""Reviewed photos as a training set in the folder layout `qc train` reads:

    <product>-dataset/good/<id>.jpg
    <product>-dataset/defect/<type>/<id>.jpg
    <product>-dataset/labels.csv

The label is the reviewer's corrected one when there is one, else the model's verdict.
"""

from __future__ import annotations

import csv
import io
import logging
import tempfile
import zipfile
from typing import IO

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from qc.db.models import Inspection, Product, Station
from qc.service.auth import Principal
from qc.service.dataset import label_of
from qc.service.queries import Filters, scoped
from qc.service.storage import Storage

log = logging.getLogger(__name__)

MAX_ITEMS = 20_000
SPOOL_BYTES = 64 * 1024 * 1024  # build in memory up to this, then on disk
GENERIC = {"defect": "unspecified"}  # a failure without a type still needs a type folder


def folder_of(label: str) -> str:
    """'good' -> 'good'; a defect type -> 'defect/<type>'."""
    return "good" if label == "good" else f"defect/{GENERIC.get(label, label)}"


def photos_query(filters: Filters, principal: Principal) -> Select:
    """Inspections with a stored photo, filtered and scoped to what the caller may see."""
    query = (
        select(Inspection)
        .join(Product, Inspection.product_id == Product.id)
        .outerjoin(Station, Inspection.station_id == Station.id)
        .where(Inspection.image_path.is_not(None))
    )
    return scoped(query, filters, principal)


def build_training_zip(
    db: Session, storage: Storage, filters: Filters, principal: Principal, root: str
) -> IO[bytes]:
    """The zip as a rewound file object; `root` is the folder it unpacks into."""
    query = photos_query(filters, principal).order_by(Inspection.inspected_at).limit(MAX_ITEMS)
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (returned)
    manifest = io.StringIO()
    writer = csv.writer(manifest)
    writer.writerow(["file", "label", "id", "verdict", "score", "review", "note"])
    written = 0
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED) as archive:
        for insp in db.scalars(query):
            path = storage.resolve(insp.image_path)
            if not path.exists():
                continue
            label = label_of(insp)
            name = f"{folder_of(label)}/{insp.id}{path.suffix}"
            archive.write(path, f"{root}/{name}")
            writer.writerow([name, label, insp.id, insp.verdict, insp.score,
                             insp.review or "", insp.review_note or ""])
            written += 1
        archive.writestr(f"{root}/labels.csv", manifest.getvalue())
    log.info("dataset export: %d photos", written)
    spool.seek(0)
    return spool


def label_counts(db: Session, filters: Filters, principal: Principal) -> dict[str, int]:
    """How many photos the export would hold per folder."""
    counts: dict[str, int] = {}
    query = photos_query(filters, principal).with_only_columns(
        Inspection.review_label, Inspection.verdict, Inspection.defect_type, func.count()
    ).group_by(Inspection.review_label, Inspection.verdict, Inspection.defect_type)
    for review_label, verdict, dtype, n in db.execute(query):
        row = Inspection(review_label=review_label, verdict=verdict, defect_type=dtype)
        folder = folder_of(label_of(row))
        counts[folder] = counts.get(folder, 0) + int(n)
    return dict(sorted(counts.items()))
