"""Where things are, from any test folder."""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent  # the checkout
SRC = ROOT / "src" / "medai"
SHARED_DATA = ROOT.parent / "shared" / "data"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
