"""A radiologist's viewer measurements: the TID 1500 Imaging Measurement Report (a
Comprehensive SR) that OHIF saves over STOW-RS, filed as that radiologist's measurements of a
study medai holds rather than as a modality instance.

Why its own path: the SR is the radiologist's own statement about the images (a lesion's
size), which the report draft and the prior comparison read, and which only an account that
may report may make; filed as a modality instance it would be an anonymous object among the
images. The SR file goes to the blob store (served back by the catalog, so the viewer shows it
again); each numeric item (length, long and short axis, area), in millimetres, is a row of
``measurements`` with the image (SOP instance and frame) it was drawn on. A newer SR of the same
author for the same study supersedes the older (its rows flagged, never deleted).

Millimetres: a viewer turns pixels into millimetres with the image's spacing. PixelSpacing is
the patient's true size; a projection film (a radiograph) often has only ImagerPixelSpacing, the
size at the detector plane, which is magnified by the beam's divergence: such a measurement is
recorded as made with ImagerPixelSpacing and the report says "at the detector plane".
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import cast

from pydicom import Dataset, dcmread
from pydicom.multival import MultiValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from medai.core.errors import MedaiError
from medai.platform.records.tables import Measurement, Study, User
from medai.platform.worklist import listing
from medai.platform.worklist.patient_context import comparison_prior
from medai.services.reports import SIZES_COMPARED, show_date

SOURCE = "measurements"
MAX_BYTES = 4 * 1024 * 1024  # an SR of a few hundred measurements is well under 1 MiB
MAX_ITEMS = 5000  # content items walked in one SR (a bound on a hostile tree)
MAX_DEPTH = 12
MAX_MEASUREMENTS = 500
SR_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
        "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
        "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
        "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    }
)
REPORT_CODE = ("126000", "DCM")  # Imaging Measurement Report
# concept name (code value, any of SCT/SRT spellings) -> kind
KINDS = {
    "410668003": "length",
    "G-D7FE": "length",
    "103339001": "long_axis",
    "G-A185": "long_axis",
    "103340004": "short_axis",
    "G-A186": "short_axis",
    "42798000": "area",
    "G-A166": "area",
}
UNITS = {"mm": ("mm", 1.0), "cm": ("mm", 10.0), "mm2": ("mm2", 1.0), "cm2": ("mm2", 100.0)}
SPACING_DETECTOR = "ImagerPixelSpacing"
SPACING_TRUE = "PixelSpacing"


class NotMeasurement(MedaiError, ValueError):
    """The part is not a measurement report (it is filed as any other instance)."""

    code, status = "bad_request", 400


class Unusable(MedaiError, ValueError):
    """A measurement report medai cannot file (the message names the rule, never a value)."""

    code, status = "measurement_unusable", 422


@dataclass(frozen=True)
class Parsed:
    """One numeric item of a measurement report, in mm or mm²."""

    group_no: int
    kind: str
    value: float
    unit: str
    ref_sop_uid: str | None
    ref_frame: int | None


@dataclass(frozen=True)
class Report:
    study_uid: str
    series_uid: str
    sop_class: str
    sop_uid: str
    items: tuple[Parsed, ...]


def _code(item: Dataset, attr: str = "ConceptNameCodeSequence") -> tuple[str, str] | None:
    seq = item.get(attr)
    if not seq:
        return None
    c = seq[0]
    value = str(c.get("CodeValue") or c.get("LongCodeValue") or c.get("URNCodeValue") or "")
    return value, str(c.get("CodingSchemeDesignator") or "")


def is_measurement_report(ds: Dataset) -> bool:
    """An SR whose document title (or template) is TID 1500 Imaging Measurement Report."""
    if str(ds.get("SOPClassUID") or "") not in SR_CLASSES:
        return False
    if _code(ds) == REPORT_CODE:
        return True
    template = ds.get("ContentTemplateSequence")
    return bool(template) and str(template[0].get("TemplateIdentifier") or "") == "1500"


def _walk(items: Iterable[Dataset], depth: int, budget: list[int]) -> Iterator[Dataset]:
    for item in items:
        budget[0] -= 1
        if budget[0] < 0:
            raise Unusable(f"ContentSequence: more than {MAX_ITEMS} content items")
        yield item
        children = item.get("ContentSequence")
        if children:
            if depth >= MAX_DEPTH:
                raise Unusable(f"ContentSequence: nested deeper than {MAX_DEPTH}")
            yield from _walk(children, depth + 1, budget)


def _image_ref(items: Iterable[Dataset], budget: list[int]) -> tuple[str | None, int | None]:
    """The first IMAGE item under ``items``: its SOP instance and frame."""
    for item in _walk(items, 0, budget):
        if str(item.get("ValueType") or "") == "IMAGE" and item.get("ReferencedSOPSequence"):
            ref = item.ReferencedSOPSequence[0]
            uid = str(ref.get("ReferencedSOPInstanceUID") or "") or None
            frames = ref.get("ReferencedFrameNumber")
            frame = None
            if frames is not None:
                frame = int(frames[0] if isinstance(frames, MultiValue) else frames)
            return uid, frame
    return None, None


def parse(data: bytes) -> Report:
    """The numeric items of a TID 1500 report (NotMeasurement for any other object; Unusable
    for a report medai cannot file). Numeric items of another concept or unit are skipped."""
    if len(data) > MAX_BYTES:
        raise Unusable(f"the report is larger than {MAX_BYTES:,} bytes")
    try:
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # broad: pydicom raises many types on a bad file (NotMeasurement)
        raise NotMeasurement("not readable as DICOM") from exc
    if not is_measurement_report(ds):
        raise NotMeasurement("not an Imaging Measurement Report")
    uids = [
        str(ds.get(k) or "") for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    ]
    if not all(uids):
        raise Unusable("StudyInstanceUID, SeriesInstanceUID or SOPInstanceUID missing")
    budget = [MAX_ITEMS]
    out: list[Parsed] = []
    groups = 0
    for container in _walk(ds.get("ContentSequence") or [], 0, budget):
        if str(container.get("ValueType") or "") != "CONTAINER" or _code(container) != (
            "125007",
            "DCM",
        ):
            continue  # a Measurement Group
        groups += 1
        children = container.get("ContentSequence") or []
        group_ref = _image_ref(children, budget)  # the group's region or source image
        for num in children:
            if str(num.get("ValueType") or "") != "NUM" or not num.get("MeasuredValueSequence"):
                continue
            name = _code(num)
            kind = KINDS.get(name[0]) if name else None
            mv = num.MeasuredValueSequence[0]
            unit = _code(mv, "MeasurementUnitsCodeSequence")
            conv = UNITS.get(unit[0]) if unit and unit[1] == "UCUM" else None
            if kind is None or conv is None or mv.get("NumericValue") is None:
                continue
            if (kind == "area") != (conv[0] == "mm2"):
                continue  # a length in mm² or an area in mm: not what it says
            ref = _image_ref(num.get("ContentSequence") or [], budget)
            if ref[0] is None:
                ref = group_ref
            out.append(Parsed(groups, kind, float(mv.NumericValue) * conv[1], conv[0], *ref))
            if len(out) > MAX_MEASUREMENTS:
                raise Unusable(f"more than {MAX_MEASUREMENTS} measurements in one report")
    if not out:
        raise Unusable("ContentSequence: no length, axis or area in mm or mm2")
    return Report(uids[0], uids[1], str(ds.SOPClassUID), uids[2], tuple(out))


def spacing_of(ds: Dataset) -> str | None:
    """Which spacing turns this image's pixels into millimetres: PixelSpacing (the true size)
    when present, else ImagerPixelSpacing (a projection film: at the detector plane), else
    None (the viewer had no millimetres to give)."""
    if ds.get("PixelSpacing"):
        return SPACING_TRUE
    if ds.get("ImagerPixelSpacing"):
        return SPACING_DETECTOR
    return None


def _header(store, sha: str) -> Dataset | None:
    try:
        return dcmread(io.BytesIO(store.read(sha)), stop_before_pixels=True)
    except Exception as exc:  # broad: storage, pydicom's many types: spacing unknown (logged)
        logging.getLogger("medai.platform").warning(
            "measurements: image %s… unreadable (%s): spacing unknown", sha[:12], type(exc).__name__
        )
        return None


def file(db: Session, store, study: Study, author_id: int, report: Report, sha: str) -> list[int]:
    """The report's rows for ``study``: every referenced image must be one of the study's
    instances (Unusable otherwise); the author's earlier rows for the study are superseded.
    Returns the new rows' ids."""
    held = {i.sop_uid: i for i in listing.instances(db, [study.id])[study.id]}
    headers: dict[str, Dataset | None] = {}
    for item in report.items:
        if item.ref_sop_uid is not None and item.ref_sop_uid not in held:
            raise Unusable("ReferencedSOPInstanceUID: not an instance of this study")
    for old in db.scalars(
        select(Measurement).where(
            Measurement.study_id == study.id,
            Measurement.author_id == author_id,
            Measurement.superseded.is_(False),
        )
    ):
        old.superseded = True
    rows = []
    for item in report.items:
        inst = held.get(item.ref_sop_uid) if item.ref_sop_uid else None
        spacing = None
        if inst is not None:
            if inst.sop_uid not in headers:
                headers[inst.sop_uid] = _header(store, inst.file_sha256)
            header = headers[inst.sop_uid]
            spacing = spacing_of(header) if header is not None else None
        row = Measurement(
            study_id=study.id,
            author_id=author_id,
            sr_sop_uid=report.sop_uid,
            sr_series_uid=report.series_uid,
            sr_sop_class=report.sop_class,
            file_sha=sha,
            group_no=item.group_no,
            kind=item.kind,
            value=item.value,
            unit=item.unit,
            ref_sop_uid=item.ref_sop_uid,
            ref_frame=item.ref_frame,
            instance_number=inst.instance_number if inst is not None else None,
            spacing=spacing,
            superseded=False,
        )
        db.add(row)
        rows.append(row)
    db.flush()
    return [r.id for r in rows]


