"""The signed report as a DICOM SR, and an amendment as a new SR that names the one it
replaces.

Only a signed version goes to the PACS (a draft is not a report): a Comprehensive SR whose
content follows the Basic Diagnostic Imaging Report (TID 2000) headings — procedure
(technique), findings, impressions, recommendations — as text, the report's disclosure
(``disclosure.text``, in the report's language: the AI draft edited or signed without changes,
or written by hand) as a comment, the source image as evidence;
CompletionFlag COMPLETE, VerificationFlag VERIFIED with the VerifyingObserverSequence naming
the signer, their organisation and the signing time, PreliminaryFlag FINAL. An amendment is
a new instance in the same series whose PredecessorDocumentsSequence references the previous
signed version's SR; the UIDs of every version derive from the study and the version number
(``report_uids``), so the predecessor is named without keeping the old object.

The findings are the signer's: ``report["findings"]`` as ``finding_states`` gives them (the
labels the signature of *this* version stored, an amendment's included). Once the signer stated
labels, the Findings section carries one coded item per label — the label's code, Present or
Absent as the signer said. The AI's suggestions follow in a container of their own
(``AI_SUGGESTIONS``), each an "AI suggestion" naming the label as its value, never as a
finding: the AI's state (Present / Absent / Indeterminate) with its basis, probability and
threshold, and the signer's verdict on it (confirmed, rejected, added, decided), with a note
naming an undecided result's candidates or a conflict. So a finding the signer rejected is
stated Absent, and the AI's Present is only a rejected suggestion. ``read_report_findings``
reads both back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any, cast

from pydicom.dataset import Dataset

from medai.core.task_registry import PRIVATE_SCHEME, Task, TaskError
from medai.core.task_registry import get as get_task
from medai.platform.dicom.dicom_values import outgoing_person_name
from medai.platform.documents.dicom_objects import (
    MANUFACTURER,
    SERIES_REPORT,
    DicomObjectError,
    SourceImage,
    _coded,
    content_times,
    pin_times,
    uid,
    utc_naive,
)
from medai.platform.documents.sr.findings_sr import BASES, BASIS, coding_schemes
from medai.platform.documents.words.report_words import SIGNED, decision_note, signer_parts
from medai.platform.records.printable import printable

# report section -> (TID 2000 heading, the narrative item's concept) (PS3.16 CID 7001/7002)
SECTIONS = {
    "technique": ("CurrentProcedureDescriptions", "ProcedureDescription"),
    "findings": ("Findings", "Finding"),
    "measurements": ("ImagingMeasurements", "Finding"),  # TID 1500's heading, as text
    "impression": ("Impressions", "Impression"),
    "recommendation": ("Recommendations", "Recommendation"),
}
# private concepts of the AI's suggestions in a signed report (declared in the document)
AI_SUGGESTIONS = (PRIVATE_SCHEME, "AI-SUGGESTIONS", "AI suggestions (not a diagnosis)")
AI_SUGGESTION = (PRIVATE_SCHEME, "AI-SUGGESTION", "AI suggestion (not a finding)")
AI_DECISION = (PRIVATE_SCHEME, "AI-DECISION", "AI decision")
AI_NOTE = (PRIVATE_SCHEME, "AI-NOTE", "AI decision note")
VERDICT = (PRIVATE_SCHEME, "VERDICT", "Signer's verdict on the AI suggestion")
VERDICTS = {
    "confirmed": (PRIVATE_SCHEME, "CONFIRMED", "Confirmed by the signer"),
    "rejected": (PRIVATE_SCHEME, "REJECTED", "Rejected by the signer"),
    "added": (PRIVATE_SCHEME, "ADDED", "Added by the signer"),
    "decided": (PRIVATE_SCHEME, "DECIDED", "Decided by the signer (AI undecided)"),
}


def report_uids(source: SourceImage, version: int, uid_root: str | None = None) -> tuple[str, str]:
    """(series, instance) UIDs of the SR of report ``version`` of the source's study."""
    series = uid("report-series", source.study_instance_uid, root=uid_root)
    return series, uid("report", source.study_instance_uid, int(version), root=uid_root)


def _when(value: dt.datetime | str | None) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if not value:
        raise DicomObjectError("the report has no signing time")
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _task(report: Mapping[str, Any], task: Task | None) -> Task | None:

    try:
        return task or (get_task(str(report["task"])) if report.get("task") else None)
    except TaskError:
        return None


def _code_of(task: Task | None, label: str):
    """The label's code: the task's (as the findings SR has it), else a stable private one."""
    if task is not None:
        return _coded(task.finding_code(label))
    digest = hashlib.sha256(f"/{label}".encode()).hexdigest()[:12].upper()
    return _coded((PRIVATE_SCHEME, f"L{digest}", label[:64]))


