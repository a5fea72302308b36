"""Imaging findings: chest X-ray multi-label findings and brain MRI tumour class."""
