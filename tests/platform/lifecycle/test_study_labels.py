"""Labels from every signature (issue 26): on sign-off each label of the study is stored as
present or absent for the signed version — the radiologist's click where they confirmed or
rejected an AI finding or added a missing one, else the AI's decided state the signature
endorses (issue 59: never what the text says; the text only suggests) — and an amendment
stores its own. A wrong label name is refused and nothing is signed."""

from __future__ import annotations

import pytest

from helpers.platform import bearer, clinic, png_bytes, urgent_cxr_dir, wait_status  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture()
def study(tmp_path, tfidf_model_dir, urgent_cxr_dir):  # noqa: F811
    """A drafted study whose model calls Pneumothorax on every image."""
    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, urgent_cxr_dir, job_threads=1) as (
        _app,
        client,
    ):
        rad = bearer(client, "rad1")
        sid = client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "cxr"},
            files={"file": ("x.png", png_bytes(6), "image/png")},
        ).json()["id"]
        wait_status(client, rad, sid, {"ai_drafted"})
        yield client, rad, sid


def _by_label(body: dict) -> dict[str, tuple[bool, str]]:
    return {x["label"]: (x["present"], x["source"]) for x in body["labels"]}


def test_the_signature_stores_the_radiologists_labels_and_an_amendment_its_own(study):
    client, rad, sid = study
    text = {
        "findings": "Sağ hemitoraksta plevral efüzyon izlenmektedir. Pnömotoraks yoktur.",
        "impression": "Sağ plevral efüzyon.",
    }
    suggested = client.post(
        f"/api/v1/studies/{sid}/labels/suggest", headers=rad, json={"sections": text}
    ).json()
    by = _by_label(suggested)
    assert suggested["report_version"] is None
    assert by["Pneumothorax"] == (True, "endorsed")  # the AI called it: the text only suggests
    assert by["Effusion"] == (False, "endorsed")  # stated by the text: suggested, not applied
    assert by["No Finding"] == (False, "endorsed")
    offered = {x["label"]: x["suggested"] for x in suggested["labels"]}
    assert offered["Pneumothorax"] is False and offered["Effusion"] is True
    ai = {x["label"]: x["ai_positive"] for x in suggested["labels"]}
    assert ai["Pneumothorax"] is True and ai["Effusion"] is False
    assert client.get(f"/api/v1/studies/{sid}/labels", headers=rad).json()["labels"] == []

    version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
    r = client.post(
        f"/api/v1/studies/{sid}/report/sign",
        headers=rad,
        json={
            "version": version,
            "sections": text,
            "labels": {"Pneumothorax": False, "Effusion": True},
        },
    )
    assert r.status_code == 200, r.text
    signed = client.get(f"/api/v1/studies/{sid}/labels", headers=rad).json()
    assert signed["report_version"] == r.json()["version"]
    by = _by_label(signed)
    assert by["Pneumothorax"] == (False, "rejected")  # one click: the AI finding rejected
    assert by["Effusion"] == (True, "added")  # one click: the text's suggestion accepted

    # an amendment: the radiologist now confirms the pneumothorax, and adds a nodule
    amended = {
        "findings": text["findings"].replace(
            "Pnömotoraks yoktur.", "Apikal küçük pnömotoraks izlenmektedir."
        ),
        "impression": "Sağ plevral efüzyon ve apikal pnömotoraks.",
    }
    r = client.post(
        f"/api/v1/studies/{sid}/report/sign",
        headers=rad,
        json={
            "version": r.json()["version"],
            "sections": amended,
            "labels": {"Pneumothorax": True, "Nodule": True},
        },
    )
    assert r.status_code == 200 and r.json()["status"] == "amended"
    again = client.get(f"/api/v1/studies/{sid}/labels", headers=rad).json()
    assert again["report_version"] == r.json()["version"] > signed["report_version"]
    by = _by_label(again)
    assert by["Pneumothorax"] == (True, "confirmed")
    assert by["Nodule"] == (True, "added")
    assert by["Effusion"] == (True, "added")  # the previous signature's, kept
    assert by["No Finding"] == (False, "endorsed")


