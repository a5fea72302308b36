"""One error vocabulary (``medai.core.errors``): every code the source raises or sends is in
the one table, the table documents ``ErrorOut.code``, the kernel's one handler answers a
``MedaiError`` with its own status, code and headers (an unmapped one stays the plain 500),
and the CLI's ``--json`` errors carry the same ``code``."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import medai
from medai.core.errors import CODES, MedaiError, codes_doc, statuses

SRC = Path(medai.__file__).parent
# classes whose code is given per instance, as their first argument
PER_INSTANCE = {
    "BackupError": 1,
    "PgToolError": 1,
    "OutboxError": 0,
    "ConflictError": 0,
    "NothingToSend": 0,
    "StorageFault": 0,
}


def _text(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _raised_codes() -> dict[str, set[str]]:
    """code -> where: ``ApiError(status, "code", …)`` literals (with their status), class
    ``code = "…"`` (and ``status, code = …``), ``x.code = "…"``, ``code="…"`` keywords, a
    per-instance class's code argument, and the ``"code": "…"`` of the server's hand-written
    answers (``send_json`` in ``medai.server``)."""
    found: dict[str, set[str]] = {}

    def add(code: str | None, where: str) -> None:
        if code is not None:
            found.setdefault(code, set()).add(where)

    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", "")
                if name == "ApiError" and len(node.args) >= 2:
                    add(_text(node.args[1]), where)
                if name in PER_INSTANCE and len(node.args) > PER_INSTANCE[name]:
                    add(_text(node.args[PER_INSTANCE[name]]), where)
                for kw in node.keywords:
                    if kw.arg == "code" and name not in ("Verdict",):
                        add(_text(kw.value), where)
            elif isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    if not isinstance(stmt, ast.Assign):
                        continue
                    for target in stmt.targets:
                        if isinstance(target, ast.Name) and target.id == "code":
                            add(_text(stmt.value), where)
                        if isinstance(target, ast.Tuple) and isinstance(stmt.value, ast.Tuple):
                            for t, v in zip(target.elts, stmt.value.elts, strict=False):
                                if isinstance(t, ast.Name) and t.id == "code":
                                    add(_text(v), where)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Attribute) and target.attr == "code":
                        add(_text(node.value), where)
            elif isinstance(node, ast.Dict) and rel.startswith("server/"):
                for k, v in zip(node.keys, node.values, strict=False):
                    if k is not None and _text(k) == "code":
                        add(_text(v), where)
    return found


def _api_error_statuses() -> list[tuple[int, str, str]]:
    out = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and (getattr(node.func, "id", None) or getattr(node.func, "attr", "")) == "ApiError"
                and len(node.args) >= 2
                and isinstance(node.args[0], ast.Constant)
                and _text(node.args[1])
            ):
                out.append((node.args[0].value, node.args[1].value, f"{rel}:{node.lineno}"))
    return out


def _all_classes() -> list[type[BaseException]]:
    for info in pkgutil.walk_packages(medai.__path__, "medai."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    seen, todo = [], [MedaiError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("medai.") and sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return seen


def test_every_code_raised_or_sent_is_in_the_table():
    found = _raised_codes()
    assert {"weak_password", "kiosk_revoked", "invalid_idempotency_key", "internal"} <= set(found)
    missing = {code: sorted(where) for code, where in found.items() if code not in CODES}
    assert not missing


def test_every_api_error_literal_is_sent_with_a_status_of_its_code():
    wrong = [
        (status, code, where)
        for status, code, where in _api_error_statuses()
        if status not in statuses(code)
    ]
    assert not wrong


def test_every_exception_class_is_a_medai_error_with_a_known_code_and_its_old_base():
    classes = _all_classes()
    assert len(classes) > 70
    for cls in classes:
        assert cls.code in CODES, cls
    for module, name in _all_medai_exception_names():
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, MedaiError), f"{module}.{name}"
    from medai.core.checkpoint import CheckpointSpaceError
    from medai.core.faults import StorageMissing
    from medai.platform.access.account_errors import AccountError
    from medai.platform.reading.chat import NotYours
    from medai.services.runtime import Overloaded
    from medai.triage.departments import UnknownLabelError

    assert issubclass(AccountError, ValueError) and issubclass(Overloaded, RuntimeError)
    assert issubclass(NotYours, LookupError) and issubclass(StorageMissing, FileNotFoundError)
    assert issubclass(CheckpointSpaceError, OSError) and str(UnknownLabelError("x")) == "'x'"
    with pytest.raises(TypeError, match=r"not in medai\.core\.errors\.CODES"):
        type("Typo", (MedaiError,), {"code": "no_such_code"})


def _all_medai_exception_names() -> list[tuple[str, str]]:
    out = []
    for info in pkgutil.walk_packages(medai.__path__, "medai."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == info.name
            ):
                out.append((info.name, name))
    return out


def test_a_status_comes_from_the_class_and_per_instance_codes_from_the_table():
    from medai.platform.delivery.outbox import OutboxError
    from medai.platform.dicom.identity_conflicts import ConflictError
    from medai.platform.lifecycle.model_registry import LifecycleError, PromotionRefused

    assert [ConflictError(c, "x").status for c in ("not_found", "invalid", "conflict")] == [
        404,
        422,
        409,
    ]
    assert [OutboxError(c, "x").status for c in ("not_found", "conflict")] == [404, 409]
    refused, bare = PromotionRefused("x"), LifecycleError("x")
    refused.code = bare.code = "no_site_set"
    assert (refused.status, bare.status) == (409, 422)  # the code does not choose the status
    assert MedaiError("x", code="conflict", status=409).status == 409


def test_the_openapi_error_docs_come_from_the_table():
    from medai.platform.app import create_platform_app

    doc = create_platform_app(database_url="sqlite://", preload=False, job_threads=0).openapi()
    text = doc["components"]["schemas"]["ErrorOut"]["properties"]["code"]["description"]
    assert text == codes_doc()
    for code in CODES:
        assert f"`{code}`" in text, code
    assert doc["components"]["schemas"]["ErrorOut"]["properties"]["code"]["type"] == "string"


class _Refused(MedaiError, ValueError):
    status, code = 409, "conflict"


class _Busy(MedaiError, RuntimeError):
    status, code = 503, "overloaded"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "7"}


class _NoAnswer(MedaiError, ValueError):
    code = "invalid"


@pytest.fixture(scope="module")
def kernel():
    from medai.core.faults import StorageMissing
    from medai.platform.access.account_errors import WeakPassword
    from medai.platform.access.kiosks import AnonymousQuotaExhausted, QuotaExhausted
    from medai.platform.access.passwords import Verdict
    from medai.server.kernel import Face, build_app

    app = build_app(Face(), preload=False)
    raised = {
        "refused": lambda: _Refused("version 3 is no longer current"),
        "busy": lambda: _Busy("every slot is busy"),
        "unmapped": lambda: _NoAnswer("Ayşe Yılmaz's complaint is invalid"),
        "plain": lambda: ValueError("Ayşe Yılmaz"),
        "weak": lambda: WeakPassword(Verdict(False, "too_short")),
        "missing": lambda: StorageMissing("/home/blobs/ab/cd"),
        "quota": lambda: QuotaExhausted(5, 100, "Europe/Istanbul"),
        "anonymous": lambda: AnonymousQuotaExhausted(3, 50, "Europe/Istanbul"),
    }
    for name, make in raised.items():

        def route(make=make):
            raise make()

        app.add_api_route(f"/raise/{name}", route, methods=["GET"])
    return TestClient(app, base_url="http://localhost", raise_server_exceptions=False)


def test_a_medai_error_raised_in_a_route_answers_with_its_status_code_and_headers(kernel):
    r = kernel.get("/raise/refused")
    assert r.status_code == 409
    assert r.json() == {"detail": "version 3 is no longer current", "code": "conflict"}
    r = kernel.get("/raise/busy")
    assert (r.status_code, r.json()["code"], r.headers["Retry-After"]) == (503, "overloaded", "7")
    r = kernel.get("/raise/weak")
    body = r.json()
    assert r.status_code == 422 and body["code"] == "weak_password"
    assert body["errors"] == [
        {"loc": ["body", "password"], "msg": body["detail"], "type": "too_short"}
    ]
    r = kernel.get("/raise/missing")  # a storage fault: its own answer, never the path
    assert (r.status_code, r.json()["code"], r.headers["Retry-After"]) == (
        503,
        "storage_missing",
        "60",
    )
    assert "/home/blobs" not in r.text
    r = kernel.get("/raise/quota")
    assert (r.status_code, r.json()["code"], r.headers["Retry-After"]) == (
        429,
        "kiosk_quota_exhausted",
        "100",
    )
    assert r.json()["detail"] == (
        "this kiosk's 5 triage requests for today are used up; it starts again at midnight "
        "(Europe/Istanbul). Please ask at the desk."
    )
    r = kernel.get("/raise/anonymous")
    assert (r.status_code, r.json()["code"], r.headers["Retry-After"]) == (429, "throttled", "50")
    assert r.json()["detail"].startswith("anonymous triage allows 3 complaints a day")


@pytest.mark.parametrize("name", ["unmapped", "plain"])
def test_an_error_without_a_status_stays_the_plain_500_without_its_message(kernel, name):
    r = kernel.get(f"/raise/{name}")
    assert r.status_code == 500
    assert r.json() == {
        "detail": "internal error; the request was not processed",
        "code": "internal",
    }
    assert "Ayşe" not in r.text


def _json(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_cli_json_errors_carry_the_code_beside_the_unchanged_error_type(tfidf_model_dir):
    from medai.cli import app

    r = CliRunner().invoke(
        app, ["triage", "predict", "--model", str(tfidf_model_dir), "", "--json"]
    )
    assert r.exit_code == 2, r.output
    assert {k: _json(r)[k] for k in ("error_type", "code")} == {
        "error_type": "TextInputError",
        "code": "invalid",
    }


def test_cli_fail_and_error_give_the_table_code(capsys):
    from medai.cli.common import _error, _fail
    from medai.platform.access.kiosks import KioskConflict

    with pytest.raises(typer.Exit) as done:
        _fail(KioskConflict("a kiosk of this name exists"), True, error_type="ValueError")
    assert done.value.exit_code == 2
    assert json.loads(capsys.readouterr().out) == {
        "error": "a kiosk of this name exists",
        "error_type": "ValueError",
        "code": "conflict",
    }
    with pytest.raises(typer.Exit):
        _fail(RuntimeError("boom"), True)
    assert json.loads(capsys.readouterr().out)["code"] == "internal"
    with pytest.raises(typer.Exit):
        _error("no such model", "model_refused", True, 2)
    assert json.loads(capsys.readouterr().out)["code"] == "model_refused"
    with pytest.raises(typer.Exit):
        _error("bad task", "TaskError", True, 2)
    assert json.loads(capsys.readouterr().out) == {
        "error": "bad task",
        "error_type": "TaskError",
        "code": "invalid",
    }
