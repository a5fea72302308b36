"""A C-STORE whose SOP Instance UID is empty or not a UID (issue 67, item 9): the node answers
0xA900 *Data Set does not match SOP Class* with an Error Comment naming the attribute, files
nothing, and stays up — before, an empty one raised AttributeError inside pynetdicom and the
association was aborted with no status at all. Real pynetdicom peers against the real node."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from helpers.dicom import make_dicom
from helpers.platform import clinic

CR = "1.2.840.10008.5.1.4.1.1.1"


@pytest.fixture(scope="module")
def site(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("dicom-invalid-uid")
    with clinic("sqlite", home, tfidf_model_dir, tiny_imaging_dir) as (app, _client):
        yield SimpleNamespace(p=app.state.platform, home=home)


@pytest.fixture
def node(site):
    from medai.platform.intake.dicom_node import DicomNode

    started = DicomNode(site.p, lambda *_: None, port=0, allow=("MODALITY",)).start()
    yield started
    started.stop()


def _send(port: int, ds):
    """One C-STORE of ``ds`` from a pynetdicom peer: (the response status dataset or None,
    whether the association was still established after it)."""
    from pydicom.uid import ExplicitVRLittleEndian
    from pynetdicom import AE

    ae = AE(ae_title="MODALITY")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    ae.add_requested_context(CR, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="MEDAI")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(ds)
        return status, assoc.is_established
    finally:
        if assoc.is_established:
            assoc.release()


@pytest.mark.parametrize(
    "uid",
    ["", "1..2", "1.2.840.abc", ".1.2", "1.2."],
    ids=["empty", "empty component", "letters", "leading dot", "trailing dot"],
)
def test_an_empty_or_invalid_sop_instance_uid_gets_a900_with_a_comment(site, node, tmp_path, uid):
    import pydicom

    from medai.platform.records.tables import Study

    ds = pydicom.dcmread(make_dicom(tmp_path / "x.dcm", accession="BADUID"))
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    status, established = _send(node.port, ds)
    assert status is not None and "Status" in status, "no status: the association was aborted"
    assert status.Status == 0xA900, hex(status.Status)
    assert "SOPInstanceUID" in str(status.get("ErrorComment", "")), status
    assert established
    with site.p.db.session() as db:
        assert db.query(Study).filter(Study.accession == "BADUID").count() == 0
    # the node still files a good instance on a new association
    good = pydicom.dcmread(make_dicom(tmp_path / "good.dcm", accession=None))
    status, _ = _send(node.port, good)
    assert status.Status == 0x0000
