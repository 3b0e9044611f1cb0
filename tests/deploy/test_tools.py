"""tests/deploy/tools.py: how promtool is found (never installed); Grafana expressions."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from tests.deploy import tools


@pytest.fixture
def no_tools(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Nothing on PATH, outside CI; returns the commands anything tried to run (none, we hope)."""
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    calls: list[list[str]] = []

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr("subprocess.run", run)
    return calls


@pytest.mark.parametrize("find", [tools.find_promtool, tools.find_prometheus])
def test_missing_tool_skips_outside_ci_and_installs_nothing(
    no_tools: list[list[str]], find: Callable[[], str]
) -> None:
    """Outside CI a missing tool skips, naming `make test-tools`; no command is run."""
    with pytest.raises(pytest.skip.Exception, match="make test-tools"):
        find()
    assert no_tools == []


@pytest.mark.parametrize("value", ["true", "1", "TRUE", "yes"])
def test_missing_tool_fails_in_ci(
    no_tools: list[list[str]], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """With CI set a missing tool is a failure, never a skip; still nothing is installed."""
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="`promtool` is not installed"):
        tools.find_promtool()
    assert no_tools == []


def test_installed_tool_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tool on PATH is returned as is."""
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    assert tools.find_promtool() == "/usr/bin/promtool"
    assert tools.find_prometheus() == "/usr/bin/prometheus"


def _make_target(name: str) -> tuple[list[str], str]:
    """(prerequisites, recipe text) of a Makefile target."""
    lines = (tools.ROOT / "Makefile").read_text().splitlines()
    (head,) = [line for line in lines if line.startswith(f"{name}:")]
    prerequisites = head.split(":", 1)[1].split("##", 1)[0].split()
    body = lines[lines.index(head) + 1 :]
    recipe = []
    for line in body:
        if not line.startswith("\t"):
            break
        recipe.append(line)
    return prerequisites, "\n".join(recipe)


def test_make_test_holds_the_install_step() -> None:
    """`make test` (so `.ci/run`) runs test-tools, which installs Debian's prometheus package."""
    prerequisites, _ = _make_target("test")
    assert "test-tools" in prerequisites
    _, recipe = _make_target("test-tools")
    assert "apt-get install" in recipe
    assert "prometheus" in recipe
    assert "make test" in (tools.ROOT / ".ci" / "run").read_text()


def test_no_test_installs_a_package() -> None:
    """No test module runs apt-get, pip or mvn itself: installing is the Makefile's job."""
    offenders = []
    for path in (tools.ROOT / "tests").rglob("*.py"):
        if path.name == "test_tools.py":  # this file names the commands it looks for
            continue
        text = path.read_text()
        for needle in ('["apt-get"', "apt-get install", "pip install", '["mvn"', "urlretrieve"):
            # test_dockerfile reads the Dockerfile's `pip install .`, it does not run it.
            if needle in text and not (
                needle == "pip install" and path.name == "test_dockerfile.py"
            ):
                offenders.append(f"{path.relative_to(tools.ROOT)}: {needle}")
    assert offenders == []


def test_render_grafana_expr() -> None:
    """Grafana's interval variables become a concrete range Prometheus accepts."""
    expr = "rate(hookstream_matches_total[$__rate_interval]) + rate(x[${__interval}])"
    assert tools.render_grafana_expr(expr, "2m") == (
        "rate(hookstream_matches_total[2m]) + rate(x[2m])"
    )
