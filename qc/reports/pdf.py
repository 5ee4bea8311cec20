"""PDF rendering (fpdf2) of the quality report and the lot certificate, on A4 or Letter.

Each PDF attaches the signed JSON document it shows (qc-document.json); signing.sign_pdf then
signs the PDF's bytes. Text uses the DejaVu fonts that ship with matplotlib (any Unicode lot name
prints); charts are PNGs from charts.py.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import matplotlib
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from qc.reports import charts
from qc.reports.signing import ATTACHMENT

log = logging.getLogger(__name__)

PAPERS = {"a4": "A4", "letter": "Letter"}
FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
HEADINGS = FontFace(emphasis="BOLD", fill_color=(232, 236, 242))
MAX_EPISODES = 20  # stability episodes listed in the PDF (all are in the JSON)


def pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f} %"


def money(value: float | None) -> str:
    return "–" if value is None else f"{value:,.2f}"


def when(text: str) -> str:
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M")


class Document(FPDF):
    """An fpdf2 document with qc's headings, paragraphs, tables and footer."""

    def __init__(self, paper: str, title: str, fingerprint: str):
        super().__init__(format=PAPERS[paper])
        self.doc_title, self.fingerprint = title, fingerprint
        self.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans.ttf"))
        self.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
        self.set_font("DejaVu", size=9)
        self.set_title(title)
        self.set_creator("qc")
        self.set_auto_page_break(True, margin=16)
        self.add_page()

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("DejaVu", size=7)
        self.set_text_color(110)
        self.cell(0, 5, f"{self.doc_title} · signed, key {self.fingerprint[:16]}… · "
                        f"page {self.page_no()}/{{nb}}", align="C")
        self.set_text_color(0)

    def title_block(self, title: str, lines: Iterable[str]) -> None:
        """The document's title and the lines under it."""
        self.set_font("DejaVu", "B", 16)
        self.cell(0, 9, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font("DejaVu", size=9)
        for line in lines:
            self.cell(0, 5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(2)

    def heading(self, text: str, room: float = 40) -> None:
        """A section heading; a new page first when less than `room` mm are left under it."""
        if self.get_y() + room > self.h - 16:
            self.add_page()
        self.ln(2)
        self.set_font("DejaVu", "B", 11)
        self.cell(0, 7, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font("DejaVu", size=9)

    def para(self, text: str, size: float = 9) -> None:
        """A paragraph of plain words."""
        self.set_font("DejaVu", size=size)
        self.multi_cell(0, 4.5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font("DejaVu", size=9)
        self.ln(1)

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[str]],
              widths: Sequence[float] | None = None, size: float = 8) -> None:
        """A table with a bold header row (repeated on each page)."""
        self.set_font("DejaVu", size=size)
        with super().table(col_widths=widths, line_height=1.6 * size * 0.3528 + 1,
                           text_align="LEFT", headings_style=HEADINGS,
                           repeat_headings=1) as table:
            row = table.row()
            for text in headers:
                row.cell(text)
            for values in rows:
                row = table.row()
                for text in values:
                    row.cell(str(text))
        self.set_font("DejaVu", size=9)
        self.ln(2)

    def grid(self, headers: Sequence[str], rows: Iterable[Sequence[str]],
             widths: Sequence[float], size: float = 7) -> None:
        """A long table of one-line cells (cut to fit), header repeated on each page: what
        table() does, ~20 times faster (a lot's 10,000 units)."""
        height = size * 0.3528 + 1.6

        def header() -> None:
            self.set_font("DejaVu", "B", size)
            self.set_fill_color(*HEADINGS.fill_color.colors255)
            for width, text in zip(widths, headers):
                self.cell(width, height, text, border=1, fill=True)
            self.ln(height)
            self.set_font("DejaVu", size=size)

        header()
        for values in rows:
            if self.get_y() + height > self.page_break_trigger:
                self.add_page()
                header()
            for width, text in zip(widths, values):
                self.cell(width, height, self._fit(str(text), width - 2), border=1)
            self.ln(height)
        self.set_font("DejaVu", size=9)
        self.ln(2)

    def _fit(self, text: str, width: float) -> str:
        """text, cut with an ellipsis to fit `width` mm."""
        if self.get_string_width(text) <= width:
            return text
        while text and self.get_string_width(text + "…") > width:
            text = text[:-1]
        return text + "…"

    def picture(self, png: bytes) -> None:
        """A chart across the text width."""
        height = self.epw * charts.SIZE[1] / charts.SIZE[0]
        if self.get_y() + height > self.h - 16:
            self.add_page()
        self.image(io.BytesIO(png), w=self.epw)
        self.ln(2)

    def finish(self, document: dict) -> bytes:
        """Attach the signed JSON document and return the PDF's bytes."""
        payload = document["payload"]
        self.set_creation_date(datetime.fromisoformat(payload["issued_at"]))
        self.set_subject(f"qc {payload['document']}, signed with key "
                         f"{document['signature']['key_fingerprint']}")
        data = json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")
        self.embed_file(bytes=data, basename=ATTACHMENT, desc="the signed qc document",
                        compress=False)
        return bytes(self.output())


def verification_section(pdf: Document, document: dict) -> None:
    """How to check the document, with the key's fingerprint."""
    sig = document["signature"]
    pdf.heading("How to verify this document")
    pdf.para(
        "This PDF is signed by the plant's qc service with an Ed25519 key. The numbers above are "
        f"also attached as the file {ATTACHMENT} (the signed data itself). Anyone can check "
        "both without the plant's server: `qc report verify FILE.pdf`, or with openssl as "
        "described in docs/reports.md. Changing any number, byte or the signature makes the "
        "check fail. Compare the key's fingerprint with the one the plant gave you "
        "(`qc keys show`):")
    pdf.set_font("Courier", size=8)
    pdf.multi_cell(0, 4, f"Ed25519 key fingerprint (SHA-256):\n{sig['key_fingerprint']}",
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("DejaVu", size=9)
