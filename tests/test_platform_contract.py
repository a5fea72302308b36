"""The whole API face against its own OpenAPI document (schemathesis): generated requests,
valid and invalid, to every operation, signed in as every role and as nobody, never get a 5xx,
a status the spec does not list, a body that breaks its schema, or an error response without
the security headers.

Operations are driven through schemathesis' strategies directly (its pytest plugin does not
support this pytest version). Bounded: a role the route refuses gets a few examples (each a
quick 401/403), the roles it serves get more."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conftest import make_imaging_model_dir
from medai.platform.accounts import PERMISSIONS
from platform_helpers import bearer, clinic, png_bytes, wait_status

pytestmark = pytest.mark.slow
ROLES = ("admin", "radiologist", "clinician", "patient", None)
USER_OF = {"admin": "admin", "radiologist": "rad1", "clinician": "clin", "patient": "pat1"}
# signing out would end the token the other examples use; it has its own tests
NOT_FUZZED = {"POST /api/v1/auth/logout"}
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "cache-control")


@pytest.fixture(scope="module")
def env(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    root = tmp_path_factory.mktemp("contract")
    mri = make_imaging_model_dir(root / "mri", labels=("Glioma", "Meningioma", "Pituitary",
                                                       "No_Tumor"), task="mri")
    with clinic("sqlite", root / "home", tfidf_model_dir, tiny_imaging_dir,
                mri_model=str(mri)) as (app, client):
        tokens = {role: bearer(client, name) for role, name in USER_OF.items()}
        sid = client.post("/api/v1/studies", headers=tokens["radiologist"],
                          data={"task": "cxr"},
                          files={"file": ("x.png", png_bytes(9), "image/png")}).json()["id"]
        wait_status(client, tokens["radiologist"], sid, {"ai_drafted"})
        tokens[None] = {}
        yield schemathesis.openapi.from_asgi("/openapi.json", app), tokens


def _operations() -> list[str]:
    import os
    import tempfile

    from medai.platform.api.app import create_platform_app

    os.environ.setdefault("MEDAI_HOME", tempfile.mkdtemp())
    app = create_platform_app(database_url="sqlite://", preload=False, job_threads=0)
    return sorted(f"{method.upper()} {path}" for path, ops in app.openapi()["paths"].items()
                  for method in ops if f"{method.upper()} {path}" not in NOT_FUZZED)


def _examples(label: str, role: str | None) -> int:
    """More examples where the role is served; a refused role's answers are all alike."""
    import test_platform_access as access

    method, path = label.split(" ", 1)
    who = access.TABLE.get((method, path), set())
    served = who in (access.PUBLIC, access.KIOSK) or (
        role is not None and (who == access.SIGNED_IN or role in who))
    return 25 if served else 4


def _security_headers(response, case) -> None:
    if response.status_code >= 400:
        missing = [h for h in SECURITY_HEADERS if h not in response.headers]
        assert not missing, f"{response.status_code} lacks {missing}"
        cache = response.headers["cache-control"]
        assert (cache[0] if isinstance(cache, list) else cache) == "no-store"
        body = response.json()
        assert isinstance(body.get("detail"), str) and isinstance(body.get("code"), str)


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r or "anonymous")
@pytest.mark.parametrize("label", _operations())
def test_operation_matches_its_openapi(env, label, role):
    schema, tokens = env
    operation = next(r.ok() for r in schema.get_all_operations() if r.ok().label == label)

    @given(case=operation.as_strategy())
    @settings(max_examples=_examples(label, role), deadline=None, derandomize=True,
              database=None, suppress_health_check=list(HealthCheck))
    def run(case):
        case.headers = {**(case.headers or {}), **tokens[role]}
        # a schema-valid request may still be refused on content (random bytes are not an
        # image, a control-character complaint has no words): a 4xx, never a 5xx
        response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
        _security_headers(response, case)

    run()


def test_every_route_is_served_once():
    """One face: no path and method is served by two routes (the kernel serves none)."""
    import os
    import tempfile

    from medai.platform.api.app import create_platform_app

    os.environ.setdefault("MEDAI_HOME", tempfile.mkdtemp())
    app = create_platform_app(database_url="sqlite://", preload=False, job_threads=0)
    ids = [op["operationId"] for ops in app.openapi()["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert set(PERMISSIONS)  # the role table exists for the route table test to read
