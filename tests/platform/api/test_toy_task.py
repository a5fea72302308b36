"""A task medai has never heard of, added from outside it (issue 49, "task facts live in the
task"): a knee radiograph task registered here, by ``task_registry.register`` alone, with a
tiny model folder, goes through every face a chest X-ray goes through — DICOM routing, the
services layer's predict, the report draft, the upload form, the analysis job, the PDF, the
FHIR bundle and the study page — in its own words and codes, without one line of medai
changed for it. A place in medai that still names ``cxr``/``mri`` (or reads a table of them
built before the task registered) fails here: the knee's examination, sentences, label names
or codes would be missing or the chest's would appear instead."""

from __future__ import annotations

import io
import json
import re

import pytest

from helpers.builders import make_imaging_model_dir
from helpers.platform import bearer, clinic, png_bytes, wait_status
from medai.core import task_registry
from medai.core.task_registry import DraftWords, Task, loader_from

# imported before the task registers, as in a running server whose hospital package registers
# late: whatever these modules read from the registry at import would lack the knee
from medai.platform.app import create_platform_app  # noqa: F401
from medai.reporting.draft import draft_report

LABELS = ("Osteoarthritis", "Joint_Effusion", "Normal_Knee")
NAMES = {
    "Osteoarthritis": ("Knee osteoarthritis", "Diz osteoartriti"),
    "Joint_Effusion": ("Knee joint effusion", "Diz eklem sıvısı"),
    "Normal_Knee": ("Normal knee", "Normal diz"),
}
PHRASES = {
    "Osteoarthritis": ("degenerative knee joint changes", "dizde dejeneratif eklem değişikliği"),
    "Joint_Effusion": ("suprapatellar joint effusion", "suprapatellar eklem sıvısı"),
    "Normal_Knee": ("no knee abnormality", "diz patolojisi yok"),
}
KNEE = Task(
    name="knee",
    kind="imaging",
    # medai's generic imaging loader: a model folder of any imaging task
    loader=loader_from("medai.imaging.predict:load_predictor"),
    labels=LABELS,
    modality="knee radiograph",
    multilabel=False,
    synonyms={"oa": "Osteoarthritis", "effusion": "Joint_Effusion", "normal": "Normal_Knee"},
    exclusive=LABELS,
    normal="Normal_Knee",
    urgent=("Joint_Effusion",),
    dicom_modalities=("CR", "DX"),
    dicom_body_parts=("KNEE", "DIZ"),
    dicom_description=r"\b(knee|diz)\b",
    mentions_en={
        "Osteoarthritis": r"osteoarthrit\w*|degenerative (?:knee )?joint",
        "Joint_Effusion": r"(?:suprapatellar|knee|joint) effusion",
    },
    mentions_tr={
        "Osteoarthritis": r"osteoartrit|dejeneratif eklem",
        "Joint_Effusion": r"eklem sıvı|eklem efüzyon",
    },
    phrases=PHRASES,
    display={"en": "Knee X-ray", "tr": "Diz grafisi"},
    label_names=NAMES,
    # Osteoarthritis coded; the other two get medai's stable private codes
    codes={"Osteoarthritis": ("99KNEE", "KNEE-OA", "Osteoarthritis of the knee")},
    draft=DraftWords(
        technique=("Knee radiograph (single view).", "Diz grafisi (tek görüntü)."),
        technique_with_view=("{view} knee radiograph.", "{view} diz grafisi."),
        normal=("The knee joint is unremarkable.", "Diz eklemi olağandır."),
        normal_impression=(
            "No knee abnormality (AI suggestion).",
            "Diz patolojisi saptanmadı (YZ önerisi).",
        ),
    ),
    flip_augment=True,
)
CHEST_WORDS = ("chest", "akciğer", "lung", "Chest X-ray", "Akciğer grafisi")


