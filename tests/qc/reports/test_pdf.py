"""PDF layout helpers: long tables repeat their header on each page and cut what does not fit."""

from __future__ import annotations

import io

from pypdf import PdfReader

from qc.reports.pdf import Document


def test_grid_repeats_the_header_on_every_page_and_cuts_long_cells():
    pdf = Document("letter", "test", "ab" * 32)
    rows = [(str(n), "S" * 128 if n == 1 else f"SN-{n}", "lot ä/1") for n in range(1, 201)]
    pdf.grid(("#", "serial", "lot"), rows, widths=(10, 40, 30))
    reader = PdfReader(io.BytesIO(bytes(pdf.output())))
    texts = [page.extract_text() for page in reader.pages]
    assert len(texts) >= 3
    assert all(text.lstrip().startswith("# serial lot") for text in texts)
    joined = "\n".join(texts)
    assert "SN-200" in joined and "lot ä/1" in joined
    assert "S" * 128 not in joined and "S…" in joined  # cut to its 40 mm column
    width = reader.pages[0].mediabox.width
    assert round(float(width)) == 612  # Letter
