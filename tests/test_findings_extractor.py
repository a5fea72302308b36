"""The rule-based finding extractor on report sentences of the kinds IU X-ray reports use."""

import pytest

from medai.reporting.findings import extract, mesh_labels, positive_labels


@pytest.mark.parametrize("text,expected", [
    ("There is no pneumothorax.", {"Pneumothorax": "negative"}),
    ("No focal airspace disease, pleural effusion, or pneumothorax.",
     {"Consolidation": "negative", "Effusion": "negative", "Pneumothorax": "negative"}),
    ("Small bilateral pleural effusions.", {"Effusion": "positive"}),
    ("Heart size is enlarged.", {"Cardiomegaly": "positive"}),
    ("Possible right lower lobe pneumonia.", {"Pneumonia": "uncertain"}),
    ("Pneumonia cannot be excluded.", {"Pneumonia": "uncertain"}),
    ("The previously seen effusion has resolved.", {"Effusion": "negative"}),
    ("No effusion but there is a large right pneumothorax.",
     {"Effusion": "negative", "Pneumothorax": "positive"}),
    ("There are no XXXX of a pleural effusion.", {"Effusion": "negative"}),
])
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
        "Cardiomegaly", "Atelectasis"}
    assert mesh_labels("normal") == {"No Finding"}
    assert mesh_labels("Thoracic Vertebrae/degenerative") == set()
