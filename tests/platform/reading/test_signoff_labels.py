"""Sign-off without surprises (issue 59, items 2 and 3).

Labels change only by the radiologist's hand: the report text is read for suggestions, never
applied by the server. Signing endorses the AI's decided findings as the signer's own; a label
the AI left undecided must be chosen first (409 ``undecided_labels``). After sign-off FHIR's
``DiagnosticReport.result`` holds the signer's Observations only, the AI's are linked through
``derivedFrom`` and an AI Provenance naming the model's Device, and ``effectiveDateTime`` is
when the study was taken (DICOM StudyDate/StudyTime; the upload time for a PNG), never the
signing time; HL7's coded OBX after sign-off are the signer's only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.dicom import make_dicom
from helpers.platform import (  # noqa: F401 (urgent_cxr_dir: a fixture)
    bearer,
    clinic,
    decided,
    png_bytes,
    urgent_cxr_dir,
    wait_status,
)

pytestmark = pytest.mark.slow

CXR_THRESHOLDS = {
    "Pneumonia": 0.584,
    "COVID-19": 0.089,
    "Viral_Pneumonia": 0.737,
    "Bacterial_Pneumonia": 0.41,
    "No Finding": 0.699,
}
UNDECIDED = {  # "No Finding" and COVID-19 both above their thresholds: undecided between them
    "No Finding": 0.8,
    "COVID-19": 0.5,
    "Viral_Pneumonia": 0.3,
    "Pneumonia": 0.4,
    "Bacterial_Pneumonia": 0.05,
}


@pytest.fixture()
def site(tmp_path, tfidf_model_dir, urgent_cxr_dir):  # noqa: F811
    """A clinic whose chest model calls Pneumothorax on every film (Effusion and "No Finding"
    never), and a way to upload a study and wait for its draft."""
    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, urgent_cxr_dir, job_threads=1) as (
        app,
        client,
    ):
        rad = bearer(client, "rad1")

        def study(name: str = "x.png", data: bytes | None = None, kind: str = "image/png") -> int:
            r = client.post(
                "/api/v1/studies",
                headers=rad,
                data={"task": "cxr"},
                files={"file": (name, data or png_bytes(6), kind)},
            )
            assert r.status_code == 201, r.text
            wait_status(client, rad, r.json()["id"], {"ai_drafted"})
            return r.json()["id"]

        yield app, client, rad, study


def _labels(client, rad, sid: int, sections: dict, choices: dict | None = None) -> dict:
    r = client.post(
        f"/api/v1/studies/{sid}/labels/suggest",
        headers=rad,
        json={"sections": sections, "labels": choices or {}},
    )
    assert r.status_code == 200, r.text
    return {x["label"]: x for x in r.json()["labels"]}


def _sign(client, rad, sid: int, sections: dict | None = None, labels: dict | None = None):
    version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
    body = {"version": version, **({"sections": sections} if sections else {})}
    if labels is not None:
        body["labels"] = labels
    return client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad, json=body)


def test_an_edited_text_suggests_labels_and_never_changes_them(site):
    """The tryout: a text denying the AI's finding and stating another switched the labels
    without a click (and the sign dialog listed a rejection the radiologist had not made).
    Now the text's reading is a suggestion beside each label; the signature stores the AI's
    decided findings, endorsed, until the radiologist clicks."""
    _app, client, rad, study = site
    sid = study()
    text = {
        "findings": "Sağ hemitoraksta plevral efüzyon izlenmektedir. Pnömotoraks yoktur.",
        "impression": "Sağ plevral efüzyon.",
    }
    by = _labels(client, rad, sid, text)
    assert (by["Pneumothorax"]["present"], by["Pneumothorax"]["source"]) == (True, "endorsed")
    assert (by["Pneumothorax"]["suggested"], by["Pneumothorax"]["suggested_by"]) == (False, "text")
    assert (by["Effusion"]["present"], by["Effusion"]["suggested"]) == (False, True)
    assert by["No Finding"]["present"] is False and by["No Finding"]["suggested"] is None

    r = _sign(client, rad, sid, text)  # signed with that text, no click
    assert r.status_code == 200, r.text
    stored = client.get(f"/api/v1/studies/{sid}/labels", headers=rad).json()["labels"]
    said = {x["label"]: (x["present"], x["source"]) for x in stored}
    assert said["Pneumothorax"] == (True, "endorsed")  # the text never rejected it
    assert said["Effusion"] == (False, "endorsed")  # nor added one
    assert said["No Finding"] == (False, "endorsed")

    # accepting the text's suggestions is the radiologist's click: then they are theirs
    sid2 = study("y.png", png_bytes(8))
    accepted = {"Pneumothorax": False, "Effusion": True}
    assert _sign(client, rad, sid2, text, accepted).status_code == 200
    stored = client.get(f"/api/v1/studies/{sid2}/labels", headers=rad).json()["labels"]
    said = {x["label"]: (x["present"], x["source"]) for x in stored}
    assert said["Pneumothorax"] == (False, "rejected") and said["Effusion"] == (True, "added")


def test_an_amendment_starts_from_the_previous_signature_not_the_ai(site):
    _app, client, rad, study = site
    sid = study()
    assert (
        _sign(client, rad, sid, None, {"Pneumothorax": False, "No Finding": True}).json()["status"]
        == "final"
    )
    amended = {"findings": "Düzeltme: pnömotoraks izlenmektedir.", "impression": "Pnömotoraks."}
    by = _labels(client, rad, sid, amended)
    assert (by["Pneumothorax"]["present"], by["Pneumothorax"]["source"]) == (False, "rejected")
    assert by["Pneumothorax"]["suggested"] is True  # offered, not applied
    r = _sign(client, rad, sid, amended)
    assert r.status_code == 200 and r.json()["status"] == "amended"
    stored = client.get(f"/api/v1/studies/{sid}/labels", headers=rad).json()
    said = {x["label"]: x["present"] for x in stored["labels"]}
    assert stored["report_version"] == r.json()["version"]
    assert said["Pneumothorax"] is False and said["No Finding"] is True


def _undecided(app, sid: int) -> dict:
    """Store a real undecided decision of the chest task as the study's AI result."""
    from medai.core.task_registry import get as get_task
    from medai.imaging.decision import OperatingPolicy, decide
    from medai.platform.worklist import ai_results

    d = decide(get_task("cxr"), UNDECIDED, OperatingPolicy(thresholds=CXR_THRESHOLDS)).model_dump(
        mode="json"
    )
    with app.state.platform.db.session() as db:
        row = ai_results.latest_result(db, sid)
        row.payload = {**row.payload, "decision": d, "findings": d["labels"]}
    return d


