"""DICOM Structured Reports: the AI's findings (TID 1500, ``findings_sr``) and the signed report
with its amendments (``dicom_report``)."""
