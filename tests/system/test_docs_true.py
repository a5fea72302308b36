"""The docs are true, where a test can tell.

- docs/architecture.md: every module, package or source file it names (a path such as
  `reading/sign_off.py` or `platform/worklist/`, a dotted name such as
  `medai.platform.reading.review` or `services.study_read.read_study`) exists; the layers it
  draws and tabulates are the import-linter contracts of pyproject.toml, layer for layer; the
  test folders it lists exist.
- README.md's Layout: every folder and module it names exists.
- No docstring or comment in src/medai names a medai module (or a module's attribute) that does
  not exist.
- Tests sit beside what they test: a test folder mirrors a package of src/medai (or is one of
  the few folders of no package, listed below with why), and no test file is named after a
  number.

Static reads only (ast, the files themselves): nothing of medai is imported (about 3 s on two
cores). Released migrations are left out of the docstring check: they stay as they shipped.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import tomllib
from functools import cache
from pathlib import Path

import pytest

from helpers.paths import ROOT, SRC, TESTS

ARCHITECTURE = ROOT / "docs" / "architecture.md"
README = ROOT / "README.md"

# The repository's own top-level folders: a path that starts with one is the repository's.
REPO_FOLDERS = {"src", "tests", "docs", "deploy", "benchmarks", "data"}

# Names in the docs or the docstrings that read like a module but name something else, with
# why (each is checked to be still written somewhere, and to be no module).
NOT_MODULES = {
    "medai.access": "the access log's logger name",
    "medai.tasks": "the entry-point group tasks are announced in",
    "medai.destinations": "the entry-point group destination kinds are announced in",
    "medai.pct": "a function of the web UI's JavaScript (static/app.js)",
    "medai.stateWord": "a function of the web UI's JavaScript (static/app.js)",
    "medai.platform.crypto": "a released migration's import path (migrations/env.py)",
    "medai.model_job": "the Celery task name of a model job",
    "fhir.resources": "the FHIR library (fhir.resources), not documents/fhir/",
    "settings.storage": "a field of the settings object, not of the module",
    "settings.dicom.dicom_port": "a field of the settings object, not of the module",
    "checkpoints/last": "a training run's output folder",
}
# Names the docs give as names no module takes ("no two modules called `tasks.py` …").
ABSENT = {"tasks.py"}

# File name endings of things that are not Python modules (a dotted `name.json` is a file).
FILE_EXTENSIONS = {
    "py", "json", "md", "yaml", "yml", "toml", "txt", "csv", "tsv", "jsonl", "js", "html",
    "css", "npz", "onnx", "joblib", "env", "pdf", "png", "old", "cfg", "ini", "sql",
}  # fmt: skip


# --- the source tree, read once ---------------------------------------------------------------


@cache
def _modules() -> dict[str, Path]:
    """Every medai module and package by its dotted name (`medai.platform.reading.review`)."""
    out: dict[str, Path] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


@cache
def _by_basename() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in _modules():
        out.setdefault(name.rsplit(".", 1)[-1], []).append(name)
    return out


@cache
def _src_paths() -> tuple[str, ...]:
    """Every file and folder under src/medai, as a path relative to src/medai."""
    return tuple(
        p.relative_to(SRC).as_posix()
        for p in SRC.rglob("*")
        if "__pycache__" not in p.parts and not p.name.endswith(".pyc")
    )


def _top_level_names(body: list[ast.stmt]) -> dict[str, ast.AST | None]:
    """Names a module (or class) body binds, looking into if/try blocks, not into functions."""
    names: dict[str, ast.AST | None] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                for n in ast.walk(target):
                    if isinstance(n, ast.Name):
                        names[n.id] = None
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = None
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = None
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for block in ("body", "orelse", "finalbody", "handlers"):
                for sub in getattr(node, block, []):
                    inner = sub.body if isinstance(sub, ast.ExceptHandler) else [sub]
                    names.update(_top_level_names(inner))
    return names


@cache
def _module_names(module: str) -> dict[str, ast.AST | None]:
    tree = ast.parse(_modules()[module].read_text(encoding="utf-8"))
    names = _top_level_names(tree.body)
    for sub in _modules():  # a package's submodules are its attributes too
        if sub.startswith(module + ".") and "." not in sub[len(module) + 1 :]:
            names.setdefault(sub.rsplit(".", 1)[-1], None)
    return names


def _has_attributes(module: str, attrs: list[str]) -> bool:
    names = _module_names(module)
    if attrs[0] not in names:
        return False
    node = names[attrs[0]]
    # a class's own attribute (a method, a field, a constant): checked when the class is
    # defined here and has no base that could bring it
    return not (
        len(attrs) > 1
        and isinstance(node, ast.ClassDef)
        and not node.bases
        and attrs[1] not in _top_level_names(node.body)
    )


@cache
def _classes() -> dict[str, list[ast.ClassDef]]:
    """Every class medai defines at a module's top level, by its name."""
    out: dict[str, list[ast.ClassDef]] = {}
    for module in _modules():
        for name, node in _module_names(module).items():
            if isinstance(node, ast.ClassDef) and node.name == name:
                out.setdefault(name, []).append(node)
    return out


