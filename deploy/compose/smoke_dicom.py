"""The smoke test's modality: a CR chest PA instance made from a PNG with pydicom, sent with
C-STORE to medai's DICOM node. Runs inside a container of the stack (the medai image has
pydicom, Pillow and pynetdicom), so it reaches the node by its compose name.

    python smoke_dicom.py PNG HOST PORT CALLED_AE   → prints the StudyInstanceUID
"""

from __future__ import annotations

import sys


def instance(png: str):
    import numpy as np
    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.uint8)
    sop, cr = generate_uid(), "1.2.840.10008.5.1.4.1.1.1"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = cr, sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = cr, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientSex = "SMOKE^TEST", "SMOKE-DICOM-1", "O"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20261126", "120000", "SMOKE-ACC-1"
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "CR", "CHEST", "PA"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = pixels.tobytes()
    return ds


def main(png: str, host: str, port: str, called: str) -> int:
    from pynetdicom import AE

    ds = instance(png)
    ae = AE(ae_title="SMOKE")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate(host, int(port), ae_title=called)
    if not assoc.is_established:
        print("association refused", file=sys.stderr)
        return 1
    status = assoc.send_c_store(ds)
    assoc.release()
    if getattr(status, "Status", None) != 0:
        print(f"C-STORE status {status}", file=sys.stderr)
        return 1
    print(ds.StudyInstanceUID)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:5]))
