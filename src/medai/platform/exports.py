"""Signed reports leaving the hospital system: FHIR R4 JSON and PDF.

FHIR: a ``collection`` Bundle with the ``DiagnosticReport`` (status mapped from the report,
``resultsInterpreter`` the signer, the report text as ``presentedForm``), an ``Observation``
per AI finding (probability, threshold, positive/negative), and the AI model as a ``Device``
(name, version, content hash) that each Observation names as its ``device``. Validated with
``fhir.resources`` (R4B models, the R4-compatible release it ships) before it is returned.
Only the pseudonymous patient reference is exported, never a name.
"""

from __future__ import annotations

import base64
from datetime import datetime
from pathlib import Path
from typing import Any

AI_DISCLOSURE_TR = ("Yapay zekâ desteğiyle taslak hazırlanmıştır; adı geçen radyolog "
                    "tarafından incelenip imzalanmıştır. Yapay zekâ çıktısı tanı değil, "
                    "öneridir.")
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def _when(t: datetime | None) -> str | None:
    return None if t is None else t.replace(microsecond=0).isoformat() + "+00:00"


def report_text(report: dict[str, Any]) -> str:
    s = report["sections"]
    return "\n\n".join(f"{name.upper()}:\n{s.get(name, '')}" for name in
                       ("technique", "findings", "impression", "recommendation"))


