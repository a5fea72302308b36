"""Image chat: without a language model the answer says so and gives the passages retrieved for
the question (cited) and the study's decided findings; with one (a fake backend standing in for
an external model) the answer is grounded, cites the passages, and is refused when it cites a
passage that was not retrieved or states a finding the study was not decided to have."""

from __future__ import annotations

import re

import pytest

from medai.reporting import chat
from medai.reporting.knowledge import load_chunks
from medai.reporting.llm import LLMError
from medai.reporting.retrieve import HybridRetriever

FINDINGS = [
    {"label": "Cardiomegaly", "probability": 0.73, "threshold": 0.5, "positive": True},
    {"label": "Effusion", "probability": 0.12, "threshold": 0.4, "positive": False},
]


@pytest.fixture(scope="module")
def retriever():
    return HybridRetriever(load_chunks(None), use_embeddings=False)  # BM25: fast, exact


def facts(**kw) -> chat.StudyFacts:
    return chat.StudyFacts(findings=kw.pop("findings", FINDINGS), task="cxr", **kw)


class FakeModel:
    """A test double for an external language model: the ``LLMBackend`` interface
    (``name``, ``complete(system, user)``), answering with a fixed text and keeping the prompt."""

    name = "fake"

    def __init__(self, reply: str | Exception) -> None:
        self.reply, self.prompts = reply, []

    def complete(self, system: str, user: str) -> str:
        self.prompts.append((system, user))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


@pytest.mark.parametrize(
    "lang, questions, lead",
    [
        (
            "tr",
            ("Pnömotoraks grafide nasıl görülür?", "Plevral efüzyon nedir, nasıl anlaşılır?"),
            "yapılandırılmış bir dil modeli yok",
        ),
        (
            "en",
            ("How does a pneumothorax look on a film?", "What is a pleural effusion?"),
            "No language model is configured",
        ),
    ],
)
def test_without_a_model_each_question_gets_its_own_cited_passages(
    retriever, lang, questions, lead
):
    answers = [chat.answer(None, retriever, q, facts(), lang, []) for q in questions]
    ids = [[c["id"] for c in a.citations] for a in answers]
    assert all(ids) and ids[0][0] != ids[1][0]  # different questions, different passages
    assert "pneumothorax" in ids[0][0] and "effusion" in ids[1][0]
    assert ids[0][0].endswith(f"-{lang}")
    for a in answers:
        assert a.backend == "retrieval" and lead in a.text
        for c in a.citations:  # number, title, source, licence, each in the text
            line = next(li for li in a.text.splitlines() if li.startswith(f"[{c['n']}] "))
            assert c["source"] in line and c["licence"] in line
        assert chat.label_name("cxr", "Cardiomegaly", lang) in a.text  # the decided findings
        assert chat.NOTE[lang] in a.text
    assert answers[0].text != answers[1].text


def test_the_answer_states_the_decision_and_the_conclusion_state(retriever):
    undecided = {
        "label": "Pneumothorax",
        "probability": 0.5,
        "threshold": 0.5,
        "positive": False,
        "basis": "indeterminate",
    }
    implied = {
        "label": "Pneumonia",
        "probability": 0.09,
        "threshold": 0.5,
        "positive": True,
        "basis": "implied",
        "implied_by": "COVID-19",
    }
    a = chat.answer(
        None,
        retriever,
        "Ne görülüyor?",
        facts(findings=[implied, *FINDINGS, undecided], impression="Kardiyomegali.", signed=True),
        "tr",
        [],
    )
    assert "var: Kardiyomegali (olasılık %73,0); üst sınıf: Pnömoni (COVID-19 kapsamında)" in a.text
    assert "yok: Plevral efüzyon" in a.text
    assert "belirsiz (YZ bu adaylar arasında karar veremedi): Pnömotoraks" in a.text
    assert "İmzalı rapordaki sonuç: Kardiyomegali." in a.text
    draft = chat.answer(None, retriever, "Ne görülüyor?", facts(impression="X."), "tr", [])
    assert "Henüz imzalanmamış taslaktaki sonuç: X." in draft.text


