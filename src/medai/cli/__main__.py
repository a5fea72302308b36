"""`python -m medai.cli` (used by the multi-process relaunch)."""

from medai.cli import app

app()
