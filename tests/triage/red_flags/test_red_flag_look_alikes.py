"""Look-alikes found where the rules fired on real forum questions (the validation quarter of
the real posts, 2026-11-24), each beside an emergency with the same words that must still fire.
The texts are written for the test, not copied from the posts."""

from __future__ import annotations

import shutil

import pytest
import yaml

from helpers.builders import fired_flags
from medai.triage.red_flags import RuleFileError, load_rules
from medai.triage.red_flags.schema import DATA_DIR


def test_unless_anywhere_names_a_known_concept(tmp_path):
    for name in ("concepts.yaml", "flags.yaml", "exemplars.yaml"):
        shutil.copy(DATA_DIR / name, tmp_path / name)
    data = yaml.safe_load((tmp_path / "flags.yaml").read_text())
    data["flags"][0]["rules"][0]["unless_anywhere"] = ["nope"]
    (tmp_path / "flags.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(RuleFileError, match="unknown concept 'nope' in unless_anywhere"):
        load_rules(tmp_path)
    data["flags"][0]["rules"][0].pop("unless_anywhere")
    data["flags"][0]["rules"][0]["unless_everywhere"] = ["chest"]
    (tmp_path / "flags.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(RuleFileError, match="unless_anywhere"):
        load_rules(tmp_path)


@pytest.mark.parametrize(
    "text,flags",
    [
        # the writer is the object: self-harm, not intent to harm others (found at the kiosk)
        ("kendimi öldürmek istiyorum", {"suicidal"}),
        ("Artık dayanamıyorum kendime zarar vermek istiyorum", {"suicidal"}),
        ("kendimi oldurmeyi dusunuyorum", {"suicidal"}),
        # someone else is the object, alone or beside the writer: both flags stay
        ("Kocamı öldürmek istiyorum, elime bıçak aldım", {"harm_to_others"}),
        ("Önce onu öldürüp sonra kendimi de öldürmek istiyorum", {"harm_to_others", "suicidal"}),
        (
            "Bebeğime zarar vereceğim diye korkuyorum, kendimi öldürmek istiyorum",
            {"harm_to_others", "suicidal"},
        ),
    ],
)
def test_self_harm_is_not_read_as_harm_to_others(rules_engine, text, flags):
    assert fired_flags(rules_engine, text) & {"suicidal", "harm_to_others"} == flags