def _platform_folders() -> set[str]:
    return {p.name for p in (SRC / "platform").iterdir() if (p / "__init__.py").is_file()}


def resolve_dotted(name: str) -> bool | None:
    """Whether a dotted medai name exists: True, False, or None when it names no medai module.

    `medai.a.b`, `a.b` under medai (`services.study_read.read_study`), a platform folder's
    (`reading.review.ai_draft`), or a module by its own name (`filing.receive`); a trailing
    `.attr` (or `:attr`) must be bound in the module, and `Class.attr` in its class; a medai
    class by its own name (`Task.reads_dicom`) must have the attribute.
    """
    name = re.sub(r"\(.*\)$", "", name.strip()).replace(":", ".")
    parts = name.split(".")
    if not all(re.fullmatch(r"[A-Za-z_]\w*", p) for p in parts) or len(parts) < 2:
        return None
    if parts[-1] in FILE_EXTENSIONS:
        return None
    if parts[0][0].isupper():
        classes = _classes().get(parts[0])
        if not classes:
            return None
        return any(c.bases or parts[1] in _top_level_names(c.body) for c in classes)
    if not parts[0].islower():
        return None
    roots: list[list[str]] = []
    if parts[0] == "medai":
        roots.append(parts)
    else:
        if f"medai.{parts[0]}" in _modules():
            roots.append(["medai", *parts])
        if parts[0] in _platform_folders():
            roots.append(["medai", "platform", *parts])
        for module in _by_basename().get(parts[0], []):
            roots.append([*module.split(".")[:-1], *parts])
    if not roots:
        return None
    for root in roots:
        for cut in range(len(root), 0, -1):
            module = ".".join(root[:cut])
            if module in _modules():
                if cut == len(root) or _has_attributes(module, root[cut:]):
                    return True
                break
    return False


def resolve_path(path: str, *, under: Path = SRC, also: Path | None = None) -> bool | None:
    """Whether a source path exists: True, False, or None when it is no path of the project.

    A path that starts with a repository folder (`tests/…`, `deploy/…`) is the repository's;
    any other is under `under` (src/medai), relative to it or to any folder in it: some file or
    folder there ends with it (or under `also`). A glob (`static/*.js`) must match something.
    """
    if also is not None and resolve_path(path, under=also):
        return True
    if path in ABSENT:
        return not any(p.rsplit("/", 1)[-1] == path for p in _src_paths())
    if (
        path.startswith(("/", "../", "~"))
        or re.search(r"[\s<>{}=`\"'…]", path)
        or re.match(r"[A-Z][A-Z0-9_]+/", path)  # MEDAI_HOME/blobs: a variable's folder
    ):
        return None
    if "/" not in path and not path.endswith(".py"):
        return None
    bare = path.rstrip("/")
    if bare.split("/")[0] in REPO_FOLDERS:
        hits = list(ROOT.glob(bare))
        return bool(hits) and (not path.endswith("/") or any(h.is_dir() for h in hits))
    if "*" in bare:
        return any(under.rglob(bare))
    if under == SRC:
        candidates = (p for p in _src_paths() if p == bare or p.endswith("/" + bare))
        found = [SRC / p for p in candidates]
    else:
        found = [
            p
            for p in under.rglob(bare.rsplit("/", 1)[-1])
            if ("/" + p.relative_to(under).as_posix()).endswith("/" + bare)
        ]
    if path.endswith("/"):
        return any(p.is_dir() for p in found)
    return bool(found)