def test_an_unknown_label_is_refused_and_nothing_is_signed(study):
    client, rad, sid = study
    version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
    r = client.post(
        f"/api/v1/studies/{sid}/report/sign",
        headers=rad,
        json={"version": version, "labels": {"Unicorn": True}},
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_labels"
    assert "Pneumothorax" in r.json()["detail"]  # the valid ones are listed
    report = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    assert report["signed_by"] is None and report["version"] == version
    assert client.get(f"/api/v1/studies/{sid}/labels", headers=rad).json()["labels"] == []


def test_without_clicks_the_ais_decided_findings_are_endorsed(study):
    client, rad, sid = study
    report = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    r = client.post(
        f"/api/v1/studies/{sid}/report/sign", headers=rad, json={"version": report["version"]}
    )  # the AI draft, signed as it is
    assert r.status_code == 200
    by = _by_label(client.get(f"/api/v1/studies/{sid}/labels", headers=rad).json())
    # signing endorses the AI's decided findings as the signer's own
    assert by["Pneumothorax"] == (True, "endorsed")
    assert by["No Finding"] == (False, "endorsed")


def test_a_turkish_list_the_text_denies_suggests_nothing_present(study):
    """The draft of a normal film lists every disease it did not see; the text suggests none
    of them present (the English reader never reads a Turkish sentence: "COVID-19" there has no
    English "no"), and suggests the AI's pneumothorax absent — a suggestion only."""
    client, rad, sid = study
    text = {
        "findings": "Viral pnömoni paterni, COVID-19 pnömonisi paterni, pnömoni ve "
        "bakteriyel pnömoni paterni izlenmedi. Pnömotoraks izlenmedi.",
        "impression": "Akciğerler temizdir.",
    }
    suggestions = client.post(
        f"/api/v1/studies/{sid}/labels/suggest", headers=rad, json={"sections": text}
    ).json()["labels"]
    by = {x["label"]: (x["present"], x["source"]) for x in suggestions}
    assert {lab for lab, (present, _) in by.items() if present} == {"Pneumothorax"}  # the AI's
    offered = {x["label"]: x["suggested"] for x in suggestions}
    assert not [lab for lab, s in offered.items() if s is True]
    assert offered["Pneumothorax"] is False


def test_a_signature_that_marks_nothing_is_refused_never_stored_as_nothing(study):
    """ "Değerlendirilemedi" with the AI's finding rejected and nothing marked: every label
    absent, "No Finding" included. It was signed and stored no label at all (the signer's
    verdicts lost, issue 67); now it is refused, naming the contradiction, and nothing is
    signed: the signer marks the film normal, or the finding it shows."""
    client, rad, sid = study
    text = {"findings": "Çekim tekniği yetersiz.", "impression": "Değerlendirilemedi."}
    suggested = client.post(
        f"/api/v1/studies/{sid}/labels/suggest",
        headers=rad,
        json={"sections": text, "labels": {"Pneumothorax": False}},
    ).json()
    assert not any(present for present, _ in _by_label(suggested).values())
    assert [c["kind"] for c in suggested["contradictions"]] == ["nothing_present"]
    version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
    r = client.post(
        f"/api/v1/studies/{sid}/report/sign",
        headers=rad,
        json={"version": version, "sections": text, "labels": {"Pneumothorax": False}},
    )
    assert r.status_code == 409 and r.json()["code"] == "contradictory_labels", r.text
    assert r.json()["errors"][0]["loc"] == ["body", "labels", "No Finding"]
    report = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    assert report["signed_by"] is None and report["version"] == version
    assert client.get(f"/api/v1/studies/{sid}/labels", headers=rad).json()["labels"] == []


# issue 46: the label card and the image chat read each label's one state, and after sign-off
# the chat states what the signer signed
CXR_THRESHOLDS = {
    "Pneumonia": 0.584,
    "COVID-19": 0.089,
    "Viral_Pneumonia": 0.737,
    "Bacterial_Pneumonia": 0.41,
    "No Finding": 0.699,
}


@pytest.fixture()
def stored(tmp_path, tfidf_model_dir, urgent_cxr_dir):  # noqa: F811
    """A drafted study and a way to give it another stored AI result (a real decision of the
    chest task, stored as the analysis stores it)."""
    from medai.core.task_registry import get as get_task
    from medai.imaging.decision import OperatingPolicy, decide
    from medai.platform.worklist import ai_results

    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, urgent_cxr_dir, job_threads=1) as (
        app,
        client,
    ):
        rad = bearer(client, "rad1")
        sid = client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "cxr"},
            files={"file": ("x.png", png_bytes(7), "image/png")},
        ).json()["id"]
        wait_status(client, rad, sid, {"ai_drafted"})

        def result(probs: dict[str, float], **policy) -> dict:
            d = decide(
                get_task("cxr"), probs, OperatingPolicy(thresholds=CXR_THRESHOLDS, **policy)
            ).model_dump(mode="json")
            with app.state.platform.db.session() as db:
                row = ai_results.latest_result(db, sid)
                row.payload = {**row.payload, "decision": d, "findings": d["labels"]}
            return d

        yield client, rad, sid, result


