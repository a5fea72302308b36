"""The rule-based finding extractor on report sentences of the kinds IU X-ray reports use."""

import pytest

from medai.reporting.findings import extract, mesh_labels, positive_labels


@pytest.mark.parametrize(
    "text,expected",
    [
        ("There is no pneumothorax.", {"Pneumothorax": "negative"}),
        (
            "No focal airspace disease, pleural effusion, or pneumothorax.",
            {"Consolidation": "negative", "Effusion": "negative", "Pneumothorax": "negative"},
        ),
        ("Small bilateral pleural effusions.", {"Effusion": "positive"}),
        ("Heart size is enlarged.", {"Cardiomegaly": "positive"}),
        ("Possible right lower lobe pneumonia.", {"Pneumonia": "uncertain"}),
        ("Pneumonia cannot be excluded.", {"Pneumonia": "uncertain"}),
        ("The previously seen effusion has resolved.", {"Effusion": "negative"}),
        (
            "No effusion but there is a large right pneumothorax.",
            {"Effusion": "negative", "Pneumothorax": "positive"},
        ),
        ("There are no XXXX of a pleural effusion.", {"Effusion": "negative"}),
    ],
)
def test_statuses(text, expected):
    got = extract(text)
    for label, status in expected.items():
        assert got[label] == status, (text, got)


def test_no_finding_only_without_positive_or_uncertain_mentions():
    assert extract("Lungs are clear. No effusion.")["No Finding"] == "positive"
    assert "No Finding" not in extract("Cardiomegaly. No effusion.")
    assert positive_labels("Possible pneumonia.", include_uncertain=True) == {"Pneumonia"}
    assert positive_labels("Possible pneumonia.") == set()


def test_mesh_headings_map_to_labels():
    assert mesh_labels("Cardiomegaly/borderline;Pulmonary Atelectasis/base/left") == {
        "Cardiomegaly",
        "Atelectasis",
    }
    assert mesh_labels("normal") == {"No Finding"}
    assert mesh_labels("Thoracic Vertebrae/degenerative") == set()


def _labels_needing_patterns():
    from medai.imaging.labels import imaging_tasks

    return [
        (task, lab) for task, sp in imaging_tasks().items() for lab in sp.labels if lab != sp.normal
    ]


@pytest.mark.parametrize("task,label", _labels_needing_patterns())
def test_every_label_of_every_task_has_patterns_that_read_its_own_phrase(task, label):
    """A label without a pattern would switch the draft safety check off for it."""
    from medai.reporting.findings import MENTIONS, TR_MENTIONS, positive_labels_tr
    from medai.reporting.phrases import PHRASES, phrase

    assert label in MENTIONS and label in TR_MENTIONS and label in PHRASES
    assert label in positive_labels(f"There is {phrase(label, 'en')}.")
    assert label in positive_labels_tr(f"{phrase(label, 'tr').capitalize()} izlenmektedir.")
    assert label not in positive_labels_tr(f"{phrase(label, 'tr').capitalize()} izlenmedi.")


@pytest.mark.parametrize(
    "text,stated",
    [
        ("Plevral efüzyon yok, sağ akciğerde kitle izlenmektedir.", {"Mass"}),
        ("Plevral efüzyon, pnömotoraks izlenmedi.", set()),
        ("Pnömotoraks saptanmadı; ancak sol alt zonda konsolidasyon mevcuttur.", {"Consolidation"}),
        ("Kardiyomegali mevcut, efüzyon ekarte edilemez.", {"Cardiomegaly"}),
        ("Bakteriyel pnömoni ile uyumlu görünüm.", {"Bacterial_Pneumonia", "Pneumonia"}),
    ],
)
def test_turkish_is_read_clause_by_clause(text, stated):
    from medai.reporting.findings import positive_labels_tr

    assert positive_labels_tr(text) == stated


def test_pneumonia_subtypes_are_kept_apart():
    assert {"Viral_Pneumonia", "Pneumonia"} <= positive_labels("Findings of viral pneumonia.")
    assert "Bacterial_Pneumonia" not in positive_labels("Findings of viral pneumonia.")
    assert "Bacterial_Pneumonia" in positive_labels("Right lower lobe lobar pneumonia.")


@pytest.mark.parametrize("task,label", _labels_needing_patterns())
def test_a_signed_text_denying_a_finding_in_either_language_states_nothing(task, label):
    """The signature's labels read each sentence in its own language: a Turkish denial is never
    read by the English reader (which sees "COVID-19" without an English "no")."""
    from medai.reporting.findings import stated_labels
    from medai.reporting.phrases import phrase

    other = next(lab for t, lab in _labels_needing_patterns() if t == task and lab != label)
    tr_list = f"{phrase(other, 'tr').capitalize()} ve {phrase(label, 'tr')} izlenmedi."
    assert label not in stated_labels(tr_list)
    assert label not in stated_labels(f"No {phrase(label, 'en')}. {tr_list}")
    assert label in stated_labels(f"{tr_list} There is {phrase(label, 'en')}.")
    assert label in stated_labels(f"{phrase(label, 'tr').capitalize()} izlenmektedir.")


@pytest.mark.parametrize(
    "text,normal",
    [
        ("Akciğerler temizdir.", True),
        ("Tümör izlenmedi.", True),
        ("Akut patoloji saptanmadı.", True),
        ("No acute abnormality.", True),
        ("Değerlendirilemedi.", False),
        ("Çekim tekniği yetersiz, yorum yapılamadı.", False),
        ("Normal değildir.", False),
        ("Sol frontalde kitle izlenmektedir.", False),
        ("The AI could not decide on one class.", False),
    ],
)
def test_a_text_states_the_normal_study_only_when_it_says_so(text, normal):
    from medai.reporting.findings import states_normal

    assert states_normal(text) is normal


def test_an_undecided_draft_never_reads_as_a_normal_study():
    """The undecided MRI draft names "tümör yok" / "no tumour" among the classes it could not
    separate: the signature card read it as "No tumour: present"."""
    from medai.reporting.findings import states_normal
    from medai.reporting.templates import CONFLICT_UNDECIDED, INDETERMINATE, INDETERMINATE_OTHER

    for en, tr in [*INDETERMINATE.values(), INDETERMINATE_OTHER, CONFLICT_UNDECIDED]:
        assert not states_normal(en) and not states_normal(tr)