@pytest.fixture(scope="module")
def knee(tmp_path_factory):
    """The knee task registered for this module only (the registry as it was afterwards) and
    a tiny model folder of it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(task_registry, "_TASKS", dict(task_registry._TASKS))
        task_registry.register(KNEE)
        yield make_imaging_model_dir(
            tmp_path_factory.mktemp("knee") / "tiny-knee", labels=LABELS, task="knee"
        )


@pytest.fixture(scope="module")
def clinic_app(knee, tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    """The platform app serving the knee model beside triage and cxr (``models=``)."""
    home = tmp_path_factory.mktemp("knee-clinic")
    with clinic("sqlite", home, tfidf_model_dir, tiny_imaging_dir, models={"knee": str(knee)}) as (
        app,
        client,
    ):
        yield app, client, bearer(client, "rad1")


def test_the_knee_task_is_registered_from_outside_medai(knee):
    from medai.imaging.labels import space
    from medai.platform.dicom.identity import DicomIdentity
    from medai.platform.intake.routing import route

    assert "knee" in task_registry.names("imaging")
    assert task_registry.default_task("imaging").name == "cxr"  # adding a task changes no default
    assert space("knee").resolve("OA") == "Osteoarthritis"
    # DICOM routing: a knee radiograph reaches the knee model, a chest one still the chest's
    knee_dx = DicomIdentity(modality="DX", body_part="KNEE", view_position="AP")
    assert (route(knee_dx).task, route(knee_dx).basis) == ("knee", "body_part")
    described = DicomIdentity(modality="CR", series_description="Sol diz AP")
    assert route(described).task == "knee"
    assert route(DicomIdentity(modality="CR", body_part="CHEST", view_position="PA")).task == "cxr"


def test_predict_through_the_services_layer(knee):
    from medai.services import imaging as imaging_service
    from medai.services.model_handles import ModelHandles

    handles = ModelHandles(models={"knee": str(knee)})
    result = imaging_service.analyse(handles.get("knee"), png_bytes(3, (128, 128)))
    assert not result.refused, result.reason
    assert result.task == "knee" and result.model.task == "knee"
    assert {f.label for f in result.findings} == set(LABELS)
    assert result.decision is not None
    states = [r.state for r in result.decision.labels]
    # one class per image (exclusive): one present, or undecided; never two present
    assert states.count("present") <= 1


@pytest.mark.parametrize("lang", ["en", "tr"])
def test_the_draft_speaks_of_the_knee_in_its_own_words(knee, lang):
    from medai.reporting.draft import parse_decided

    i = 1 if lang == "tr" else 0
    found, decision = parse_decided(["Joint_Effusion"], "knee")
    out = draft_report(found, None, task="knee", lang=lang, decision=decision)
    s = out["sections"]
    assert out["task"] == "knee"
    assert s["technique"] == KNEE.draft.technique[i]
    assert PHRASES["Joint_Effusion"][i] in s["findings"].lower()
    assert PHRASES["Joint_Effusion"][i] in s["impression"].lower()
    # a DICOM view: the task's own sentence with it
    out = draft_report(
        found, None, task="knee", lang=lang, decision=decision, image={"view_position": "AP"}
    )
    assert out["sections"]["technique"] == KNEE.draft.technique_with_view[i].format(view="AP")
    # a normal study: the task's normal sentence and impression, not the chest's
    found, decision = parse_decided(["Normal_Knee"], "knee")
    s = draft_report(found, None, task="knee", lang=lang, decision=decision)["sections"]
    assert s["findings"].startswith(KNEE.draft.normal[i])
    assert s["impression"] == KNEE.draft.normal_impression[i]
    # probabilities: the decided absent findings named by the task's phrases
    found, decision = parse_decided(
        [
            {"label": "Osteoarthritis", "probability": 0.9, "threshold": 0.5, "positive": True},
            {"label": "Joint_Effusion", "probability": 0.05, "threshold": 0.5, "positive": False},
            {"label": "Normal_Knee", "probability": 0.05, "threshold": 0.5, "positive": False},
        ],
        "knee",
    )
    s = draft_report(found, None, task="knee", lang=lang, decision=decision)["sections"]
    assert PHRASES["Osteoarthritis"][i] in s["findings"].lower()
    text = " ".join(s.values())
    assert PHRASES["Normal_Knee"][i] not in text.lower()  # the normal label is never "absent"
    assert not any(w.lower() in text.lower() for w in CHEST_WORDS), text


def test_a_task_without_its_own_sentences_gets_the_generic_ones(knee, monkeypatch):
    from dataclasses import replace

    from medai.reporting.draft import parse_decided

    monkeypatch.setattr(task_registry, "_TASKS", dict(task_registry._TASKS))
    task_registry.register(replace(KNEE, draft=DraftWords()))
    found, decision = parse_decided(["Normal_Knee"], "knee")
    s = draft_report(
        found, None, task="knee", lang="en", decision=decision, image={"view_position": "PA"}
    )["sections"]
    assert s["technique"] == "Knee radiograph."  # its modality
    # never "No abnormality.": what the model looked for, named as not seen (issue 69: in a
    # radiologist's words, the AI's account of itself in the AI note)
    assert s["findings"].startswith("No ") and "AI model" not in s["findings"]
    assert s["impression"].endswith("(AI suggestion).") and "AI model" not in s["impression"]


def _pdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    pages = PdfReader(io.BytesIO(pdf)).pages
    return " ".join(" ".join((p.extract_text() or "").split()) for p in pages)


def test_upload_analysis_pdf_fhir_and_study_page(clinic_app):
    _app, client, headers = clinic_app
    # the upload form takes the task registered after medai's API was imported
    r = client.post(
        "/api/v1/studies",
        headers=headers,
        data={"task": "knee", "lang": "en", "patient_ref": "P-KNEE"},
        files={"file": ("knee.png", png_bytes(5, (128, 128)), "image/png")},
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    study = wait_status(client, headers, sid, {"ai_drafted", "refused", "failed", "no_model"})
    assert study["status"] == "ai_drafted", study
    assert study["task"] == "knee"
    assert {f["label"] for f in study["ai_result"]["findings"]} == set(LABELS)
    report = client.get(f"/api/v1/studies/{sid}/report", headers=headers).json()
    assert report["sections"]["technique"] == KNEE.draft.technique[0]
    # a task the registry does not know is still refused, naming the ones it does
    bad = client.post(
        "/api/v1/studies",
        headers=headers,
        data={"task": "elbow"},
        files={"file": ("x.png", png_bytes(6), "image/png")},
    )
    assert bad.status_code == 422 and "'knee'" in bad.text

    # the PDF: the knee's examination, technique and finding names
    pdf = client.get(f"/api/v1/studies/{sid}/report/pdf", headers=headers)
    assert pdf.status_code == 200, pdf.text
    text = _pdf_text(pdf.content)
    assert "Knee X-ray" in text and KNEE.draft.technique[0] in text
    assert all(NAMES[lab][0] in text for lab in LABELS), text
    assert "Chest" not in text and "chest" not in text

    # the FHIR bundle: the knee's codes (its own and the stable private ones) and names
    fhir = client.get(f"/api/v1/studies/{sid}/report/fhir", headers=headers)
    assert fhir.status_code == 200, fhir.text
    bundle = fhir.json()
    resources = [e["resource"] for e in bundle["entry"]]
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    # each label's observation: its code, named in the report's language by the task
    assert {o["code"]["coding"][0]["code"]: o["code"]["text"] for o in observations} == {
        lab: NAMES[lab][0] for lab in LABELS
    }
    shown = json.dumps(bundle, ensure_ascii=False)
    assert "Chest X-ray" not in shown and "chest" not in shown.lower()

    # the study page: the knee's names in both languages for the page's script, and the
    # upload form offering the task
    for lang in ("en", "tr"):
        page = client.get(f"/studies/{sid}?lang={lang}", headers=headers)
        assert page.status_code == 200, page.text
        found = re.search(r'<script type="application/json" id="names">(.*?)</script>', page.text)
        names = json.loads(found.group(1))
        i = 1 if lang == "tr" else 0
        assert names["knee"]["name"] == KNEE.display[lang]
        assert names["knee"]["labels"] == {lab: NAMES[lab][i] for lab in LABELS}
        assert names["knee"]["urgent"] == ["Joint_Effusion"]
    worklist = client.get("/worklist?lang=en", headers=headers).text
    assert '<option value="knee">Knee X-ray</option>' in worklist
