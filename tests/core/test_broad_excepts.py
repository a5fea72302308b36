"""Every broad handler says why it is broad: an ``except Exception``, ``except BaseException``
(alone or in a tuple) or a bare ``except:`` in ``src/medai`` carries, on its own line, a
``# broad:`` comment with a reason (a boundary that must never crash, a cleanup that
re-raises, a third-party decoder on untrusted data). Any other handler names the exceptions it
expects. The frozen migrations and the sealed red-flag engine are not read."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import medai

SRC = Path(medai.__file__).parent
SKIPPED = ("platform/migrations/versions/", "triage/red_flags/")
BROAD = {"Exception", "BaseException"}
REASON = re.compile(r"#\s*broad:\s*\S")


def _names(node: ast.expr | None) -> set[str]:
    if node is None:
        return {"<bare>"}
    if isinstance(node, ast.Tuple):
        return set().union(*(_names(e) for e in node.elts))
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, ast.Attribute):  # builtins.Exception
        return {node.attr}
    return set()


def _comments(source: str) -> dict[int, str]:
    """Line number -> the comment on that line (tokenize: a ``# broad:`` inside a string is
    not one)."""
    out: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string
    return out


def unexplained(source: str) -> list[int]:
    """The lines of the broad handlers in ``source`` whose ``except`` line has no
    ``# broad:`` reason."""
    comments = _comments(source)
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ExceptHandler):
            continue
        if not _names(node.type) & (BROAD | {"<bare>"}):
            continue
        if not REASON.search(comments.get(node.lineno, "")):
            lines.append(node.lineno)
    return sorted(lines)


def _sources() -> list[Path]:
    return [
        path
        for path in sorted(SRC.rglob("*.py"))
        if not any(part in path.relative_to(SRC).as_posix() for part in SKIPPED)
    ]


def test_the_check_finds_an_unexplained_broad_handler_and_passes_an_explained_one():
    sample = (
        "try:\n"
        "    f()\n"
        "except Exception:\n"  # 3: no reason
        "    pass\n"
        "try:\n"
        "    f()\n"
        "except BaseException:  # cleanup\n"  # 7: a comment, but not a broad: reason
        "    raise\n"
        "try:\n"
        "    f()\n"
        "except:\n"  # 11: bare
        "    pass\n"
        "try:\n"
        "    f()\n"
        "except (ValueError, Exception) as exc:  # broad:\n"  # 15: broad: without a reason
        "    pass\n"
        "try:\n"
        "    f()\n"
        "except Exception:  # broad: a listener thread never dies (logged)\n"  # 19: explained
        "    pass\n"
        "try:\n"
        "    f()\n"
        "except builtins.Exception:\n"  # 23: spelled through builtins
        "    x = '# broad: not a comment'\n"
        "try:\n"
        "    f()\n"
        "except (OSError, ValueError):\n"  # 27: narrow: nothing to say
        "    pass\n"
        "try:\n"
        "    f()\n"
        "except* Exception:  # broad: an exception group's members, any type\n"  # 31
        "    pass\n"
    )
    assert unexplained(sample) == [3, 7, 11, 15, 23]


def test_every_broad_handler_in_the_source_says_why():
    sources = _sources()
    assert len(sources) > 100  # the walk found the package
    found = [
        f"{path.relative_to(SRC.parent)}:{line}"
        for path in sources
        for line in unexplained(path.read_text(encoding="utf-8"))
    ]
    assert not found, (
        "a broad handler without a `# broad: <why>` comment on its except line "
        "(narrow it to the exceptions the body raises, or say why it must be broad):\n"
        + "\n".join(found)
    )