def current(db: Session, study_id: int) -> list[Measurement]:
    """The study's measurements not superseded, by author, group and kind."""
    return list(
        db.scalars(
            select(Measurement)
            .where(Measurement.study_id == study_id, Measurement.superseded.is_(False))
            .order_by(Measurement.author_id, Measurement.id)
        )
    )


def _mm(value: float, lang: str = "en") -> str:
    """A size to the tenth of a millimetre, a whole one without decimals; Turkish writes the
    decimal comma (12,2 mm)."""
    text = f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"
    return text.replace(".", ",") if lang == "tr" else text


@dataclass(frozen=True)
class Size:
    """One measurement group as a report states it: its axes in mm (long first: a length is
    one axis, a bidirectional two), its area in mm², the slice it was drawn on, and whether
    it was measured at the detector plane (ImagerPixelSpacing)."""

    axes: tuple[float, ...]
    area: float | None
    slice: int | None
    detector: bool

    @property
    def main(self) -> float | None:
        """The long axis (RECIST's measure of a lesion), None for an area alone."""
        return self.axes[0] if self.axes else None

    def text(self, lang: str = "en") -> str:
        out = " × ".join(_mm(a, lang) for a in self.axes) + " mm" if self.axes else ""
        if self.area is not None:
            area = f"{_mm(self.area, lang)} mm²"
            out = f"{out}, {area}" if out else area
        return out