def test_a_question_matching_nothing_cites_no_filler(retriever):
    """Issue 59: a question no passage is relevant to gets none (it once got the decided
    findings' passages, cited as if they answered it); the answer says nothing was found."""
    a = chat.answer(None, retriever, "???", facts(), "en", [])
    assert a.citations == [] and chat._words("en")["no_passages"] in a.text


def test_a_model_answers_from_the_findings_and_cites_the_passages(retriever):
    model = FakeModel(
        "The heart is enlarged, as the AI decided; echocardiography is the usual next step [1]."
    )
    q = "Is the heart enlarged? Call me on 0532 123 45 67"
    a = chat.answer(
        model,
        retriever,
        q,
        facts(impression="Cardiomegaly."),
        "en",
        [("user", "hello"), ("assistant", "hi")],
    )
    system, user = model.prompts[0]
    assert "Cite every passage" in system and "English" in system
    assert "- Cardiomegaly: PRESENT, p=0.73" in user and "- Effusion: absent" in user
    assert "Report conclusion (unsigned draft): Cardiomegaly." in user
    assert re.search(r"^\[1\] \(", user, re.M) and "0532 123 45 67" not in user
    assert "<<<CLINICIAN_QUESTION" in user and "user: hello" in user
    assert a.backend == "fake" and a.text.startswith("The heart is enlarged")
    assert [c["n"] for c in a.citations] == [1] and a.citations[0]["licence"] in a.text


def test_a_turkish_model_answer_is_asked_for_in_turkish(retriever):
    model = FakeModel("Kalp gölgesi büyük; ekokardiyografi önerilir [1].")
    a = chat.answer(model, retriever, "Kalp büyük mü?", facts(), "tr", [])
    assert "Turkish" in model.prompts[0][0]
    assert a.backend == "fake" and "Kaynaklar:" in a.text and chat.NOTE["tr"] in a.text


@pytest.mark.parametrize(
    "reply, why",
    [
        ("Echocardiography is advised [7].", "not retrieved"),
        ("There is a large pneumothorax on the left.", "not decided"),
        (LLMError("timed out"), "timed out"),
        ("", "empty"),
    ],
)
def test_an_ungrounded_model_answer_is_replaced_by_the_retrieval_answer(retriever, reply, why):
    a = chat.answer(FakeModel(reply), retriever, "What is cardiomegaly?", facts(), "en", [])
    assert a.backend == "retrieval" and why in a.text and why in a.warnings[0]
    assert "medai-cardiomegaly-en" in [c["id"] for c in a.citations]


def test_a_configured_model_that_cannot_load_is_said_so(monkeypatch):
    from medai.reporting.drafter import Drafter
    from medai.services import reports

    monkeypatch.setitem(reports._DRAFTERS, "kb-test", Drafter(embeddings=False, llm="llamacpp"))
    monkeypatch.setattr(reports, "shared_drafter", lambda kb=None: reports._DRAFTERS["kb-test"])
    a = reports.chat_answer("What is cardiomegaly?", FINDINGS, None, "en", [], None)
    assert a.backend == "retrieval" and "was not used" in a.text
    assert "No language model is configured" not in a.text and a.citations


MRI = [
    {"label": "Glioma", "probability": 0.9, "positive": True},
    {"label": "Meningioma", "probability": 0.05, "positive": False},
    {"label": "Pituitary", "probability": 0.03, "positive": False},
    {"label": "No_Tumor", "probability": 0.02, "positive": False},
]


@pytest.mark.parametrize(
    "lang, question",
    [
        ("tr", "Gliom ile menenjiomu nasıl ayırt ederim?"),
        ("en", "How do I tell a glioma from a meningioma?"),
    ],
)
def test_a_brain_mri_question_gets_brain_passages_only(retriever, lang, question):
    """A glioma question on a brain MRI got atelectasis, hiatal hernia and cardiomegaly
    passages: the passages come from the study's own task."""
    a = chat.answer(None, retriever, question, chat.StudyFacts(findings=MRI, task="mri"), lang, [])
    label_of = {c.id: c.label for c in load_chunks(None)}
    cited = {label_of[c["id"]] for c in a.citations}
    assert cited and cited <= {"Glioma", "Meningioma", "Pituitary", "No_Tumor"}, cited
    assert {"Glioma", "Meningioma"} <= cited


