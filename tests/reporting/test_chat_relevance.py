"""Image chat's retrieval (``reporting.chat``, issue 59): the question drives retrieval (with the
study's findings as its context), and an off-topic question cites nothing and says so.

A conversation opened but never used is not listed:
tests/platform/api/routes/test_conversation_list.py."""

from __future__ import annotations

import pytest

from medai.reporting import chat
from medai.reporting.knowledge import load_chunks
from medai.reporting.retrieve import HybridRetriever

# a film the AI read as bacterial pneumonia (and pneumonia, its parent)
PNEUMONIA = [
    {"label": "Bacterial_Pneumonia", "state": "present", "probability": 0.81, "threshold": 0.41},
    {
        "label": "Pneumonia",
        "state": "present",
        "basis": "implied",
        "implied_by": "Bacterial_Pneumonia",
        "probability": 0.8,
        "threshold": 0.58,
    },
    {"label": "Viral_Pneumonia", "state": "absent", "probability": 0.1, "threshold": 0.74},
    {"label": "No Finding", "state": "absent", "probability": 0.04, "threshold": 0.7},
]


@pytest.fixture(scope="module")
def retriever():
    return HybridRetriever(load_chunks(None), use_embeddings=False)


def _ids(answer) -> list[str]:
    return [c["id"] for c in answer.citations]


@pytest.mark.parametrize(
    "lang, about_another, about_this",
    [
        ("tr", "Pnömotoraks nasıl anlaşılır?", "Takibi nasıl yapılır?"),
        ("en", "How is a pneumothorax recognised?", "How should it be treated?"),
    ],
)
def test_two_questions_on_one_study_cite_different_relevant_passages(
    retriever, lang, about_another, about_this
):
    facts = chat.StudyFacts(findings=PNEUMONIA, task="cxr")
    first = chat.answer(None, retriever, about_another, facts, lang, [])
    second = chat.answer(None, retriever, about_this, facts, lang, [])
    assert _ids(first)[0] == f"medai-pneumothorax-{lang}"
    # "its treatment": the study's own finding is the context, not every passage naming it
    assert _ids(second) and set(_ids(second)) <= {
        f"medai-bacterial-pneumonia-{lang}",
        f"medai-pneumonia-{lang}",
    }, _ids(second)
    assert _ids(first) != _ids(second)
    for a in (first, second):  # each cited passage says something the question asked
        assert a.citations and chat._words(lang)["no_passages"] not in a.text


@pytest.mark.parametrize(
    "lang, question",
    [
        ("tr", "Hastanın faturası ne zaman kesilir?"),
        ("tr", "Otoparka nasıl giderim?"),
        ("en", "What's the weather tomorrow?"),
        ("en", "???"),
    ],
)
def test_an_off_topic_question_cites_nothing_and_says_so(retriever, lang, question):
    a = chat.answer(
        None, retriever, question, chat.StudyFacts(findings=PNEUMONIA, task="cxr"), lang, []
    )
    assert a.citations == []
    assert chat._words(lang)["no_passages"] in a.text
    assert "medai bilgi" not in a.text and "medai knowledge base" not in a.text
