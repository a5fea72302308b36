"""The API against its own OpenAPI document (schemathesis): generated requests, valid and
invalid, never get a 5xx, a status the spec does not list, or a body that breaks its schema.

Operations are driven through schemathesis' strategies directly (its pytest plugin does not
support this pytest version)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conftest import make_imaging_model_dir
from medai.server.app import create_app

pytestmark = pytest.mark.slow
OPERATIONS = ["GET /api/v1/health/live", "GET /api/v1/health/ready", "GET /api/v1/health",
              "POST /api/v1/triage", "POST /api/v1/imaging/{task}/predict",
              "POST /api/v1/imaging/{task}/heatmap", "POST /api/v1/reports/draft"]


@pytest.fixture(scope="module")
def api_schema(tfidf_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    cxr = make_imaging_model_dir(root / "cxr")
    mri = make_imaging_model_dir(root / "mri", labels=("Glioma", "Meningioma", "Pituitary",
                                                        "No_Tumor"), task="mri")
    app = create_app(triage_model=str(tfidf_model_dir), cxr_model=str(cxr),
                     mri_model=str(mri), preload=False)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_is_covered(api_schema):
    labels = {r.ok().label for r in api_schema.get_all_operations()}
    assert labels == set(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_matches_its_openapi(api_schema, label):
    operation = next(r.ok() for r in api_schema.get_all_operations() if r.ok().label == label)

    @given(case=operation.as_strategy())
    @settings(max_examples=30, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        # a schema-valid request may still be refused on content (random bytes are not an
        # image, a control-character complaint has no words): 422, never a 5xx
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    run()
