"""The report as a PDF (fpdf2), in the report's own language, honest about its state.

- An unsigned report carries a stamp on every page ("İMZALANMAMIŞ TASLAK" / "NOT SIGNED —
  DRAFT": a band in the header and a faint diagonal watermark) and no sentence claims review or
  signature; a signed one names the signer and the local time of signature (``localtime``).
- Every heading, label, status and finding name comes from ``report_words``.
- Fonts: DejaVu Sans (shipped with matplotlib) covers Turkish, Greek and Cyrillic; fonts for
  other scripts (CJK, emoji, ...) are added as fpdf2 fallback fonts when the text needs them and
  the machine has them (``FALLBACK_FONTS``). fpdf2 logs the characters it had no glyph for; that
  record is dropped (it would put report text into the log) and one line with the count and
  the study id is logged instead.
- Text is printed ``printable`` (no bidi or control characters: a name with U+202E would print
  reversed) and the DICOM identity as DICOM allows it (``dicom_values.outgoing_study``).

What the AI said and what the radiologist signed (the report dict of ``finding_states``):

- The AI findings table prints each row's one ``state`` (``report_words.decision``), never
  re-derived from ``positive`` or the probabilities. An undecided AI result (its candidates) or
  a self-contradicting one (the normal label and a finding both above their thresholds) says
  so in one line above the table (``report_words.decision_note``), and under the heatmap when
  the heatmap is of one of those labels: the picture of one candidate is not the answer.
- After sign-off with the signer's labels (``signed_labels``) the table gains the
  radiologist's column (``report_words.verdict``: confirmed, rejected, added, decided); labels
  the signer added that the model did not read are rows too. The title still says the AI's
  findings are suggestions. Red marks only a suggestion the signer rejected.
- A finding the signer ruled out (rejected, or undecided and decided absent) is never shown as
  support for the signed conclusion:
  * its heatmap is not printed; one line says the signing radiologist rejected it. A signed
    report is read by clinicians who were not at the workstation: a coloured Grad-CAM over the
    lungs beside "Normal akciğer grafisi", however captioned, reads as "the pneumonia is here".
    The radiologist signs what the report says; the AI's suggestion stays on record in the
    table (marked rejected) and the heatmap in the viewer.
  * a cited passage about it (``report_words.citation_label``) is left out of the sources
    when the signed text no longer cites its number; a number the signed text still cites
    stays (a reference must resolve) and says it is about a suggestion the signer rejected.
  Citation numbers are never renumbered: they are the text's ``[n]``.
- Before sign-off none of this applies (there is no verdict): only the state and the note.
"""

from __future__ import annotations

import io
import logging
import re
from functools import cache
from pathlib import Path
from typing import Any, cast

from medai.core.percent import probability
from medai.platform.dicom.dicom_values import outgoing_study
from medai.platform.documents.words import disclosure
from medai.platform.documents.words import report_words as rw
from medai.platform.records.localtime import format_local
from medai.platform.records.printable import printable_tree

log = logging.getLogger(__name__)
FONT = "DejaVu"
# file-name patterns of fallback fonts (first match per pattern), in order of preference
FALLBACK_FONTS = (
    "NotoSansCJK*-Regular.tt[cf]",
    "NotoSansCJK-Regular.ttc",
    "wqy-microhei.ttc",
    "wqy-zenhei.ttc",
    "DroidSansFallbackFull.ttf",
    "NotoSans-Regular.ttf",
    "NotoSansSymbols2-Regular.ttf",
    "Symbola*.ttf",
    "NotoEmoji-Regular.ttf",
    "unifont*.ttf",
)
FONT_DIRS = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path.home() / ".local/share/fonts",
    Path.home() / ".fonts",
)
_GLYPH_WARNING = "missing the following glyphs"


