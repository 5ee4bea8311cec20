"""Stored photos as a training set, in the folder layout `qc train` reads:

    <product>-dataset-YYYYMMDD/good/<id>.<ext>
    <product>-dataset-YYYYMMDD/defect/<type>/<id>.<ext>   (a fail without a type: defect/defect/)
    <product>-dataset-YYYYMMDD/labels.csv    file, label, id, verdict, score, review, note

The label is the engineer's corrected label when there is one, else the model's verdict.
Reviewed items are the default: they are the ones worth training on. One export serves
GET /api/v1/dataset.zip and the review page.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import tempfile
import zipfile
from typing import IO

from flask import Response, send_file
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from qc.db.models import Inspection, Product, Station, utcnow
from qc.service.auth import Principal, current_principal
from qc.service.database import get_session
from qc.service.errors import ServiceError
from qc.service.queries import Filters, csv_cell, model_label, scoped
from qc.service.registry import find
from qc.service.storage import Storage, get_storage

log = logging.getLogger(__name__)

MAX_ITEMS = 20_000
SPOOL_BYTES = 64 * 1024 * 1024  # build in memory up to this, then on disk
MANIFEST = ("file", "label", "id", "verdict", "score", "review", "note")


def safe_name(text: str, fallback: str) -> str:
    """text made safe as one file or folder name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or fallback


def label_of(review_label: str | None, verdict: str, defect_type: str | None) -> str:
    """The training label: the engineer's corrected label, else the model's (a safe name)."""
    return safe_name(review_label or model_label(verdict, defect_type), "unlabelled")


def folder_of(label: str) -> str:
    """'good' -> 'good'; any other label is a defect type -> 'defect/<type>'."""
    return "good" if label == "good" else f"defect/{label}"


def photos_query(filters: Filters, principal: Principal) -> Select:
    """Inspections with a stored photo, filtered and scoped to what the caller may see."""
    query = (
        select(Inspection)
        .join(Product, Inspection.product_id == Product.id)
        .outerjoin(Station, Inspection.station_id == Station.id)
        .where(Inspection.image_path.is_not(None))
    )
    return scoped(query, filters, principal)


def build_zip(
    db: Session, storage: Storage, filters: Filters, principal: Principal, root: str
) -> IO[bytes]:
    """The zip as a rewound file object; `root` is the folder it unpacks into."""
    query = photos_query(filters, principal).order_by(Inspection.inspected_at).limit(MAX_ITEMS)
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (returned)
    manifest = io.StringIO()
    writer = csv.writer(manifest)
    writer.writerow(MANIFEST)
    written = 0
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED) as archive:
        for insp in db.scalars(query):
            path = storage.resolve(insp.image_path)
            if not path.exists():
                continue
            label = label_of(insp.review_label, insp.verdict, insp.defect_type)
            name = f"{folder_of(label)}/{insp.id}{path.suffix}"
            archive.write(path, f"{root}/{name}")
            writer.writerow([csv_cell(v) for v in (name, label, insp.id, insp.verdict, insp.score,
                                                   insp.review or "", insp.review_note or "")])
            written += 1
        archive.writestr(f"{root}/labels.csv", manifest.getvalue())
    log.info("dataset export: %d photos", written)
    spool.seek(0)
    return spool


def label_counts(db: Session, filters: Filters, principal: Principal) -> dict[str, int]:
    """How many photos the export would hold per folder."""
    counts: dict[str, int] = {}
    i = Inspection
    query = photos_query(filters, principal).with_only_columns(
        i.review_label, i.verdict, i.defect_type, func.count()
    ).group_by(i.review_label, i.verdict, i.defect_type)
    for review_label, verdict, defect_type, n in db.execute(query):
        folder = folder_of(label_of(review_label, verdict, defect_type))
        counts[folder] = counts.get(folder, 0) + int(n)
    return dict(sorted(counts.items()))


def send_zip(filters: Filters) -> Response:
    """The export of filters.product (reviewed photos unless filters.reviewed is False)."""
    if not filters.product:
        raise ServiceError("choose a product to export: ?product=NAME")
    db = get_session()
    find(db, Product, filters.product, "product")
    if filters.reviewed is None:  # reviewed photos are the default; reviewed=false: all
        filters.reviewed = True
    elif filters.reviewed is False:
        filters.reviewed = None
    root = f"{safe_name(filters.product, 'product')}-dataset-{utcnow():%Y%m%d}"
    spool = build_zip(db, get_storage(), filters, current_principal(), root)
    return send_file(spool, mimetype="application/zip", as_attachment=True,
                     download_name=f"{root}.zip")
