"""What a report becomes: its words, the AI disclosure, each finding's state, the PDF, the FHIR
bundle and the DICOM objects (SR, KO, GSPS, heatmap, rejection)."""
