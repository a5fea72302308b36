"""The report as a PDF (``report_pdf``), signed report first, the AI appendix after it."""
