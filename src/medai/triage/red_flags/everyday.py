"""The everyday guard: a short complaint made only of everyday symptoms is not an emergency.

"Ateşim var", "başım ağrıyor, midem bulanıyor", "kusuyorum", "fever and cough": a fever, a
headache, nausea or an earache alone, or a few of them together, name no discriminator (a stiff
neck, a baby, a sudden or worst-ever onset, blood, breathlessness). The rules only fire on a
discriminator, but the learned detectors read a two-word complaint on little evidence and, on
wordings their training never saw, sent such complaints to 112 ("Kusuyorum" → acute abdomen).
So on a complaint of at most ``everyday_max_words`` words every one of which is an everyday
word (``reader.yaml``: ``everyday_stems`` read with the suffix grammar, ``everyday_words``, a
number up to ``everyday_max_degree``), the e5 and classifier detectors do not decide; one word
outside the lists and they decide as before. Of every development and blind set, one urgent
text (of test20) is made only of everyday words, and the rules raise its flag
(docs/benchmarks/red_flags.md, "The everyday guard").
"""

from __future__ import annotations

from medai.triage.red_flags.tokens import MATCHERS, Token
from medai.triage.red_flags.words import ReaderWords, current


def everyday_word(form: str, words: ReaderWords) -> bool:
    """``form`` (one folded token) is an everyday word of ``words``."""
    if form in words.everyday_words:
        return True
    if form.isdigit():
        return int(form) <= words.everyday_max_degree
    suffixed = MATCHERS["suffix"]  # a lexicon stem with Turkish suffixes, as the rules read it
    return any(suffixed(stem, form) for stem in words.everyday_stems)


def everyday_only(tokens: list[Token]) -> bool:
    """A short complaint made only of everyday words (with the engine's ``reader.yaml``)."""
    words = current()
    return 0 < len(tokens) <= words.everyday_max_words and all(
        everyday_word(t.form, words) for t in tokens
    )
