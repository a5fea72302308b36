"""The report is the radiologist's text (issue 69): over random results of every imaging task,
flagged out of scope or not, read as a series or a film, with a signed prior or none, in Turkish
and English, no section of a draft holds a sentence about the AI itself — its scope, what it
read, why it did not decide, a likelihood, a threshold or a distance, its sources. Those are the
AI note's, which holds them all; the only AI words a section keeps are the "(YZ önerisi)" /
"(AI suggestion)" marks on what the AI concluded (and the comparison's), which the sign dialog
removes when the radiologist adopts the text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from medai.core.task_registry import all_tasks
from medai.imaging.decision import OperatingPolicy, decide
from medai.imaging.scope import OutOfScope, scope_for
from medai.reporting.consistency import ai_meta as meta_in
from medai.reporting.draft import draft_report
from medai.reporting.draft_input import Finding
from medai.reporting.knowledge import builtin_chunks
from medai.reporting.retrieve import HybridRetriever

TASKS = list(all_tasks("imaging"))
RETRIEVER = HybridRetriever(builtin_chunks(), use_embeddings=False)


@st.composite
def case(draw):
    task = draw(st.sampled_from(TASKS))
    n = len(task.labels)
    if task.multilabel:
        probs = draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))
        policy = OperatingPolicy(
            thresholds={lab: draw(st.floats(0.05, 0.95)) for lab in task.labels},
            normal_conflict=draw(st.sampled_from(["indeterminate", "finding"])),
        )
    else:
        raw = draw(st.lists(st.floats(0.001, 1.0), min_size=n, max_size=n))
        probs = [p / sum(raw) for p in raw]
        policy = OperatingPolicy(
            thresholds={lab: 0.5 for lab in task.labels},
            min_confidence=draw(st.sampled_from([0.0, 0.5, 0.8])),
        )
    decision = decide(task, dict(zip(task.labels, map(float, probs), strict=True)), policy)
    flagged = draw(st.booleans())
    oos = OutOfScope(flagged=flagged, score=2.63, threshold=2.21, reason="unlike_training")
    scope = scope_for(task.name, task.labels, oos if flagged else None)
    image = {"view_position": draw(st.sampled_from(["PA", "AP", ""]))}
    if task.reads_series and draw(st.booleans()):
        image["series_slices"] = [20, 20]
        image["series_accounts"] = [
            {"series_number": 1, "description": "LOC", "read": False, "reason": "localizer"},
            {"series_number": 3, "description": "AX T2", "read": True, "decides": True},
        ]
    prior = (
        {
            "date": "20250312",
            "recorded": True,
            "present": draw(st.lists(st.sampled_from(task.labels), max_size=2)),
        }
        if draw(st.booleans())
        else None
    )
    return task, decision, scope, image, prior


@settings(max_examples=150, deadline=None)
@given(case(), st.sampled_from(["tr", "en"]))
def test_no_section_of_a_draft_speaks_of_the_ai(c, lang):
    task, decision, scope, image, prior = c
    findings = [Finding(r.label, r.positive, r.probability, r.threshold) for r in decision.labels]
    out = draft_report(
        findings,
        RETRIEVER,
        task=task.name,
        lang=lang,
        decision=decision,
        scope=scope,
        image=image,
        prior=prior,
        model="cxr-default (sha256:0123456789abcdef)",
    )
    for name, text in out["sections"].items():
        if name == "findings" and out["comparison"]:  # the comparison's own head is marked
            text = text.replace(out["comparison"]["sentence"], "")
        assert meta_in(text) == [], (name, text)
    note = " ".join(out["ai_note"])
    # what left the report is in the note beside it
    assert ("YZ modeli" if lang == "tr" else "AI model") in note  # the model is named
    if scope.out_of_scope.flagged:
        assert ("2,63 > 2,21" if lang == "tr" else "2.63 > 2.21") in out["ai_note"][0]
    if image.get("series_slices"):
        assert ("20 kesitinden 20" if lang == "tr" else "20 of the series' 20") in note
        assert "LOC" in note
    if out["citations"]:
        assert all(f"[{c['n']}]" in note for c in out["citations"])


def test_the_meta_scan_finds_what_the_reading_day_had_to_delete():
    """The scanner fails for the right reason: each sentence a radiologist deleted by hand."""
    for said in (
        "Tüberküloz, akciğer nodülü veya kitlesi YZ modelinin değerlendirme kapsamında değildir.",
        "YZ karar veremedi: COVID-19 pnömonisi paterni (olası tanı) eşiğin üzerinde.",
        "Kapsam dışı (YZ önerisi): uzaklık 2,63 > 2,21.",
        "Beyin MR serisi; YZ modeli serinin 20 kesitinden 20 kesitini değerlendirdi.",
        "Radyolog değerlendirmesi ve klinik korelasyon önerilir; kaynaklar: COVID-19 [1].",
        "YZ önerisi: COVID-19 pnömonisi paterni olasılığı %94,0 — radyolog değerlendirmeli.",
    ):
        assert meta_in(said), said
    assert meta_in("Gliom izlenmektedir. Gliom (YZ önerisi).") == []


def test_the_clinical_question_opens_the_technique_and_is_never_read_as_a_finding():
    """Issue 69: every study sent over DICOM read "Klinik soru: Belirtilmemiş". The order's
    question now opens the draft's technique as its clinical information line, in the
    clinician's words; "pnömotoraks?" there is a question, never a stated finding."""
    from medai.imaging.decision import OperatingPolicy as Policy
    from medai.platform.lifecycle.labels import TEXT_SECTIONS
    from medai.reporting.findings import stated_labels

    cxr = next(t for t in TASKS if t.name == "cxr")
    probs = dict.fromkeys(cxr.labels, 0.01) | {cxr.normal: 0.95}
    decision = decide(cxr, probs, Policy(thresholds=dict.fromkeys(cxr.labels, 0.5)))
    findings = [Finding(r.label, r.positive, r.probability, r.threshold) for r in decision.labels]

    def technique(question, lang="tr"):
        out = draft_report(
            findings,
            None,
            task="cxr",
            lang=lang,
            decision=decision,
            question=question,
            image={"view_position": "PA"},
        )
        return out["sections"]

    s = technique("Nefes darlığı,\n  sağ yan ağrısı;  pnömotoraks?")
    assert s["technique"] == (
        "Klinik bilgi: Nefes darlığı, sağ yan ağrısı; pnömotoraks? PA akciğer grafisi."
    )
    said = " ".join(s[k] for k in TEXT_SECTIONS)  # what a signature's labels are read from
    assert "Pneumothorax" not in stated_labels(said)
    assert technique("Öksürük", "en")["technique"] == (
        "Clinical information: Öksürük. PA chest radiograph."
    )
    assert technique(None)["technique"] == "PA akciğer grafisi."
    assert technique("   ")["technique"] == "PA akciğer grafisi."
    long = technique("ateş " * 200)["technique"]
    assert long.startswith("Klinik bilgi: ateş ateş") and "…" in long
    assert len(long) <= 300 + len("Klinik bilgi: ") + len(" PA akciğer grafisi.")