def sizes(rows: list[Measurement]) -> list[Size]:
    """The rows as one ``Size`` per measurement group, in the order they were drawn."""
    groups: dict[tuple[str, int], list[Measurement]] = {}
    for r in rows:
        groups.setdefault((r.sr_sop_uid, r.group_no), []).append(r)
    out = []
    for members in groups.values():
        by = {m.kind: m.value for m in members}
        if "long_axis" in by and "short_axis" in by:
            axes = tuple(sorted((by["long_axis"], by["short_axis"]), reverse=True))
        elif "length" in by or "long_axis" in by:
            # one of length and long_axis is there (checked above)
            axes = (cast(float, by.get("length", by.get("long_axis"))),)
        elif "short_axis" in by:
            axes = (by["short_axis"],)
        else:
            axes = ()
        out.append(
            Size(
                axes=axes,
                area=by.get("area"),
                slice=members[0].instance_number,
                detector=any(m.spacing == SPACING_DETECTOR for m in members),
            )
        )
    return out


WORDS = {
    "tr": {
        "lesion": "Lezyon",
        "slice": "kesit",
        "detector": " (dedektör düzleminde)",
        "versus": "önceki tetkike ({date}) göre {verdict}: {before} → {now} (uzun eksen {change})",
        "grew": "büyüdü",
        "shrank": "küçüldü",
        "similar": "benzer boyutta",
        "scales": (
            "önceki tetkikte ({date}) {before}; biri dedektör düzleminde ölçüldüğünden "
            "boyutlar karşılaştırılmadı"
        ),
        "unpaired": (
            "Önceki tetkikte ({date}) {n} ölçüm var ({before}), bugün {m}: lezyonlar "
            "eşleştirilemediğinden boyutlar karşılaştırılmadı."
        ),
        "paired_by_size": "Lezyonlar büyükten küçüğe eşleştirildi.",
    },
    "en": {
        "lesion": "Lesion",
        "slice": "slice",
        "detector": " (at the detector plane)",
        "versus": "against the prior of {date}: {verdict}: {before} → {now} (long axis {change})",
        "grew": "grew",
        "shrank": "shrank",
        "similar": "similar in size",
        "scales": (
            "prior of {date}: {before}; one was measured at the detector plane, so the sizes "
            "were not compared"
        ),
        "unpaired": (
            "The prior of {date} has {n} measurements ({before}), today {m}: the lesions "
            "could not be paired, so the sizes were not compared."
        ),
        "paired_by_size": "Lesions were paired largest to smallest.",
    },
}
# RECIST 1.1 on the long axis: growth is +20 % and at least 5 mm; shrinkage is -30 %
GROWTH, GROWTH_MM, SHRINKAGE = 0.20, 5.0, 0.30


