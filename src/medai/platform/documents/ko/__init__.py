"""DICOM Key Object Selection documents (one builder, ``dicom_kos``): the AI's key images
(``dicom_key_images``) and the IOCM rejection note (``dicom_rejection``)."""
