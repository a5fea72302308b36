"""``Arrival``: the one value every way in files (``filing.file_study``, ``filing.create``,
``identity_conflicts.quarantine``), and what a quarantined instance gives back when a person
reassigns it (``identity_conflicts.arrival_of``)."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from helpers.platform import bare_platform
from medai.platform.dicom import identity_conflicts as conflicts
from medai.platform.dicom.arrival import SOURCES, Arrival
from medai.platform.dicom.identity import DicomIdentity
from medai.platform.records.tables import IdentityConflict, Study, User
from medai.platform.worklist import filing


def _arrival(**over) -> Arrival:
    return Arrival(
        **{
            "sha": "a" * 64,
            "size": 10,
            "content_type": "application/dicom",
            "task": "cxr",
            "uploaded_by": 1,
            **over,
        }
    )


def test_an_arrival_is_a_value_and_names_the_valid_sources():
    a = _arrival()
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.sha = "b" * 64  # type: ignore[misc]
    assert a == _arrival()
    with pytest.raises(ValueError, match=", ".join(SOURCES)):
        _arrival(source="fax")


@pytest.fixture
def site(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        yield p


def _identity(**over) -> DicomIdentity:
    return DicomIdentity(
        **{
            "patient_id": "P-77",
            "patient_name": "Yılmaz^Ayşe",
            "birth_date": "19710312",
            "accession": "ACC-7",
            "study_uid": "1.2.3.4",
            "series_uid": "1.2.3.4.1",
            "sop_uid": "1.2.3.4.1.1",
            "sop_class": "1.2.840.10008.5.1.4.1.1.1",
            "modality": "CR",
            **over,
        }
    )


def test_a_new_study_is_made_from_the_arrival(site):
    p = site
    with p.db.session() as db:
        rad = db.scalar(select(User))
        arrival = _arrival(
            uploaded_by=rad.id,
            identity=_identity(),
            source="dicom",
            patient_ref="P-REF-1",
            question="öksürük",
            language="en",
            urgent=True,
            red_flags=({"code": "question_red_flag", "rule": "stroke"},),
        )
        filed = filing.file_study(db, arrival)
        study = db.get(Study, filed.study.id)
        assert filed.outcome == "new" and filed.job is not None
        assert (study.file_sha256, study.file_size, study.task) == ("a" * 64, 10, "cxr")
        assert (study.uploaded_by, study.language, study.clinical_question) == (
            rad.id,
            "en",
            "öksürük",
        )
        assert study.urgent and study.urgent_because == [
            {"code": "question_red_flag", "rule": "stroke"}
        ]
        assert (study.source, study.study_uid, study.accession) == ("dicom", "1.2.3.4", "ACC-7")


def test_a_held_instance_gives_its_arrival_back_without_the_other_study_uid(site):
    p = site
    with p.db.session() as db:
        rad = db.scalar(select(User))
        filing.file_study(db, _arrival(uploaded_by=rad.id, identity=_identity(), source="dicom"))
        other = _arrival(
            sha="b" * 64,
            size=20,
            uploaded_by=rad.id,
            identity=_identity(patient_id="P-99", sop_uid="1.2.3.4.1.2"),
            source="dicom",
            calling_ae="MODALITY",
            patient_ref="P-REF-2",
            question="ateş",
            language="en",
            urgent=True,
        )
        held = filing.file_study(db, other)
        assert held.outcome == "conflict" and held.conflict.fields == ["PatientID"]
        row = db.get(IdentityConflict, held.conflict.id)
        assert (row.calling_ae, row.source, row.uploaded_by) == ("MODALITY", "dicom", rad.id)
        back = conflicts.arrival_of(row)
    # what the conflict keeps comes back; the StudyInstanceUID (the other patient's study's)
    # does not, nor what only the first filing used (its sender, its time)
    assert back == dataclasses.replace(
        other,
        identity=dataclasses.replace(other.identity, study_uid=""),
        calling_ae=None,
    )


def test_a_partial_set_of_uids_is_kept_but_never_grouped(site):
    p = site
    with p.db.session() as db:
        rad = db.scalar(select(User))
        partial = _identity(series_uid="")
        first = filing.file_study(db, _arrival(uploaded_by=rad.id, identity=partial))
        second = filing.file_study(db, _arrival(sha="c" * 64, uploaded_by=rad.id, identity=partial))
        assert (first.outcome, second.outcome) == ("new", "new")
        assert first.study.id != second.study.id and first.study.study_uid is None