def check_reference(text: str, *, also: Path | None = None) -> bool | None:
    """One backticked (or diagram) name: True if it exists, False if not, None if no module.

    A path is under src/medai (or `also`: a diagram of the whole checkout names test folders).
    """
    text = text.strip()
    if text in NOT_MODULES:
        return None
    if command := re.fullmatch(r"python -m ([\w.]+)", text):
        return resolve_dotted(command.group(1)) if "." in command.group(1) else None
    if " | " in text:  # a layer of siblings, `medai.triage | medai.imaging`
        checked = [check_reference(part) for part in text.split(" | ")]
        return None if None in checked else all(checked)
    if "/" in text or text.endswith(".py"):
        return resolve_path(text, also=also)
    if "." in text:
        return resolve_dotted(text)
    return None


# --- what the docs name -----------------------------------------------------------------------


def backticked(markdown: str) -> list[str]:
    """Inline code spans outside fenced blocks (`a | b` in a table is written `a \\| b`)."""
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    return [m.replace("\\|", "|") for m in re.findall(r"`([^`\n]+)`", prose)]


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, text) of every fenced block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", markdown, flags=re.S | re.M)


# A dotted name in a diagram: medai's own when its first part is a medai package, a platform
# folder or a module's name (anything else — prose, a library — is left alone by the resolver).
_DIAGRAM_DOTTED = re.compile(r"(?<![\w./\-])([a-z_]\w*(?:\.\w+)+)(?![\w/(])")
_DIAGRAM_PATH = re.compile(
    r"(?<![\w./\-])((?:[a-z_][\w\-]*/)+(?:[\w\-]+\.py)?|[a-z_]\w*\.py)(?![\w/])"
)


def diagram_references(block: str) -> list[str]:
    return _DIAGRAM_DOTTED.findall(block) + _DIAGRAM_PATH.findall(block)


def section(markdown: str, heading: str) -> str:
    """The text under a heading, up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    start = markdown.index(heading + "\n")
    rest = markdown[start + len(heading) + 1 :]
    end = re.search(rf"^#{{1,{level}}} ", rest, flags=re.M)
    return rest[: end.start()] if end else rest


def _stale(refs: list[str], *, also: Path | None = None) -> list[str]:
    return sorted({r for r in refs if check_reference(r, also=also) is False})


# --- the checkers, on samples -----------------------------------------------------------------


def test_reference_checker_on_samples():
    sample = (
        "`reading/sign_off.py` and `platform/worklist/` and `medai.platform.reading.review`, "
        "`services/study_read.py`, `services.study_read.read_study`, `filing.receive`, "
        "`medai.platform.app:platform_app_from_env`, `core.model_dir.load(dir)`, "
        "`Task.reads_dicom`, `python -m medai.cli`, `medai.triage | medai.imaging`, "
        "`static/*.js`; not modules: `MEDAI_HOME/blobs`, `/api/v1/health`, `model_card.json`, "
        "`Path.exists`, `p.settings`, `medai serve --workers N`, `torch.autograd.grad`; stale: "
        "`reading/sign_of.py`, `platform/worklists/`, `medai.platform.reading.reviews`, "
        "`services.study_read.read_studies`, `filing.recieve`, `tests/core/test_nothing.py`, "
        "`medai.platform.app:no_such_app`, `no_such_module.py`, `Task.reads_dicoms`, "
        "`python -m medai.clii`, `medai.triage | medai.imagin`"
    )
    refs = backticked(sample)
    assert len(refs) == 30
    assert [r for r in refs if check_reference(r) is True] == refs[:12]
    assert [r for r in refs if check_reference(r) is None] == refs[12:19]
    assert _stale(refs) == sorted(refs[19:])
    # a class's own attribute is checked where the class is defined
    assert resolve_dotted("catalog_object.CatalogObject") is True
    assert resolve_dotted("db.Database.upgrade") is True
    assert resolve_dotted("db.Database.no_such_method") is False
    # a diagram's names, with the prose around them left alone
    diagram = "intake.dicom_node ─► platform.worklist.filing.receive (e.g. the node) ─► api/\n"
    assert diagram_references(diagram) == [
        "intake.dicom_node",
        "platform.worklist.filing.receive",
        "e.g",
        "api/",
    ]
    assert _stale(diagram_references(diagram + "intake.dicom_nod")) == ["intake.dicom_nod"]


def test_docstring_extractor_on_sample():
    source = (
        '"""Reads ``medai.platform.reading.review`` and platform.worklist.filing.receive;\n'
        "see services.study_read.read_study, ``services.nothing_here`` and medai.core.gone;\n"
        'not modules: e.g. services.py, the platform. Then ``studies.urgent``, ``Task.x``."""\n'
        "# the draft goes through platform.reading.analysis.no_such_function\n"
        "x = 'medai.core.not_a_docstring'\n"
    )
    refs = docstring_references(source)
    assert refs == [
        "medai.platform.reading.review",
        "platform.worklist.filing.receive",
        "services.study_read.read_study",
        "services.nothing_here",
        "medai.core.gone",
        "platform.reading.analysis.no_such_function",
    ]
    assert [r for r in refs if resolve_dotted(r) is False] == [
        "services.nothing_here",
        "medai.core.gone",
        "platform.reading.analysis.no_such_function",
    ]


