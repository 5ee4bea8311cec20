"""`qc inspect MODEL PATH...`: inspect image files with onnxruntime alone (no torch)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import click

from qc.heatmap import encode_png, overlay
from qc.imaging import ImageError, is_image_path, read_image
from qc.inference import Inspector
from qc.modelpack import ModelPackError

log = logging.getLogger(__name__)


def iter_images(paths: list[Path]) -> Iterator[Path]:
    """Files as given, and images found recursively in folders (skipping a dataset's masks/)."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and is_image_path(child) and not _in_masks(child, path):
                    yield child
        else:
            yield path


def _in_masks(path: Path, top: Path) -> bool:
    """True inside DATA/masks/ of a dataset root (a folder that also has good/ or defect/)."""
    for parent in path.relative_to(top).parents:
        folder = top / parent
        if folder.name == "masks" and (
            (folder.parent / "good").is_dir() or (folder.parent / "defect").is_dir()
        ):
            return True
    return False


def inspect_paths(inspector: Inspector, paths: list[Path], heatmaps: Path | None = None):
    """Yield one result dict per image: the verdict fields, or {"path", "error"}."""
    for path in iter_images(paths):
        try:
            if not path.is_file():
                raise ImageError(f"{path}: no such file")
            if not is_image_path(path):
                raise ImageError(f"{path}: not an image file type (png, jpg, bmp, tif)")
            image = read_image(path)
            verdict = inspector.inspect(image, with_map=heatmaps is not None)
        except ImageError as exc:
            yield {"path": str(path), "error": str(exc)}
            continue
        row = {"path": str(path), **verdict.to_dict()}
        if heatmaps is not None:
            target = heatmaps / (_flat_name(path) + "_heatmap.png")
            target.write_bytes(encode_png(overlay(image, verdict.anomaly_map)))
            row["heatmap"] = str(target)
        yield row


def _flat_name(path: Path) -> str:
    parts = path.with_suffix("").parts[-3:]
    return "__".join(p for p in parts if p not in ("/", ".."))


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--threads", type=int, help="onnxruntime intra-op threads.")
@click.option("--heatmaps", type=click.Path(file_okay=False, path_type=Path),
              help="Write a heatmap overlay PNG per image into this folder.")
def inspect(model: Path, paths: tuple[Path, ...], as_json: bool, threads: int | None,
            heatmaps: Path | None) -> None:
    """Inspect image files or folders with MODEL; exit status 1 if any image failed to load."""
    try:
        inspector = Inspector(model, threads=threads)
    except ModelPackError as exc:
        raise click.ClickException(str(exc)) from exc
    if heatmaps is not None:
        heatmaps.mkdir(parents=True, exist_ok=True)
    failed = 0
    for row in inspect_paths(inspector, list(paths), heatmaps):
        failed += "error" in row
        if as_json:
            click.echo(json.dumps(row))
        elif "error" in row:
            click.echo(f"ERROR {row['path']}: {row['error']}")
        else:
            kind = f" ({row['defect_type']})" if row["defect_type"] else ""
            click.echo(f"{row['verdict'].upper():4} {row['score']:.3f}{kind} "
                       f"{row['latency_ms']:.1f} ms  {row['path']}")
    if failed:
        raise SystemExit(1)
