"""The report as a FHIR R4 Bundle (``fhir_bundle``): DiagnosticReport, Observations, the model as
Device and Provenance."""