def test_signing_with_an_undecided_label_is_refused_until_the_radiologist_chooses(site):
    app, client, rad, study = site
    sid = study()
    d = _undecided(app, sid)
    assert d["state"] == "indeterminate" and d["candidates"] == ["No Finding", "COVID-19"]
    by = _labels(client, rad, sid, {})
    # the candidates are the radiologist's to decide; the parents COVID-19 would imply are
    # undecided with it but no question of their own (issue 67: four Var / Yok questions, two
    # for labels at a few per cent): the answer about COVID-19 settles them
    open_ = {"No Finding", "COVID-19"}
    assert {lab for lab, x in by.items() if x["needs_decision"]} == open_
    assert {lab for lab, x in by.items() if x["present"] is None} == {
        *open_,
        "Viral_Pneumonia",
        "Pneumonia",
    }
    assert by["Viral_Pneumonia"]["follows"] == "COVID-19" and by["COVID-19"]["follows"] is None
    assert by["COVID-19"]["source"] == "undecided"

    r = _sign(client, rad, sid)
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["code"] == "undecided_labels"
    assert {e["loc"][-1] for e in body["errors"]} == open_
    assert "COVID-19" in body["detail"] and "No Finding" in body["detail"]
    report = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    assert report["signed_by"] is None and report["version"] == 1  # nothing signed
    choice = {"COVID-19": True}
    r = _sign(client, rad, sid, None, choice)  # one of two is not enough
    assert r.status_code == 409 and [e["loc"][-1] for e in r.json()["errors"]] == ["No Finding"]
    by = _labels(client, rad, sid, {}, choice)  # COVID-19's answer settles its parents
    assert by["Viral_Pneumonia"]["present"] is True and by["Pneumonia"]["present"] is True
    assert not any(x["needs_decision"] for lab, x in by.items() if lab != "No Finding")

    r = _sign(client, rad, sid, None, {**choice, "No Finding": False})
    assert r.status_code == 200, r.text
    stored = client.get(f"/api/v1/studies/{sid}/labels", headers=rad).json()["labels"]
    said = {x["label"]: (x["present"], x["source"]) for x in stored}
    assert said["COVID-19"] == (True, "decided") and said["No Finding"] == (False, "decided")
    assert said["Viral_Pneumonia"] == (True, "decided") and said["Pneumonia"] == (True, "decided")
    assert said["Bacterial_Pneumonia"] == (False, "endorsed")


