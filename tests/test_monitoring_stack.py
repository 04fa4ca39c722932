"""The compose profile "monitoring": Prometheus's config and rules, Grafana's provisioning.

The alerting rules are unit-tested with `promtool test rules` (Debian's `prometheus`
package; scripts/test.sh installs it when it can). Without promtool those tests are
skipped, except under CI where that is a failure.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from course.api import create_app

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "monitoring" / "prometheus"
GRAFANA = ROOT / "monitoring" / "grafana"
METRIC = re.compile(r"\bfraud_[a-zA-Z0-9_:]*")  # fraud_api_*, fraud_*_psi, ...


@pytest.fixture(scope="module")
def promtool():
    path = shutil.which("promtool")
    if path is None:
        message = (
            "promtool is missing (apt-get install prometheus; scripts/test.sh does it as root)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The sample names the API's /metrics exposes (no model: MLflow is unreachable)."""
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "PROMETHEUS_MULTIPROC_DIR": ""}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        app = create_app(reload_interval=0, feature_history=False)
        with TestClient(app) as client:
            text = client.get("/metrics").text
    finally:
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
        names |= {name + suffix for suffix in suffixes}
    assert "fraud_api_requests_total" in names, text[:500]
    return names


@pytest.fixture(scope="module")
def rules():
    return yaml.safe_load((PROMETHEUS / "rules" / "fraud-api.yml").read_text())


@pytest.fixture(scope="module")
def recorded(rules):
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def test_alerting_rules_pass_their_unit_tests(promtool):
    run = subprocess.run(
        [promtool, "test", "rules", "tests/fraud-api.test.yml"],
        cwd=PROMETHEUS, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_promtool_catches_a_wrong_expectation(promtool, tmp_path):
    wrong = {
        "rule_files": [str(PROMETHEUS / "rules" / "fraud-api.yml")],
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": 'up{job="fraud-api", instance="api:8000"}', "values": "0x10"}],
            "alert_rule_test": [{"eval_time": "10m", "alertname": "FraudApiDown", "exp_alerts": []}],
        }],
    }  # fmt: skip
    (tmp_path / "wrong.test.yml").write_text(yaml.safe_dump(wrong))
    run = subprocess.run([promtool, "test", "rules", "wrong.test.yml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 1 and "FraudApiDown" in run.stdout + run.stderr


def test_prometheus_config_is_valid(promtool):
    run = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=PROMETHEUS, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


def test_prometheus_scrapes_the_api_service_of_compose():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "fraud-api"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["api:8000"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "monitoring" in compose["api"]["profiles"]
    assert compose["api"]["healthcheck"] and "8000" in str(compose["api"]["ports"])
    mounts = compose["prometheus"]["volumes"]
    assert "./monitoring/prometheus:/etc/prometheus:ro" in mounts


def test_the_model_alerts_exist(rules):
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert {"FraudApiHighErrorRate", "FraudApiLatencyP99High", "FraudScoreShift"} <= set(alerts)
    assert {"FraudFeatureDrift", "FraudScoreDrift", "FraudDriftReportStale"} <= set(alerts)
    assert "fraud_feature_psi" in alerts["FraudFeatureDrift"]["expr"]
    assert "> 0.2" in alerts["FraudFeatureDrift"]["expr"] and alerts["FraudFeatureDrift"]["for"]
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        assert rule["annotations"]["summary"], name


def test_rules_name_only_metrics_the_api_exports(rules, recorded, exported):
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in METRIC.findall(rule["expr"]):
                assert name in exported | recorded, f"{rule.get('alert') or rule['record']}: {name}"


def test_grafana_provisioning_points_at_the_dashboards_and_prometheus():
    provisioning = GRAFANA / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "fraud-api.yml").read_text())[
        "providers"
    ]
    assert provider["type"] == "file"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]
    mounts = dict(
        v.rsplit(":", 1)[0].split(":", 1) for v in compose["volumes"] if v.startswith("./")
    )
    assert mounts["./monitoring/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_dashboard_loads_and_queries_exported_metrics(exported, recorded):
    source = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = source["datasources"][0]["uid"]
    dashboards = sorted((GRAFANA / "dashboards").glob("*.json"))
    assert [p.name for p in dashboards] == ["fraud-api.json"]
    dashboard = json.loads(dashboards[0].read_text())
    assert dashboard["uid"] and dashboard["title"] and "id" not in dashboard
    assert isinstance(dashboard["schemaVersion"], int)
    panels = dashboard["panels"]
    assert len(panels) >= 6
    assert len({p["id"] for p in panels}) == len(panels)
    queried = set()
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel[
            "gridPos"
        ]["w"] <= 24
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = METRIC.findall(target["expr"])
            assert names or target["expr"].startswith("up{"), panel["title"]
            for name in names:
                assert name in exported | recorded, f"{panel['title']}: {name}"
            queried |= set(names)
    assert {"fraud_api_request_duration_seconds_bucket", "fraud_api_score_bucket"} & queried or {
        "fraud_api:predict_latency_seconds:p99_5m"
    } <= queried
    assert "fraud_api:predict_errors:ratio_rate5m" in queried
    assert {"fraud_feature_psi", "fraud_score_psi"} <= queried


def test_dashboard_has_only_fields_grafana_knows():
    """Grafana's own schema types (grafana-foundation-sdk) keep every field of the JSON.

    ``Dashboard.from_json`` reads what Grafana's schema defines, per panel type (panel
    options) and data source (Prometheus queries); a misspelt or unknown field does not come
    back from ``to_json``.
    """
    try:
        from grafana_foundation_sdk.cog import plugins
        from grafana_foundation_sdk.models.dashboard import Dashboard
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("grafana-foundation-sdk is missing (dev group)")
        pytest.skip("grafana-foundation-sdk is missing (dev group)")
    plugins.register_default_plugins()
    source = json.loads((GRAFANA / "dashboards" / "fraud-api.json").read_text())

    def unknown(given, parsed, path="dashboard"):
        """The paths of ``given`` that ``parsed`` (Grafana's reading of it) lost or changed."""
        if isinstance(given, dict):
            return [
                p
                for k, v in given.items()
                for p in (unknown(v, parsed[k], f"{path}.{k}") if k in parsed else [f"{path}.{k}"])
            ]
        if isinstance(given, list):
            return [
                p
                for i, (a, b) in enumerate(zip(given, parsed, strict=True))
                for p in unknown(a, b, f"{path}[{i}]")
            ]
        return [] if given == parsed else [path]  # fmt: skip

    def lost(dashboard):
        parsed = Dashboard.from_json(dashboard).to_json()
        return unknown(dashboard, json.loads(json.dumps(parsed, default=lambda o: o.to_json())))

    assert lost(source) == []
    source["panels"][5]["options"]["displayMod"] = "basic"  # the check can fail
    source["panels"][0]["targets"][0]["exprr"] = "up"
    assert lost(source) == [
        "dashboard.panels[0].targets[0].exprr",
        "dashboard.panels[5].options.displayMod",
    ]
