"""The heatmap as DICOM images: a Secondary Capture every viewer shows, a Parametric Map where the
source has geometry, a SEG of its region where not (``dicom_heatmap``)."""