@pytest.mark.parametrize(
    "lang, question, said",
    [
        ("tr", "Pnömotoraks var mı?", "değerlendirmez: Pnömotoraks"),
        ("en", "Is there a pneumothorax?", "does not assess: Pneumothorax"),
    ],
)
def test_a_finding_the_model_does_not_read_is_said_so_first(retriever, lang, question, said):
    a = chat.answer(None, retriever, question, facts(), lang, [])
    assert a.text.startswith(said.split(":")[0].split()[0]) or said in a.text.split("\n")[0]
    assert said in a.text.split("\n")[0]
    assert chat.not_assessed("Is there cardiomegaly?", facts()) == []  # the model reads it


# issue 46: every answer reads each label's one state, as the platform gives it
CXR_THRESHOLDS = {
    "Pneumonia": 0.584,
    "COVID-19": 0.089,
    "Viral_Pneumonia": 0.737,
    "Bacterial_Pneumonia": 0.41,
    "No Finding": 0.699,
}


def stored(task: str, probs: dict[str, float], policy) -> dict:
    """An imaging result as the platform stores it: its decision and the decision's rows."""
    from medai.core.task_registry import get as get_task
    from medai.imaging.decision import decide

    d = decide(get_task(task), probs, policy).model_dump(mode="json")
    return {"task": task, "decision": d, "findings": d["labels"]}


def study_facts(payload: dict, signed: list[dict] | None = None, **kw) -> chat.StudyFacts:
    """The chat's facts as the platform builds them (``finding_states.with_states``)."""
    from medai.platform.documents.words.finding_states import with_states

    report = {"task": payload["task"], "signed_by": "dr.ayse" if signed else None, "findings": []}
    states = with_states(report, payload, signed)
    if signed:
        kw.update(decision=states["decision"], signed_labels=states["signed_labels"], signed=True)
    return chat.StudyFacts(findings=states["findings"], task=payload["task"], **kw)


def undecided_mri() -> dict:
    """The tryout's MRI: pituitary 40.8 % against meningioma 36.1 %, too close to call."""
    from medai.imaging.decision import OperatingPolicy

    policy = OperatingPolicy(thresholds={}, min_confidence=0.5, min_margin=0.1)
    payload = stored(
        "mri", {"Pituitary": 0.408, "Meningioma": 0.361, "Glioma": 0.2, "No_Tumor": 0.031}, policy
    )
    assert payload["decision"]["candidates"] == ["Pituitary", "Meningioma"]
    return payload


@pytest.mark.parametrize(
    "lang, undecided, absent",
    [
        (
            "tr",
            "belirsiz (YZ bu adaylar arasında karar veremedi): Hipofiz tümörü (olasılık %40,8), "
            "Menenjiom (olasılık %36,1)",
            "yok: Gliom; Tümör yok: geçerli değil",  # never "yok: Tümör yok" (issue 59)
        ),
        (
            "en",
            "indeterminate (the AI could not decide between these candidates): Pituitary "
            "tumour (probability 40.8%), Meningioma (probability 36.1%)",
            "absent: Glioma; No tumour: does not apply",
        ),
    ],
)
def test_an_undecided_mri_names_its_candidates_and_never_calls_one_absent(
    retriever, lang, undecided, absent
):
    """The tryout's chat said "yok: Menenjiom" of the runner-up the draft called undecided."""
    facts = study_facts(undecided_mri())
    a = chat.answer(None, retriever, "Ne görülüyor?", facts, lang, [])
    line = next(li for li in a.text.splitlines() if li.startswith(chat.WORDS[lang]["decision"]))
    said_absent = line.split("yok: " if lang == "tr" else "absent: ")[-1]
    assert "Menenjiom" not in said_absent and "Meningioma" not in said_absent, line
    assert undecided in a.text and absent in a.text
    model = FakeModel("The AI could not decide [1].")
    chat.answer(model, retriever, "What is it?", facts, lang, [])
    user = model.prompts[0][1]
    assert "- Meningioma: UNDECIDED" in user and "- Pituitary: UNDECIDED" in user
    assert "- Glioma: absent" in user and "could not decide between: Pituitary, Meningioma" in user
    assert "Meningioma: absent" not in user


