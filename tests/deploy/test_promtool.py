"""promtool accepts the scrape configs and the rules, and the alert rules' unit tests pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.tools import (
    PROMETHEUS_DIR,
    dashboard_exprs,
    find_promtool,
    kubernetes_config_without_sd,
    render_grafana_expr,
    rule_exprs,
)

PROMTOOL_TIMEOUT = 60


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool, installed from Debian's prometheus package when missing (as root)."""
    return find_promtool()


def _promtool(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT,
        check=False,
    )


def _assert_ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"{' '.join(done.args)}:\n{done.stdout}\n{done.stderr}"


def test_check_config(promtool: str) -> None:
    """`promtool check config deploy/prometheus/prometheus.yml` passes (rule files included)."""
    done = _promtool(promtool, "check", "config", PROMETHEUS_DIR / "prometheus.yml")
    _assert_ok(done)
    assert "1 rule files found" in done.stdout


def test_check_rules(promtool: str) -> None:
    """`promtool check rules deploy/prometheus/alerts.yml` passes and finds every rule."""
    done = _promtool(promtool, "check", "rules", PROMETHEUS_DIR / "alerts.yml")
    _assert_ok(done)
    assert f"SUCCESS: {len(rule_exprs())} rules found" in done.stdout


def test_alert_rule_unit_tests(promtool: str) -> None:
    """`promtool test rules alerts_test.yml`: each alert fires, and stays quiet, when it should."""
    _assert_ok(_promtool(promtool, "test", "rules", PROMETHEUS_DIR / "alerts_test.yml"))


def test_every_alert_is_unit_tested() -> None:
    """alerts_test.yml has, per alert, a case where it fires and one where it does not."""
    document = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in document["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {name for name, _ in rule_exprs()}
    assert alerts - fires == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown quiet"


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Every dashboard query (Grafana variables filled in) parses as PromQL."""
    rules = [
        {"record": f"hookstream:dashboard_query_{i}", "expr": render_grafana_expr(expr, "1m")}
        for i, (_, expr) in enumerate(dashboard_exprs())
    ]
    assert len(rules) >= 20
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = _promtool(promtool, "check", "rules", path)
    _assert_ok(done)


def test_check_kubernetes_config(promtool: str, tmp_path: Path) -> None:
    """kubernetes.yml passes `promtool check config` (discovery swapped for static targets)."""
    config = kubernetes_config_without_sd([{"__address__": "10.0.0.1:6066"}])
    path = tmp_path / "kubernetes.yml"
    path.write_text(yaml.safe_dump(config))
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", tmp_path / "alerts.yml")
    _assert_ok(_promtool(promtool, "check", "config", path))