def fhir_bundle(study: dict[str, Any], report: dict[str, Any], model: dict[str, Any] | None,
                signer: str | None, created: datetime, signed_at: datetime | None
                ) -> dict[str, Any]:
    from fhir.resources.R4B.bundle import Bundle

    sid = study["id"]
    status = report["status"]
    device_id, dr_id = f"model-{sid}", f"report-{sid}-v{report['version']}"
    entries: list[dict[str, Any]] = []
    if model:
        entries.append({"resourceType": "Device", "id": device_id,
                        "identifier": [{"system": "urn:medai:model-content-hash",
                                        "value": model["content_hash"]}],
                        "deviceName": [{"name": model["name"], "type": "model-name"}],
                        "version": [{"value": model["version"]}],
                        "type": {"text": "AI software (medai); output is a suggestion"}})
    patient_ref = None
    if study.get("patient_ref"):
        entries.append({"resourceType": "Patient", "id": f"patient-{sid}",
                        "identifier": [{"system": "urn:medai:patient-ref",
                                        "value": study["patient_ref"]}]})
        patient_ref = {"reference": f"Patient/patient-{sid}"}
    interpreter = None
    if signer:
        entries.append({"resourceType": "Practitioner", "id": f"signer-{sid}",
                        "identifier": [{"system": "urn:medai:user", "value": signer}],
                        "name": [{"text": signer}]})
        interpreter = [{"reference": f"Practitioner/signer-{sid}", "display": signer}]
    obs_refs = []
    for i, f in enumerate(report.get("findings") or []):
        oid = f"finding-{sid}-{i}"
        obs: dict[str, Any] = {
            "resourceType": "Observation", "id": oid,
            "status": "final" if status in ("final", "amended") else "preliminary",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                "observation-category", "code": "imaging"}]}],
            "code": {"coding": [{"system": "urn:medai:label", "code": f["label"]}],
                     "text": f["label"]},
            "interpretation": [{"coding": [{"system": _INTERPRETATION,
                                            "code": "POS" if f.get("positive") else "NEG"}]}],
            "method": {"text": "AI model suggestion (reviewed by the signing radiologist)"},
        }
        if f.get("probability") is not None:
            obs["valueQuantity"] = {"value": round(float(f["probability"]), 4),
                                    "unit": "probability"}
        if f.get("threshold") is not None:
            obs["note"] = [{"text": f"operating threshold {float(f['threshold']):.4f}"}]
        if model:
            obs["device"] = {"reference": f"Device/{device_id}"}
        if patient_ref:
            obs["subject"] = patient_ref
        entries.append(obs)
        obs_refs.append({"reference": f"Observation/{oid}"})
    text = report_text(report) + "\n\n" + report["ai_disclosure"]
    dr: dict[str, Any] = {
        "resourceType": "DiagnosticReport", "id": dr_id, "status": status,
        "identifier": [{"system": "urn:medai:report", "value": f"{sid}/{report['version']}"}],
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                  "code": "RAD", "display": "Radiology"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "18748-4",
                             "display": "Diagnostic imaging study"}],
                 "text": study["modality"]},
        "effectiveDateTime": _when(created),
        "issued": _when(signed_at or created),
        "conclusion": report["sections"].get("impression", ""),
        "presentedForm": [{"contentType": "text/plain; charset=utf-8",
                           "language": study.get("language", "tr"),
                           "data": base64.b64encode(text.encode()).decode(),
                           "title": "Radiology report"}],
        "result": obs_refs,
    }
    if interpreter:
        dr["resultsInterpreter"] = interpreter
    if patient_ref:
        dr["subject"] = patient_ref
    entries.insert(0, dr)
    bundle = {"resourceType": "Bundle", "type": "collection", "timestamp": _when(created),
              "entry": [{"fullUrl": f"urn:medai:{e['resourceType']}/{e['id']}",
                         "resource": e} for e in entries]}
    Bundle.model_validate(bundle)  # raises on anything FHIR R4(B) would refuse
    return bundle


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def report_pdf(study: dict[str, Any], report: dict[str, Any], model: dict[str, Any] | None,
               image_png: bytes | None, heatmap_png: bytes | None,
               heatmap_label: str | None) -> bytes:
    """A one-or-more-page PDF: disclosure, study, image and heatmap, findings table, report
    text, signer. DejaVu (shipped with matplotlib) covers Turkish letters."""
    import io

    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    fonts = _font_dir()
    pdf.add_font("DejaVu", "", str(fonts / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(fonts / "DejaVuSans-Bold.ttf"))
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 15)
    pdf.cell(0, 9, f"Radiology report — study {study['id']}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    pdf.set_fill_color(255, 243, 205)
    disclosure = report["ai_disclosure"]
    if study.get("language") == "tr":
        disclosure = AI_DISCLOSURE_TR + "\n" + disclosure
    pdf.multi_cell(0, 5, disclosure, fill=True, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    meta = [("Status", f"{report['status']} (version {report['version']})"),
            ("Modality / task", f"{study['modality']} / {study['task']}"),
            ("Patient ref", study.get("patient_ref") or "—"),
            ("Signed by", report.get("signed_by") or "not signed"),
            ("Signed at", report.get("signed_at") or "—")]
    if model:
        meta.append(("AI model", f"{model['name']} {model['version']} "
                                 f"({model['content_hash'][:23]}…)"))
    for k, v in meta:
        pdf.set_font("DejaVu", "B", 9)
        pdf.cell(38, 5, k)
        pdf.set_font("DejaVu", "", 9)
        pdf.cell(0, 5, str(v), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    y = pdf.get_y()
    if image_png:
        pdf.image(io.BytesIO(image_png), x=10, y=y, w=85)
    if heatmap_png:
        pdf.image(io.BytesIO(heatmap_png), x=105, y=y, w=85)
        pdf.set_xy(105, y + 86)
        pdf.set_font("DejaVu", "", 8)
        pdf.cell(85, 4, f"Grad-CAM heatmap: {heatmap_label or ''} (AI suggestion)")
    if image_png or heatmap_png:
        pdf.set_xy(10, y + 92)
    findings = report.get("findings") or []
    if findings:
        pdf.set_font("DejaVu", "B", 10)
        pdf.cell(0, 6, "AI findings (suggestions)", new_x="LMARGIN", new_y="NEXT")
        with pdf.table(col_widths=(60, 40, 40, 40), text_align="LEFT") as table:
            table.row(["Finding", "Probability", "Threshold", "Above threshold"])
            for f in findings:
                p, t = f.get("probability"), f.get("threshold")
                table.row([f["label"], "—" if p is None else f"{p:.3f}",
                           "—" if t is None else f"{t:.3f}",
                           "yes" if f.get("positive") else "no"])
        pdf.ln(2)
    for name in ("technique", "findings", "impression", "recommendation"):
        pdf.set_font("DejaVu", "B", 10)
        pdf.cell(0, 6, name.capitalize(), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("DejaVu", "", 9)
        pdf.multi_cell(0, 5, report["sections"].get(name, "") or "—",
                       new_x="LMARGIN", new_y="NEXT")
    if report.get("citations"):
        pdf.set_font("DejaVu", "B", 10)
        pdf.cell(0, 6, "Sources", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("DejaVu", "", 8)
        for c in report["citations"]:
            pdf.multi_cell(0, 4, f"[{c.get('n')}] {c.get('title') or c.get('source')}",
                           new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
