"""Reports leaving the hospital system: FHIR R4 JSON here, the PDF in ``report_pdf``.

FHIR: a ``collection`` Bundle with the ``DiagnosticReport`` (status mapped from the report,
``resultsInterpreter`` the signer, the report text in its own language as ``presentedForm``), and
the findings as ``finding_states`` gives them. Each AI suggestion is a ``preliminary``
Observation (probability, threshold, its state as POS/NEG/IND, and after sign-off the signer's
verdict on it) naming the AI model's ``Device`` (name, version, content hash); it is never
final, and carries the AI Transparency label ``AIAST``. Once the signer stated labels, each is
a ``final`` (``amended``) Observation with ``valueBoolean``, performed by the signer and
``derivedFrom`` the AI's suggestion: a finding the signer rejected goes out as a final NEG beside
a preliminary AI POS, never as a final POS. ``DiagnosticReport.result`` holds the signer's
Observations only (an unsigned report's result is empty): the AI's are reached through
``derivedFrom`` and a ``Provenance`` (AI Transparency on FHIR) whose target is the AI's
Observations (and an unsigned draft) and whose agent is the model's ``Device``.
``effectiveDateTime`` is when the study was taken (DICOM StudyDate/StudyTime, else the upload
time: ``dicom.study_time``), ``issued`` when the report was signed.
Validated with ``fhir.resources`` (R4B models, the R4-compatible release it ships) before it is
returned. Empty strings, lists and objects are left out rather than sent (FHIR refuses ``""``),
so every report state exports: unsigned, signed, amended, empty sections, no findings, no
model, no patient, a report written by hand. A study that arrived as DICOM carries its
identity into the bundle: the Patient with the hospital's PatientID (type MR) and name, an
``ImagingStudy`` (StudyInstanceUID, accession number, series and instances with their
modality, body part and SOP class) that the DiagnosticReport names, and the accession number
as the report's identifier too. An uploaded image has only its pseudonymous patient
reference.

Every text goes out ``printable`` (no bidi or control characters) and the DICOM identity as
DICOM allows it (``dicom_values.outgoing_study``): a row stored before values were checked on
the way in (a UID ``../etc/passwd``, a 324-character name) still exports.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any, cast

from medai.platform.dicom import study_time
from medai.platform.dicom.dicom_values import outgoing_study
from medai.platform.dicom.identity import display_name, name_parts
from medai.platform.documents.pdf.report_pdf import report_pdf
from medai.platform.documents.words import disclosure, finding_states
from medai.platform.documents.words import report_words as rw
from medai.platform.records.localtime import as_utc, format_local
from medai.platform.records.printable import printable, printable_tree

__all__ = ["fhir_bundle", "prune", "report_pdf"]
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
ENTERED_IN_ERROR = "entered-in-error"
ACCESSION = {"coding": [{"system": _V2_0203, "code": "ACSN"}]}
# HL7 AI Transparency on FHIR: the label of what an AI asserted, and its Provenance profile
AIAST = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "AIAST",
    "display": "Artificial Intelligence asserted",
}
# DICOM PatientSex (and the upload form's) -> FHIR administrative gender
FHIR_GENDER = {"M": "male", "F": "female", "O": "other"}
AI_PROVENANCE = "http://hl7.org/fhir/uv/aitransparency/StructureDefinition/AI-Provenance"


def _when(t: datetime | str | None) -> str | None:
    """A FHIR instant (UTC, seconds, explicit offset) from a naive-UTC or aware time."""
    return None if t is None else as_utc(t).astimezone(UTC).replace(microsecond=0).isoformat()


def prune(value: Any) -> Any:
    """``value`` without empty strings, None, empty lists and empty objects, at any depth."""
    if isinstance(value, dict):
        out = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ("", None, [], {})}
    if isinstance(value, list):
        return [v for v in (prune(x) for x in value) if v not in ("", None, [], {})]
    if isinstance(value, str):
        return value if value.strip() else ""
    return value


def _device(
    device_id: str, model: dict[str, Any], note: list[str] | None = None
) -> dict[str, Any] | None:
    """The AI model as a ``Device``; ``note``: the AI note of the draft the report was made
    from (its scope, what it read, why it did not decide...), carried as the Device's
    annotations — the AI's disclosure beside the report, never the report's text."""
    name = str(model.get("name") or "").strip()
    resource = {
        "resourceType": "Device",
        "id": device_id,
        "identifier": [
            {
                "system": "urn:medai:model-content-hash",
                "value": str(model.get("content_hash") or ""),
            }
        ],
        "deviceName": [{"name": name, "type": "model-name"}] if name else [],
        "version": [{"value": str(model.get("version") or "")}],
        "type": {"text": "AI software (medai); output is a suggestion"},
        "note": [{"text": printable(line)} for line in note or [] if str(line).strip()],
    }
    return prune(resource)


def _patient(study: dict[str, Any], pid: str) -> dict[str, Any] | None:
    """The Patient: the pseudonymous reference of an upload, the PatientID and name of a
    DICOM study, sex and birth date where known; None when the study has neither reference
    nor ID (and no ImagingStudy needs a subject)."""
    d = study.get("dicom") or {}
    ids = []
    if (study.get("patient_ref") or "").strip():
        ids.append({"system": "urn:medai:patient-ref", "value": study["patient_ref"]})
    if d.get("patient_id"):
        ids.append(
            {
                "type": {"coding": [{"system": _V2_0203, "code": "MR"}]},
                "system": "urn:medai:dicom-patient-id",
                "value": d["patient_id"],
            }
        )
    name = d.get("patient_name")
    if not ids and not name and not d.get("study_uid"):
        return None
    context = study.get("patient") or {}
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": ids,
        "name": [{**name_parts(name), "text": display_name(name)}] if name else [],
        # from the DICOM header or the upload form (``patient_context``); a receiver matching
        # the patient reads them beside the identifier
        "gender": FHIR_GENDER.get(context.get("sex") or ""),
        "birthDate": context.get("birth_date"),
    }


def _imaging_study(
    study: dict[str, Any], iid: str, subject: dict[str, str]
) -> dict[str, Any] | None:
    """ImagingStudy for a DICOM study: its UID, accession number, series and instances."""
    d = study.get("dicom") or {}
    if not d.get("study_uid"):
        return None
    date = d.get("study_date") or ""
    series = [
        {
            "uid": s["series_uid"],
            "number": s.get("series_number"),
            "modality": {"system": _DCM, "code": s.get("modality") or "OT"},
            "description": s.get("series_description"),
            "bodySite": {"display": s["body_part"]} if s.get("body_part") else None,
            "numberOfInstances": len(s.get("instances") or []),
            "instance": [
                {
                    "uid": i["sop_uid"],
                    "number": i.get("number"),
                    "sopClass": {
                        "system": "urn:ietf:rfc:3986",
                        "code": f"urn:oid:{i['sop_class']}",
                    },
                }
                for i in s.get("instances") or []
            ],
        }
        for s in d.get("series") or []
    ]
    return {
        "resourceType": "ImagingStudy",
        "id": iid,
        "status": "available",
        "identifier": [
            {"system": "urn:dicom:uid", "value": f"urn:oid:{d['study_uid']}"},
            *(
                [{"use": "usual", "type": ACCESSION, "value": d["accession"]}]
                if d.get("accession")
                else []
            ),
        ],
        "subject": subject,
        "started": f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 else None,
        "modality": [
            {"system": _DCM, "code": m}
            for m in dict.fromkeys(s["modality"]["code"] for s in series)
        ],
        "numberOfSeries": len(series),
        "numberOfInstances": sum(x["numberOfInstances"] for x in series),
        "series": series,
    }


_POS_NEG = {"present": "POS", "absent": "NEG", "indeterminate": "IND"}


def _interpretation(state: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": _INTERPRETATION, "code": _POS_NEG[state]}]}]


def _code(f: dict[str, Any], study: dict[str, Any], lang: str) -> dict[str, Any]:
    label = str(f["label"])
    return {
        "coding": [{"system": "urn:medai:label", "code": label}],
        "text": rw.label_name(study.get("task"), label, lang),
    }


_CATEGORY = [
    {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "imaging",
            }
        ]
    }
]


def _ai_observation(
    oid: str, f: dict[str, Any], study: dict[str, Any], lang: str, signed: bool, scope: str = ""
) -> dict[str, Any]:
    """The AI's suggestion for one label: always ``preliminary`` (a suggestion is never a
    final result), its state as the interpretation, after sign-off what the signer said of it
    in ``method``, and the model's scope as a note (what it looks for and does not assess, and
    an out-of-scope flag: ``imaging.scope``)."""
    w = rw.words(lang)
    method = (
        w["method_ai_verdict"].format(verdict=rw.verdict(f, lang, study.get("task")))
        if f.get("verdict")
        else w["method_signed" if signed else "method_unsigned"]
    )
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "meta": {"security": [AIAST]},  # asserted by the AI (AI Transparency on FHIR)
        "status": "preliminary",
        "category": _CATEGORY,
        "code": _code(f, study, lang),
        "interpretation": _interpretation(f["state"]),
        "method": {"text": method},
    }
    if f.get("probability") is not None:
        obs["valueQuantity"] = {"value": round(float(f["probability"]), 4), "unit": "probability"}
    notes = [rw.decision(f, lang, study.get("task"))]
    if f.get("threshold") is not None:
        notes.append(
            rw.words(lang)["threshold_note"].format(threshold=f"{float(f['threshold']):.4f}")
        )
    if scope:  # the model's limits travel with each of its suggestions
        notes.append(scope)
    obs["note"] = [{"text": n} for n in notes]
    return obs


def _provenance(
    pid: str,
    targets: list[dict[str, str]],
    device_id: str | None,
    model: dict[str, Any] | None,
    recorded: datetime | str,
) -> dict[str, Any] | None:
    """What the AI produced, and which model (HL7 AI Transparency on FHIR, AI-Provenance):
    the AI's preliminary Observations (and an unsigned draft report) as ``target``, the model's
    ``Device`` (name, version, content hash) as the authoring agent; None without a model or
    anything of it in the bundle."""
    if device_id is None or not targets:
        return None
    m = model or {}
    name = " ".join(str(m.get(k) or "").strip() for k in ("name", "version")).strip()
    return {
        "resourceType": "Provenance",
        "id": pid,
        "meta": {"profile": [AI_PROVENANCE]},
        "target": targets,
        "recorded": _when(recorded),
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "CREATE",
                }
            ],
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "author",
                        }
                    ]
                },
                "who": {"reference": f"Device/{device_id}", "display": name or None},
            }
        ],
    }


def _signer_observation(
    oid: str,
    f: dict[str, Any],
    study: dict[str, Any],
    lang: str,
    status: str,
    performer: dict[str, str],
    ai_ref: str | None,
) -> dict[str, Any]:
    """What the signing radiologist said of one label: the final result (present or absent),
    performed by the signer, derived from the AI's suggestion when there was one."""
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "amended" if status == "amended" else "final",
        "category": _CATEGORY,
        "code": _code(f, study, lang),
        "valueBoolean": bool(f["signer"]),
        "interpretation": _interpretation("present" if f["signer"] else "absent"),
        "method": {"text": rw.words(lang)["method_signer"]},
        "performer": [performer],
        "derivedFrom": [{"reference": ai_ref}] if ai_ref else [],
    }


