import pytest

from medai.triage import departments


def test_fifteen_departments_with_unique_ids():
    assert len(departments.DEPARTMENTS) == 15
    assert len(departments.BY_ID) == 15


@pytest.mark.parametrize(
    "label,dep",
    [
        ("Noroloji", "neurology"),
        ("NÖROLOJİ", "neurology"),
        ("Nöroloji", "neurology"),
        ("Fiziksel Tip ve Rehabilitasyon", "physical_medicine_rehabilitation"),
        ("Fizik Tedavi ve Rehabilitasyon", "physical_medicine_rehabilitation"),
        ("KBB", "ent"),
        ("kulak burun bogaz", "ent"),
        ("Kulak-Burun-Boğaz", "ent"),
        ("Kadın Hastalıkları ve Doğum", "obstetrics_gynecology"),
        ("Jinekoloji", "obstetrics_gynecology"),
        ("İç Hastalıkları", "internal_medicine"),
        ("Dermatology", "dermatology"),
        ("Beyin ve Sinir Cerrahisi", "neurosurgery"),
        ("Göz Hastalıkları", "ophthalmology"),
    ],
)
def test_aliases_resolve(label, dep):
    assert departments.resolve(label) == dep


@pytest.mark.parametrize("label", ["Astroloji", "", "  ", "Diş"])
def test_unknown_labels_are_none(label):
    assert departments.resolve(label) is None
    with pytest.raises(departments.UnknownLabelError):
        departments.resolve_strict(label)
