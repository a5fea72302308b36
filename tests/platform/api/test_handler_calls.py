"""One domain call per API handler, or docs/architecture.md says why not.

A route handler (a function of ``platform/api/routes/*.py`` decorated ``@router.get`` / ``post``
/ …) is counted for its distinct calls to the names its module imports from the platform's
modules (``medai.platform.*`` but the faces ``api`` and ``web``, and ``context``) and from
``medai.services``: ``mod.f(...)``, ``f(...)``, and such a function handed to another as an
argument (``run_in_threadpool(mod.f, ...)``), nested closures included. A class (``Study(...)``)
or a constant is no call. A handler that makes three or more must be named in the list under
"One domain call per route handler" in docs/architecture.md (`` `file.py` `handler` ``, or the
handler in backticks), and a handler named there as `` `file.py` `handler` `` must still make
three or more. Static reads only (ast): nothing of medai is imported."""

from __future__ import annotations

import ast
import re

from helpers.paths import ROOT, SRC

ROUTES = SRC / "platform" / "api" / "routes"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
MARKER = "One domain call per route handler"
DOMAIN = ("medai.platform.", "medai.services")
NOT_DOMAIN = ("medai.platform.api", "medai.platform.web", "medai.platform.context")
VERBS = {"get", "post", "put", "patch", "delete", "api_route"}
MOST = 2


def _domain(module: str) -> bool:
    return module.startswith(DOMAIN) and not module.startswith(NOT_DOMAIN)


def domain_names(tree: ast.Module) -> set[str]:
    """The names a module binds to the platform's modules and the services (``import`` or
    ``from … import``, ``as`` included)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and _domain(node.module):
            names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.asname or a.name.split(".")[0] for a in node.names if _domain(a.name)}
    return names


def _called(node: ast.expr, names: set[str]) -> str | None:
    """``mod.f`` or ``f`` when ``node`` names a domain function: not a class, a class's
    attribute (``Study.id``) or a constant (``MAX``, ``mod.MAX``)."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        parts = [node.value.id, node.attr]
    elif isinstance(node, ast.Name):
        parts = [node.id]
    else:
        return None
    if parts[0] not in names or any(p[:1].isupper() for p in parts):
        return None
    return ".".join(parts)


def domain_calls(fn: ast.FunctionDef | ast.AsyncFunctionDef, names: set[str]) -> set[str]:
    calls: set[str] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            for target in (node.func, *node.args):
                if (name := _called(target, names)) is not None:
                    calls.add(name)
    return calls


def _routed(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(
        isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr in VERBS
        for d in fn.decorator_list
    )


def handlers(source: str) -> dict[str, set[str]]:
    """Each route handler of a module's source -> its distinct domain calls."""
    tree = ast.parse(source)
    names = domain_names(tree)
    return {
        fn.name: domain_calls(fn, names)
        for fn in tree.body
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) and _routed(fn)
    }


def counted() -> dict[tuple[str, str], set[str]]:
    """(file, handler) -> domain calls, for every route handler of the API."""
    return {
        (path.name, name): calls
        for path in sorted(ROUTES.glob("*.py"))
        for name, calls in handlers(path.read_text(encoding="utf-8")).items()
    }


def docs_list(markdown: str) -> str:
    """The paragraph (and its list) that names the handlers making more than one call."""
    start = markdown.index(MARKER)
    end = markdown.find("\n\n", start)
    return markdown[start : end if end != -1 else len(markdown)]


SAMPLE = """
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from medai.platform.access import audit
from medai.platform.api.deps import platform_of
from medai.platform.records.tables import Study
from medai.platform.worklist import listing as lst
from medai.platform.reading.review import sign
import medai.services.reports
router = APIRouter()

@router.get("/a")
def one(request):
    with platform_of(request).db.session() as db:
        study = db.scalar(select(Study).where(Study.id == 1).order_by(Study.created_at))
        return lst.as_dict(db, study), lst.as_dict(db, study, lst.MAX)

@router.post("/b")
async def three(request):
    def run():
        sign(1)
        audit.record(None, "x", "view")
    await run_in_threadpool(lst.worklist_page, 1)
    return await run_in_threadpool(run)

def helper(db):
    audit.record(db, "x", "view")
    sign(2)
    lst.as_dict(db, None)

@router.delete("/c")
def none(request):
    helper(None)
    return medai.services.reports.anything
"""


def test_the_counter_on_a_sample():
    got = handlers(SAMPLE)
    # a class (Study) and its attributes, a constant (lst.MAX), a face's function
    # (platform_of) and a local helper are no domain calls; the same call twice is one; a function handed to the thread pool is
    # one, and so is a call in a nested closure
    assert got == {
        "one": {"lst.as_dict"},
        "three": {"sign", "audit.record", "lst.worklist_page"},
        "none": set(),
    }
    assert "helper" not in got  # not a route


def test_docs_list_is_read_from_its_paragraph():
    text = f"intro `elsewhere`\n\n{MARKER} is the rule:\n- `a.py` `named` (three)\n\nafter `gone`\n"
    block = docs_list(text)
    assert "`named`" in block and "`elsewhere`" not in block and "`gone`" not in block


def test_every_handler_with_three_or_more_domain_calls_is_named_in_the_docs():
    block = docs_list(ARCHITECTURE.read_text(encoding="utf-8"))
    table = counted()
    assert len(table) > 50, "the routes were not found"
    unnamed = [
        f"{file} {name}: {len(calls)} domain calls ({', '.join(sorted(calls))})"
        for (file, name), calls in sorted(table.items())
        if len(calls) > MOST and f"`{name}`" not in block
    ]
    assert unnamed == [], (
        "these handlers make three or more domain calls: fold them into one domain function of "
        f"their use case, or name them with why in docs/architecture.md ({MARKER!r}):\n"
        + "\n".join(unnamed)
    )
    stale = [
        f"{file} {name}"
        for file, name in re.findall(r"`(\w+\.py)` `(\w+)`", block)
        if (ROUTES / file).is_file() and len(table.get((file, name), set())) <= MOST
    ]
    assert stale == [], f"named in docs/architecture.md but no longer three or more: {stale}"
