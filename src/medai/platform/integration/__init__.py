"""Hospital integration: DICOM in (node, identity, routing) and results out (DICOM objects,
senders), FHIR and HL7. Plain modules; the outbox decides when something is sent."""
