"""The Helm chart and the systemd units (deploy/helm, deploy/systemd) are checked here.

Cheap pure-Python checks first: the chart's values validate against values.schema.json, every
``MEDAI_*`` variable the chart and the units set is a real setting (a misspelt one would be
ignored silently by pydantic-settings, ``extra="ignore"``), and every probe path is a route.
Then the real tools: ``deploy/helm/check.sh`` (helm lint --strict, helm template,
kubernetes-validate, the schema refusing bad values, helm package; helm comes pinned from npm
through deploy/tools/get-helm.sh) and ``deploy/systemd/check.sh`` (systemd-analyze verify and
security). The smoke runs (deploy/helm/kube-play-smoke.sh: the rendered pods under podman;
deploy/systemd/boot-smoke.sh: the units booted under systemd-nspawn) need the image and a
minute or two each: ``make deploy-check`` runs them, or MEDAI_DEPLOY_SMOKE=1 here.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import medai
from helpers.paths import ROOT
from medai.settings import FIELD_GROUPS, SECRET_FILES

CHART = ROOT / "deploy" / "helm" / "medai"
TEST_VALUES = ROOT / "deploy" / "helm" / "test-values"
UNITS = ROOT / "deploy" / "systemd"
RENDERED = ROOT / "deploy" / "dist" / "helm"
# read by the image's entrypoint (deploy/image/entrypoint.sh) and the first-admin helper,
# not by medai's settings
ENTRYPOINT_VARS = {"MEDAI_ADMIN_PASSWORD_FILE", "MEDAI_ADMIN_USER", "MEDAI_ADMIN_ENROL_HOURS"}
_VAR = re.compile(r"\bMEDAI_[A-Z0-9_]*[A-Z0-9]\b")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of a values file onto values.yaml (maps merge, the rest replaces)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _validator():
    jsonschema_rs = pytest.importorskip(
        "jsonschema_rs",
        reason="jsonschema-rs (a dependency of schemathesis, the dev extra) is not installed",
    )
    import json

    return jsonschema_rs.Draft7Validator(json.loads((CHART / "values.schema.json").read_text()))


def _values(name: str | None = None) -> dict[str, Any]:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    if name:
        values = _merge(values, yaml.safe_load((TEST_VALUES / name).read_text()) or {})
    return values


def test_chart_app_version_is_medai_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == medai.__version__, (
        "deploy/helm/medai/Chart.yaml appVersion must be medai's version (bump both)"
    )


@pytest.mark.parametrize("name", [None, "everything.yaml", "kube-play.yaml"])
def test_values_validate_against_the_schema(name: str | None) -> None:
    errors = [
        f"{'/'.join(map(str, e.instance_path))}: {e.message}"
        for e in _validator().iter_errors(_values(name))
    ]
    assert errors == []


@pytest.mark.parametrize("name", ["bad-replicas.yaml", "bad-unknown-key.yaml", "bad-queue.yaml"])
def test_the_schema_refuses_bad_values(name: str) -> None:
    assert not _validator().is_valid(_values(name))


def _deploy_texts() -> dict[str, str]:
    files = [
        *CHART.glob("templates/*"),
        CHART / "values.yaml",
        *TEST_VALUES.glob("*.yaml"),
        *UNITS.glob("*.service"),
        UNITS / "medai.env",
        UNITS / "medai-first-admin.sh",
    ]
    return {str(f.relative_to(ROOT)): f.read_text() for f in files}


def test_every_variable_set_is_a_medai_setting() -> None:
    """A name pydantic-settings does not know is ignored without a word: a typo in a unit
    or the chart would silently leave the default in force."""
    fields = set(FIELD_GROUPS)
    unknown = {}
    for path, text in _deploy_texts().items():
        for var in set(_VAR.findall(text)):
            name = var.removeprefix("MEDAI_").lower()
            if var in ENTRYPOINT_VARS or name in fields:
                continue
            unknown.setdefault(var, []).append(path)
    assert unknown == {}, f"not settings of src/medai/settings.py: {unknown}"
    # the _FILE variants the chart and the units use are the ones read as secret files
    used = set().union(*(_VAR.findall(t) for t in _deploy_texts().values()))
    for var in used:
        if var.endswith("_FILE") and var not in ENTRYPOINT_VARS | {"MEDAI_DESTINATIONS_FILE"}:
            assert var.removeprefix("MEDAI_").removesuffix("_FILE").lower() in SECRET_FILES
    entrypoint = (ROOT / "deploy" / "image" / "entrypoint.sh").read_text()
    assert all(var in entrypoint for var in ENTRYPOINT_VARS)


def test_probe_paths_are_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probes' paths are the app's health routes, and they answer with the probes' own
    Host header (localhost: the kubelet's default, the pod IP, is not a trusted host)."""
    from fastapi.testclient import TestClient

    from medai.platform.app import create_platform_app
    from medai.settings import get_settings

    text = (CHART / "templates" / "serve-deployment.yaml").read_text()
    probes = re.findall(
        r"httpGet: \{path: (/[^,}\s]+), port: http, "
        r"httpHeaders: \[\{name: Host, value: localhost\}\]\}",
        text,
    )
    assert sorted(probes) == ["/api/v1/health/live", "/api/v1/health/live", "/api/v1/health/ready"]
    monkeypatch.setenv("MEDAI_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        app = create_platform_app(
            database_url=f"sqlite:///{tmp_path / 'medai.db'}",
            preload=False,
            job_threads=0,
            outbox_threads=0,
        )
        assert set(probes) <= set(app.openapi()["paths"])
        with TestClient(app, base_url="http://localhost") as client:
            # (readiness loads every model: not here; the smoke run waits for its 200)
            assert client.get("/api/v1/health/live").status_code == 200
    finally:
        get_settings.cache_clear()


