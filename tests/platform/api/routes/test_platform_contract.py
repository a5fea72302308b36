"""The whole API face against its own OpenAPI document (schemathesis, every one of its checks):
generated requests to every operation, signed in as every role and as nobody. Requests the
document allows are served (never a 5xx, a status the document does not list, a body that
breaks its schema, a header it does not name, an error without the security headers); requests
it excludes (a wrong type, a control character, an out-of-range value) are refused.

Operations are driven through schemathesis' strategies directly (its pytest plugin does not
support this pytest version). Bounded: a role the route refuses gets a few examples (each a
quick 401/403), the roles it serves get more, and invalid requests are sent as the roles it
serves. Uploaded files are real PNG radiographs (the document says PNG, JPEG or DICOM)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CHECKS, is_check_class, load_all_checks
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from helpers.builders import make_imaging_model_dir
from helpers.platform import bearer, clinic, png_bytes, wait_status
from medai.platform.access.roles import PERMISSIONS

pytestmark = pytest.mark.slow
ROLES = ("admin", "radiologist", "clinician", "patient", None)
USER_OF = {"admin": "admin", "radiologist": "rad1", "clinician": "clin", "patient": "pat1"}
# signing out would end the token the other examples use; it has its own tests
NOT_FUZZED = {"POST /api/v1/auth/logout"}
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "cache-control")
# what a route checks beyond any schema, refused 422 without field errors (``errors``): the
# words of a complaint, the labels a served model or a study's task knows, a draft's findings,
# a type to re-analyse a study as that is its own or served by no model, a report template's
# task, result, name and placeholders.
# Every other check runs on them too, and a field error still fails. STOW-RS's body carries
# its boundary in the Content-Type, which schemathesis cannot send (400/415, both listed).
# An upload's Idempotency-Key sent again with another file or fields is 422 (a generated key
# repeats across examples).
CONTENT_CHECKED = {
    "POST /api/v1/studies",
    "POST /api/v1/triage",
    "POST /api/v1/imaging/{task}/heatmap",
    "GET /api/v1/studies/{study_id}/heatmap",
    "POST /api/v1/reports/draft",
    "POST /api/v1/studies/{study_id}/labels/suggest",
    "POST /api/v1/studies/{study_id}/report/sign",
    "POST /api/v1/studies/{study_id}/reanalyse",
    "POST /api/v1/dicomweb/studies",
    "POST /api/v1/admin/report-templates",
    # the folder must exist in MEDAI_MODELS_DIR; a retrain's task must be an imaging task
    "POST /api/v1/models/registry",
    "POST /api/v1/models/jobs",
}
STOW = 'multipart/related; type="application/dicom"'
schemathesis.serializer.alias(STOW, "application/octet-stream")
POSITIVE, NEGATIVE = 25, 10  # examples per operation and role served (a refused role: 4)
schemathesis.openapi.media_type("image/png", st.sampled_from([png_bytes(i) for i in range(3)]))


def all_checks() -> list:
    """Every check schemathesis has (the stateful ones pass where no history applies)."""
    load_all_checks()
    return [check for check in CHECKS.get_all() if not is_check_class(check)]


@pytest.fixture(scope="module")
def env(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    root = tmp_path_factory.mktemp("contract")
    mri = make_imaging_model_dir(
        root / "mri", labels=("Glioma", "Meningioma", "Pituitary", "No_Tumor"), task="mri"
    )
    with clinic(
        "sqlite", root / "home", tfidf_model_dir, tiny_imaging_dir, models={"mri": str(mri)}
    ) as (
        app,
        client,
    ):
        tokens = {role: bearer(client, name) for role, name in USER_OF.items()}
        sid = client.post(
            "/api/v1/studies",
            headers=tokens["radiologist"],
            data={"task": "cxr"},
            files={"file": ("x.png", png_bytes(9), "image/png")},
        ).json()["id"]
        wait_status(client, tokens["radiologist"], sid, {"ai_drafted"})
        tokens[None] = {}
        yield schemathesis.openapi.from_asgi("/openapi.json", app), tokens, client


def test_the_document_excludes_what_the_server_refuses(env):
    """Issue 45: control characters, a bare number as a date-time, an empty ``lang`` and
    PATCH on ``/users/pending`` were refused (or served) against what the document said.
    First in the module: the fuzzing after it throttles sign-ins."""
    import re

    from medai.server.inputs import NO_CONTROL_PATTERN

    _schema, tokens, client = env
    spec = client.get("/openapi.json").json()
    parts = spec["components"]["schemas"]
    params = {
        (p["in"], p["name"]): p["schema"]
        for p in spec["paths"]["/api/v1/audit"]["get"]["parameters"]
    }
    upload = parts["Body_upload_study_api_v1_studies_post"]["properties"]
    for text in (
        parts["TriageRequest"]["properties"]["text"],
        parts["LoginIn"]["properties"]["username"],
        params["query", "target_id"]["anyOf"][0],
        upload["clinical_question"]["anyOf"][0],
        spec["paths"]["/api/v1/users/{username}"]["patch"]["parameters"][0]["schema"],
    ):
        assert text["pattern"] == NO_CONTROL_PATTERN
    assert re.search(NO_CONTROL_PATTERN, "tab\tand line\nfeed ç")
    assert not re.search(NO_CONTROL_PATTERN, "nul\x00")
    assert not re.search(NO_CONTROL_PATTERN, "del\x7f")
    form = spec["paths"]["/api/v1/studies"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert "image/png" in form["encoding"]["file"]["contentType"]

    admin, rad = tokens["admin"], tokens["radiologist"]
    for until, status in (
        ("0.5", 422),
        ("2026-05-01T08:00:00", 422),
        ("2026-05-01", 422),
        ("2026-05-01T08:00:00Z", 200),
        ("9999-12-31T23:59:59-23:59", 200),
        ("0001-01-01T00:00:00+23:59", 200),
    ):
        r = client.get("/api/v1/audit", headers=admin, params={"until": until, "limit": 1})
        assert r.status_code == status, (until, r.text)

    def upload_with(**fields):
        return client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "cxr", **fields},
            files={"file": ("x.png", png_bytes(5), "image/png")},
        )

    for field in ("lang", "task", "patient_ref"):
        r = upload_with(**{field: ""})
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", field]
    assert upload_with().status_code in (200, 201)

    for method in ("OPTIONS", "PATCH", "DELETE"):
        r = client.request(method, "/api/v1/users/pending", headers=admin, json={"role": "admin"})
        assert r.status_code == 405 and r.headers["allow"] == "GET", (method, r.text)
        assert r.json()["code"] == "method_not_allowed"
    r = client.patch("/api/v1/users/nobody-here", headers=admin, json={"role": "clinician"})
    assert r.status_code == 404  # a templated path is still served
    r = client.options("/api/v1/users/someone", headers=admin)
    assert r.status_code == 405 and r.headers["allow"] == "PATCH"


def _operations() -> list[str]:
    import os
    import tempfile

    from medai.platform.app import create_platform_app

    os.environ.setdefault("MEDAI_HOME", tempfile.mkdtemp())
    app = create_platform_app(database_url="sqlite://", preload=False, job_threads=0)
    return sorted(
        f"{method.upper()} {path}"
        for path, ops in app.openapi()["paths"].items()
        for method in ops
        if f"{method.upper()} {path}" not in NOT_FUZZED
    )


def _served(label: str, role: str | None) -> bool:
    import importlib
    import sys

    from helpers.paths import TESTS

    # the route table's own module (tests/platform/access/), also when this file runs alone
    if str(TESTS / "platform" / "access") not in sys.path:
        sys.path.append(str(TESTS / "platform" / "access"))
    access = importlib.import_module("test_platform_access")

    method, path = label.split(" ", 1)
    who = access.TABLE.get((method, path), set())
    return who in (access.PUBLIC, access.KIOSK) or (
        role is not None and (who == access.SIGNED_IN or role in who)
    )


def _examples(label: str, role: str | None) -> int:
    """More examples where the role is served; a refused role's answers are all alike."""
    return POSITIVE if _served(label, role) else 4


