"""A study's DICOM facts: the keyed patient identity and its conflicts, header values, study time,
de-identification."""