def change_of(before: float, now: float) -> str:
    """``grew`` | ``shrank`` | ``similar``: RECIST 1.1's thresholds on one long axis."""
    if before <= 0:
        return "similar" if now <= 0 else "grew"
    rel = (now - before) / before
    if rel >= GROWTH and now - before >= GROWTH_MM:
        return "grew"
    if rel <= -SHRINKAGE:
        return "shrank"
    return "similar"


def _percent(before: float, now: float, lang: str) -> str:
    pct = round(100 * (now - before) / before) if before > 0 else 0
    sign = "+" if pct > 0 else "−" if pct < 0 else "±"
    return f"{sign}%{abs(pct)}" if lang == "tr" else f"{sign}{abs(pct)}%"


def lines(
    rows: list[Measurement],
    lang: str = "tr",
    prior: list[Measurement] | None = None,
    prior_date: str = "",
    slices: bool = True,
) -> list[str]:
    """The Measurements section, one line per measurement group: "Lezyon 23 × 18 mm, kesit
    12" / "Lesion 23 × 18 mm, slice 12" (no slice for a study of one image, ``slices``
    False: a single film has none to name), "(dedektör düzleminde)" / "(at the detector
    plane)" when measured with ImagerPixelSpacing. Against a ``prior``'s measurements (its signer's,
    ``prior_date`` as the report prints dates) each line says how the size changed:
    "önceki tetkike (12.03.2025) göre büyüdü: 18 × 15 → 23 × 18 mm (uzun eksen +%28)".

    Pairing: a lesion's identity is not in the SR (a viewer's tracking UID is new in each
    study), so the same number of groups today and before are paired by size, largest with
    largest; a different number is said and not compared. A size at the detector plane is
    never compared with a true one (the film's magnification differs)."""
    return _section(rows, lang, prior, prior_date, slices)[0]


def _section(
    rows: list[Measurement],
    lang: str,
    prior: list[Measurement] | None,
    prior_date: str,
    slices: bool,
) -> tuple[list[str], bool]:
    """``lines``, and whether a size was compared (``compared``), from one sizing and one
    pairing of the two studies' measurements."""
    w = WORDS["tr" if lang == "tr" else "en"]
    today, before = sizes(rows), sizes(prior or [])
    pairs = _pairs(today, before)
    done = any(today[i].detector == then.detector for i, then in (pairs or {}).items())
    tail: list[str] = []
    if pairs is not None and len(pairs) > 1:
        tail.append(w["paired_by_size"])
    elif pairs is None and before and today:
        tail.append(
            w["unpaired"].format(
                date=prior_date,
                n=len(before),
                m=len(today),
                before="; ".join(s.text(lang) for s in before),
            )
        )
    pairs = pairs or {}
    out = []
    for i, size in enumerate(today):
        line = f"{w['lesion']} {size.text(lang)}"
        if slices and size.slice is not None:
            line += f", {w['slice']} {size.slice}"
        if size.detector:
            line += w["detector"]
        then = pairs.get(i)
        if then is not None and then.main is not None and size.main is not None:
            if then.detector != size.detector:
                line += "; " + w["scales"].format(date=prior_date, before=then.text(lang))
            else:
                verdict = w[change_of(then.main, size.main)]
                line += "; " + w["versus"].format(
                    date=prior_date,
                    verdict=verdict,
                    before=" × ".join(_mm(a, lang) for a in then.axes),
                    now=" × ".join(_mm(a, lang) for a in size.axes) + " mm",
                    change=_percent(then.main, size.main, lang),
                )
        out.append(line + ".")
    return out + tail, done