class _DropGlyphText(logging.Filter):
    """Records that would name the report's characters are never logged: fpdf2's missing-glyph
    warning quotes them, and fontTools' subsetter lists the glyph names used (at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("fontTools"):
            return record.levelno >= logging.WARNING and "glyph" not in str(record.msg).lower()
        return _GLYPH_WARNING not in str(record.msg)


def _install_filter() -> None:
    for name in ("fpdf.output", "fontTools.subset"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropGlyphText) for f in logger.filters):
            logger.addFilter(_DropGlyphText())


_install_filter()


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@cache
def _cmap(path: str) -> frozenset[int]:
    """The code points a font file covers (first face of a collection)."""
    from fontTools.ttLib import TTFont

    try:
        font = TTFont(path, fontNumber=0, lazy=True)
        return frozenset(font.getBestCmap() or {})
    except Exception as exc:  # broad: fontTools raises many types: no fallback (logged)
        log.warning("font %s unreadable (%s): not a fallback", Path(path).name, type(exc).__name__)
        return frozenset()


@cache
def _fallback_files() -> tuple[str, ...]:
    """Fallback font files present on this machine, in preference order."""
    found: list[str] = []
    for pattern in FALLBACK_FONTS:
        for root in FONT_DIRS:
            hits = sorted(root.rglob(pattern)) if root.is_dir() else []
            if hits and str(hits[0]) not in found:
                found.append(str(hits[0]))
                break
    return tuple(found)


def fallbacks_for(text: str) -> list[str]:
    """The fallback font files needed for the characters of ``text`` DejaVu lacks."""
    missing = {ord(c) for c in text if c.isprintable() and not c.isspace()}
    missing -= _cmap(str(_font_dir() / "DejaVuSans.ttf"))
    chosen = []
    for path in _fallback_files() if missing else ():
        covered = missing & _cmap(path)
        if covered:
            chosen.append(path)
            missing -= covered
        if not missing:
            break
    return chosen


def _all_text(study: dict[str, Any], report: dict[str, Any]) -> str:
    parts = [str(v) for v in (report.get("sections") or {}).values()]
    parts += [
        str(c.get(k) or "")
        for c in report.get("citations") or []
        for k in ("title", "source", "licence")
    ]
    parts += [str(study.get("patient_ref") or ""), str(rw.signer_name(report) or "")]
    parts += [v for _k, v in rw.dicom_rows(study, "en")]  # a name in any script
    parts.append(str(study.get("clinical_question") or ""))  # the clinician's own words
    return " ".join(parts)


def _make_pdf(stamp: str | None, footer: str):
    from fpdf import FPDF

    class ReportPDF(FPDF):
        def header(self) -> None:
            if stamp:
                self.set_fill_color(176, 0, 32)
                self.set_text_color(255, 255, 255)
                self.set_font(FONT, "B", 12)
                self.set_xy(self.l_margin, 6)
                self.cell(self.epw, 8, stamp, fill=True, align="C")
                self.set_text_color(0, 0, 0)
            self.set_y(self.t_margin)

        def footer(self) -> None:
            if stamp:  # drawn last, translucent: over images too, text still readable
                with self.local_context(text_color=(200, 0, 40), fill_opacity=0.14):
                    self.set_font(FONT, "B", 46)
                    w = self.get_string_width(stamp)
                    with self.rotation(40, x=self.w / 2, y=self.h / 2):
                        self.text(self.w / 2 - w / 2, self.h / 2, stamp)
            self.set_y(-11)
            self.set_font(FONT, "", 7.5)
            self.set_text_color(110, 110, 110)
            self.cell(0, 5, footer.replace("{page}", str(self.page_no())), align="C")
            self.set_text_color(0, 0, 0)

    return ReportPDF(format="A4")


def _image_size(png: bytes, max_w: float, max_h: float) -> tuple[float, float]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        w_px, h_px = im.size
    scale = min(max_w / w_px, max_h / h_px)
    return w_px * scale, h_px * scale


def on_film(image_png: bytes | None, heatmap_png: bytes) -> bytes:
    """The heatmap laid on the film: the stored Grad-CAM is a transparent RGBA overlay
    (``imaging.explain``), which alone on paper would float on white. An opaque one is kept."""
    from PIL import Image

    with Image.open(io.BytesIO(heatmap_png)) as heat:
        if heat.mode not in ("RGBA", "LA", "PA") and "transparency" not in heat.info:
            return heatmap_png
        layer = heat.convert("RGBA")
    if image_png:
        with Image.open(io.BytesIO(image_png)) as film:
            base = film.convert("RGBA").resize(layer.size)
    else:
        base = Image.new("RGBA", layer.size, (0, 0, 0, 255))
    buf = io.BytesIO()
    Image.alpha_composite(base, layer).convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def _images(
    pdf,
    w: dict[str, str],
    image_png: bytes | None,
    heatmap_png: bytes | None,
    heatmap_caption: str,
    withheld: str = "",
) -> None:
    """The film and the heatmap side by side, each captioned; ``withheld``: the heatmap is not
    printed and this line stands in its place (a finding the signer rejected)."""
    heat = on_film(image_png, heatmap_png) if heatmap_png and not withheld else None
    shown = [(png, cap) for png, cap in ((image_png, w["image"]), (heat, heatmap_caption)) if png]
    withheld = withheld if heatmap_png else ""
    if not shown:
        if withheld:
            _notice(pdf, withheld)
        return
    col = (pdf.epw - 6) / 2
    sizes = [_image_size(png, col, 72) for png, _ in shown]
    height = max(h for _, h in sizes) + 10
    if pdf.get_y() + height > pdf.page_break_trigger:
        pdf.add_page()
    y = pdf.get_y()
    bottom = y
    for i, ((png, caption), (iw, ih)) in enumerate(zip(shown, sizes, strict=True)):
        x = pdf.l_margin + i * (col + 6)
        pdf.image(io.BytesIO(png), x=x, y=y, w=iw, h=ih)
        pdf.set_xy(x, y + ih + 1)
        pdf.set_font(FONT, "", 7.5)
        pdf.multi_cell(col, 3.5, caption, align="L")
        bottom = max(bottom, pdf.get_y())
    if withheld and len(shown) == 1:  # in the heatmap's place, beside the film
        pdf.set_xy(pdf.l_margin + col + 6, y)
        _notice(pdf, withheld, width=col)
        bottom = max(bottom, pdf.get_y())
    pdf.set_xy(pdf.l_margin, bottom + 3)


def _notice(pdf, text: str, width: float = 0, fill=(255, 243, 205)) -> None:
    """One framed line the reader must not miss (an undecided or self-contradicting AI, a
    heatmap withheld)."""
    x = pdf.get_x()
    pdf.set_font(FONT, "B", 8.5)
    pdf.set_fill_color(*fill)
    pdf.set_draw_color(176, 120, 0)
    pdf.multi_cell(
        width, 4.5, text, border=1, fill=True, padding=1.5, align="L", new_x="LEFT", new_y="NEXT"
    )
    pdf.set_draw_color(0, 0, 0)
    pdf.set_fill_color(255, 255, 255)
    pdf.set_x(x)


def _findings(
    pdf, study: dict[str, Any], report: dict[str, Any], w: dict[str, str], lang: str
) -> None:
    findings = [f for f in report.get("findings") or [] if isinstance(f, dict)]
    if not findings:
        return
    from fpdf.fonts import FontFace

    task = study.get("task")
    signer = bool(report.get("signed_labels"))
    _heading(pdf, w["findings_title_signed" if signer else "findings_title"], keep_with=24)
    note = rw.decision_note(report.get("decision"), task, lang)
    if note:
        _notice(pdf, note)
        pdf.ln(1.5)
    flag = rw.scope(report, study, lang).get("out_of_scope")
    if flag:  # an image unlike the model's training films: said above its findings
        _notice(pdf, flag, fill=(255, 232, 208))
        pdf.ln(1.5)
    pdf.set_font(FONT, "", 9)
    pdf.set_fill_color(255, 255, 255)
    widths = (40, 23, 21, 52, 44) if signer else (60, 26, 26, 68)
    heads = [w["col_finding"], w["col_probability"], w["col_threshold"], w["col_decision"]]
    rejected = FontFace(family=FONT, emphasis="BOLD", color=(176, 0, 32))
    said = FontFace(family=FONT, emphasis="BOLD")
    with pdf.table(
        col_widths=widths, text_align="LEFT", line_height=5, headings_style=_heading_style()
    ) as table:
        table.row(heads + ([w["col_signer"]] if signer else []))
        for f in findings:
            row = table.row()
            for text in (
                rw.label_name(task, str(f.get("label") or ""), lang),
                probability(f.get("probability"), lang),
                probability(f.get("threshold"), lang),
                rw.decision(f, lang, task),
            ):
                row.cell(text)
            if signer:  # red only for a suggestion the signer rejected; bold where the
                # signer said what the AI did not (added) or decided what it could not
                verdict = f.get("verdict")
                row.cell(
                    rw.verdict(f, lang, task),
                    style=rejected
                    if verdict == "rejected"
                    else said
                    if verdict in ("added", "decided")
                    else None,
                )
    pdf.ln(3)


def _scope(pdf, study: dict[str, Any], report: dict[str, Any], lang: str) -> None:
    """What the AI model looks for and does not assess (``imaging.scope``), under its findings;
    an image it refused or flagged out of scope says so here when there is no findings table
    to say it above."""
    words = rw.scope(report, study, lang)
    if not words:
        return
    has_table = any(isinstance(f, dict) for f in report.get("findings") or [])
    lines = [words[k] for k in ("detects", "cannot_detect", "cannot_tell_apart") if words.get(k)]
    _heading(pdf, f"{words['title']} ({rw.words(lang)['ai_suggestion']})", keep_with=14)
    if words.get("out_of_scope") and not has_table:
        _notice(pdf, words["out_of_scope"], fill=(255, 232, 208))
        pdf.ln(1)
    pdf.set_font(FONT, "", 9)
    for line in lines:
        pdf.multi_cell(0, 4.5, line, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _note(pdf, study: dict[str, Any], report: dict[str, Any], lang: str) -> None:
    """The AI note of the draft the report was made from (``versions.ai_note``): the AI's
    account of itself, disclosed beside the report, never part of its text; its lines the
    scope section (or the findings table's flag) already printed are not printed twice."""
    said = {str(v).strip() for v in (rw.scope(report, study, lang) or {}).values()}
    w = rw.words(lang)
    lines = [
        str(line).strip()
        for line in report.get("ai_note") or []
        if str(line).strip() and str(line).strip() not in said
    ]
    if not lines:
        return
    _heading(pdf, w["ai_note"], keep_with=9)
    pdf.set_font(FONT, "", 8.5)
    for line in lines:
        pdf.multi_cell(0, 4.2, f"• {line}", align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)


def _ruled_out(finding: dict[str, Any]) -> bool:
    """The signer said absent what the AI suggested or could not decide (rejected, or decided
    absent): nothing of the AI's may support it in the signed report."""
    return finding.get("signer") is False and finding.get("state") in ("present", "indeterminate")


def _ruled_out_labels(report: dict[str, Any]) -> set[str]:
    if not report.get("signed_labels"):
        return set()
    return {
        str(f.get("label"))
        for f in report.get("findings") or []
        if isinstance(f, dict) and _ruled_out(f)
    }


def _heatmap_words(
    study: dict[str, Any], report: dict[str, Any], label: str | None, w: dict[str, str], lang: str
) -> tuple[str, str]:
    """(caption, withheld line) of the heatmap of ``label``: withheld when the signer ruled the
    label out; the caption names the undecided or conflicting AI result when the heatmap is of
    one of its labels, and the signer's verdict once signed."""
    task = study.get("task")
    name = rw.label_name(task, label, lang) if label else ""
    if label and label in _ruled_out_labels(report):
        undecided = any(
            isinstance(f, dict) and f.get("label") == label and f.get("state") == "indeterminate"
            for f in report.get("findings") or []
        )  # the AI could not decide it: the signer decided, nothing of the AI's was rejected
        key = "heatmap_decided_absent" if undecided else "heatmap_rejected"
        return "", w[key].format(label=name)
    caption = w["heatmap"].format(label=name)
    row = (
        next(
            (
                f
                for f in report.get("findings") or []
                if isinstance(f, dict) and f.get("label") == label
            ),
            None,
        )
        if label
        else None
    )
    decision = report.get("decision") or {}
    if label and (
        label in (decision.get("conflict") or [])
        or (
            decision.get("state") == "indeterminate" and label in (decision.get("candidates") or [])
        )
    ):
        caption += "\n" + rw.decision_note(decision, task, lang)
    if row is not None and report.get("signed_labels") and row.get("verdict"):
        caption += "\n" + rw.verdict(row, lang, task)
    return caption, ""


def _sources(
    report: dict[str, Any], study: dict[str, Any], lang: str
) -> list[tuple[dict[str, Any], str]]:
    """The citations the PDF lists, each with what it says of a ruled-out finding: one about a
    label the signer ruled out is left out unless the signed text still cites its number."""
    out = []
    ruled_out = _ruled_out_labels(report)
    cited = {
        int(n)
        for text in (report.get("sections") or {}).values()
        for n in re.findall(r"\[(\d+)\]", str(text or ""))
    }
    for c in report.get("citations") or []:
        if not isinstance(c, dict):
            continue
        label = rw.citation_label(c, study.get("task")) if ruled_out else None
        if label not in ruled_out:
            out.append((c, ""))
        elif str(c.get("n")).isdigit() and int(c["n"]) in cited:
            out.append(
                (
                    c,
                    rw.words(lang)["citation_rejected"].format(
                        label=rw.label_name(study.get("task"), label, lang)
                    ),
                )
            )
    return out


def _heading_style():
    from fpdf.fonts import FontFace

    return FontFace(family=FONT, emphasis="BOLD", fill_color=(232, 236, 242))


def _heading(pdf, text: str, keep_with: float = 16) -> None:
    """A heading never ends a page alone: it moves to the next page with its first lines."""
    if pdf.get_y() + 7 + keep_with > pdf.page_break_trigger:
        pdf.add_page()
    pdf.set_font(FONT, "B", 10.5)
    pdf.cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")


def _paragraph(pdf, text: str, height: float) -> None:
    """Text that never leaves one line alone on a page: a paragraph split across a page break
    keeps at least two lines on each side (no orphan at the foot, no widow at the head); one
    that cannot goes whole to the next page. The current font sets the wrapping."""
    lines = pdf.multi_cell(0, height, text, align="L", dry_run=True, output="LINES")
    while lines:
        room = int((pdf.page_break_trigger - pdf.get_y()) // height)
        if len(lines) <= room:
            take = len(lines)
        elif room < 2 or len(lines) < 4:
            take = 0 if pdf.get_y() > pdf.t_margin + 1 else len(lines)
        else:
            take = min(room, len(lines) - 2)
        if take:
            # printed line by line as wrapped (no auto break inside: the lines fit)
            pdf.multi_cell(
                0, height, "\n".join(lines[:take]), align="L", new_x="LMARGIN", new_y="NEXT"
            )
            lines = lines[take:]
        if lines:
            pdf.add_page()


def _meta(pdf, rows: list[tuple[str, str]]) -> None:
    for key, value in rows:
        pdf.set_font(FONT, "B", 9)
        pdf.cell(42, 5.5, key)
        pdf.set_font(FONT, "", 9)
        pdf.multi_cell(0, 5.5, value, align="L", new_x="LMARGIN", new_y="NEXT")


def _version(version: Any, lang: str, zone: str | None) -> str:
    """A model version that is a timestamp (the bundled models') as a local time."""
    from datetime import datetime

    text = str(version or "")
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return format_local(text, lang, zone) or text


def report_pdf(
    study: dict[str, Any],
    report: dict[str, Any],
    model: dict[str, Any] | None,
    image_png: bytes | None,
    heatmap_png: bytes | None,
    heatmap_label: str | None,
    zone: str | None = None,
) -> bytes:
    """The PDF: stamp (unsigned), disclosure, study facts with the signature, the report's
    sections; then the AI appendix (image and heatmap, findings table, scope, the AI note);
    sources; a footer with study, version and page on every page."""
    study, report, model = outgoing_study(study), printable_tree(report), printable_tree(model)
    heatmap_label = printable_tree(heatmap_label)
    lang = rw.language(study)
    w = rw.words(lang)
    signed = rw.is_signed(report)
    signed_when = format_local(report.get("signed_at"), lang, zone) if signed else None
    footer = w["page"].format(
        study=study["id"], version=report.get("version", "?"), page="{page}", pages="{nb}"
    )
    pdf = _make_pdf(None if signed else w["stamp"], footer)
    pdf.set_margins(15, 19 if not signed else 14, 15)
    pdf.set_auto_page_break(True, margin=16)
    fonts = _font_dir()
    pdf.add_font(FONT, "", str(fonts / "DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", str(fonts / "DejaVuSans-Bold.ttf"))
    extra = fallbacks_for(_all_text(study, report))
    for i, path in enumerate(extra):
        pdf.add_font(f"fallback{i}", "", path)
    if extra:
        pdf.set_fallback_fonts([f"fallback{i}" for i in range(len(extra))], exact_match=False)
    pdf.set_title(f"{w['title']} — {w['study']} {study['id']}")
    pdf.set_lang(lang)
    pdf.add_page()
    pdf.set_font(FONT, "B", 16)
    pdf.cell(pdf.epw * 0.65, 9, w["title"])
    pdf.set_font(FONT, "", 10)
    pdf.cell(0, 9, f"{w['study']} {study['id']}", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    retracted = study.get("retraction")
    if retracted:  # entered in error: said first, before anything a reader could act on
        _notice(
            pdf,
            w["retracted_notice"].format(
                reason=w.get(f"retract_{retracted.get('reason')}", retracted.get("reason")),
                by=retracted.get("by") or "?",
                when=format_local(retracted.get("at"), lang, zone) or "?",
            ),
            fill=(253, 226, 228),
        )
        pdf.ln(2)
    pdf.set_font(FONT, "", 9)
    if signed:
        pdf.set_fill_color(255, 246, 214)
    else:
        pdf.set_fill_color(253, 226, 228)
    pdf.multi_cell(
        0,
        5,
        disclosure.text(report, lang, signed_when),
        fill=True,
        padding=2,
        align="L",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(2)
    rows = [
        (
            w["status"],
            f"{rw.status_name(report, lang)} ({w['version']} {report.get('version', '?')})",
        ),
        (w["examination"], rw.examination(study, lang)),
        *rw.dicom_rows(study, lang),
    ]
    if study.get("patient_ref"):
        rows.append((w["patient"], str(study["patient_ref"])))
    if rw.patient_line(study.get("patient"), lang):  # sex, age at the study date, birth date
        rows.append((w["patient_context"], rw.patient_line(study.get("patient"), lang)))
    if (study.get("clinical_question") or "").strip():  # what the clinician asked
        rows.append((w["question"], str(study["clinical_question"]).strip()))
    # the signer by title and full name ("Uzm. Dr. Ayşe Yılmaz"; the user name without one)
    # signed: signer_name names the signer (None only unsigned)
    rows.append((w["signed_by"], cast(str, rw.signer_name(report)) if signed else w["not_signed"]))
    if signed:
        rows.append((w["signed_at"], signed_when or w["unknown_time"]))
    if report.get("created_at"):
        rows.append((w["version_date"], format_local(report["created_at"], lang, zone) or ""))
    if model and model.get("name"):
        digest = str(model.get("content_hash") or "")
        version = _version(model.get("version"), lang, zone)
        rows.append(
            (
                w["ai_model"],
                f"{model['name']} {version}".strip()
                + (f" ({digest[:23]}…)" if digest else "")
                + (f" — {w['ai_refused']}" if model.get("refused") else ""),
            )
        )
    _meta(pdf, rows)
    pdf.ln(3)
    # the report first (issue 69): the radiologist's text under the signature block above,
    # the AI's assessment after it as an appendix
    sections = report.get("sections") or {}
    for name in rw.SECTIONS:
        _heading(pdf, w[name])
        pdf.set_font(FONT, "", 9.5)
        _paragraph(pdf, (sections.get(name) or "").strip() or w["empty"], 5)
        pdf.ln(1)
    pdf.ln(2)
    _heading(pdf, w["ai_appendix"], keep_with=40)
    caption, withheld = _heatmap_words(study, report, heatmap_label, w, lang)
    _images(pdf, w, image_png, heatmap_png, caption, withheld)
    _findings(pdf, study, report, w, lang)
    _scope(pdf, study, report, lang)
    _note(pdf, study, report, lang)
    sources = _sources(report, study, lang)
    if sources:
        _heading(pdf, w["sources"], keep_with=4.5 * min(2, len(sources)))
        pdf.set_font(FONT, "", 8)
        tall = [  # each source's height, so the last one never goes alone to a new page
            4
            * len(
                pdf.multi_cell(
                    0,
                    4,
                    f"[{c.get('n')}] {rw.citation_line(c, study, lang)}",
                    dry_run=True,
                    output="LINES",
                )
            )
            + (4 if about else 0)
            for c, about in sources
        ]
        for i, (c, about_rejected) in enumerate(sources):
            room = pdf.page_break_trigger - pdf.get_y()
            if i == len(sources) - 2 and tall[i] <= room < tall[i] + tall[i + 1]:
                pdf.add_page()
            pdf.set_font(FONT, "", 8)
            pdf.multi_cell(
                0,
                4,
                f"[{c.get('n')}] {rw.citation_line(c, study, lang)}",
                align="L",
                new_x="LMARGIN",
                new_y="NEXT",
            )
            if about_rejected:  # on its own line under the passage it qualifies
                pdf.set_font(FONT, "B", 8)
                pdf.set_text_color(176, 0, 32)
                pdf.set_x(pdf.l_margin + 5)
                pdf.multi_cell(0, 4, about_rejected, align="L", new_x="LMARGIN", new_y="NEXT")
                pdf.set_text_color(0, 0, 0)
    data = bytes(pdf.output())
    missing = {cp for font in pdf.fonts.values() for cp in getattr(font, "missing_glyphs", [])}
    if missing:
        log.warning(
            "PDF of study %s: %d characters had no glyph in the available fonts (left blank)",
            study["id"],
            len(missing),
        )
    return data
