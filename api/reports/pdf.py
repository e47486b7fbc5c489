"""The PDF documents of reports: fpdf2, A4 portrait, in French, DejaVu Sans from
`api/reports/fonts/` (embedded, never a system font), a running header and "page X sur Y"
footer, PDF/A-3B.

Same content, same bytes: the creation date is the report's `as_of`, the XMP metadata (which
PDF/A requires) is written here with that date too, since fpdf2's own puts the wall clock
in its `ModifyDate`; the file identifier `/ID` is fpdf2's MD5 of the document's bytes and
creation date, so it follows from the content as well. Nothing else in the file depends on
the clock or on chance (fonts are subset in glyph order, images named by their digest).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from fpdf import FPDF, FontFace
from fpdf import __version__ as FPDF_VERSION
from fpdf.enums import TableBordersLayout, WrapMode

from api.reports import french

FONTS = Path(__file__).resolve().parent / "fonts"
FAMILY = "DejaVu"
COMPLIANCE = "PDFA_3B"  # PDF/A-3 allows attaching the XLSX later (research B2, R6)

# Named colours (RGB): text, muted text, rules and fills, and the status scale.
INK = (33, 37, 41)
MUTED = (108, 117, 125)
RULE = (206, 212, 218)
FILL = (241, 243, 245)
ACCENT = (31, 78, 121)
GOOD = (25, 135, 84)
WARN = (176, 106, 0)
BAD = (176, 42, 55)

MARGIN = 18.0  # mm
LINE = 4.6  # mm, body text line height at 9.5 pt


class Document(FPDF):
    """An A4 report page by page; `running` is the header line from page 2 on."""

    def __init__(self, *, title: str, running: str, as_of: datetime) -> None:
        super().__init__(orientation="P", unit="mm", format="A4", enforce_compliance=COMPLIANCE)
        # Regular and bold only: each face costs its parsing (about 25 ms) in every report.
        self.add_font(FAMILY, "", str(FONTS / "DejaVuSans.ttf"))
        self.add_font(FAMILY, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
        moment = french.utc(as_of).replace(microsecond=0)
        self.set_creation_date(moment)
        self.set_title(title)
        self.set_author("Vigie")
        self.set_creator("Vigie")
        self.set_producer(f"fpdf2 {FPDF_VERSION}")
        self.set_lang("fr-FR")
        self.set_xmp_metadata(_xmp(title, f"fpdf2 {FPDF_VERSION}", moment))
        self.set_margins(MARGIN, MARGIN + 4, MARGIN)
        self.set_auto_page_break(True, MARGIN + 2)
        self.set_text_color(*INK)
        self.set_draw_color(*RULE)
        self.running = running

    # --- page furniture -------------------------------------------------------------------

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self.set_font(FAMILY, "", 7.5)
        self.set_text_color(*MUTED)
        self.set_xy(MARGIN, 9)
        self.cell(self.epw, 4, self.running, align="L")
        self.line(MARGIN, 14, self.w - MARGIN, 14)
        self.set_text_color(*INK)
        self.set_xy(MARGIN, self.t_margin)

    def footer(self) -> None:
        self.set_font(FAMILY, "", 7.5)
        self.set_text_color(*MUTED)
        self.set_xy(MARGIN, self.h - 12)
        self.cell(self.epw / 2, 4, "Vigie · cybersurveillance des établissements de santé")
        self.cell(self.epw / 2, 4, f"page {self.page_no()} sur {{nb}}", align="R")
        self.set_text_color(*INK)

    # --- blocks ---------------------------------------------------------------------------

    def section(self, title: str, *, new_page: bool = True) -> None:
        """A numbered part of the report: a new page, a bookmark, a title."""
        if new_page:
            self.add_page()
        else:
            self.room(30)
        self.start_section(title)
        self.set_font(FAMILY, "B", 15)
        self.set_text_color(*ACCENT)
        self.multi_cell(self.epw, 8, title, new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(*INK)
        self.ln(2)

    def subheading(self, title: str) -> None:
        self.room(25)
        self.ln(2)
        self.set_font(FAMILY, "B", 11)
        self.multi_cell(self.epw, 6, title, new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def paragraph(self, text: str, *, size: float = 9.5, muted: bool = False) -> None:
        self.set_font(FAMILY, "", size)
        if muted:
            self.set_text_color(*MUTED)
        self.multi_cell(self.epw, LINE * size / 9.5, text, align="L", new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(*INK)
        self.ln(1.5)

    def bullets(self, items: Sequence[str], *, size: float = 9.5) -> None:
        self.set_font(FAMILY, "", size)
        for item in items:
            self.set_x(MARGIN + 2)
            self.cell(4, LINE * size / 9.5, "•")
            self.multi_cell(self.epw - 6, LINE * size / 9.5, item, align="L",
                            new_x="LMARGIN", new_y="NEXT")  # fmt: skip
            self.ln(0.6)
        self.ln(1)

    def room(self, height: float) -> None:
        """A new page unless `height` mm are left on this one (keeps a title with its text)."""
        if self.get_y() + height > self.page_break_trigger:
            self.add_page()

    def facts(self, rows: Sequence[tuple[str, str]], *, label_width: float = 0.32) -> None:
        """Label / value lines, as on a form."""
        self.set_font(FAMILY, "", 9.5)
        with self.table(
            col_widths=(label_width, 1 - label_width),
            first_row_as_headings=False,
            borders_layout=TableBordersLayout.HORIZONTAL_LINES,
            text_align=("LEFT", "LEFT"),
            line_height=LINE,
            padding=(1.2, 1.5),
            v_align="TOP",
        ) as table:
            for label, value in rows:
                row = table.row()
                row.cell(label, style=FontFace(color=MUTED))
                row.cell(value)
        self.ln(3)

    def grid(
        self,
        headings: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        widths: Sequence[float],
        align: Sequence[str],
        size: float = 8.5,
    ) -> None:
        """A table with its headings repeated on each page; a cell is text, or (text, colour)
        for a coloured one. A row never splits across pages."""
        self.set_font(FAMILY, "", size)
        with self.table(
            col_widths=tuple(widths),
            text_align=tuple(align),
            borders_layout=TableBordersLayout.HORIZONTAL_LINES,
            headings_style=FontFace(emphasis="BOLD", color=INK, fill_color=FILL),
            line_height=size * 0.47,
            padding=(1.2, 1.2),
            v_align="TOP",
            wrapmode=WrapMode.WORD,
            repeat_headings=1,
        ) as table:
            head = table.row()
            for heading in headings:
                head.cell(heading)
            for values in rows:
                row = table.row()
                for value in values:
                    if isinstance(value, tuple):
                        text, colour = value
                        row.cell(text, style=FontFace(color=colour, emphasis="BOLD"))
                    else:
                        row.cell(str(value))
        self.ln(3)

    def figure(self, image: Any, *, width: float, height: float) -> None:
        """An image (a chart) the full text width, kept whole on one page."""
        self.room(height + 2)
        self.image(image, x=MARGIN + (self.epw - width) / 2, y=self.get_y(), w=width, h=height)
        self.set_y(self.get_y() + height + 2)

    def rendered(self) -> bytes:
        return bytes(self.output())


def _xmp(title: str, producer: str, moment: datetime) -> str:
    """The XMP packet PDF/A asks for, with the document's own date (never the clock)."""
    stamp = moment.isoformat(timespec="seconds")
    return "\n".join(
        [
            '<x:xmpmeta xmlns:x="adobe:ns:meta/">',
            ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">',
            '  <rdf:Description rdf:about=""',
            '    xmlns:dc="http://purl.org/dc/elements/1.1/"',
            '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"',
            '    xmlns:pdf="http://ns.adobe.com/pdf/1.3/"',
            '    xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/"',
            '    xmp:CreatorTool="Vigie"',
            f'    xmp:CreateDate="{stamp}"',
            f'    xmp:ModifyDate="{stamp}"',
            f'    xmp:MetadataDate="{stamp}"',
            f'    pdf:Producer="{escape(producer)}">',
            "   <pdfaid:part>3</pdfaid:part>",
            "   <pdfaid:conformance>B</pdfaid:conformance>",
            f'   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{escape(title)}</rdf:li>'
            "</rdf:Alt></dc:title>",
            "   <dc:creator><rdf:Seq><rdf:li>Vigie</rdf:li></rdf:Seq></dc:creator>",
            "  </rdf:Description>",
            " </rdf:RDF>",
            "</x:xmpmeta>",
        ]
    )