# --- docs/architecture.md ---------------------------------------------------------------------


def test_architecture_names_only_modules_that_exist():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    assert _stale(backticked(text)) == []
    drawn = [
        ref
        for language, block in fenced_blocks(text)
        if language == "" and not block.startswith("tests/")  # the test tree: below
        for ref in diagram_references(block)
    ]
    assert _stale(drawn, also=TESTS) == []
    for name in ABSENT:
        assert resolve_path(name) is True, f"{name} exists, and the doc says no module is named so"


def test_not_modules_are_still_named_and_no_modules():
    written = ARCHITECTURE.read_text(encoding="utf-8") + "".join(
        p.read_text(encoding="utf-8") for p in SRC.rglob("*.py")
    )
    for name in NOT_MODULES:
        assert name in written, f"{name} is no longer written: drop it from NOT_MODULES"
        assert name not in _modules(), f"{name} is a module now: drop it from NOT_MODULES"


def test_architecture_test_tree_exists():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    tree = next(b for lang, b in fenced_blocks(text) if b.startswith("tests/\n"))
    folders = re.findall(r"^  ((?:[a-z][\w\-]*/)+(?:, [a-z][\w\-]*/)*)\s", tree, flags=re.M)
    assert len(folders) > 20
    missing = [
        f for group in folders for f in group.split(", ") if not (TESTS / f.rstrip("/")).is_dir()
    ]
    assert missing == []
    for name in re.findall(r"\b(test_\w+\.py|conftest\.py)\b", tree):
        assert list(TESTS.rglob(name)), name


def _pyproject_contracts() -> list[dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return config["tool"]["importlinter"]["contracts"]


def _layer(text: str) -> str:
    """One layer as written in the doc or the contract: `a | b`, spaces normalised."""
    return " | ".join(p.strip().strip("`").rstrip("/").removesuffix(".py") for p in text.split("|"))


def _table(markdown: str, header: str) -> list[list[str]]:
    """The rows of the pipe table whose header line starts with `header` (cells stripped)."""
    lines = markdown[markdown.index(header) :].splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
        rows.append([c.strip().replace("\\|", "|") for c in cells])
    return rows


def test_layers_drawn_and_tabulated_are_the_contracts():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    contracts = _pyproject_contracts()
    top = next(c for c in contracts if c["type"] == "layers" and "containers" not in c)
    layers = [_layer(layer) for layer in top["layers"]]

    # the diagram, top to bottom
    layers_section = section(text, "## Layers")
    diagram = fenced_blocks(section(layers_section, "### Between the packages"))[0][1]
    drawn = [
        _layer(m)
        for m in re.findall(r"^(?:\w+)?\s+(medai\.\w+(?:\s*\|\s*medai\.\w+)*)\s", diagram, re.M)
    ]
    assert drawn == layers

    # the contracts table: one row per contract, by name and type
    rows = _table(layers_section, "| contract | type |")
    assert len(rows) == len(contracts)
    for (name, kind, _), contract in zip(rows, contracts, strict=True):
        name = name.strip("`")
        assert contract["name"] == name or (
            name.endswith("…") and contract["name"].startswith(name.rstrip("…").rstrip(": "))
        ), (name, contract["name"])
        assert kind.split(" ")[0] == contract["type"], (name, kind)
    counted = re.search(r"checks (\w+) contracts", layers_section)
    numbers = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
    ]
    assert counted and numbers.index(counted.group(1)) == len(contracts)
    tabulated = rows[contracts.index(top)][2].split(":")[0]
    assert [_layer(p) for p in tabulated.split(" > ")] == layers


