"""English signs read by the rules: 13 presentations in the ninth revision, written from
PRESENTATIONS.md before any English development text was read, the other eight (a threat to
someone else, cauda equina, a blocked bladder, pregnancy, eye, diabetic, head injury, sepsis) in
the tenth, and in the eleventh more of the ways short complaints tell six of them (stroke,
meningism, seizure, unconsciousness, thunderclap headache, suicide); each urgent wording beside
a look-alike in the same words that must stay quiet (denied, over, a blocked nose, a teenager
who will not get up for school, an idiom, a minor complaint of the same body part, no onset)."""

from __future__ import annotations

from helpers.builders import fired_flags


def test_a_threat_to_oneself_is_not_a_threat_to_others(rules_engine):
    assert fired_flags(rules_engine, "i want to kill myself") == {"suicidal"}
