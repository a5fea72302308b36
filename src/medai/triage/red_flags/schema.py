"""The red-flag data files, validated on load: concepts, flags (with rules) and exemplars.

Hospitals review and extend these files (see docs/red-flag-rules.md), so every mistake is a clear
``RuleFileError`` naming the file and the entry — an unknown concept, an empty form or a rule that
could never fire is an error, never a silent no-op.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from medai.triage.red_flags.tokens import fold_plain as fold
from medai.triage.red_flags.words import (
    DATA_DIR,
    READER_FILE,
    ReaderWords,
    RuleFileError,
    load_reader,
)

LEVELS = ("call_112", "emergency_department_now", "urgent_same_day")
"""Most to least urgent; the result's level is the most urgent fired flag's."""
CONCEPT_KINDS = (
    "body_part",
    "symptom",
    "sign",
    "onset",
    "severity",
    "person",
    "context",
    "time",
    "event",
    "substance",
)
NOT_NEGATED_KINDS = ("body_part", "person", "time", "onset")
MAX_WINDOW = 40


@dataclass(frozen=True)
class TokenPattern:
    stem: str  # folded
    mode: str  # "inflect" (stem + suffixes, per the matcher) | "prefix" (stem*) | "exact" (=w)


@dataclass(frozen=True)
class Concept:
    id: str
    kind: str
    forms: tuple[tuple[TokenPattern, ...], ...]
    exclude: tuple[str, ...] = ()
    negatable: bool = True
    except_in: tuple[str, ...] = ()  # a hit inside a longer hit of these concepts is dropped
    normal_reading: bool = False  # a measured normal value right after it denies it (fever)


RULE_KEYS = ("all", "window", "scope", "unless", "unless_anywhere", "not_inside", "note")


@dataclass(frozen=True)
class Rule:
    groups: tuple[tuple[str, ...], ...]  # every group needs a hit of one of its concepts
    window: int  # tokens from the first to the last hit
    scope: str  # "sentence" | "text"
    unless: tuple[str, ...] = ()  # concepts that cancel the rule within its window
    not_inside: tuple[str, ...] = ()  # a hit inside one of these concepts' spans does not count
    unless_anywhere: tuple[str, ...] = ()  # concepts that cancel the rule anywhere in the text


@dataclass(frozen=True)
class Flag:
    id: str
    name_tr: str
    name_en: str
    level: str
    advice_tr: str
    advice_en: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class RuleSet:
    concepts: dict[str, Concept]
    flags: tuple[Flag, ...]
    exemplars: dict[str, tuple[str, ...]]  # flag id → urgent sentences
    contrast: tuple[str, ...]  # non-urgent sentences
    knn: dict  # threshold, margin, max_chunks of the embedding detector
    digest: str  # sha256 of the three files
    words: ReaderWords  # the reader's word lists (reader.yaml): how every rule reads a clause

    @property
    def flag_by_id(self) -> dict[str, Flag]:
        return {f.id: f for f in self.flags}


def _fail(path: Path, where: str, msg: str) -> RuleFileError:
    return RuleFileError(f"{path.name}: {where}: {msg}")


def _read(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RuleFileError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise RuleFileError(f"{path.name}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise RuleFileError(f"{path.name}: expected a mapping with 'version: 1' at the top")
    return data


def parse_form(text: str) -> tuple[TokenPattern, ...]:
    """'nefes al*' → (inflect 'nefes', prefix 'al'); '=kan' → exact 'kan'."""
    patterns = []
    for raw in str(text).split():
        mode = "inflect"
        if raw.startswith("="):
            mode, raw = "exact", raw[1:]
        if raw.endswith("*"):  # "=word*" reads as a prefix too
            mode, raw = "prefix", raw[:-1]
        stem = fold(raw)
        if not stem.isalnum():
            raise ValueError(f"form token {raw!r} must be letters or digits (with * or =)")
        if mode == "prefix" and len(stem) < 3 and not patterns:  # later tokens are anchored
            raise ValueError(
                f"prefix form {raw}* is shorter than 3 letters: it would match almost anything"
            )
        patterns.append(TokenPattern(stem, mode))
    if not patterns:
        raise ValueError("empty form")
    return tuple(patterns)


def _concepts(path: Path) -> dict[str, Concept]:
    data = _read(path).get("concepts")
    if not isinstance(data, dict) or not data:
        raise _fail(path, "concepts", "missing or empty")
    out = {}
    for cid, spec in data.items():
        if not isinstance(spec, dict):
            raise _fail(path, cid, "must be a mapping with kind and forms")
        kind = spec.get("kind")
        if kind not in CONCEPT_KINDS:
            raise _fail(path, cid, f"unknown kind {kind!r}; valid: {', '.join(CONCEPT_KINDS)}")
        forms = spec.get("forms")
        if not isinstance(forms, list) or not forms:
            raise _fail(path, cid, "needs a non-empty list of forms")
        try:
            # forms are folded: "göğüs" and "gogus" are one pattern, matched once per token
            parsed = tuple(dict.fromkeys(parse_form(f) for f in forms))
        except ValueError as exc:
            raise _fail(path, cid, str(exc)) from None
        keys = ("kind", "forms", "exclude", "negatable", "except_in", "normal_reading", "note")
        unknown = set(spec) - set(keys)
        if unknown:
            raise _fail(path, cid, f"unknown keys {sorted(unknown)}; valid: {', '.join(keys)}")
        # a body part, a person or a time is not what "yok" denies ("göğüs ağrım yok" denies
        # the pain): only symptoms, signs, events and substances are negatable by default
        negatable = spec.get("negatable", kind not in NOT_NEGATED_KINDS)
        for flag in ("negatable", "normal_reading"):
            if not isinstance(spec.get(flag, False), bool):
                raise _fail(path, cid, f"{flag} must be true or false")
        exclude = tuple(fold(str(x)) for x in spec.get("exclude", []))
        for x in exclude:  # compared with one token's start: a phrase would never match
            if not x.isalnum():
                raise _fail(
                    path,
                    cid,
                    f"exclude entry {x!r} must be one word start (letters or "
                    "digits); for a phrase, list it as a form of another "
                    "concept and name that concept in except_in",
                )
        out[cid] = Concept(
            cid,
            kind,
            parsed,
            exclude,
            bool(negatable),
            tuple(spec.get("except_in", [])),
            bool(spec.get("normal_reading")),
        )
    for concept in out.values():
        for other in concept.except_in:
            if other not in out:
                raise _fail(path, concept.id, f"except_in names unknown concept {other!r}")
    return out


def _rule(path: Path, where: str, spec: object, concepts: dict[str, Concept]) -> Rule:
    if not isinstance(spec, dict) or not isinstance(spec.get("all"), list) or not spec["all"]:
        raise _fail(path, where, "a rule needs 'all': a non-empty list of concept groups")
    groups = []
    for g in spec["all"]:
        group = tuple(g) if isinstance(g, list) else (g,)
        if not group:
            raise _fail(path, where, "empty concept group")
        for cid in group:
            if cid not in concepts:
                raise _fail(path, where, f"unknown concept {cid!r} (define it in concepts.yaml)")
        groups.append(group)
    window = spec.get("window", 12)
    if not isinstance(window, int) or not 1 <= window <= MAX_WINDOW:
        raise _fail(path, where, f"window must be an integer 1..{MAX_WINDOW}, got {window!r}")
    unless, not_inside, anywhere = (
        _concept_list(path, where, spec, key, concepts)
        for key in ("unless", "not_inside", "unless_anywhere")
    )
    unknown = set(spec) - set(RULE_KEYS)
    if unknown:
        raise _fail(path, where, f"unknown keys {sorted(unknown)}; valid: {', '.join(RULE_KEYS)}")
    scope = spec.get("scope", "sentence")
    if scope not in ("sentence", "text"):
        raise _fail(path, where, f"unknown scope {scope!r}; valid: sentence, text")
    return Rule(tuple(groups), window, scope, unless, not_inside, anywhere)


def _concept_list(
    path: Path, where: str, spec: dict, key: str, concepts: dict[str, Concept]
) -> tuple[str, ...]:
    value = spec.get(key, [])
    value = tuple(value) if isinstance(value, list) else (value,)
    for cid in value:
        if cid not in concepts:
            raise _fail(path, where, f"unknown concept {cid!r} in {key}")
    return value


def _flags(path: Path, concepts: dict[str, Concept]) -> tuple[Flag, ...]:
    data = _read(path).get("flags")
    if not isinstance(data, list) or not data:
        raise _fail(path, "flags", "missing or empty")
    flags, seen = [], set()
    for i, spec in enumerate(data):
        where = f"flag #{i + 1} ({spec.get('id', '?') if isinstance(spec, dict) else '?'})"
        if not isinstance(spec, dict):
            raise _fail(path, where, "must be a mapping")
        missing = [
            k
            for k in ("id", "name_tr", "name_en", "level", "advice_tr", "advice_en", "rules")
            if not spec.get(k)
        ]
        if missing:
            raise _fail(path, where, f"missing {', '.join(missing)}")
        if spec["id"] in seen:
            raise _fail(path, where, "duplicate id")
        seen.add(spec["id"])
        if spec["level"] not in LEVELS:
            raise _fail(path, where, f"unknown level {spec['level']!r}; valid: {', '.join(LEVELS)}")
        rules = tuple(
            _rule(path, f"{where} rule #{j + 1}", r, concepts) for j, r in enumerate(spec["rules"])
        )
        flags.append(
            Flag(
                spec["id"],
                spec["name_tr"],
                spec["name_en"],
                spec["level"],
                spec["advice_tr"].strip(),
                spec["advice_en"].strip(),
                rules,
            )
        )
    return tuple(flags)


KNN_KEYS = {"threshold": (0.0, 1.0), "margin": (-1.0, 1.0), "max_chunks": (1, 50)}


def _knn(path: Path, spec: object) -> dict:
    if not isinstance(spec, dict):
        raise _fail(path, "knn", "must be a mapping of threshold, margin, max_chunks")
    for key, value in spec.items():
        if key not in KNN_KEYS:
            raise _fail(path, "knn", f"unknown key {key!r}; valid: {', '.join(KNN_KEYS)}")
        lo, hi = KNN_KEYS[key]
        if not isinstance(value, int | float) or isinstance(value, bool) or not lo <= value <= hi:
            raise _fail(path, f"knn.{key}", f"must be a number in [{lo}, {hi}], got {value!r}")
    return dict(spec)


def _exemplars(
    path: Path, flag_ids: set[str]
) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...], dict]:
    data = _read(path)
    knn = _knn(path, data.get("knn", {}))
    urgent, contrast = data.get("urgent"), data.get("ordinary", [])
    if not isinstance(urgent, dict) or not urgent:
        raise _fail(path, "urgent", "missing or empty")
    out = {}
    for fid, items in urgent.items():
        if fid not in flag_ids:
            raise _fail(path, f"urgent.{fid}", f"unknown flag id; valid: {sorted(flag_ids)}")
        if (
            not isinstance(items, list)
            or not all(isinstance(s, str) and s.strip() for s in items)
            or not items
        ):
            raise _fail(path, f"urgent.{fid}", "needs a non-empty list of non-empty sentences")
        out[fid] = tuple(s.strip() for s in items)
    if not isinstance(contrast, list) or not all(
        isinstance(s, str) and s.strip() for s in contrast
    ):
        raise _fail(path, "ordinary", "must be a list of non-empty sentences")
    return out, tuple(s.strip() for s in contrast), knn


def load_rules(directory: Path | None = None) -> RuleSet:
    """Read concepts.yaml, flags.yaml, exemplars.yaml and reader.yaml from ``directory``
    (default: bundled); a folder without its own reader.yaml reads with the bundled one."""
    directory = Path(directory) if directory else DATA_DIR
    paths = [directory / n for n in ("concepts.yaml", "flags.yaml", "exemplars.yaml")]
    concepts = _concepts(paths[0])
    flags = _flags(paths[1], concepts)
    exemplars, contrast, knn = _exemplars(paths[2], {f.id for f in flags})
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest()
    words = load_reader(directory if (directory / READER_FILE).is_file() else None)
    return RuleSet(concepts, flags, exemplars, contrast, knn, digest, words)