def test_units_wait_for_the_migration() -> None:
    """Only medai-migrate migrates; every other unit needs it and says MEDAI_AUTO_MIGRATE=false."""
    migrate = (UNITS / "medai-migrate.service").read_text()
    assert "Type=oneshot" in migrate and "ExecStart=/opt/medai/bin/medai migrate" in migrate
    assert "Environment=MEDAI_AUTO_MIGRATE" not in migrate
    for unit in ("medai-serve.service", "medai-worker@.service", "medai-dicom.service"):
        text = (UNITS / unit).read_text()
        assert "Requires=medai-migrate.service" in text, unit
        assert re.search(r"^After=.*medai-migrate\.service", text, re.M), unit
        assert "Environment=MEDAI_AUTO_MIGRATE=false" in text, unit
        assert "User=medai" in text and "LoadCredential=secret-keys:" in text, unit
        assert "Environment=MEDAI_SECRET_KEYS_FILE=%d/secret-keys" in text, unit


def _run(script: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(script)], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def helm_checked() -> str:
    """deploy/helm/check.sh, after the pinned tools are fetched (npm, PyPI) when missing."""
    if (
        not (ROOT / "deploy" / "dist" / "tools" / "bin" / "helm").exists()
        and shutil.which("npm") is None
    ):
        pytest.skip(
            "helm is not in deploy/dist/tools and npm is not installed to fetch it "
            "(deploy/tools/get-helm.sh)"
        )
    got = _run(ROOT / "deploy" / "tools" / "get-helm.sh")
    if got.returncode == 4:  # a pinned hash differs: never skipped
        pytest.fail(f"get-helm.sh: {got.stderr}")
    if got.returncode != 0:
        pytest.skip(f"the chart tools cannot be fetched (no registry?): {got.stderr[-600:]}")
    result = _run(ROOT / "deploy" / "helm" / "check.sh")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _objects(variant: str) -> list[dict[str, Any]]:
    text = (RENDERED / f"rendered-{variant}.yaml").read_text()
    return [d for d in yaml.safe_load_all(text) if d]