def _spares_the_fuzzers(case) -> bool:
    """A generated user name may be one of the accounts the examples run as ("admin" is in
    the document's role enum): resetting, disabling or demoting it would sign every later
    example out, as logging out would."""
    return (case.path_parameters or {}).get("username") not in USER_OF.values()


def _refused_on_content(response, case) -> None:
    """A schema-valid request refused 422 is a route's content check (no field ``errors``),
    never a field the document allows."""
    if response.status_code == 422:
        assert "errors" not in response.json(), response.text


def _sent_as_valid_text(case) -> bool:
    """Whether an invalid form value became a valid one on the wire: a form sends every value
    as text (``false`` and ``5`` are strings there), as schemathesis itself allows for path
    and query values. Such a case tests nothing and is not sent."""
    import jsonschema_rs

    if case.media_type != "multipart/form-data" or not isinstance(case.body, dict):
        return False
    body = case.operation.get_body_for_media_type(case.media_type)
    wire = {
        k: "file"
        if isinstance(v, bytes) or hasattr(v, "data")
        else (
            "true" if v is True else "false" if v is False else v if isinstance(v, str) else str(v)
        )
        for k, v in case.body.items()
        if not isinstance(v, list | dict) and v is not None
    }
    return jsonschema_rs.validator_for(body.optimized_schema).is_valid(wire)


