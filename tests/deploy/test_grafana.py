"""The Grafana dashboard JSON and its provisioning."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.deploy.tools import DASHBOARD, DEPLOY

PROVISIONING = DEPLOY / "grafana" / "provisioning"


def _dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def test_dashboard_identity() -> None:
    """A stable uid and title, and a Prometheus data-source variable every panel uses."""
    dashboard = _dashboard()
    assert dashboard["uid"] == "hookstream"
    assert dashboard["title"] == "Hookstream"
    (variable,) = dashboard["templating"]["list"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    for panel in _panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": f"${{{variable['name']}}}"}
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]


def test_panels_are_well_formed() -> None:
    """Unique ids, titles and descriptions, one refId per query, and no overlapping panels."""
    panels = _dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
    for panel in _panels():
        assert panel["title"]
        assert panel["description"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs
        assert len(refs) == len(set(refs)), panel["title"]


def test_latency_panels_show_p50_and_p99() -> None:
    """Each latency panel charts both quantiles of its histogram, in seconds."""
    latency = [p for p in _panels() if "latency" in p["title"].lower()]
    assert len(latency) == 3
    for panel in latency:
        exprs = " ".join(t["expr"] for t in panel["targets"])
        assert "histogram_quantile(0.5," in exprs
        assert "histogram_quantile(0.99," in exprs
        assert panel["fieldConfig"]["defaults"]["unit"] == "s"


def test_provisioning_loads_the_dashboard_from_prometheus() -> None:
    """The provisioned data source is Prometheus (default) and the provider is a file provider."""
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["isDefault"] is True
    assert source["uid"] == _dashboard()["templating"]["list"][0]["current"]["value"]
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "hookstream.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
