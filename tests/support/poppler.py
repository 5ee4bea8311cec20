"""PDF pages as images with poppler's pdftoppm (Debian package poppler-utils), for tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def require_pdftoppm() -> str:
    """The pdftoppm binary; skip (or fail under CI=true) when it is missing."""
    import pytest

    binary = shutil.which("pdftoppm")
    if binary:
        return binary
    problem = "pdftoppm is missing (apt-get install poppler-utils)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {problem}")
    pytest.skip(problem)


def render_pages(pdf: Path, out_dir: Path, dpi: int = 50) -> list[Path]:
    """Render every page of a PDF to PNG; returns the images in page order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([require_pdftoppm(), "-r", str(dpi), "-png", str(pdf),
                           str(out_dir / "page")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Error" not in done.stderr, done.stderr  # poppler reports broken PDFs there
    return sorted(out_dir.glob("page-*.png"))
