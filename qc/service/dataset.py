"""Export stored photos as a training set: a zip with one folder per label and a labels.csv.

The label is the reviewer's corrected label when there is one, else the model's verdict
("good", or the defect type). Reviewed items are the default: they are the ones worth training on.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import tempfile
import zipfile
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from qc.db.models import Inspection, Product, Station
from qc.service.auth import Principal
from qc.service.queries import Filters, scoped
from qc.service.storage import Storage

log = logging.getLogger(__name__)

MAX_ITEMS = 20_000
SPOOL_BYTES = 64 * 1024 * 1024  # build in memory up to this, then on disk


def label_of(insp: Inspection) -> str:
    """Folder name for an inspection's photo."""
    if insp.review_label:
        label = insp.review_label
    else:
        label = "good" if insp.verdict == "pass" else (insp.defect_type or "defect")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "unlabelled"


def build_zip(db: Session, storage: Storage, filters: Filters, principal: Principal) -> IO[bytes]:
    """The zip as a rewound file object."""
    query = (
        scoped(
            select(Inspection)
            .join(Product, Inspection.product_id == Product.id)
            .outerjoin(Station, Inspection.station_id == Station.id)
            .where(Inspection.image_path.is_not(None)),
            filters,
            principal,
        )
        .order_by(Inspection.inspected_at)
        .limit(MAX_ITEMS)
    )
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (returned)
    manifest = io.StringIO()
    writer = csv.writer(manifest)
    writer.writerow(["file", "label", "id", "verdict", "score", "review", "note"])
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED) as archive:
        for insp in db.scalars(query):
            path = storage.resolve(insp.image_path)
            if not path.exists():
                continue
            name = f"{label_of(insp)}/{insp.id}{path.suffix}"
            archive.write(path, name)
            writer.writerow(
                [
                    name,
                    label_of(insp),
                    insp.id,
                    insp.verdict,
                    insp.score,
                    insp.review or "",
                    insp.review_note or "",
                ]
            )
        archive.writestr("labels.csv", manifest.getvalue())
    spool.seek(0)
    return spool
