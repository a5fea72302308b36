"""DICOM values at medai's boundary: a UID that is no UID (``../../../../etc/passwd``, 201
characters, a NUL inside), a 3,000-character PatientName or an over-long PatientID is refused
by every way in (the DICOM node's C-STORE, STOW-RS, a browser upload) with a failure that names
the attribute, never filed; and rows stored before these checks (a bidi override in a name,
a name of hundreds of characters, UIDs that are none) still export: the PDF, FHIR, HL7 and the
DICOM objects for the PACS carry no bidi or control character and only values DICOM allows."""

from __future__ import annotations

import io
import logging
import uuid
from types import SimpleNamespace

import pytest

from helpers.dicom import make_dicom
from helpers.platform import bearer, clinic
from medai.platform.dicom.arrival import Arrival

pytestmark = [pytest.mark.dcmtk]

TRAVERSAL = "../../../../etc/passwd"
LONG_UID = "1." + "2" * 199  # 201 characters
NUL_UID = "1.2.826.0.1\x00.99"
BIDI_NAME = "ALI\u202eZEM^AYSE"
FAILED, REASON, COMMENT, SOP_UID = "00081198", "00081197", "00000902", "00081155"

# (what a crafted file sets, the attribute the refusal must name)
CRAFTED = [
    ({"sop": TRAVERSAL}, "SOPInstanceUID"),
    ({"sop": LONG_UID}, "SOPInstanceUID"),
    ({"sop": NUL_UID}, "SOPInstanceUID"),
    ({"study": "1.2..3"}, "StudyInstanceUID"),
    ({"series": "1.2.3a"}, "SeriesInstanceUID"),
    ({"name": "A" * 3000}, "PatientName"),
    ({"name": BIDI_NAME}, "PatientName"),
    ({"name": "YILMAZ\x00^AYSE"}, "PatientName"),
    ({"patient_id": "P" * 65}, "PatientID"),
    ({"accession": "A" * 17}, "AccessionNumber"),
    ({"IssuerOfPatientID": "I" * 65}, "IssuerOfPatientID"),
    ({"PatientBirthDate": "1990-01-01"}, "PatientBirthDate"),
]


def status_for(keyword: str) -> int:
    """The failure status for an instance refused over ``keyword``: a UID that is none leaves
    the instance as unidentifiable as an absent one, 0xA900 *Data Set does not match SOP Class*
    (issue 67); any other attribute, 0xC000 *Cannot understand*."""
    return 0xA900 if keyword.endswith("UID") else 0xC000