@pytest.mark.parametrize("policy", ["indeterminate", "finding"])
@pytest.mark.parametrize(
    "lang, said",
    [
        (
            "tr",
            "Çelişki: model görüntüyü hem normal (Bulgu yok) hem de COVID-19 olarak "
            "işaretledi; hepsi eşiğinin üzerinde.",
        ),
        (
            "en",
            "Conflict: the model marked the image both as normal (No finding) and as COVID-19, "
            "all above their thresholds.",
        ),
    ],
)
def test_a_conflict_is_said_in_words(retriever, policy, lang, said):
    """No Finding and COVID-19 both above their thresholds: whichever way the policy settles
    it, the answer says the model contradicted itself."""
    from medai.imaging.decision import OperatingPolicy

    payload = stored(
        "cxr",
        {
            "No Finding": 0.8,
            "COVID-19": 0.5,
            "Viral_Pneumonia": 0.3,
            "Pneumonia": 0.4,
            "Bacterial_Pneumonia": 0.05,
        },
        OperatingPolicy(thresholds=CXR_THRESHOLDS, normal_conflict=policy),
    )
    a = chat.answer(None, retriever, "?", study_facts(payload), lang, [])
    assert said in a.text
    covid = (
        "COVID-19 (olasılık %50,0; çelişkili)"
        if lang == "tr"
        else "COVID-19 (probability 50.0%; conflicting)"
    )
    group = (
        ("var: " if lang == "tr" else "present: ")
        if policy == "finding"
        else ("belirsiz (YZ" if lang == "tr" else "indeterminate (the AI")
    )
    assert covid in a.text and group in a.text


@pytest.mark.parametrize(
    "lang, signed, ai",
    [
        (
            "tr",
            "İmzalayan radyoloğun bulguları — yok: ",  # "Bulgu yok: geçerli", never "var: Bulgu yok"
            "Yapay zekâ önerileri (tanı değil): Pnömoni: YZ önerisi: var, radyolog reddetti; "
            "Bakteriyel pnömoni: YZ önerisi: var, radyolog reddetti",
        ),
        (
            "en",
            "Findings signed by the radiologist — absent: ",
            "AI suggestions (not a diagnosis): Pneumonia: AI suggested present, rejected by the signer; "
            "Bacterial pneumonia: AI suggested present, rejected by the signer",
        ),
    ],
)
def test_after_sign_off_the_answer_states_what_the_signer_signed(retriever, lang, signed, ai):
    """Signed "Normal akciğer grafisi" with Bacterial_Pneumonia rejected: the chat states the
    signed labels and names the AI's pneumonia only as a rejected suggestion; a model answer
    stating the pneumonia is not used."""
    from medai.imaging.decision import OperatingPolicy

    payload = stored(
        "cxr",
        {
            "Pneumonia": 0.81,
            "COVID-19": 0.03,
            "Viral_Pneumonia": 0.12,
            "Bacterial_Pneumonia": 0.78,
            "No Finding": 0.05,
        },
        OperatingPolicy(thresholds=CXR_THRESHOLDS),
    )
    labels = [
        {
            "label": r["label"],
            "present": r["label"] == "No Finding",
            "ai_positive": r["state"] == "present",
            "source": "rejected" if r["label"] == "Bacterial_Pneumonia" else "text",
        }
        for r in payload["decision"]["labels"]
    ]
    facts = study_facts(payload, labels, impression="Normal akciğer grafisi.")
    assert chat.present_labels(facts) == {"No Finding"}
    a = chat.answer(None, retriever, "Ne görülüyor?", facts, lang, [])
    assert signed in a.text and ai in a.text
    assert ("Bulgu yok: geçerli" if lang == "tr" else "No finding: applies") in a.text
    assert "var: Bulgu yok" not in a.text and "present: No finding" not in a.text
    assert "var: Bakteriyel" not in a.text and "present: Bacterial" not in a.text
    model = FakeModel("There is a bacterial pneumonia [1].")
    out = chat.answer(model, retriever, "Is there pneumonia?", facts, "en", [])
    assert out.backend == "retrieval" and "not decided" in out.text
    user = model.prompts[0][1]
    assert (
        "- Bacterial_Pneumonia: absent (signed); AI suggested PRESENT, rejected by the "
        "signer" in user
    )