def _rows(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [
        f
        for f in report.get("findings") or []
        if isinstance(f, Mapping) and str(f.get("label") or "").strip()
    ]


def _stated(report: Mapping[str, Any], task: Task | None) -> list:
    """The signer's findings: one coded item per label the signature stated, its code and
    Present or Absent as the signer said (none when the signature stored no labels)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not report.get("signed_labels"):
        return []
    return [
        hd.sr.CodeContentItem(
            name=_code_of(task, str(f["label"])),
            value=codes.SCT.Present if f["signer"] else codes.SCT.Absent,
            relationship_type="CONTAINS",
        )
        for f in _rows(report)
        if f.get("signer") is not None
    ]


def _suggestions(report: Mapping[str, Any], task: Task | None):
    """The AI's suggestions, marked as such (``AI_SUGGESTIONS``), each with the signer's
    verdict; None when the report has no AI result."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    states = {
        "present": codes.SCT.Present,
        "absent": codes.SCT.Absent,
        "indeterminate": codes.SCT.Indeterminate,
    }
    rows = [f for f in _rows(report) if f.get("state") in states]
    if not rows:
        return None
    children: list[hd.sr.ContentItem] = []
    note = decision_note(report.get("decision"), task.name if task else None, "en")
    if note:
        children.append(
            hd.sr.TextContentItem(name=_coded(AI_NOTE), value=note, relationship_type="CONTAINS")
        )
    for f in rows:
        item = hd.sr.CodeContentItem(
            name=_coded(AI_SUGGESTION),
            value=_code_of(task, str(f["label"])),
            relationship_type="CONTAINS",
        )
        props: list[hd.sr.ContentItem] = [
            hd.sr.CodeContentItem(
                name=_coded(AI_DECISION),
                value=states[f["state"]],
                relationship_type="HAS PROPERTIES",
            )
        ]
        basis = f.get("basis")
        if basis:
            props.append(
                hd.sr.CodeContentItem(
                    name=_coded(BASIS),
                    value=_coded(
                        (PRIVATE_SCHEME, str(basis)[:16], BASES.get(basis, str(basis))[:64])
                    ),
                    relationship_type="HAS PROPERTIES",
                )
            )
        for name, key in (
            (codes.DCM.Probability, "probability"),
            (codes.DCM.ThresholdValue, "threshold"),
        ):
            if f.get(key) is not None:
                props.append(
                    hd.sr.NumContentItem(
                        name=name,
                        value=float(f[key]),
                        unit=codes.UCUM.NoUnits,
                        relationship_type="HAS PROPERTIES",
                    )
                )
        if f.get("verdict") in VERDICTS:
            props.append(
                hd.sr.CodeContentItem(
                    name=_coded(VERDICT),
                    value=_coded(VERDICTS[f["verdict"]]),
                    relationship_type="HAS PROPERTIES",
                )
            )
        item.ContentSequence = hd.sr.ContentSequence(props)
        children.append(item)
    container = hd.sr.ContainerContentItem(
        name=_coded(AI_SUGGESTIONS), relationship_type="CONTAINS"
    )
    container.ContentSequence = hd.sr.ContentSequence(children)
    return container


def _content(report: Mapping[str, Any], signer: str, source: SourceImage, task: Task | None = None):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    root = hd.sr.ContainerContentItem(name=codes.LN.DiagnosticImagingReport, template_id="2000")
    items = list(
        hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=signer),
        )
    )
    sections = report.get("sections") or {}
    stated = _stated(report, task)  # the signer's labels: the report's coded findings
    for key, (heading, element) in SECTIONS.items():
        text = printable(str(sections.get(key) or ""), lines=True).strip()
        if not text and not (key == "findings" and stated):
            continue
        container = hd.sr.ContainerContentItem(
            name=getattr(codes.DCM, heading), relationship_type="CONTAINS"
        )
        children: list[hd.sr.ContentItem] = (
            [
                hd.sr.TextContentItem(
                    name=getattr(codes.DCM, element), value=text, relationship_type="CONTAINS"
                )
            ]
            if text
            else []
        )
        if key == "findings":  # what the findings were read from, and the signer's labels
            children.append(
                hd.sr.ImageContentItem(
                    name=codes.DCM.SourceImage,
                    relationship_type="CONTAINS",
                    referenced_sop_class_uid=source.sop_class_uid,
                    referenced_sop_instance_uid=source.sop_instance_uid,
                )
            )
            children += stated
        container.ContentSequence = hd.sr.ContentSequence(children)
        items.append(container)
    suggestions = _suggestions(report, task)  # the AI's, marked as such, with the verdicts
    if suggestions is not None:
        items.append(suggestions)
    disclosure = printable(str(report.get("ai_disclosure") or ""), lines=True).strip()
    if disclosure:
        items.append(
            hd.sr.TextContentItem(
                name=codes.DCM.Comment, value=disclosure, relationship_type="CONTAINS"
            )
        )
    # an ObserverContext's items and the sections are all ContentItems
    root.ContentSequence = hd.sr.ContentSequence(cast("list[hd.sr.ContentItem]", items))
    return root


def _predecessor(source: SourceImage, version: int, uid_root: str | None) -> Dataset:
    series, instance = report_uids(source, version, uid_root)
    ds = Dataset()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = source.study_instance_uid, series
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.88.33", instance
    return ds


