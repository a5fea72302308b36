"""Short complaints about a body site no department of the model covers are referred to the
general triage desk (the learned scope gate, trained on long forum posts, sent "Karnım ağrıyor"
to Neurology at 82 % with the bundled 4-department model); a site the model covers is its to
answer, and a model of all 15 departments never refers by this."""

from __future__ import annotations

import pytest

from helpers.paths import SRC
from medai.triage import body_sites, departments

BUNDLED = {"dermatology", "ent", "neurology", "physical_medicine_rehabilitation"}


@pytest.mark.parametrize(
    "text,named",
    [
        ("Karnım ağrıyor", {"general_surgery", "internal_medicine"}),
        ("Gözüm kaşınıyor", {"ophthalmology"}),  # the site decides, not the itch
        ("Gözlerim kızardı", {"ophthalmology"}),
        ("İdrarımda yanma var", {"urology"}),
        ("Göğsüm sıkışıyor", {"cardiology", "pulmonology"}),
        ("Regl olamıyorum", {"obstetrics_gynecology"}),
        ("ishal oldum", {"general_surgery", "internal_medicine"}),
        ("Kulağım ağrıyor ve ateşim var", {"ent"}),  # a site named: symptoms do not count
        ("Başım ağrıyor, midem bulanıyor", {"neurology", "general_surgery", "internal_medicine"}),
        ("Cildimde kaşıntı var", {"dermatology"}),
        ("Dizlerim ağrıyor", {"orthopedics", "physical_medicine_rehabilitation"}),
        ("Kasım ayından beri yorgunum", {"internal_medicine"}),  # November is not a muscle
        ("Derin bir iç çektim", set()),  # "derin" (deep) is not the skin
        ("Dişim ağrıyor", set()),
        (
            "ayaklarımda karıncalanma yanma var",  # "karın" (belly) is not "karıncalanma" (tingling)
            {"orthopedics", "physical_medicine_rehabilitation"},
        ),
        ("sürekli karıncalanma oluyor", {"neurology"}),
        ("Kusuyorum", {"general_surgery", "internal_medicine"}),
        ("kusurlu bir ürün aldım", set()),  # "kusur" (a fault) is not vomiting
    ],
)
def test_the_departments_a_short_complaint_names(text, named):
    assert body_sites.named_departments(text) == named


def test_only_short_complaints_naming_no_known_department_are_referred():
    assert body_sites.outside("Karnım ağrıyor", BUNDLED) == {"general_surgery", "internal_medicine"}
    assert body_sites.outside("Başım ağrıyor, midem bulanıyor", BUNDLED) == set()
    assert body_sites.outside("Dişim ağrıyor", BUNDLED) == set()  # names nothing: the model's
    long = "Karnım ağrıyor " + "ve " * body_sites.MAX_WORDS
    assert body_sites.outside(long, BUNDLED) == set()  # the learned gate reads long ones
    every = {d.id for d in departments.DEPARTMENTS}
    for text in ("Karnım ağrıyor", "Gözüm kızardı", "İdrarımda yanma var", "Ateşim var"):
        assert body_sites.outside(text, every) == set()


def test_every_department_of_the_table_is_a_known_department():
    assert set(body_sites.SITES) <= set(departments.BY_ID)


@pytest.fixture(scope="module")
def bundled():
    from medai.core.model_dir import read_card
    from medai.triage.predict import load_predictor

    folder = SRC / "assets" / "models" / "triage-default"
    return load_predictor(folder, read_card(folder))


@pytest.mark.parametrize(
    "text",
    [
        "Karnım ağrıyor",
        "Gözüm kızardı",
        "Gözüm kaşınıyor",
        "Midem bulanıyor ve kustum",
        "İdrarımda yanma var",
    ],
)
def test_the_bundled_model_refers_what_it_has_no_department_for(bundled, text):
    r = bundled.predict(text)
    assert r.abstained and r.abstain_reason == "out_of_scope" and r.out_of_scope
    assert r.recommendation.kind == "general_triage" and r.recommendation.department_id is None
    assert any("body sites" in w for w in r.warnings)


@pytest.mark.parametrize(
    "text,department",
    [
        ("Başım çok ağrıyor", "neurology"),
        ("Kulağım ağrıyor ve ateşim var", "ent"),
        ("Cildimde kaşıntı ve kızarıklık var", "dermatology"),
    ],
)
def test_the_bundled_model_still_answers_its_own_departments(bundled, text, department):
    r = bundled.predict(text)
    assert not r.out_of_scope and r.departments[0].id == department
