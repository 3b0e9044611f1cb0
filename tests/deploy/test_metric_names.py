"""Every metric the dashboard and the alert rules query is one app/stream/metrics.py defines."""

from __future__ import annotations

import json

from tests.deploy.tools import (
    DASHBOARD,
    dashboard_exprs,
    defined_metric_names,
    metric_names,
    render_grafana_expr,
    rule_exprs,
)


def _used(exprs: list[tuple[str, str]]) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for where, expr in exprs:
        for name in metric_names(expr):
            used.setdefault(name, set()).add(where)
    return used


def test_metric_names_parses_promql() -> None:
    """Names are found in PromQL and histogram series suffixes are stripped."""
    expr = (
        "histogram_quantile(0.99, sum by (le) (rate(hookstream_processing_seconds_bucket[5m])))"
        ' / sum(rate(hookstream_deliveries_total{outcome="failed", job="hookstream-worker"}[5m]))'
        " + hookstream_delivery_seconds_sum + hookstream_delivery_seconds_count"
    )
    assert metric_names(expr) == {
        "hookstream_processing_seconds",
        "hookstream_deliveries_total",
        "hookstream_delivery_seconds",
    }


def test_defined_names_come_from_app_metrics() -> None:
    """The registry scan finds counters (with _total), gauges and histograms of both classes."""
    defined = defined_metric_names()
    assert {
        "hookstream_events_consumed_total",
        "hookstream_automations_loaded",
        "hookstream_event_to_job_seconds",
        "hookstream_deliveries_total",
        "hookstream_delivery_seconds",
    } <= defined
    assert "hookstream_no_such_metric_total" not in defined


def test_dashboard_metrics_are_defined() -> None:
    """Every hookstream_* name in a dashboard query is defined in app/stream/metrics.py."""
    used = _used(dashboard_exprs())
    unknown = {
        name: sorted(where) for name, where in used.items() if name not in defined_metric_names()
    }
    assert not unknown, f"dashboard queries undefined metrics: {unknown}"


def test_alert_metrics_are_defined() -> None:
    """Every hookstream_* name in alerts.yml is defined in app/stream/metrics.py."""
    used = _used(rule_exprs())
    unknown = {
        name: sorted(where) for name, where in used.items() if name not in defined_metric_names()
    }
    assert not unknown, f"alert rules query undefined metrics: {unknown}"


def test_dashboard_shows_what_operators_watch() -> None:
    """Throughput, matches, jobs, both latencies, lag, dead letters and deliveries are charted."""
    exprs = [render_grafana_expr(expr) for _, expr in dashboard_exprs()]
    joined = "\n".join(exprs)
    for required in (
        "rate(hookstream_events_consumed_total[",
        "rate(hookstream_matches_total[",
        "sum by (action_type) (rate(hookstream_jobs_emitted_total[",
        "histogram_quantile(0.5, sum by (le, action_type) "
        "(rate(hookstream_event_to_job_seconds_bucket[",
        "histogram_quantile(0.99, sum by (le, action_type) "
        "(rate(hookstream_event_to_job_seconds_bucket[",
        "histogram_quantile(0.5, sum by (le) (rate(hookstream_processing_seconds_bucket[",
        "histogram_quantile(0.99, sum by (le) (rate(hookstream_processing_seconds_bucket[",
        "hookstream_consumer_lag_messages",
        "hookstream_dead_letters_total",
        "hookstream_action_dead_letters_total",
        "sum by (action_type, outcome) (rate(hookstream_deliveries_total[",
        "rate(hookstream_delivery_seconds_bucket[",
    ):
        assert required in joined, f"no dashboard query contains {required!r}"
    assert "$__" not in joined


def test_alerts_cover_the_failure_modes() -> None:
    """Lag, dead letters, delivery failures, empty rule books and down targets have alerts."""
    exprs = dict(rule_exprs())
    joined = "\n".join(exprs.values())
    assert "hookstream_consumer_lag_messages" in joined
    assert "increase(hookstream_dead_letters_total[" in joined
    assert "increase(hookstream_action_dead_letters_total[" in joined
    assert 'hookstream_deliveries_total{outcome="failed"}' in joined
    assert "hookstream_automations_loaded == 0" in joined
    assert exprs["HookstreamWorkerDown"] == 'up{job="hookstream-worker"} == 0'
    assert exprs["HookstreamDispatcherDown"] == 'up{job="hookstream-dispatcher"} == 0'


def test_only_the_top_automations_panel_reads_automation_id() -> None:
    """The default labels carry no automation_id: no alert uses it, and one panel, documented.

    That panel ("Top automations by jobs") says it needs HOOKSTREAM_METRICS_PER_AUTOMATION.
    """
    assert [name for name, expr in rule_exprs() if "automation_id" in expr] == []
    panels = {title for title, expr in dashboard_exprs() if "automation_id" in expr}
    assert panels == {"Top automations by jobs"}
    dashboard = json.loads(DASHBOARD.read_text())
    (panel,) = [p for p in dashboard["panels"] if p.get("title") == "Top automations by jobs"]
    assert "HOOKSTREAM_METRICS_PER_AUTOMATION" in panel["description"]