def _pairs(today: list[Size], before: list[Size]) -> dict[int, Size] | None:
    """Today's groups (by index) paired with the prior's, largest long axis with largest;
    None when the numbers of measured lesions differ (nothing is paired)."""
    now = [i for i, s in enumerate(today) if s.main is not None]
    old = sorted((s for s in before if s.main is not None), key=lambda s: -(s.main or 0))
    if not before or len(now) != len(old):
        return None
    now.sort(key=lambda i: -(today[i].main or 0))
    return dict(zip(now, old, strict=True))


def compared(rows: list[Measurement], prior: list[Measurement] | None) -> bool:
    """Whether ``lines`` compared a size with the prior's (the findings' comparison sentence
    then says the sizes were compared, instead of that there were none to compare)."""
    return _section(rows, "en", prior, "", True)[1]


def by_author(db: Session, study_id: int, author_id: int | None) -> list[Measurement]:
    """One author's current measurements of a study (none for no author)."""
    if author_id is None:
        return []
    return [m for m in current(db, study_id) if m.author_id == author_id]


def served(db: Session, study_id: int) -> list[Measurement]:
    """One row of each of the study's current measurement SRs, for the DICOMweb catalog (the
    viewer shows them again); a superseded SR is not served."""
    seen: set[str] = set()
    out = []
    for r in current(db, study_id):
        if r.sr_sop_uid not in seen:
            seen.add(r.sr_sop_uid)
            out.append(r)
    return out


def for_report(db: Session, study: Study, author_id: int | None, lang: str) -> dict:
    """What the study page puts in the report's Measurements section: ``author_id``'s current
    measurements of ``study`` as lines, compared with the measurements the signer of the
    comparison prior (``patient_context.comparison_prior``: the latest signed study of the same
    patient and task) made of it. ``compared``: a size was compared, so the findings' sentence
    "present on both (no measurements to compare sizes)" is swapped for ``phrase``'s second."""
    rows = by_author(db, study.id, author_id)
    found = comparison_prior(db, study) if rows else None
    prior_rows: list[Measurement] = []
    prior = None
    if found is not None:
        prior_rows = by_author(db, found["study_id"], found["signed_by"])
        if prior_rows:
            prior = {"study_id": found["study_id"], "date": show_date(found["date"], lang)}
    said, done = _section(
        rows,
        lang,
        prior_rows,
        prior["date"] if prior else "",
        slices=len(listing.instances(db, [study.id])[study.id]) > 1,
    )
    key = "tr" if lang == "tr" else "en"
    return {
        "lines": said,
        "prior": prior,
        "compared": done,
        "phrase": list(SIZES_COMPARED[key]) if done else None,
    }


def view(db: Session, study: Study, viewer_id: int | None) -> dict:
    """What the study page reads: the study's current measurements (``current``), each with
    its author's name and whether it is the viewer's (``viewer_id``; None: a token without a
    user), and the viewer's as the report's Measurements section (``for_report``, in the
    study's language). The caller audits the read."""
    rows = current(db, study.id)
    names = (
        {
            u.id: u.full_name or u.username
            for u in db.query(User).filter(User.id.in_({r.author_id for r in rows}))
        }
        if rows
        else {}
    )
    section = for_report(db, study, viewer_id, study.language or "tr")
    items = [
        {
            "id": r.id,
            "author": names.get(r.author_id, "—"),
            "mine": r.author_id == viewer_id,
            "kind": r.kind,
            "value": r.value,
            "unit": r.unit,
            "group": r.group_no,
            "instance_number": r.instance_number,
            "spacing": r.spacing,
        }
        for r in rows
    ]
    return {"items": items, **section}
