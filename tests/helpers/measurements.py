"""A radiologist's viewer measurements as OHIF saves them: a TID 1500 Imaging Measurement
Report (a Comprehensive 3D SR built with highdicom, as FIELD-NOTES records) and the STOW-RS
request that files it (``reading.measurements``)."""

from __future__ import annotations

import copy
import io
import uuid

import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes


def measurement_sr(
    image: Dataset, long_mm: float, short_mm: float, area_mm2: float | None = None
) -> bytes:
    """A TID 1500 report of one lesion (long and short axis, optionally an area) drawn on
    ``image``, built with highdicom as FIELD-NOTES records."""
    import highdicom as hd

    image = copy.deepcopy(image)
    for keyword, value in (
        ("PatientBirthDate", ""),
        ("PatientSex", ""),
        ("ReferringPhysicianName", ""),
        ("StudyID", "1"),
        ("StudyDate", "20251120"),
        ("StudyTime", "120000"),
    ):
        if keyword not in image:
            setattr(image, keyword, value)
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=np.array([[10.0, 10.0], [60.0, 10.0], [60.0, 50.0], [10.0, 10.0]]),
        source_image=hd.sr.SourceImageForRegion.from_source_image(image),
    )
    items = [
        hd.sr.Measurement(name=codes.SCT.LongAxis, value=long_mm, unit=codes.UCUM.Millimeter),
        hd.sr.Measurement(name=codes.SCT.ShortAxis, value=short_mm, unit=codes.UCUM.Millimeter),
    ]
    if area_mm2 is not None:
        items.append(
            hd.sr.Measurement(name=codes.SCT.Area, value=area_mm2, unit=codes.UCUM.SquareMillimeter)
        )
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="lesion 1"),
        referenced_region=region,
        measurements=items,
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_person_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Person,
                observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                    name="Rad^One"
                ),
            )
        ),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=[group],
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[image],
        content=report[0],
        series_instance_uid=hd.UID(),
        series_number=99,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="OHIF",
    )
    buf = io.BytesIO()
    sr.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def stow(client, headers, blob: bytes):
    boundary = uuid.uuid4().hex
    body = (
        b"--"
        + boundary.encode()
        + b"\r\nContent-Type: application/dicom\r\n\r\n"
        + blob
        + b"\r\n--"
        + boundary.encode()
        + b"--\r\n"
    )
    ctype = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return client.post(
        "/api/v1/dicomweb/studies", content=body, headers={**headers, "content-type": ctype}
    )
