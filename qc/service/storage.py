"""Files on disk under DATA_DIR: inspection images and heatmaps by day, model packages by
checksum, and the retention rule (failed, reviewed or flagged items keep their images longer).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from qc.db.models import Inspection

log = logging.getLogger(__name__)

# First bytes of the formats qc.imaging decodes -> file suffix
_MAGIC = (
    (b"\x89PNG", "png"),
    (b"\xff\xd8", "jpg"),
    (b"BM", "bmp"),
    (b"II*\x00", "tif"),
    (b"MM\x00*", "tif"),
)


def sniff_suffix(data: bytes) -> str:
    """File suffix for encoded image bytes ('bin' if unknown)."""
    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    return "bin"


class Storage:
    """Files of one data folder; paths in the database are relative to it."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def resolve(self, relative: str) -> Path:
        """Absolute path of a stored file; refuses paths that leave the data folder."""
        path = (self.root / relative).resolve()
        if self.root not in path.parents:
            raise ValueError(f"{relative!r} is outside the data folder")
        return path

    def save_bytes(self, relative: str, data: bytes) -> str:
        """Write data atomically (temp file + rename) and return the relative path."""
        path = self.resolve(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return relative

    @staticmethod
    def inspection_path(kind: str, inspection_id: str, when: datetime, suffix: str) -> str:
        """Where an 'images' or 'heatmaps' file goes: kind/YYYY/MM/DD/<id>.<suffix>."""
        return f"{kind}/{when:%Y/%m/%d}/{inspection_id}.{suffix}"

    def save_inspection_file(
        self, kind: str, inspection_id: str, when: datetime, data: bytes, suffix: str
    ) -> str:
        """Store an 'images' or 'heatmaps' file at inspection_path()."""
        return self.save_bytes(self.inspection_path(kind, inspection_id, when, suffix), data)

    def save_model(self, source: Path, sha256: str) -> str:
        """Copy a model package to models/<sha256>.onnx (once) and return the relative path."""
        relative = f"models/{sha256}.onnx"
        target = self.resolve(relative)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        return relative

    def delete(self, relative: str | None) -> bool:
        """Remove a stored file; True if it existed."""
        if not relative:
            return False
        try:
            self.resolve(relative).unlink()
            return True
        except FileNotFoundError:
            return False


def get_storage() -> Storage:
    """The Storage of the current app."""
    return current_app.extensions["qc.storage"]


@dataclass
class RetentionResult:
    """What a retention run removed."""

    inspections: int = 0
    files: int = 0


def apply_retention(
    db: Session, storage: Storage, now: datetime, pass_days: int, fail_days: int, batch: int = 1000
) -> RetentionResult:
    """Delete images and heatmaps of passed items older than pass_days, and of failed, reviewed
    or flagged items older than fail_days (0 or less keeps forever). Records stay.
    """
    result = RetentionResult()
    rules = []
    if pass_days > 0:
        rules.append((now - timedelta(days=pass_days), True))
    if fail_days > 0:
        rules.append((now - timedelta(days=fail_days), False))
    for cutoff, passed_only in rules:
        while True:
            rows = db.scalars(_expired(cutoff, passed_only).limit(batch)).all()
            for insp in rows:
                result.files += storage.delete(insp.image_path) + storage.delete(insp.heatmap_path)
                insp.image_path = insp.heatmap_path = None
            result.inspections += len(rows)
            db.commit()
            if len(rows) < batch:
                break
    log.info("retention: %d inspections, %d files removed", result.inspections, result.files)
    return result


def _expired(cutoff: datetime, passed_only: bool):
    query = select(Inspection).where(
        Inspection.inspected_at < cutoff,
        or_(Inspection.image_path.is_not(None), Inspection.heatmap_path.is_not(None)),
    )
    if passed_only:
        query = query.where(
            Inspection.verdict == "pass",
            Inspection.review.is_(None),
            Inspection.flagged_by.is_(None),
        )
    return query
