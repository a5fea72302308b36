"""medai: a hospital's own medical AI, with a clinician always signing off."""

__version__ = "0.1.0"
