"""How a study arrives: DICOM C-STORE, DICOMweb pull, routing, upload idempotency; each files one
study."""
