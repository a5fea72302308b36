"""The red-flag case tables (``cases/*.yaml``, one per topic): each case is a text, a flag and
whether that flag must fire on it; a case with no flag must raise no flag at all. Look-alikes
(an everyday meaning, a history, an idiom) sit beside the same words told as an emergency, so
a rule loosened or tightened for one side is caught on the other. The texts are written for
the tests (paraphrases of real posts, no post text); MEDAI_TEST_RED_FLAG_RULES runs them
against a candidate rules folder (``conftest.rules_engine``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers.builders import fired_flags

CASES_DIR = Path(__file__).parent / "cases"


def _cases() -> list:
    out = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        table = yaml.safe_load(path.read_text(encoding="utf-8"))
        for i, case in enumerate(table["cases"], 1):
            out.append(pytest.param(case, id=f"{path.stem}-{i}"))
    return out


CASES = _cases()


def test_the_tables_are_well_formed():
    assert len(CASES) > 800
    for param in CASES:
        case = param.values[0]
        assert set(case) <= {"text", "flag", "fires", "note"}, param.id
        assert isinstance(case["text"], str) and case["text"].strip(), param.id
        assert isinstance(case["fires"], bool), param.id
        assert case["flag"] is not None or not case["fires"], param.id


@pytest.mark.parametrize("case", CASES)
def test_case(rules_engine, case):
    fired = fired_flags(rules_engine, case["text"])
    if case["flag"] is None:
        assert not fired, f"no flag may fire; fired {sorted(fired)}"
    elif case["fires"]:
        assert case["flag"] in fired, f"{case['flag']} must fire; fired {sorted(fired)}"
    else:
        assert case["flag"] not in fired, f"{case['flag']} must not fire"