def _ask(client, headers, sid: int, question: str, lang: str = "tr") -> str:
    conv = client.post(f"/api/v1/studies/{sid}/conversations", headers=headers).json()["id"]
    r = client.post(
        f"/api/v1/conversations/{conv}/messages",
        headers=headers,
        json={"text": question, "lang": lang},
    )
    assert r.status_code == 200, r.text
    return r.json()["text"]


def test_an_undecided_result_suggests_nothing_on_the_label_card_and_the_chat_says_why(stored):
    """ "No Finding" and COVID-19 both above their thresholds, made undecided: the card showed
    the AI's suggestion "absent" for both; the chat listed them as absent."""
    client, rad, sid, result = stored
    d = result(
        {
            "No Finding": 0.8,
            "COVID-19": 0.5,
            "Viral_Pneumonia": 0.3,
            "Pneumonia": 0.4,
            "Bacterial_Pneumonia": 0.05,
        }
    )
    assert d["state"] == "indeterminate" and d["candidates"] == ["No Finding", "COVID-19"]
    text = {"findings": "Çekim tekniği yetersiz.", "impression": "Değerlendirilemedi."}
    card = client.post(
        f"/api/v1/studies/{sid}/labels/suggest", headers=rad, json={"sections": text}
    ).json()["labels"]
    ai = {x["label"]: x["ai_positive"] for x in card}
    assert {
        lab: ai[lab] for lab in ("No Finding", "COVID-19", "Viral_Pneumonia", "Pneumonia")
    } == dict.fromkeys(("No Finding", "COVID-19", "Viral_Pneumonia", "Pneumonia"))
    assert ai["Bacterial_Pneumonia"] is False
    assert {x["label"]: x["ai_state"] for x in card}["COVID-19"] == "indeterminate"

    said = _ask(client, rad, sid, "Ne görülüyor?")
    assert "belirsiz (YZ bu adaylar arasında karar veremedi): Bulgu yok" in said
    assert "yok: Bakteriyel pnömoni." in said and "yok: Bulgu yok" not in said
    assert (
        "Çelişki: model görüntüyü hem normal (Bulgu yok) hem de COVID-19 olarak işaretledi"
    ) in said


def test_after_sign_off_the_chat_states_what_the_signer_signed(stored):
    """Signed "Normal akciğer grafisi" with the AI's bacterial pneumonia rejected: the chat's
    facts are the signed labels; the pneumonia is named only as the AI's rejected suggestion."""
    from medai.platform.reading import chat
    from medai.platform.records.tables import Conversation

    client, rad, sid, result = stored
    result(
        {
            "Pneumonia": 0.81,
            "COVID-19": 0.03,
            "Viral_Pneumonia": 0.12,
            "Bacterial_Pneumonia": 0.78,
            "No Finding": 0.05,
        }
    )
    before = _ask(client, rad, sid, "Ne görülüyor?")
    assert "var: Pnömoni (olasılık %81,0), Bakteriyel pnömoni (olasılık %78,0)" in before

    text = {
        "findings": "Normal akciğer grafisi. Pnömoni bulgusu yok.",
        "impression": "Normal akciğer grafisi.",
    }
    version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
    r = client.post(
        f"/api/v1/studies/{sid}/report/sign",
        headers=rad,
        # the radiologist's clicks: both pneumonias rejected, the film marked normal
        json={
            "version": version,
            "sections": text,
            "labels": {"Bacterial_Pneumonia": False, "Pneumonia": False, "No Finding": True},
        },
    )
    assert r.status_code == 200, r.text

    said = _ask(client, rad, sid, "Ne görülüyor?")
    assert "var: Pnömoni" not in said and "var: Bakteriyel" not in said
    assert "İmzalayan radyoloğun bulguları — yok: Pnömoni, Bakteriyel pnömoni" in said
    assert "Bulgu yok: geçerli." in said  # the normal label: no "var: Bulgu yok"
    assert "Bakteriyel pnömoni: YZ önerisi: var, radyolog reddetti" in said
    assert "İmzalı rapordaki sonuç: Normal akciğer grafisi." in said
    english = _ask(client, rad, sid, "What is seen?", "en")
    assert "Findings signed by the radiologist — absent: Pneumonia, Bacterial pneumonia" in english
    assert "No finding: applies." in english
    assert "Bacterial pneumonia: AI suggested present, rejected by the signer" in english

    with client.app.state.platform.db.session() as db:
        conv = db.query(Conversation).filter_by(study_id=sid).first()
        facts = chat.context(db, conv)
    assert facts["signed"] and facts["signed_labels"]
    rows = {f["label"]: f for f in facts["findings"]}
    assert rows["Bacterial_Pneumonia"]["signer"] is False
    assert rows["Bacterial_Pneumonia"]["verdict"] == "rejected"
    assert {lab for lab, f in rows.items() if f["signer"]} == {"No Finding"}
