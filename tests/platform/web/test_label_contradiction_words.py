"""The sign dialog says what the API says (issue 67, item 8): every kind of contradiction the
server refuses a signature for (``core.label_rules.KINDS``) has its sentence in Turkish and
English, naming the labels it is given, and the dialog's own sentences exist in both."""

from __future__ import annotations

import json

import pytest

from helpers.paths import SRC
from medai.core.label_rules import KINDS

CATALOGUE = json.loads((SRC / "platform/web/messages.json").read_text(encoding="utf-8"))
SLOTS = {
    "normal_with_finding": ("{first}", "{rest}"),
    "nothing_present": ("{first}",),
    "exclusive_branches": ("{labels}",),
    "one_class": ("{labels}",),
    "parent_absent": ("{first}", "{rest}"),
}


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_every_contradiction_is_said_in_both_languages_with_its_labels(lang):
    words = CATALOGUE[lang]
    assert set(SLOTS) == set(KINDS)
    for kind in KINDS:
        text = words[f"labels_contra_{kind}"]
        assert all(slot in text for slot in SLOTS[kind]), (lang, kind, text)
    assert "{reasons}" in words["sign_contradiction"]
    assert "{reasons}" in words["sign_contradictory_refused"]