def test_platform_layers_table_is_the_contract():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    contract = next(c for c in _pyproject_contracts() if c.get("containers") == ["medai.platform"])
    assert contract["type"] == "layers" and contract["exhaustive"] is True
    assert contract["exhaustive_ignores"] == ["migrations"]  # "`migrations/` … is outside"

    inside = section(text, "### Inside `platform/`")
    documented: list[str] = []
    for layer, folder, *_ in _table(inside, "| layer | folder |"):
        names = [_layer(n) for n in re.findall(r"`([^`]+)`", folder)]
        if " over " in folder:  # `web/` over `api/`: two layers, the first above
            documented += names
        elif not layer:  # a sibling of the row above (`lifecycle | delivery`)
            documented[-1] += " | " + " | ".join(names)
        else:
            documented += names
    assert documented == [_layer(layer) for layer in contract["layers"]]
    assert "`migrations/` (Alembic) is outside the contract" in inside


def test_acyclic_packages_are_the_documented_ones():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    contract = next(c for c in _pyproject_contracts() if c["type"] == "acyclic_siblings")
    sentence = text[text.index("`No import cycles inside these packages` (`acyclic_siblings`)") :]
    sentence = " ".join(sentence[: sentence.index("\n\n")].split())
    named = set(re.findall(r"`(medai\.[\w.]+)`", sentence))
    left_out = {f.rstrip("/") for f in re.findall(r"`(\w+/)`", sentence)}  # "but `web/`"
    assert "every platform folder" in sentence
    platform = {f"medai.platform.{f}" for f in _platform_folders() - {"migrations"} - left_out}
    assert set(contract["ancestors"]) == platform | named


# --- README.md --------------------------------------------------------------------------------


def _without_parentheses(text: str) -> str:
    while re.search(r"\([^()]*\)", text):
        text = re.sub(r"\([^()]*\)", "", text)
    return text


def test_readme_layout_exists():
    text = README.read_text(encoding="utf-8")
    layout = fenced_blocks(section(text, "## Layout"))[0][1]
    entries: list[tuple[str, str]] = []  # (folder, its description)
    for line in layout.splitlines():
        head = re.match(r"^(\S+/)\s+(.*)$", line)
        if head:
            entries.append((head.group(1), head.group(2)))
        elif entries:
            entries[-1] = (entries[-1][0], entries[-1][1] + " " + line.strip())
    assert len(entries) >= 12
    missing = []
    for folder, description in entries:
        base = ROOT / folder
        if not base.is_dir():
            missing.append(folder)
            continue
        # every path it names, parenthesised or not: under the folder, or the repository's
        for path in re.findall(r"(?<![\w./])((?:[a-z_][\w\-]*/)+[\w\-.]*)", description):
            if path.split("/")[0] in REPO_FOLDERS:
                found = (ROOT / path).exists()
            else:
                found = resolve_path(path, under=base)
            if not found:
                missing.append(f"{folder}: {path}")
        # a src/ or docs/ entry lists its modules or pages by name: each is one
        if folder.startswith(("src/medai", "docs/")):
            for item in _without_parentheses(description).split(","):
                item = item.strip().rstrip("/")
                if not re.fullmatch(r"[a-z_][\w]*(\.py)?", item):
                    continue  # prose ("the HTTP kernel: build_app")
                stem = item.removesuffix(".py")
                if not any((base / n).exists() for n in (f"{stem}.py", stem, f"{stem}.md")):
                    missing.append(f"{folder}: {item}")
    assert missing == []


# --- docstrings and comments ------------------------------------------------------------------