def crafted(path, values: dict, **more):
    """A small instance with ``values`` (in UTF-8 unless they say otherwise)."""
    return make_dicom(
        path,
        **{
            "accession": f"BAD-{uuid.uuid4().hex[:8]}",
            "SpecificCharacterSet": "ISO_IR 192",
            **values,
            **more,
        },
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("dicom-values")
    with clinic("sqlite", home, tfidf_model_dir, tiny_imaging_dir, dicom_port=0) as (app, client):
        files = home / "files"
        files.mkdir()
        yield SimpleNamespace(
            app=app,
            client=client,
            port=app.state.dicom_node.port,
            rad=bearer(client, "rad1"),
            files=files,
            home=home,
        )


def _total(site) -> int:
    return site.client.get("/api/v1/studies", headers=site.rad).json()["total"]


# --- the rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "keyword"), CRAFTED, ids=[k for _v, k in CRAFTED])
def test_each_crafted_value_is_refused_naming_its_attribute(values, keyword, tmp_path):
    from medai.platform.dicom import identity
    from medai.platform.dicom.dicom_values import InvalidAttribute

    data = crafted(tmp_path / "x.dcm", values).read_bytes()
    with pytest.raises(InvalidAttribute) as refused:
        identity.checked_read(data)
    assert refused.value.keyword == keyword and str(refused.value).startswith(f"{keyword}: ")
    assert isinstance(refused.value, identity.IdentityError)
    for value in values.values():  # the value itself is never repeated
        assert str(value)[:12] not in str(refused.value)


@pytest.mark.parametrize(
    "values",
    [
        {"sop": "1.2.840.0113654.2.70.1.123"},  # a leading zero, as some modalities send
        {"name": "Yamada^Tarou=山田^太郎", "SpecificCharacterSet": ["", "ISO 2022 IR 87"]},
        {"name": "\u200fمحمد^علي"},  # a right-to-left mark: allowed in, stripped out
        {"name": "A" * 30 + "^" + "B" * 33, "patient_id": "P" * 64, "accession": "A" * 16},
        {"PatientBirthDate": "19900101"},
        {"PatientBirthDate": "1990.01.01"},
        {"name": "DOE^JOHN  ", "sop": "1.2.3.4\x00"},  # padding is not content
    ],
)
def test_what_real_equipment_sends_is_accepted(values, tmp_path):
    from medai.platform.dicom import identity

    assert identity.checked_read(crafted(tmp_path / "ok.dcm", values).read_bytes())


def test_printable_drops_bidi_and_control_characters():
    from medai.platform.records.printable import printable

    assert printable("ALI\u202eZEM\u2066\u2069\u200e\u200f\u061c") == "ALIZEM"
    assert printable("a\x00b\x1bc\x7fd\x85e\ufeff\ud800") == "abcde"
    assert printable("one\r\ntwo\u2028three\tfour") == "one two three four"
    assert printable("one\r\ntwo\u2029three", lines=True) == "one\ntwo\nthree"
    assert printable("نرگس\u200cها 👩\u200d⚕️") == "نرگس\u200cها 👩\u200d⚕️"  # joiners stay


def test_outgoing_values_are_what_dicom_allows():
    from medai.platform.dicom.dicom_values import (
        is_uid,
        outgoing_person_name,
        outgoing_uid,
    )

    for bad in (TRAVERSAL, LONG_UID, NUL_UID):
        repaired = outgoing_uid(bad)
        assert is_uid(repaired) and repaired.startswith("2.25.")
        assert outgoing_uid(bad) == repaired and outgoing_uid(bad + "x") != repaired
    assert outgoing_uid("1.2.840.10008.1.1") == "1.2.840.10008.1.1" and outgoing_uid("") == ""
    name = outgoing_person_name("A" * 300 + "^B^C^D^E^F^G=X=Y=Z\x00\u202e")
    groups = name.split("=")
    assert len(groups) == 3 and all(len(g) <= 64 and g.count("^") <= 4 for g in groups)
    assert outgoing_person_name(BIDI_NAME) == "ALIZEM^AYSE"


# --- every way in ---------------------------------------------------------------------------


def _c_store(port: int, path):
    """A C-STORE from a pynetdicom peer: its response (Status, ErrorComment)."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian
    from pynetdicom import AE

    ds = pydicom.dcmread(path)
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="MEDAI")
    assert assoc.is_established
    try:
        return assoc.send_c_store(ds)
    finally:
        assoc.release()


SENDABLE = [(v, k) for v, k in CRAFTED if v.get("sop") != LONG_UID]  # see below


@pytest.mark.parametrize(("values", "keyword"), SENDABLE, ids=[k for _v, k in SENDABLE])
def test_the_node_refuses_with_a_failure_status_naming_the_attribute(site, values, keyword, caplog):
    caplog.set_level(logging.INFO)
    before = _total(site)
    rsp = _c_store(site.port, crafted(site.files / f"node-{keyword}.dcm", values))
    assert rsp.Status == status_for(keyword), rsp
    assert rsp.ErrorComment.startswith(f"{keyword}: ")
    assert _total(site) == before
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("medai")]
    shown = f"refused with 0x{status_for(keyword):04X}"
    assert any(shown in m and keyword in m for m in lines), lines
    for value in values.values():
        assert not any(str(value)[:12] in m for m in lines)


def test_the_node_refuses_a_201_character_uid_sent_by_dcmtk(site):
    """pynetdicom will not even send it (the C-STORE request carries the UID too); dcmtk's
    storescu does."""
    from helpers.dicom import STORESCU, storescu

    if STORESCU is None:
        pytest.skip("dcmtk's storescu is not installed")
    before = _total(site)
    sent = storescu(site.port, crafted(site.files / "long-uid.dcm", {"sop": LONG_UID}))
    assert sent.returncode == 0xA9 and "Success" not in sent.stderr  # 0xA900, as for no UID
    assert _total(site) == before
    assert _c_store(site.port, make_dicom(site.files / "after.dcm")).Status == 0  # still up


def _stow(site, *parts: bytes):
    boundary = uuid.uuid4().hex
    body = (
        b"".join(
            b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n"
            for p in parts
        )
        + b"--"
        + boundary.encode()
        + b"--\r\n"
    )
    ctype = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return site.client.post(
        "/api/v1/dicomweb/studies", content=body, headers={**site.rad, "content-type": ctype}
    )


def test_stow_rs_names_the_attribute_of_each_refused_instance(site):
    before = _total(site)
    parts = [
        crafted(site.files / f"stow-{i}.dcm", v).read_bytes() for i, (v, _k) in enumerate(CRAFTED)
    ]
    r = _stow(site, *parts)
    assert r.status_code == 409, r.text
    failed = r.json()[FAILED]["Value"]
    assert [f[REASON]["Value"][0] for f in failed] == [status_for(k) for _v, k in CRAFTED]
    assert [f[COMMENT]["Value"][0].split(":")[0] for f in failed] == [k for _v, k in CRAFTED]
    echoed = [f[SOP_UID]["Value"][0] for f in failed if SOP_UID in f]
    assert TRAVERSAL not in echoed and not any("\x00" in u or len(u) > 64 for u in echoed)
    assert _total(site) == before


@pytest.mark.parametrize(("values", "keyword"), CRAFTED, ids=[k for _v, k in CRAFTED])
def test_an_upload_is_a_422_naming_the_attribute(site, values, keyword):
    before = _total(site)
    path = crafted(site.files / f"up-{keyword}.dcm", values)
    r = site.client.post(
        "/api/v1/studies",
        headers=site.rad,
        data={"task": "cxr"},
        files={"file": ("x.dcm", path.read_bytes(), "application/dicom")},
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "invalid_dicom_attribute" and keyword in body["detail"]
    assert body["errors"][0]["loc"] == ["file", keyword]
    assert _total(site) == before


# --- rows stored before the checks still export ---------------------------------------------


def _old_row(site, path) -> int:
    """A study filed as the code before ``dicom_values`` filed it (no checks), its report
    signed by hand: what a database of last year holds."""
    import pydicom

    from medai.platform.dicom import identity
    from medai.platform.intake import receive
    from medai.platform.intake.routing import route
    from medai.platform.worklist import filing

    p = site.app.state.platform
    data = path.read_bytes()
    sha = p.store.put_bytes(data)
    ident = identity.from_dataset(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True))
    chosen = route(ident)
    with p.db.session() as db:
        filed = filing.file_study(
            db,
            Arrival(
                sha=sha,
                size=len(data),
                content_type="application/dicom",
                task=chosen.task,
                uploaded_by=receive.account(db).id,
                identity=ident,
                source="dicom",
                calling_ae="MODALITY",
                no_model_reason=chosen.reason,
                language="en",
            ),
        )
        sid = filed.study.id
    sections = {
        "technique": "Abdomen US.",
        "findings": "Normal\u202e liver.",
        "impression": "Normal.",
        "recommendation": "",
    }
    r = site.client.post(
        f"/api/v1/studies/{sid}/report/sign",
        headers=site.rad,
        json={"version": 0, "sections": sections},
    )
    assert r.status_code == 200, r.text
    return sid


@pytest.fixture(scope="module")
def old_rows(site):
    bidi = crafted(
        site.files / "old-bidi.dcm",
        {"name": BIDI_NAME, "sop": TRAVERSAL, "study": TRAVERSAL + "/study"},
        modality="US",
        view=None,
        body_part="ABDOMEN",
    )
    long = crafted(
        site.files / "old-long.dcm",
        {"name": "UZUN" * 750 + "^AD", "sop": LONG_UID},
        modality="US",
        view=None,
        body_part="ABDOMEN",
    )
    return {"bidi": (_old_row(site, bidi), bidi), "long": (_old_row(site, long), long)}


def _study_and_report(site, sid: int) -> tuple[dict, dict]:
    from medai.platform.records.tables import Study
    from medai.platform.worklist import listing, versions

    with site.app.state.platform.db.session() as db:
        study = listing.as_dict(db, db.get(Study, sid), with_result=False, with_series=True)
        return study, versions.as_dict(db, versions.current(db, sid))


@pytest.mark.parametrize("row", ["bidi", "long"])
def test_an_old_row_exports_as_fhir_without_bidi_or_invalid_uids(site, old_rows, row):
    from medai.platform.dicom.dicom_values import is_uid

    sid, _path = old_rows[row]
    r = site.client.get(f"/api/v1/studies/{sid}/report/fhir", headers=site.rad)
    assert r.status_code == 200, r.text
    assert "\u202e" not in r.text and "\\u202e" not in r.text
    res = {e["resource"]["resourceType"]: e["resource"] for e in r.json()["entry"]}
    imaging = res["ImagingStudy"]
    uids = [
        imaging["identifier"][0]["value"].removeprefix("urn:oid:"),
        *(s["uid"] for s in imaging["series"]),
        *(i["uid"] for s in imaging["series"] for i in s["instance"]),
    ]
    assert all(is_uid(u) for u in uids), uids
    name = res["Patient"]["name"][0]
    if row == "bidi":
        assert name["family"] == "ALIZEM" and name["text"] == "ALIZEM, AYSE"
    else:
        assert 0 < len(name["family"]) <= 64


@pytest.mark.parametrize("row", ["bidi", "long"])
def test_an_old_row_exports_as_a_pdf_without_bidi_characters(site, old_rows, row):
    from pypdf import PdfReader

    sid, _path = old_rows[row]
    r = site.client.get(f"/api/v1/studies/{sid}/report/pdf", headers=site.rad)
    assert r.status_code == 200, r.text
    text = "".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(r.content)).pages)
    assert "\u202e" not in text
    assert (
        ("ALIZEM, AYSE" in text and "Normal liver." in text)
        if row == "bidi"
        else "UZUNUZUN" in text
    )


@pytest.mark.parametrize("row", ["bidi", "long"])
def test_an_old_row_goes_to_hl7_and_the_pacs_as_values_dicom_allows(site, old_rows, row):
    import pydicom

    from medai.platform.dicom.dicom_values import is_uid
    from medai.platform.documents.dicom_objects import SourceImage, save_bytes
    from medai.platform.documents.hl7.oru import oru_r01
    from medai.platform.documents.sr.dicom_report import report_sr

    sid, path = old_rows[row]
    study, report = _study_and_report(site, sid)
    message = oru_r01(study, report, control_id="T1")
    assert "\u202e" not in message and "\x00" not in message
    source = SourceImage.from_dataset(pydicom.dcmread(path, stop_before_pixels=True))
    with _strict_writing():
        data = save_bytes(report_sr(source, report, organization="medai"))
    sr = pydicom.dcmread(io.BytesIO(data))
    assert all(is_uid(str(sr[k].value)) for k in ("StudyInstanceUID", "SOPInstanceUID"))
    ref = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert is_uid(str(ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID))
    assert all(len(g) <= 64 for g in str(sr.PatientName).split("="))
    assert "\u202e" not in str(sr.PatientName) and "\u202e" not in data.decode("utf-8", "replace")


class _strict_writing:
    """pydicom refusing, while writing, any value its VR does not allow (what a strict PACS
    such as Orthanc refuses)."""

    def __enter__(self):
        from pydicom import config

        self.before = config.settings.writing_validation_mode
        config.settings.writing_validation_mode = config.RAISE

    def __exit__(self, *exc):
        from pydicom import config

        config.settings.writing_validation_mode = self.before