def _human_name(who: dict[str, Any]) -> dict[str, Any]:
    """The signer's FHIR HumanName: text (title and full name), family, given, the title as
    prefix; the user name as text alone when no full name is set."""
    name: dict[str, Any] = (
        {"use": "official", "text": who["text"]} if who["family"] else {"text": who["text"]}
    )
    if who["family"]:
        name["family"] = who["family"]
        if who["given"]:
            name["given"] = who["given"]
        if who["title"]:
            name["prefix"] = [who["title"]]
    return name


def fhir_bundle(
    study: dict[str, Any],
    report: dict[str, Any],
    model: dict[str, Any] | None,
    signer: str | None,
    created: datetime,
    signed_at: datetime | None,
    entered_in_error: bool = False,
    taken: str | None = None,
    ai_created: datetime | None = None,
) -> dict[str, Any]:
    """The report's bundle (see the module doc). ``entered_in_error``: the study was retracted
    (``platform.reading.retraction``): the DiagnosticReport, its Observations and the ImagingStudy
    all say ``entered-in-error``, whatever the report's own status was. ``taken``: when the
    study was taken (``study_time.of_study``: DICOM StudyDate/StudyTime; without it, the
    stored StudyDate, else the upload time); ``ai_created``: when the AI's result was stored
    (the Provenance's ``recorded``)."""
    from fhir.resources.R4B.bundle import Bundle

    if "signed_labels" not in report:  # not from finding_states: its own stored findings
        report = finding_states.with_states(report, None, None)
    study, report, model = outgoing_study(study), printable_tree(report), printable_tree(model)
    signer = printable(signer).strip() or None if signer else None
    # the signer by title and full name (rw.signer_name), the user name as the identifier
    who = rw.signer_parts({**report, "signed_by": signer}) if signer else None
    shown = who["text"] if who else None
    sid, lang = study["id"], rw.language(study)
    status = report.get("status") or "preliminary"
    signed = bool(signer)
    device_id, dr_id = f"model-{sid}", f"report-{sid}-v{report['version']}"
    entries: list[dict[str, Any]] = []
    device = _device(device_id, model, report.get("ai_note")) if model else None
    if device:
        entries.append(device)
    patient_ref = None
    patient = _patient(study, f"patient-{sid}")
    if patient is not None:
        entries.append(patient)
        patient_ref = {"reference": f"Patient/patient-{sid}"}
    imaging = _imaging_study(study, f"study-{sid}", patient_ref) if patient_ref else None
    if imaging is not None:
        entries.append(imaging)
    if signed:
        entries.append(
            {
                "resourceType": "Practitioner",
                "id": f"signer-{sid}",
                "identifier": [{"system": "urn:medai:user", "value": signer}],
                "name": [_human_name(cast(dict[str, Any], who))],  # signed: a signer's parts
            }
        )
    obs_refs, ai_refs = [], []
    performer: dict[str, Any] = {"reference": f"Practitioner/signer-{sid}", "display": shown}
    scope = rw.scope_paragraph(report, study, lang)
    for i, f in enumerate(report.get("findings") or []):
        if not isinstance(f, dict) or not str(f.get("label") or "").strip():
            continue  # nothing to name it by: not an Observation
        ai_ref = None
        if f.get("state") in _POS_NEG:
            oid = f"ai-{sid}-{i}"
            obs = _ai_observation(oid, f, study, lang, signed, scope)
            if device:
                obs["device"] = {"reference": f"Device/{device_id}"}
            if patient_ref:
                obs["subject"] = patient_ref
            entries.append(obs)
            ai_ref = f"Observation/{oid}"
            ai_refs.append({"reference": ai_ref})
        if signed and f.get("signer") is not None:
            oid = f"finding-{sid}-{i}"
            obs = _signer_observation(oid, f, study, lang, status, performer, ai_ref)
            if patient_ref:
                obs["subject"] = patient_ref
            entries.append(obs)
            obs_refs.append({"reference": f"Observation/{oid}"})
    # the result is the signer's alone: the AI's suggestions are linked from the signer's
    # Observations (derivedFrom) and named by the Provenance below, never results themselves
    provenance = _provenance(
        f"ai-provenance-{sid}",
        ai_refs + ([] if signed else [{"reference": f"DiagnosticReport/{dr_id}"}]),
        device_id if device else None,
        model,
        ai_created or created,
    )
    if provenance is not None:
        entries.append(provenance)
    if taken is None:  # no header read: the stored StudyDate, else the upload time
        taken = study_time.taken(
            None, (study.get("dicom") or {}).get("study_date"), study.get("created_at")
        )
    when = format_local(signed_at or report.get("signed_at"), lang) if signed else None
    text = "\n\n".join(
        p for p in (rw.report_text(report, lang), scope, disclosure.text(report, lang, when)) if p
    )
    dr: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": dr_id,
        "status": status,
        "identifier": [
            {"system": "urn:medai:report", "value": f"{sid}/{report['version']}"},
            *(
                [{"type": ACCESSION, "value": accession}]
                if (accession := (study.get("dicom") or {}).get("accession"))
                else []
            ),
        ],
        "imagingStudy": [{"reference": f"ImagingStudy/{imaging['id']}"}] if imaging else [],
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                        "code": "RAD",
                        "display": "Radiology",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": "18748-4",
                    "display": "Diagnostic imaging study",
                }
            ],
            "text": rw.examination(study, lang),
        },
        "effectiveDateTime": taken or _when(created),  # when the study was taken
        "issued": _when(signed_at or created),
        "conclusion": ((report.get("sections") or {}).get("impression") or "").strip(),
        "presentedForm": [
            {
                "contentType": "text/plain; charset=utf-8",
                "language": lang,
                "data": base64.b64encode(text.encode()).decode(),
                "title": rw.words(lang)["report_text"],
            }
        ],
        "result": obs_refs,
        "meta": None if signed else {"security": [AIAST]},  # an unsigned AI draft
        "subject": patient_ref,
        "resultsInterpreter": [{"reference": f"Practitioner/signer-{sid}", "display": shown}]
        if signed
        else [],
    }
    entries.insert(0, dr)
    if entered_in_error:
        for e in entries:
            if e["resourceType"] in ("DiagnosticReport", "Observation", "ImagingStudy"):
                e["status"] = ENTERED_IN_ERROR
    bundle = prune(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": _when(created),
            "entry": [
                {"fullUrl": f"urn:medai:{e['resourceType']}/{e['id']}", "resource": e}
                for e in entries
            ],
        }
    )
    Bundle.model_validate(bundle)  # raises on anything FHIR R4(B) would refuse
    return bundle