def _security_headers(response, case) -> None:
    if response.status_code >= 400:
        missing = [h for h in SECURITY_HEADERS if h not in response.headers]
        assert not missing, f"{response.status_code} lacks {missing}"
        cache = response.headers["cache-control"]
        assert (cache[0] if isinstance(cache, list) else cache) == "no-store"
        body = response.json()
        assert isinstance(body.get("detail"), str) and isinstance(body.get("code"), str)


def _operation(schema, label: str):
    return next(r.ok() for r in schema.get_all_operations() if r.ok().label == label)


def _checks(label: str) -> tuple[list, list]:
    """The checks to run, and a test's own, for ``label``."""
    if label in CONTENT_CHECKED:
        return [c for c in all_checks() if c is not positive_data_acceptance], [_refused_on_content]
    return all_checks(), []


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r or "anonymous")
@pytest.mark.parametrize("label", _operations())
def test_operation_matches_its_openapi(env, label, role):
    schema, tokens, _client = env
    checks, own = _checks(label)

    @given(case=_operation(schema, label).as_strategy())
    @settings(
        max_examples=_examples(label, role),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        assume(_spares_the_fuzzers(case))
        case.headers = {**(case.headers or {}), **tokens[role]}
        response = case.call_and_validate(checks=checks)
        for check in own:
            check(response, case)
        _security_headers(response, case)

    run()


@pytest.mark.parametrize("role", [r for r in ROLES if r], ids=str)
@pytest.mark.parametrize("label", _operations())
def test_operation_refuses_what_its_openapi_excludes(env, label, role):
    """Invalid requests (negative data) as a role the route serves: refused, with a status
    the document lists (a role it refuses has nothing to validate)."""
    if not _served(label, role):
        pytest.skip("the route refuses this role before reading the request")
    schema, tokens, _client = env

    @given(case=_operation(schema, label).as_strategy(generation_mode=GenerationMode.NEGATIVE))
    @settings(
        max_examples=NEGATIVE,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        assume(_spares_the_fuzzers(case) and not _sent_as_valid_text(case))
        case.headers = {**(case.headers or {}), **tokens[role]}
        response = case.call_and_validate(checks=all_checks())
        _security_headers(response, case)

    try:
        run()
    except Unsatisfiable:  # no parameter, no fields (at most raw bytes): nothing is invalid
        operation = _operation(schema, label)
        assert not list(operation.iter_parameters()), label
        assert not {"application/json", "multipart/form-data"} & set(
            operation.get_request_payload_content_types()
        ), label


def test_every_check_of_schemathesis_runs():
    """No check is left out of the fuzzing (a newer schemathesis's new ones included)."""
    names = {c.__name__ for c in all_checks()}
    assert {
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "positive_data_acceptance",
        "unsupported_method",
        "allow_header_conformance",
        "missing_required_header",
        "ignored_auth",
    } <= names


def test_every_route_is_served_once():
    """One face: no path and method is served by two routes (the kernel serves none)."""
    import os
    import tempfile

    from medai.platform.app import create_platform_app

    os.environ.setdefault("MEDAI_HOME", tempfile.mkdtemp())
    app = create_platform_app(database_url="sqlite://", preload=False, job_threads=0)
    ids = [op["operationId"] for ops in app.openapi()["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert set(PERMISSIONS)  # the role table exists for the route table test to read