def test_the_undecided_labels_code_is_documented():
    from medai.core.errors import CODES

    assert CODES["undecided_labels"].status == 409


def _entries(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_signed_fhir_results_are_the_signers_with_an_ai_provenance_and_the_study_time(
    site, tmp_path
):
    from fhir.resources.R4B.bundle import Bundle

    _app, client, rad, study = site
    dcm = make_dicom(tmp_path / "cr.dcm", StudyDate="20251120", StudyTime="143015.25")
    sid = study("cr.dcm", dcm.read_bytes(), "application/dicom")
    r = _sign(client, rad, sid, None, {"Pneumothorax": False, "No Finding": True})
    assert r.status_code == 200, r.text
    fhir = client.get(f"/api/v1/studies/{sid}/report/fhir", headers=rad).json()
    Bundle.model_validate(fhir)
    dr = _entries(fhir, "DiagnosticReport")[0]
    obs = {o["id"]: o for o in _entries(fhir, "Observation")}
    results = [x["reference"].split("/", 1)[1] for x in dr["result"]]
    assert results and all(obs[o]["status"] == "final" for o in results)
    ai = [o for o in obs.values() if o["status"] == "preliminary"]
    assert ai and not {o["id"] for o in ai} & set(results)  # never an AI guess as a result
    assert all(o["meta"]["security"][0]["code"] == "AIAST" for o in ai)
    finals = {obs[o]["code"]["coding"][0]["code"]: obs[o] for o in results}
    assert finals["Pneumothorax"]["valueBoolean"] is False
    pneumo_ai = next(o for o in ai if o["code"]["coding"][0]["code"] == "Pneumothorax")
    assert finals["Pneumothorax"]["derivedFrom"] == [
        {"reference": f"Observation/{pneumo_ai['id']}"}
    ]
    (prov,) = _entries(fhir, "Provenance")
    device = _entries(fhir, "Device")[0]
    assert {t["reference"] for t in prov["target"]} == {f"Observation/{o['id']}" for o in ai}
    assert prov["agent"][0]["who"]["reference"] == f"Device/{device['id']}"
    assert prov["meta"]["profile"] == [
        "http://hl7.org/fhir/uv/aitransparency/StructureDefinition/AI-Provenance"
    ]
    model = client.get(f"/api/v1/studies/{sid}", headers=rad).json()["ai_result"]["model"]
    assert device["identifier"][0]["value"] == model["content_hash"]
    # taken at 14:30:15 on 20 Nov 2025 in the hospital's zone (Istanbul, +03:00); issued when
    # signed (today), never the other way round
    assert dr["effectiveDateTime"] == "2025-11-20T14:30:15+03:00"
    issued = datetime.fromisoformat(dr["issued"])
    assert abs(issued - datetime.now(UTC)) < timedelta(minutes=10)


def test_a_png_study_was_taken_when_it_was_uploaded_not_when_signed(site):
    from fhir.resources.R4B.bundle import Bundle

    app, client, rad, study = site
    sid = study()
    from medai.platform.records.tables import Study

    uploaded = datetime(2026, 1, 5, 8, 0, 0)
    with app.state.platform.db.session() as db:  # uploaded some days before it is signed
        db.get(Study, sid).created_at = uploaded
    assert _sign(client, rad, sid).status_code == 200
    fhir = client.get(f"/api/v1/studies/{sid}/report/fhir", headers=rad).json()
    Bundle.model_validate(fhir)
    dr = _entries(fhir, "DiagnosticReport")[0]
    assert dr["effectiveDateTime"] == "2026-01-05T08:00:00+00:00"
    assert dr["issued"] != dr["effectiveDateTime"]


def test_hl7_after_sign_off_codes_the_signers_findings_only():
    """A receiver reading OBX-5 without OBX-11 must not take the AI's "Present" the signer
    rejected for a finding: after sign-off the coded OBX are the signer's alone."""
    from medai.platform.documents.hl7.oru import oru_r01
    from medai.platform.documents.words.finding_states import with_states

    ai = {
        "task": "cxr",
        "findings": [
            {"label": "Bacterial_Pneumonia", "probability": 0.81, "threshold": 0.41,
             "positive": True, "basis": "above_threshold"},
            {"label": "No Finding", "probability": 0.2, "threshold": 0.7, "positive": False,
             "basis": "below_threshold"},
        ],
    }  # fmt: skip
    said = [
        {"label": "Bacterial_Pneumonia", "present": False, "source": "rejected"},
        {"label": "No Finding", "present": True, "source": "confirmed"},
    ]
    report = {
        "study_id": 7,
        "version": 2,
        "status": "final",
        "sections": {"findings": "Normal akciğer grafisi.", "impression": "Normal."},
        "signed_by": "rad1",
        "signed_at": "2026-11-23T10:00:00Z",
        "created_at": "2026-11-23T10:00:00Z",
    }
    study = {"id": 7, "task": "cxr", "language": "tr", "created_at": "2026-11-20T10:00:00Z"}
    text = oru_r01(study, with_states(report, ai, said), control_id="c1")
    coded = [s for s in text.split("\r") if s.startswith("OBX|") and "|CWE|" in s]
    assert len(coded) == 2  # one per label: the signer's
    assert all("AI-SUGGESTION" not in s and s.split("|")[11] == "F" for s in coded)
    # the rejected pneumonia: Absent; the normal film: Present — and no AI "Present" beside it
    assert sorted(s.split("|")[5].split("^")[1] for s in coded) == ["Absent", "Present"]


# issue 67, item 8: a signature never loses a verdict. Signed through the API as the README
# shows, with every label decided absent (the normal label included), the answer was 200
# final, no label was stored and FHIR's DiagnosticReport.result was empty.
def _stored(client, rad, sid: int) -> dict[str, bool]:
    body = client.get(f"/api/v1/studies/{sid}/labels", headers=rad).json()
    return {x["label"]: x["present"] for x in body["labels"]}


def _fhir_results(client, rad, sid: int) -> dict[str, tuple[str, bool]]:
    """DiagnosticReport.result as {label: (status, valueBoolean)}, one entry per reference."""
    from fhir.resources.R4B.bundle import Bundle

    fhir = client.get(f"/api/v1/studies/{sid}/report/fhir", headers=rad).json()
    Bundle.model_validate(fhir)
    (dr,) = _entries(fhir, "DiagnosticReport")
    obs = {o["id"]: o for o in _entries(fhir, "Observation")}
    refs = [x["reference"].split("/", 1)[1] for x in dr.get("result") or []]
    out = {
        obs[o]["code"]["coding"][0]["code"]: (obs[o]["status"], obs[o]["valueBoolean"])
        for o in refs
    }
    assert len(out) == len(refs), refs  # one Observation per label, never two
    return out


def test_every_label_decided_absent_is_refused_naming_what_contradicts_what(site):
    app, client, rad, study = site
    sid = study()
    _undecided(app, sid)  # "No Finding" and COVID-19 undecided (with COVID-19's parents)
    every_absent = dict.fromkeys(("No Finding", "COVID-19", "Viral_Pneumonia", "Pneumonia"), False)
    by = _labels(client, rad, sid, {}, every_absent)
    assert not any(x["present"] for x in by.values())  # Bacterial_Pneumonia endorsed absent
    r = _sign(client, rad, sid, None, every_absent)
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["code"] == "contradictory_labels"
    assert [(e["type"], e["loc"][2:]) for e in body["errors"]] == [
        ("nothing_present", ["No Finding"])
    ]
    assert "No Finding is absent and no finding is present" in body["detail"]
    report = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    assert report["signed_by"] is None and report["version"] == 1  # nothing signed
    assert _stored(client, rad, sid) == {}
    # the label card says so before the signature is tried
    r = client.post(
        f"/api/v1/studies/{sid}/labels/suggest",
        headers=rad,
        json={"sections": {}, "labels": every_absent},
    )
    assert [c["kind"] for c in r.json()["contradictions"]] == ["nothing_present"]

    # the normal label present beside a finding present: refused too, naming both
    both = {**every_absent, "No Finding": True, "COVID-19": True, "Viral_Pneumonia": True,
            "Pneumonia": True}  # fmt: skip
    r = _sign(client, rad, sid, None, both)
    assert r.status_code == 409 and r.json()["code"] == "contradictory_labels"
    (err,) = r.json()["errors"]
    assert err["type"] == "normal_with_finding"
    assert err["loc"][2:] == ["No Finding", "Pneumonia", "COVID-19", "Viral_Pneumonia"]

    # a consistent set: stored exactly, and FHIR's result carries each as a final Observation
    normal = {**every_absent, "No Finding": True}
    r = _sign(client, rad, sid, None, normal)
    assert r.status_code == 200 and r.json()["status"] == "final", r.text
    want = {**normal, "Bacterial_Pneumonia": False}  # the AI's decided label, endorsed
    assert _stored(client, rad, sid) == want
    assert _fhir_results(client, rad, sid) == {lab: ("final", v) for lab, v in want.items()}


def test_the_contradictory_labels_code_is_documented():
    from medai.core.errors import CODES

    assert CODES["contradictory_labels"].status == 409


# the property: over label sets, every 200 stores exactly the labels sent plus those the
# signature endorsed (the AI's decided states of the labels not sent), and FHIR's result holds
# one final Observation per stored label; every other answer is a named 409 and signs nothing
FAMILY = ("No Finding", "COVID-19", "Viral_Pneumonia", "Bacterial_Pneumonia", "Pneumonia")
READ = (*FAMILY, "Effusion")  # the labels the stored AI result reads
CHOOSABLE = (*READ, "Nodule")  # and one the model does not read (added by the signer only)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_signature_stores_exactly_what_was_sent_and_endorsed(site, data):
    """Each example: a real decision of the chest task from drawn probabilities, stored as the
    study's AI result, and a drawn set of choices that answers every label the AI left
    undecided (an unanswered one is ``undecided_labels``, tested above)."""
    from medai.core.label_rules import contradictions
    from medai.core.task_registry import get as get_task
    from medai.imaging.decision import OperatingPolicy, decide
    from medai.platform.worklist import ai_results

    app, client, rad, study = site
    cxr = get_task("cxr")
    probs = {lab: data.draw(st.floats(0.0, 1.0), label=lab) for lab in READ}
    policy = OperatingPolicy(
        thresholds={**CXR_THRESHOLDS, "Effusion": 0.5},
        normal_conflict=data.draw(st.sampled_from(["indeterminate", "finding"])),
    )
    d = decide(cxr, probs, policy).model_dump(mode="json")
    ai = {x["label"]: x["state"] for x in d["labels"]}
    chosen = data.draw(st.lists(st.sampled_from(CHOOSABLE), unique=True), label="clicked")
    asked = [lab for lab, s in ai.items() if s == "indeterminate" and lab not in chosen]
    choices = {lab: data.draw(st.booleans(), label=lab) for lab in (*chosen, *asked)}
    sid = study(f"p{len(_SEEDS)}.png", png_bytes(1000 + len(_SEEDS)))
    _SEEDS.append(sid)
    with app.state.platform.db.session() as db:
        row = ai_results.latest_result(db, sid)
        row.payload = {**row.payload, "decision": d, "findings": d["labels"]}
    endorsed = {lab: s == "present" for lab, s in ai.items() if s != "indeterminate"}
    want = {**endorsed, **choices}

    r = _sign(client, rad, sid, None, choices)
    found = contradictions(cxr, want)
    if found:  # named, with what contradicts what, and nothing signed or stored
        assert r.status_code == 409 and r.json()["code"] == "contradictory_labels", r.text
        assert [(e["type"], e["loc"][2:]) for e in r.json()["errors"]] == [
            (c.kind, list(c.labels)) for c in found
        ]
        report = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
        assert report["signed_by"] is None and _stored(client, rad, sid) == {}
        return
    assert r.status_code == 200 and r.json()["status"] == "final", r.text
    # whatever the rule, a signed set never says "not normal, and nothing" nor "normal and X"
    present = {lab for lab, v in want.items() if v}
    assert want.get("No Finding") is not False or present, want
    assert not (want.get("No Finding") and present - {"No Finding"}), want
    assert _stored(client, rad, sid) == want
    assert _fhir_results(client, rad, sid) == {lab: ("final", v) for lab, v in want.items()}


_SEEDS: list[int] = []  # the studies the property made, each signed once
