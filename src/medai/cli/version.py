"""`medai version`."""

from __future__ import annotations

import medai
from medai.cli.common import JsonFlag, _emit


def version(as_json: JsonFlag = False) -> None:
    """Print medai's version."""
    _emit({"version": medai.__version__}, as_json, medai.__version__)