def signer_pn(report: Mapping[str, Any]) -> str:
    """The signer as a DICOM PN: ``Family^Given^^Title`` (``Yılmaz^Ayşe^^Uzm. Dr.``) from the
    full name and title, the user name alone (as a family name) when no full name is set."""
    who = signer_parts(dict(report))
    if who is None:
        return ""
    if not who["family"]:
        return who["username"]
    return "^".join([who["family"], " ".join(who["given"]), "", who["title"]]).rstrip("^")


def report_sr(
    source: SourceImage,
    report: Mapping[str, Any],
    *,
    organization: str,
    signer: str | None = None,
    previous_version: int | None = None,
    uid_root: str | None = None,
    institution: str | None = None,
    task: Task | None = None,
) -> Dataset:
    """The SR of a signed report version (``report``: the platform's report JSON — version,
    status, sections, signed_by, signed_at, ai_disclosure — with its findings as
    ``finding_states`` gives them; ``task``: the study's, naming the labels' codes).

    ``signer``: the name the PACS shows (DICOM PN, e.g. ``Yilmaz^Ayse``; default the signer's
    full name and title, ``signer_pn``); ``organization``: the signer's organisation (VerifyingOrganization);
    ``previous_version``: the version whose SR this one amends (an amendment's predecessor)."""
    import highdicom as hd
    from pydicom.valuerep import DT

    if report.get("status") not in SIGNED or not report.get("signed_by"):
        raise DicomObjectError("only a signed report version goes to the PACS")
    version = int(report["version"])
    if previous_version is not None and not 0 < int(previous_version) < version:
        raise DicomObjectError("an amendment follows an earlier version")
    signed_at = _when(report.get("signed_at"))
    name = outgoing_person_name(signer or signer_pn(report))[:63]
    name = name if "^" in name else name + "^"  # one component: a family name
    series, instance = report_uids(source, version, uid_root)
    previous = (
        [_predecessor(source, int(previous_version), uid_root)]
        if previous_version is not None
        else None
    )
    sr = hd.sr.ComprehensiveSR(
        evidence=[source.evidence()],
        content=_content(report, name, source, _task(report, task)),
        series_instance_uid=series,
        series_number=SERIES_REPORT,
        sop_instance_uid=instance,
        instance_number=version,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=True,
        is_verified=True,
        verifying_observer_name=name,
        verifying_organization=organization,
        previous_versions=previous,
        institution_name=institution,
        series_description="Radiology report (signed)",
        coding_schemes=coding_schemes(),
        **content_times(signed_at),
    )
    sr.VerifyingObserverSequence[0].VerificationDateTime = DT(
        utc_naive(signed_at).strftime("%Y%m%d%H%M%S")
    )
    pin_times(sr, signed_at)
    return sr


def read_report_findings(ds: Dataset) -> dict[str, Any]:
    """What a report SR states of its findings: ``stated``, the signer's (code, present or
    absent) in the Findings section; ``ai``, the AI's suggestions (code, state, basis,
    probability, threshold, verdict) from their own container."""
    from pydicom.sr.codedict import codes

    def code(seq) -> tuple[str, str, str]:
        c = seq[0]
        return c.CodingSchemeDesignator, c.CodeValue, c.CodeMeaning

    words = {
        codes.SCT.Present.value: "present",
        codes.SCT.Absent.value: "absent",
        codes.SCT.Indeterminate.value: "indeterminate",
    }
    verdicts = {v[1]: k for k, v in VERDICTS.items()}
    stated, ai = [], []
    for section in ds.ContentSequence:
        if section.ValueType != "CONTAINER":
            continue
        name = code(section.ConceptNameCodeSequence)
        if name[1] == codes.DCM.Findings.value:
            stated += [
                (code(i.ConceptNameCodeSequence), words.get(i.ConceptCodeSequence[0].CodeValue))
                for i in section.ContentSequence
                if i.ValueType == "CODE"
            ]
        elif name[:2] == AI_SUGGESTIONS[:2]:
            for item in section.ContentSequence:
                if item.ValueType != "CODE":
                    continue
                row: dict[str, Any] = {"code": code(item.ConceptCodeSequence)}
                for prop in item.get("ContentSequence") or []:
                    key = code(prop.ConceptNameCodeSequence)[:2]
                    if prop.ValueType == "NUM":
                        row[
                            {codes.DCM.Probability.value: "probability"}.get(key[1], "threshold")
                        ] = float(prop.MeasuredValueSequence[0].NumericValue)
                    elif key == AI_DECISION[:2]:
                        row["state"] = words.get(prop.ConceptCodeSequence[0].CodeValue)
                    elif key == BASIS[:2]:
                        row["basis"] = prop.ConceptCodeSequence[0].CodeValue
                    elif key == VERDICT[:2]:
                        row["verdict"] = verdicts.get(prop.ConceptCodeSequence[0].CodeValue)
                ai.append(row)
    return {"stated": stated, "ai": ai}
