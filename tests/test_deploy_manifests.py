"""Deployment material: the API's Dockerfile, its compose service and the Kubernetes manifests."""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"


@pytest.fixture(scope="module")
def manifests():
    """{kind: document} for every YAML document under deploy/k8s."""
    documents = {}
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                assert document["kind"] not in documents, f"two {document['kind']} documents"
                documents[document["kind"]] = document
    return documents


@pytest.fixture(scope="module")
def container(manifests):
    containers = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_every_manifest_parses_and_kustomize_lists_them(manifests):
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "ConfigMap",
        "Kustomization",
    } <= set(manifests)
    listed = set(manifests["Kustomization"]["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_probes_point_at_health_and_ready(container):
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/health"


def test_resources_are_requested_and_limited(container):
    resources = container["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), kind


def _cpu(value) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_limits_are_not_below_requests(container):
    resources = container["resources"]
    assert _cpu(resources["limits"]["cpu"]) >= _cpu(resources["requests"]["cpu"])


def test_pod_runs_as_non_root_with_a_read_only_filesystem(manifests, container):
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts  # MLflow downloads the model to a temporary folder


def test_rollout_never_drops_below_the_desired_replicas(manifests):
    deployment = manifests["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_service_and_hpa_target_the_deployment(manifests):
    deployment = manifests["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    service = manifests["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    assert service["ports"][0]["targetPort"] == "http"
    hpa = manifests["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_secrets_come_from_a_secret_never_from_the_manifests(manifests, container):
    from_secrets = {
        e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert {"API_TOKEN", "DATABASE_URL"} <= from_secrets
    config = manifests["ConfigMap"]["data"]
    assert not {"API_TOKEN", "DATABASE_URL", "POSTGRES_PASSWORD"} & set(config)
    assert config["MODEL_ALIAS"] == "champion"


def test_dockerfile_is_multi_stage_non_root_and_serves_the_api():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", dockerfile, re.M)
    assert len(stages) >= 2, "build and runtime stages"
    assert all(re.search(r":\d", image) for image, _ in stages), "base images are pinned"
    assert "COPY --from=build" in dockerfile
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "HEALTHCHECK" in dockerfile and "/health" in dockerfile
    cmd = json.loads(re.search(r"^CMD\s+(\[.*?\])", dockerfile, re.M | re.S).group(1))
    assert cmd[:2] == ["sh", "-c"], "the shell prepares the metrics folder"
    script = cmd[2]
    assert "exec uvicorn course.api:create_app --factory" in script  # uvicorn is PID 1
    # workers add up their metrics in an emptied folder (see course.api._Metrics)
    assert re.search(r"^\s+PROMETHEUS_MULTIPROC_DIR=/tmp/\S+", dockerfile, re.M)
    assert script.startswith('rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p')
    assert "--frozen" in dockerfile and "--no-dev" in dockerfile  # versions from uv.lock
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignore and ".env" in ignore


def test_compose_api_service_is_local_and_waits_for_mlflow():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    api = compose["services"]["api"]
    assert api["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (ROOT / api["build"]["context"] / api["build"]["dockerfile"]).is_file()
    assert all(port.startswith("127.0.0.1:") for port in api["ports"])
    assert api["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert "/health" in " ".join(api["healthcheck"]["test"])
    assert api["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert api["environment"]["API_TOKEN"] == "${API_TOKEN:-}"
    assert api["profiles"] == ["serving"]  # `docker compose up` (CI) does not build it
