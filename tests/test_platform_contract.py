"""The platform API against its own OpenAPI document (schemathesis), signed in: generated
requests, valid and invalid, to every platform operation never get a 5xx, a status the spec
does not list, or a body that breaks its schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from platform_helpers import bearer, clinic, png_bytes, wait_status

pytestmark = pytest.mark.slow
# the job routes (triage, imaging, reports) and health are fuzzed in test_api_contract.py
SKIP_PREFIXES = ("/api/v1/health", "/api/v1/imaging", "/api/v1/reports/draft")
ROLE_FOR = {"/api/v1/users": "admin", "/api/v1/models": "admin", "/api/v1/audit": "admin",
            "/api/v1/admin/kiosks": "admin"}


@pytest.fixture(scope="module")
def env(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    with clinic("sqlite", tmp_path_factory.mktemp("contract"), tfidf_model_dir,
                tiny_imaging_dir) as (app, client):
        rad = bearer(client, "rad1")
        sid = client.post("/api/v1/studies", headers=rad, data={"task": "cxr"},
                          files={"file": ("x.png", png_bytes(9), "image/png")}).json()["id"]
        wait_status(client, rad, sid, {"ai_drafted"})
        tokens = {"rad1": rad, "admin": bearer(client, "admin")}
        yield schemathesis.openapi.from_asgi("/openapi.json", app), tokens


def _operations():
    import os
    import tempfile

    from medai.platform.api.app import create_platform_app

    os.environ.setdefault("MEDAI_HOME", tempfile.mkdtemp())
    app = create_platform_app(database_url="sqlite://", preload=False, job_threads=0)
    return sorted(f"{method.upper()} {path}" for path, ops in app.openapi()["paths"].items()
                  for method in ops if not path.startswith(SKIP_PREFIXES)
                  and path != "/api/v1/auth/logout")


@pytest.mark.parametrize("label", _operations())
def test_platform_operation_matches_its_openapi(env, label):
    schema, tokens = env
    operation = next(r.ok() for r in schema.get_all_operations() if r.ok().label == label)
    path = label.split(" ", 1)[1]
    headers = tokens["admin" if path.startswith(tuple(ROLE_FOR)) else "rad1"]

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.headers = {**(case.headers or {}), **headers}
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    run()
