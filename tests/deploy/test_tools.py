"""The helpers in tests/deploy/tools.py: how promtool is provided, and Grafana expressions."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.deploy import tools


@pytest.fixture
def no_tools(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Nothing on PATH, fresh caches; returns the commands subprocess.run was asked to run."""
    monkeypatch.setattr(tools, "_provided", {})
    monkeypatch.setattr(tools, "_why_not", {})
    monkeypatch.setattr(tools, "_install_outcome", [])
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    calls: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        assert kwargs["timeout"] == tools.APT_TIMEOUT_SECONDS
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr("subprocess.run", fake_run)
    return calls


def test_skips_when_not_root(no_tools: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without root and outside CI, a missing promtool skips with the reason; nothing is run."""
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception, match="not running as root"):
        tools.ensure_promtool()
    assert no_tools == []


def test_fails_in_ci(no_tools: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """With CI=true a missing promtool is a failure, not a skip."""
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="promtool"):
        tools.ensure_promtool()


def test_installs_debian_package_as_root(
    no_tools: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root with apt-get: `apt-get update -qq`, then install `prometheus`, once for both."""
    installed: set[str] = set()
    monkeypatch.setattr("os.geteuid", lambda: 0)

    def which(name: str) -> str | None:
        if name == "apt-get":
            return "/usr/bin/apt-get"
        return f"/usr/bin/{name}" if installed else None

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        no_tools.append(command)
        installed.add("prometheus")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr("shutil.which", which)
    monkeypatch.setattr("subprocess.run", run)
    assert tools.ensure_promtool() == "/usr/bin/promtool"
    assert tools.ensure_prometheus() == "/usr/bin/prometheus"
    assert no_tools[0] == ["apt-get", "update", "-qq"]
    assert no_tools[1][:4] == ["apt-get", "install", "-y", "-qq"]
    assert no_tools[1][-1] == "prometheus"
    assert len(no_tools) == 2


def test_failed_install_is_reported(
    no_tools: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing apt-get is tried once and its error is the skip reason."""
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr(
        "shutil.which", lambda name: "/usr/bin/apt-get" if name == "apt-get" else None
    )

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        no_tools.append(command)
        return subprocess.CompletedProcess(command, 100, "", "E: no net")

    monkeypatch.setattr("subprocess.run", run)
    for ensure in (tools.ensure_promtool, tools.ensure_prometheus):
        with pytest.raises(pytest.skip.Exception, match="E: no net"):
            ensure()
    assert no_tools == [["apt-get", "update", "-qq"]]


def test_render_grafana_expr() -> None:
    """Grafana's interval variables become a concrete range Prometheus accepts."""
    expr = "rate(hookstream_matches_total[$__rate_interval]) + rate(x[${__interval}])"
    assert tools.render_grafana_expr(expr, "2m") == (
        "rate(hookstream_matches_total[2m]) + rate(x[2m])"
    )