# A module path in prose, quoted (``platform.reading.review``) or not: medai's own dotted name,
# or one under a medai package. A name that starts anywhere else (``studies.urgent``: a table's
# column; ``settings.dicom``, ``app.state``: objects) is prose.
_TOP_PACKAGES = "medai|platform|services|core|triage|imaging|reporting|server|cli"
_PROSE_DOTTED = re.compile(rf"(?<![\w.\-/@])((?:{_TOP_PACKAGES})(?:\.[A-Za-z_]\w*)+)(?![\w\-/])")


def docstring_references(source: str) -> list[str]:
    """The dotted module names a module's docstrings and comments state, in order."""
    texts: list[str] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                texts.append(doc)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            texts.append(token.string)
    return [
        ref
        for text in texts
        for ref in _PROSE_DOTTED.findall(text)
        if ref.rsplit(".", 1)[-1] not in FILE_EXTENSIONS
    ]


# Released migrations stay byte for byte as they shipped: their docstrings name the modules of
# their release.
FROZEN = SRC / "platform" / "migrations" / "versions"


def test_docstrings_name_only_modules_that_exist():
    stale = []
    for path in sorted(SRC.rglob("*.py")):
        if path.is_relative_to(FROZEN):
            continue
        rel = path.relative_to(SRC.parent)
        for ref in docstring_references(path.read_text(encoding="utf-8")):
            if ref not in NOT_MODULES and resolve_dotted(ref) is False:
                stale.append(f"{rel}: {ref}")
    assert stale == []


# --- tests beside what they test --------------------------------------------------------------

# Test folders that mirror no package of src/medai, and why.
NOT_MIRRORS = {
    "browser": "the web UI in a browser, across packages",
    "system": "the product as hospital IT runs it, across packages",
    "helpers": "the helpers package the tests share",
    "fixtures": "files the tests read (the previous release's site)",
    "data": "small data files the tests read",
    "hypothesis-examples": "examples hypothesis found, replayed",
    "triage/red_flags/cases": "the red-flag case tables test_cases.py reads",
}


def _test_folders() -> list[Path]:
    return sorted(
        p
        for p in TESTS.rglob("*")
        if p.is_dir() and "__pycache__" not in p.parts and ".hypothesis" not in p.parts
    )


def test_test_folders_mirror_packages():
    unexplained = []
    for folder in _test_folders():
        rel = folder.relative_to(TESTS).as_posix()
        if any(rel == n or rel.startswith(n + "/") for n in NOT_MIRRORS):
            continue
        if not (SRC / rel / "__init__.py").is_file():
            unexplained.append(rel)
    assert unexplained == []
    for name in NOT_MIRRORS:
        assert (TESTS / name).is_dir(), f"tests/{name} is gone: drop it from NOT_MIRRORS"
        assert not (SRC / name / "__init__.py").is_file(), f"tests/{name} mirrors a package now"


def numbered(file_name: str) -> bool:
    """Whether a test file is named after a number (an issue's, an item's), not a subject."""
    parts = Path(file_name).stem.split("_")[1:]
    return any(re.fullmatch(r"(issue|item|bug|case|x|n|no|i|t|v)?\d+", part) for part in parts)


def test_test_files_are_named_for_what_they_test():
    files = [p for p in TESTS.rglob("test_*.py") if not {"fixtures", "helpers"} & set(p.parts)]
    assert len(files) > 100
    # a name is a subject, never an issue's or an item's number (test_x59.py, test_issue67.py)
    assert [p.relative_to(TESTS).as_posix() for p in files if numbered(p.name)] == []
    # "test files have unique names; there is no __init__.py in test folders" (the doc says)
    names = [p.name for p in files]
    assert sorted({n for n in names if names.count(n) > 1}) == []
    inits = [p.relative_to(TESTS).as_posix() for p in TESTS.rglob("__init__.py")]
    assert inits == ["helpers/__init__.py"]


@pytest.mark.parametrize(
    ("name", "is_numbered"),
    [
        ("test_x59.py", True),
        ("test_issue67_sign.py", True),
        ("test_sign_item8.py", True),
        ("test_e5_batching.py", False),
        ("test_blip2_lora.py", False),
        ("test_hl7_orders.py", False),
    ],
)
def test_numbered_names_are_caught(name, is_numbered):
    assert numbered(name) is is_numbered
