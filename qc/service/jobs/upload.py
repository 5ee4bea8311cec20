"""Dataset zips in the `qc train` layout, read as hostile input: zip bombs, path traversal, links,
non-images, empty or mislabelled archives and too few images get a DatasetZipError that says
what to fix. Accepted layouts: good/, defect/<type>/ (and masks/) at the top, or inside one
top folder (what GET /api/v1/dataset.zip gives).
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from qc.imaging import ImageError, is_image_path, read_image

MAX_ENTRIES = 50_000
MAX_UNPACKED = 4 * 1024**3  # 4 GB of photos is far more than a product's training set
MAX_RATIO = 200  # photos barely compress; a 1000:1 entry is a bomb
IGNORED = ("__MACOSX", ".DS_Store", "labels.csv", "Thumbs.db")
SHOWN = 5  # problem files named in a message


class DatasetZipError(ValueError):
    """An unusable dataset zip; the message says what to fix."""


@dataclass
class DatasetCounts:
    """Images per folder of an unpacked dataset."""

    good: int = 0
    defect: dict[str, int] = field(default_factory=dict)

    @property
    def defects(self) -> int:
        return sum(self.defect.values())

    def as_dict(self) -> dict:
        return {"good": self.good, "defect": dict(sorted(self.defect.items()))}


def unpack(source: str | Path | IO[bytes], dest: Path, max_pixels: int) -> DatasetCounts:
    """Check the zip and extract its images to dest/good, dest/defect/<type>, dest/masks."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetZipError(f"the dataset is not a readable zip file ({exc})") from None
    with archive:
        members = _members(archive)
        prefix = _layout_root(members)
        counts, bad = DatasetCounts(), []
        for info, parts in members:
            rel = parts[len(prefix):]
            if not rel or rel[0] in IGNORED:
                continue
            target = _place(rel, info.filename)
            if target is None:
                continue
            out = dest.joinpath(*target)
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
            if target[0] == "masks":
                continue
            try:
                read_image(out, max_pixels=max_pixels)
            except ImageError as exc:
                bad.append(f"{info.filename} ({exc})")
                out.unlink()
                continue
            if target[0] == "good":
                counts.good += 1
            else:
                counts.defect[target[1]] = counts.defect.get(target[1], 0) + 1
    if bad:
        raise DatasetZipError(f"{len(bad)} files are not readable images: "
                              + "; ".join(bad[:SHOWN]))
    if counts.good + counts.defects == 0:
        raise DatasetZipError("the zip holds no images under good/ or defect/<type>/")
    return counts


def _members(archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """The file entries with safe relative paths; refuses bombs, traversal and links."""
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise DatasetZipError(f"the zip has {len(infos)} entries; at most {MAX_ENTRIES}")
    total = sum(i.file_size for i in infos)
    if total > MAX_UNPACKED:
        raise DatasetZipError(f"the zip unpacks to {total / 1e9:.1f} GB; at most "
                              f"{MAX_UNPACKED / 1e9:.0f} GB")
    out = []
    for info in infos:
        name = info.filename.replace("\\", "/")
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or ":" in name:
            raise DatasetZipError(f"unsafe path in the zip: {info.filename!r}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DatasetZipError(f"links are not allowed in the zip: {info.filename!r}")
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
            ratio = info.file_size // info.compress_size
            raise DatasetZipError(f"{info.filename!r} expands {ratio} times: not a photo "
                                  "(zip bomb?)")
        if not info.is_dir():
            out.append((info, tuple(p for p in path.parts if p not in ("", "."))))
    return out


def _layout_root(members: list[tuple[zipfile.ZipInfo, tuple[str, ...]]]) -> tuple[str, ...]:
    """() when good/ or defect/ are at the top, (folder,) when they are inside one folder."""
    tops = {parts[0] for _, parts in members if len(parts) > 1 and parts[0] not in IGNORED}
    if tops & {"good", "defect"}:
        return ()
    if len(tops) == 1:
        top = next(iter(tops))
        inner = {parts[1] for _, parts in members if len(parts) > 2 and parts[0] == top}
        if inner & {"good", "defect"}:
            return (top,)
    raise DatasetZipError(
        "no good/ or defect/<type>/ folder in the zip (found: "
        + (", ".join(sorted(tops)[:SHOWN]) or "nothing") + "); layout: good/*.png, "
        "defect/<type>/*.png, at the top or inside one folder")


def _place(rel: tuple[str, ...], name: str) -> tuple[str, ...] | None:
    """Where a file goes in the training layout; refuses files out of place."""
    if rel[-1].startswith(".") or rel[-1] in IGNORED:
        return None
    if len(rel) == 1 and not is_image_path(Path(rel[0])):
        return None  # a README or manifest beside the folders
    where = rel[0]
    if where == "masks" and len(rel) == 3:
        return rel
    if where == "good" and len(rel) == 2 and is_image_path(Path(rel[1])):
        return rel
    if where == "defect" and len(rel) == 3 and is_image_path(Path(rel[2])):
        return rel
    if where == "defect" and len(rel) == 2:
        raise DatasetZipError(f"{name!r}: a defect image belongs in defect/<type>/, "
                              "a folder named for its defect type")
    if where in ("good", "defect") and not is_image_path(Path(rel[-1])):
        raise DatasetZipError(f"{name!r} is not an image (png, jpg, bmp, tif)")
    raise DatasetZipError(f"{name!r} is out of place: layout is good/*.png, defect/<type>/*.png")