def _pods(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in ("Deployment", "Job")
    }


def test_helm_chart_lints_renders_and_validates(helm_checked: str) -> None:
    assert "deploy/helm/check.sh: all passed" in helm_checked
    assert list(RENDERED.glob("medai-*.tgz"))


@pytest.mark.parametrize("variant", ["default", "everything"])
def test_rendered_pods_are_locked_down(helm_checked: str, variant: str) -> None:
    pods = _pods(_objects(variant))
    assert pods
    for name, spec in pods.items():
        assert spec["securityContext"]["runAsUser"] == 10001, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        tmp = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert {m["name"] for m in c["volumeMounts"] if m["mountPath"] == "/tmp"} <= tmp
            assert c["resources"]["requests"] and c["resources"]["limits"], name
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            assert "MEDAI_SECRET_KEYS" not in env and "MEDAI_DATABASE_URL" not in env
            assert env["MEDAI_DATABASE_URL_FILE"].startswith("/run/secrets/medai/"), name


def test_only_the_migration_job_migrates(helm_checked: str) -> None:
    objects = _objects("default")
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["data"]["MEDAI_AUTO_MIGRATE"] == "false"
    job = next(o for o in objects if o["kind"] == "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["migrate"] and "envFrom" not in container
    for o in objects:
        if o["kind"] == "Deployment":
            c = o["spec"]["template"]["spec"]["containers"][0]
            assert c["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]


def test_gpu_pool_and_shared_volume(helm_checked: str) -> None:
    objects = _objects("everything")
    gpu = _pods(objects)["medai-worker-gpu"]
    worker = gpu["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["args"][:3] == ["worker", "--queues", "training,gpu"]
    assert gpu["tolerations"][0]["key"] == "nvidia.com/gpu"
    cpu = _pods(objects)["medai-worker-cpu"]["containers"][0]
    assert cpu["args"][2] == "cpu" and "nvidia.com/gpu" not in cpu["resources"]["limits"]
    claim = next(o for o in objects if o["kind"] == "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "nfs-client"
    kinds = {o["kind"] for o in objects}
    assert {"Ingress", "NetworkPolicy", "PodDisruptionBudget", "Service"} <= kinds


def _images(objects: list[dict[str, Any]]) -> dict[str, str]:
    return {name: spec["containers"][0]["image"] for name, spec in _pods(objects).items()}


def test_the_gpu_pool_runs_the_gpu_image(helm_checked: str) -> None:
    """The pool with nvidia.com/gpu runs localhost/medai-gpu (`make image-gpu`: torch's CUDA
    build); every other pod the CPU image. check.sh checks and prints it too."""
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    images = _images(_objects("everything"))
    assert images.pop("medai-worker-gpu") == f"localhost/medai-gpu:{version}"
    assert _values()["gpuImage"] == {"repository": "localhost/medai-gpu", "tag": ""}
    assert set(images.values()) == {f"localhost/medai:{version}"}
    assert f"medai-worker-gpu: localhost/medai-gpu:{version}" in helm_checked
    # the default values have no GPU pool, so no pod runs the GPU image
    assert set(_images(_objects("default")).values()) == {f"localhost/medai:{version}"}


def test_the_gpu_image_follows_the_site_registry_and_yields_to_a_pool_image(
    helm_checked: str,
) -> None:
    helm = ROOT / "deploy" / "dist" / "tools" / "bin" / "helm"

    def render(*sets: str) -> dict[str, str]:
        args = [
            str(helm),
            "template",
            "medai",
            str(CHART),
            "-f",
            str(TEST_VALUES / "everything.yaml"),
        ]
        for s in sets:
            args += ["--set", s]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        return _images([d for d in yaml.safe_load_all(out) if d])

    site = ("image.repository=registry.hospital/medai", "image.tag=0.1.0-site")
    images = render(*site, "gpuImage.repository=registry.hospital/medai-gpu")
    assert images["medai-worker-gpu"] == "registry.hospital/medai-gpu:0.1.0-site"
    assert images["medai-worker-cpu"] == "registry.hospital/medai:0.1.0-site"
    images = render(*site, "gpuImage.tag=0.1.0-cu13")
    assert images["medai-worker-gpu"] == "localhost/medai-gpu:0.1.0-cu13"
    images = render("workerPools.gpu.image.repository=registry.hospital/medai-cuda")
    assert images["medai-worker-gpu"].startswith("registry.hospital/medai-cuda:")
    # a pool that asks for no GPU keeps the CPU image, whatever its name
    images = render("workerPools.gpu.gpus=0")
    assert images["medai-worker-gpu"].startswith("localhost/medai:")


def test_the_schema_refuses_a_misspelt_gpu_image() -> None:
    validator = _validator()
    assert validator.is_valid(_values("everything.yaml"))
    bad = _merge(_values(), {"gpuImage": {"repo": "registry.hospital/medai-gpu"}})
    assert not validator.is_valid(bad)
    assert not validator.is_valid(_merge(_values(), {"gpuImage": {"repository": ""}}))


def test_systemd_units_verify_and_stay_below_the_exposure_threshold() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    result = _run(UNITS / "check.sh", timeout=120)
    if result.returncode == 77:
        pytest.skip(result.stderr.strip())
    assert result.returncode == 0, result.stdout + result.stderr
    levels = re.findall(r"^ok: (\S+): (\d+\.\d)", result.stdout, re.M)
    assert len(levels) == 6 and all(float(level) <= 2.0 for _, level in levels), levels


SMOKE = pytest.mark.skipif(
    os.environ.get("MEDAI_DEPLOY_SMOKE") != "1",
    reason="needs the image and a minute or two each: "
    "MEDAI_DEPLOY_SMOKE=1 (make deploy-check runs the scripts)",
)


@SMOKE
@pytest.mark.parametrize("script", ["helm/kube-play-smoke.sh", "systemd/boot-smoke.sh"])
def test_deploy_smoke(script: str) -> None:
    result = _run(ROOT / "deploy" / script, timeout=900)
    if result.returncode == 77:
        pytest.skip(result.stderr.strip())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


# --- issue 57 item 9: operations on a first install ---------------------------------------------

COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"
IMAGE_DIR = ROOT / "deploy" / "image"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_stops_postgres_the_way_it_wants_and_restarts_what_dies() -> None:
    """SIGTERM is PostgreSQL's "smart" shutdown (waits for medai's pooled connections until
    SIGKILL forces crash recovery); SIGINT is its fast one. Every long-running service has a
    restart policy podman-restart.service also starts at boot (always); the migration runs once."""
    services = _compose()["services"]
    pg = services["postgres"]
    assert pg["stop_signal"] == "SIGINT"
    assert int(str(pg["stop_grace_period"]).rstrip("s")) >= 30
    for name, svc in services.items():
        if name in ("migrate", "fhir-sink"):
            continue
        assert svc.get("restart") == "always", name
    assert services["migrate"]["restart"] == "no"


def test_compose_passes_log_format_build_commit_and_watches_the_site_certificate() -> None:
    text = COMPOSE.read_text()
    env = _compose()["x-medai-env"]
    assert env["MEDAI_LOG_FORMAT"] == "${MEDAI_LOG_FORMAT:-text}"
    assert env["MEDAI_BUILD_COMMIT"] == "${MEDAI_BUILD_COMMIT:-}"
    serve = _compose()["services"]["serve"]
    assert any(v.endswith("tls/site.crt:/etc/medai/tls/site.crt:ro") for v in serve["volumes"])
    assert not any("site.key" in v for v in serve["volumes"])
    assert json.loads(serve["environment"]["MEDAI_TLS_WATCH_CERTS"]) == ["/etc/medai/tls/site.crt"]
    # the empty image revision fallback is the entrypoint's
    assert (
        'MEDAI_BUILD_COMMIT="${MEDAI_BUILD_COMMIT:-${MEDAI_IMAGE_REVISION:-}}"'
        in (IMAGE_DIR / "entrypoint.sh").read_text()
    )
    assert 'MEDAI_IMAGE_REVISION="$revision"' in (IMAGE_DIR / "build.sh").read_text()
    # every MEDAI_* the compose file sets is a setting (or the entrypoint's)
    fields = set(FIELD_GROUPS)
    for var in set(_VAR.findall(text)):
        if var.endswith("_FILE") or var in ENTRYPOINT_VARS:
            continue
        assert var.removeprefix("MEDAI_").lower() in fields or var in {
            "MEDAI_VERSION",
            "MEDAI_SECRETS_DIR",
            "MEDAI_SITE_NAME",
            "MEDAI_PROXY_ADDRESS",
            "MEDAI_SUBNET",
            "MEDAI_SUBNET_RANGE",
            "MEDAI_SERVE_REPLICAS",
            "MEDAI_SERVE_WORKERS",
            "MEDAI_CPU_CONCURRENCY",
            "MEDAI_DICOM_PUBLISH",
            "MEDAI_HTTPS_PORT",
            "MEDAI_HTTP_PORT",
            "MEDAI_ORTHANC_HTTP_PUBLISH",
            "MEDAI_ORTHANC_DICOM_PUBLISH",
            "MEDAI_WAIT_S",  # the entrypoint's wait (medai_wait.py)
        }, var


def test_no_admin_password_is_made_or_mounted_by_compose() -> None:
    """The first admin gets a one-time enrolment code (up.sh → medai_wait.py first-admin):
    no secrets/admin_password, none mounted on every start."""
    assert "admin_password" not in _compose().get("secrets", {})
    assert not any("admin_password" in str(s) for s in _compose()["services"].values())
    up = (ROOT / "deploy" / "compose" / "up.sh").read_text()
    assert "medai_wait.py first-admin" in up and 'rm -f "$s/admin_password"' in up
    assert "install -d -o 10001 -g 10001 -m 0700" in up  # the backup folder


def test_chart_and_units_pass_log_format_build_commit_and_certificates() -> None:
    config = (CHART / "templates" / "configmap.yaml").read_text()
    for var in ("MEDAI_LOG_FORMAT", "MEDAI_BUILD_COMMIT", "MEDAI_TLS_WATCH_CERTS"):
        assert f"  {var}: " in config, var
    values = _values()
    assert values["config"]["logFormat"] == "text" and values["config"]["buildCommit"] == ""
    env = (UNITS / "medai.env").read_text()
    assert re.search(r"^MEDAI_LOG_FORMAT=text$", env, re.M)
    assert "MEDAI_BUILD_COMMIT=" in env and "MEDAI_TLS_WATCH_CERTS=" in env
    # neither the chart nor the units run PostgreSQL (the site's own: docs/deploy.md says how
    # it must be stopped); a unit that did would need KillSignal=SIGINT
    for unit in UNITS.glob("*.service"):
        text = unit.read_text()
        if re.search(r"^ExecStart=.*\bpostgres\b", text, re.M):
            assert "KillSignal=SIGINT" in text, unit.name
    assert not any(
        "postgres" in t.lower()
        for t in map(Path.read_text, CHART.glob("templates/*-deployment.yaml"))
    )


def test_chart_dicom_tls_mounts_the_secret_and_sets_the_settings() -> None:
    text = (CHART / "templates" / "dicom.yaml").read_text()
    for var in ("MEDAI_DICOM_TLS_CERT", "MEDAI_DICOM_TLS_KEY", "MEDAI_DICOM_TLS_CA"):
        assert var in text and var.removeprefix("MEDAI_").lower() in FIELD_GROUPS
    assert "secretName: {{ . }}" in text
    assert _validator().is_valid(
        _merge(
            _values(), {"dicom": {"tls": {"existingSecret": "medai-dicom-tls", "caKey": "ca.crt"}}}
        )
    )


def _entrypoint(tmp_path: Path, medai_exit: int) -> tuple[subprocess.CompletedProcess, int]:
    """deploy/image/entrypoint.sh with a stand-in for medai (exits ``medai_exit``, counting its
    calls), for the wait helper (ready at once) and for sleep: how often `migrate` is tried."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    calls = tmp_path / "calls"
    (bin_ / "medai").write_text(f"#!/bin/sh\necho x >> {calls}\nexit {medai_exit}\n")
    (bin_ / "sleep").write_text("#!/bin/sh\nexit 0\n")
    wait = bin_ / "medai-wait"
    wait.write_text("#!/bin/sh\nexit 0\n")
    for f in bin_.iterdir():
        f.chmod(0o755)
    script = tmp_path / "entrypoint.sh"
    script.write_text(
        (IMAGE_DIR / "entrypoint.sh")
        .read_text()
        .replace("/opt/medai/bin/python /usr/local/lib/medai-image/medai_wait.py", str(wait))
    )
    env = {"PATH": f"{bin_}:/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        ["bash", str(script), "migrate"], capture_output=True, text=True, env=env, timeout=60
    )
    return done, len(calls.read_text().splitlines()) if calls.exists() else 0


@pytest.mark.parametrize(("status", "tries"), [(2, 1), (3, 1), (1, 3), (0, 1)])
def test_the_entrypoint_retries_a_failed_migration_but_not_a_deliberate_refusal(
    tmp_path: Path, status: int, tries: int
) -> None:
    """`medai migrate` exits 2 (a schema newer than this release, a wrong setting) or 3 (keys
    missing) on purpose: trying again brings the same refusal, so the entrypoint stops at once;
    another failure (a DNS hiccup while the stack starts) is tried 3 times."""
    done, calls = _entrypoint(tmp_path, status)
    assert done.returncode == status and calls == tries, done.stderr
    if status in (2, 3):
        assert "not trying again" in done.stderr


def test_the_first_admin_gets_an_enrolment_code_once(tmp_path: Path, monkeypatch) -> None:
    """`medai_wait.py first-admin` (run by up.sh in the serve container): no admin yet → one is
    made with a one-time code (no password exists before the holder's own), printed once; the
    code enrols once; a second run, with an admin there, makes nothing."""
    import importlib.util
    import io
    from contextlib import redirect_stdout

    from helpers.platform import use_home
    from medai.platform.access import account_errors, accounts
    from medai.platform.records.db import Database, utcnow
    from medai.settings import get_settings

    use_home(tmp_path)
    monkeypatch.delenv("MEDAI_DATABASE_URL", raising=False)
    spec = importlib.util.spec_from_file_location("medai_wait", IMAGE_DIR / "medai_wait.py")
    assert spec and spec.loader
    wait = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wait)
    db = Database()
    try:
        db.upgrade(force=True)

        def first_admin() -> dict[str, Any]:
            out = io.StringIO()
            with redirect_stdout(out):
                assert wait.main(["first-admin"]) == 0
            return json.loads(out.getvalue())

        made = first_admin()
        assert made["created"] is True and made["username"] == "admin"
        assert db.has_admin()
        with db.session() as s:  # no password yet: nobody can sign in as admin
            assert not accounts.enrolled(accounts.get_user(s, "admin"))
        profile = get_settings().auth.password_hash
        with db.session() as s:
            accounts.enrol(
                s, made["enrol_code"], "kestane-kebap-ilkbahar", utcnow(), hash_profile=profile
            )
        with pytest.raises(account_errors.AccountError), db.session() as s:
            accounts.enrol(
                s, made["enrol_code"], "baska-bir-parola-2026", utcnow(), hash_profile=profile
            )
        assert first_admin() == {"created": False}
    finally:
        db.dispose()
        get_settings.cache_clear()
