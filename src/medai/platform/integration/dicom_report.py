"""The signed report as a DICOM SR, and an amendment as a new SR that names the one it
replaces.

Only a signed version goes to the PACS (a draft is not a report): a Comprehensive SR whose
content follows the Basic Diagnostic Imaging Report (TID 2000) headings — procedure
(technique), findings, impressions, recommendations — as text, the report's disclosure
(AI-assisted or written by hand) as a comment, the source image as evidence;
CompletionFlag COMPLETE, VerificationFlag VERIFIED with the VerifyingObserverSequence naming
the signer, their organisation and the signing time, PreliminaryFlag FINAL. An amendment is
a new instance in the same series whose PredecessorDocumentsSequence references the previous
signed version's SR; the UIDs of every version derive from the study and the version number
(``report_uids``), so the predecessor is named without keeping the old object.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydicom.dataset import Dataset

from medai.platform.integration.dicom_objects import (
    MANUFACTURER,
    SERIES_REPORT,
    DicomObjectError,
    SourceImage,
    content_times,
    pin_times,
    uid,
    utc_naive,
)
from medai.platform.integration.dicom_values import outgoing_person_name
from medai.platform.printable import printable

# report section -> (TID 2000 heading, the narrative item's concept) (PS3.16 CID 7001/7002)
SECTIONS = {"technique": ("CurrentProcedureDescriptions", "ProcedureDescription"),
            "findings": ("Findings", "Finding"),
            "impression": ("Impressions", "Impression"),
            "recommendation": ("Recommendations", "Recommendation")}
SIGNED = ("final", "amended")


def report_uids(source: SourceImage, version: int, uid_root: str | None = None
                ) -> tuple[str, str]:
    """(series, instance) UIDs of the SR of report ``version`` of the source's study."""
    series = uid("report-series", source.study_instance_uid, root=uid_root)
    return series, uid("report", source.study_instance_uid, int(version), root=uid_root)


def _when(value: dt.datetime | str | None) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if not value:
        raise DicomObjectError("the report has no signing time")
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _content(report: Mapping[str, Any], signer: str, source: SourceImage):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    root = hd.sr.ContainerContentItem(name=codes.LN.DiagnosticImagingReport,
                                      template_id="2000")
    items = list(hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=signer)))
    sections = report.get("sections") or {}
    for key, (heading, element) in SECTIONS.items():
        text = printable(str(sections.get(key) or ""), lines=True).strip()
        if not text:
            continue
        container = hd.sr.ContainerContentItem(name=getattr(codes.DCM, heading),
                                               relationship_type="CONTAINS")
        children = [hd.sr.TextContentItem(name=getattr(codes.DCM, element), value=text,
                                          relationship_type="CONTAINS")]
        if key == "findings":  # what the findings were read from
            children.append(hd.sr.ImageContentItem(
                name=codes.DCM.SourceImage, relationship_type="CONTAINS",
                referenced_sop_class_uid=source.sop_class_uid,
                referenced_sop_instance_uid=source.sop_instance_uid))
        container.ContentSequence = hd.sr.ContentSequence(children)
        items.append(container)
    disclosure = printable(str(report.get("ai_disclosure") or ""), lines=True).strip()
    if disclosure:
        items.append(hd.sr.TextContentItem(name=codes.DCM.Comment, value=disclosure,
                                           relationship_type="CONTAINS"))
    root.ContentSequence = hd.sr.ContentSequence(items)
    return root


def _predecessor(source: SourceImage, version: int, uid_root: str | None) -> Dataset:
    series, instance = report_uids(source, version, uid_root)
    ds = Dataset()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = source.study_instance_uid, series
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.88.33", instance
    return ds


def report_sr(source: SourceImage, report: Mapping[str, Any], *, organization: str,
              signer: str | None = None, previous_version: int | None = None,
              uid_root: str | None = None, institution: str | None = None) -> Dataset:
    """The SR of a signed report version (``report``: the platform's report JSON — version,
    status, sections, signed_by, signed_at, ai_disclosure).

    ``signer``: the name the PACS shows (DICOM PN, e.g. ``Yilmaz^Ayse``; default the signing
    user's name); ``organization``: the signer's organisation (VerifyingOrganization);
    ``previous_version``: the version whose SR this one amends (an amendment's predecessor)."""
    import highdicom as hd
    from pydicom.valuerep import DT

    if report.get("status") not in SIGNED or not report.get("signed_by"):
        raise DicomObjectError("only a signed report version goes to the PACS")
    version = int(report["version"])
    if previous_version is not None and not 0 < int(previous_version) < version:
        raise DicomObjectError("an amendment follows an earlier version")
    signed_at = _when(report.get("signed_at"))
    name = outgoing_person_name(signer or str(report["signed_by"]))[:63]
    name = name if "^" in name else name + "^"  # one component: a family name
    series, instance = report_uids(source, version, uid_root)
    previous = [_predecessor(source, int(previous_version), uid_root)] \
        if previous_version is not None else None
    sr = hd.sr.ComprehensiveSR(
        evidence=[source.evidence()], content=_content(report, name, source),
        series_instance_uid=series, series_number=SERIES_REPORT, sop_instance_uid=instance,
        instance_number=version, manufacturer=MANUFACTURER, is_complete=True, is_final=True,
        is_verified=True, verifying_observer_name=name, verifying_organization=organization,
        previous_versions=previous, institution_name=institution,
        series_description="Radiology report (signed)", **content_times(signed_at))
    sr.VerifyingObserverSequence[0].VerificationDateTime = DT(
        utc_naive(signed_at).strftime("%Y%m%d%H%M%S"))
    pin_times(sr, signed_at)
    return sr
