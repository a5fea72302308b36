"""The scope box's example of a disease the model cannot tell apart is the task's own (issue 69:
a brain MRI's box said "ör. tüberküloz"): the message names none, the page fills in the first
of the task's ``cannot_tell_apart`` (study.js), and nothing in it says "film" of any study."""

from __future__ import annotations

import json

from helpers.paths import SRC

MESSAGES = json.loads((SRC / "platform/web/messages.json").read_text(encoding="utf-8"))
SCRIPT = (SRC / "platform/web/static/study.js").read_text(encoding="utf-8")


def test_the_scope_messages_name_no_task_of_their_own():
    for lang, words in MESSAGES.items():
        if not isinstance(words, dict) or "scope_in" not in words:
            continue
        assert "{example}" in words["scope_in"], lang
        assert "{item}" in words["scope_in_example"], lang
        for key in ("scope_in", "scope_cannot"):
            text = words[key].lower()
            for chest in ("tüberküloz", "tuberculosis", "grafi", "film"):
                assert chest not in text, (lang, key, chest)
    assert "fill(T.scope_in_example, { item: apart[0] })" in SCRIPT
