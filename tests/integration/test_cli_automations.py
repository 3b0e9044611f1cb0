"""`hookstream automations ...` end to end: real subprocesses against a real worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import serialization
from app.settings import Settings
from tests.factories import AVG_LOSS_FILTER, event_dict, run_automation_dict, run_metric_bytes
from tests.integration.api_support import http, webhook_automation
from tests.integration.harness import ROOT, WorkerProcess, settings_env
from tests.support import eventually, free_port, module_settings

TOKEN = "cli-test-token"


@pytest.fixture(scope="module")
def settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Own topics and group, with an API token the CLI reads from the environment."""
    return module_settings(kafka_bootstrap, tmp_path_factory.mktemp("cli"), api_token=TOKEN)


def cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `hookstream automations ARGS` with the worker's settings in the environment."""
    environment = {**settings_env(settings), **env}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "automations", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_yaml(path: Path, *documents: dict[str, Any]) -> Path:
    """Automations as a multi-document YAML file."""
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def test_apply_is_declarative_and_idempotent(
    worker: WorkerProcess, settings: Settings, tmp_path: Path
) -> None:
    """created, then unchanged (no rewrite), then configured only for what changed."""
    folder = tmp_path / "automations"
    folder.mkdir()
    write_yaml(folder / "a.yaml", webhook_automation("cli-apply-a"))
    write_yaml(folder / "b.yaml", webhook_automation("cli-apply-b"))
    first = cli(settings, "apply", "-f", str(folder))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "automation/cli-apply-a created",
        "automation/cli-apply-b created",
    ]
    second = cli(settings, "apply", "-f", str(folder))
    assert second.stdout.splitlines() == [
        "automation/cli-apply-a unchanged",
        "automation/cli-apply-b unchanged",
    ]
    write_yaml(folder / "b.yaml", webhook_automation("cli-apply-b", name="changed"))
    third = cli(settings, "apply", "-f", str(folder), "--json")
    lines = [serialization.loads(line) for line in third.stdout.splitlines()]
    assert lines == [
        {"id": "cli-apply-a", "status": "unchanged", "revision": 1},
        {"id": "cli-apply-b", "status": "configured", "revision": 2},
    ]
    assert http("GET", worker.url + "/automations/cli-apply-b").json["name"] == "changed"


def test_apply_invalid_file_names_each_field_and_writes_nothing(
    worker: WorkerProcess, settings: Settings, tmp_path: Path
) -> None:
    """Exit 1, every bad field with its file location; the valid sibling is not applied."""
    path = write_yaml(
        tmp_path / "bad.yaml",
        webhook_automation("cli-bad-ok"),
        webhook_automation("cli-bad", scope={"type": "registry"}),
    )
    done = cli(settings, "apply", "-f", str(path))
    assert done.returncode == 1
    assert "nothing applied" in done.stderr
    assert "scope.entity" in done.stderr
    assert "document 2" in done.stderr
    assert http("GET", worker.url + "/automations/cli-bad-ok").status == 404


def test_apply_reports_a_refusal_from_the_api_and_exits_1(
    worker: WorkerProcess, settings: Settings, tmp_path: Path
) -> None:
    """The server's own checks (a reserved topic) come back per automation."""
    action = {"type": "kafka", "topic": settings.dlq_topic, "payload": "{}"}
    path = write_yaml(tmp_path / "r.yaml", webhook_automation("cli-reserved", action=action))
    done = cli(settings, "apply", "-f", str(path))
    assert done.returncode == 1
    assert "automation/cli-reserved not applied" in done.stderr
    assert "action.topic" in done.stderr


def test_list_prints_a_table_or_json_and_filters(worker: WorkerProcess, settings: Settings) -> None:
    """People get aligned columns, scripts one JSON object per line."""
    scope = {"type": "project", "entity": "clilist", "project": "vision"}
    for automation_id, enabled in (("cli-list-on", True), ("cli-list-off", False)):
        data = webhook_automation(automation_id, scope=scope, enabled=enabled)
        assert http("POST", worker.url + "/automations", data, token=TOKEN).status == 201
    table = cli(settings, "list", "--entity", "clilist")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "EVENT", "SCOPE", "ACTION", "ENABLED", "REV"]
    assert lines[1].split()[:2] == ["cli-list-off", "ADD_ARTIFACT_ALIAS"]
    assert "project clilist/vision" in lines[1]
    assert lines[1].split()[-2:] == ["no", "1"]
    as_json = cli(settings, "list", "--entity", "clilist", "--enabled", "--json")
    assert [serialization.loads(x)["id"] for x in as_json.stdout.splitlines()] == ["cli-list-on"]
    none = cli(settings, "list", "--entity", "nobody")
    assert none.stdout.strip() == "no automations"


def test_get_enable_disable_delete(worker: WorkerProcess, settings: Settings) -> None:
    """Each command says what it did; a second delete fails with exit 1 and a reason."""
    data = webhook_automation("cli-item")
    assert http("POST", worker.url + "/automations", data, token=TOKEN).status == 201
    shown = cli(settings, "get", "cli-item")
    assert yaml.safe_load(shown.stdout)["id"] == "cli-item"
    assert serialization.loads(cli(settings, "get", "cli-item", "--json").stdout)["revision"] == 1
    assert cli(settings, "disable", "cli-item").stdout.strip() == "automation/cli-item disabled"
    again = cli(settings, "disable", "cli-item")
    assert again.stdout.strip() == "automation/cli-item unchanged (already disabled)"
    assert http("GET", worker.url + "/automations/cli-item").json["enabled"] is False
    assert cli(settings, "enable", "cli-item").stdout.strip() == "automation/cli-item enabled"
    deleted = cli(settings, "delete", "cli-item")
    assert (deleted.returncode, deleted.stdout.strip()) == (0, "automation/cli-item deleted")
    gone = cli(settings, "delete", "cli-item")
    assert gone.returncode == 1
    assert "automation/cli-item: automation 'cli-item' not found" in gone.stderr


def test_test_command_on_a_stored_and_on_a_file_automation(
    worker: WorkerProcess, settings: Settings, tmp_path: Path
) -> None:
    """MATCHED with the rendered job; NOT MATCHED with every reason."""
    data = webhook_automation("cli-dry")
    assert http("POST", worker.url + "/automations", data, token=TOKEN).status == 201
    matched = cli(settings, "test", "cli-dry")
    assert matched.returncode == 0, matched.stderr
    assert matched.stdout.startswith("automation/cli-dry: MATCHED (generated example event")
    assert f"job -> {settings.webhook_topic}:" in matched.stdout
    path = write_yaml(tmp_path / "adhoc.yaml", webhook_automation("cli-dry-file"))
    event = tmp_path / "event.json"
    event.write_bytes(serialization.dumps(event_dict(event_id="cli-e", alias="staging")))
    missed = cli(settings, "test", "-f", str(path), "--event", str(event))
    assert missed.stdout.startswith("automation/cli-dry-file: NOT MATCHED (given event cli-e)")
    assert '  - filter.alias: alias is "staging"' in missed.stdout
    as_json = serialization.loads(cli(settings, "test", "cli-dry", "--json").stdout)
    assert as_json["matched"] is True
    both = cli(settings, "test", "cli-dry", "-f", str(path))
    assert both.returncode == 1


def test_test_command_on_a_run_automation_lists_each_record(
    worker: WorkerProcess, settings: Settings, tmp_path: Path
) -> None:
    """A run automation's dry run prints each record's verdict; JSON lines are read too."""
    path = write_yaml(tmp_path / "run.yaml", run_automation_dict(AVG_LOSS_FILTER, id="cli-run"))
    generated = cli(settings, "test", "-f", str(path))
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.startswith("automation/cli-run: MATCHED (generated example ")
    assert "  record 0 RUN_METRIC acme/mnist/example-run step 0: does not fire" in (
        generated.stdout
    )
    events = tmp_path / "runs.jsonl"
    events.write_bytes(
        b"\n".join(run_metric_bytes(step, {"loss": 0.9}) for step in range(3)) + b"\n"
    )
    missed = cli(settings, "test", "-f", str(path), "--event", str(events))
    assert missed.returncode == 0, missed.stderr
    assert missed.stdout.startswith("automation/cli-run: NOT MATCHED (given 3 run records)")
    assert "  record 2 RUN_METRIC acme/mnist/run-1 step 2: does not fire" in missed.stdout
    assert "    - the condition is false at 0.9" in missed.stdout


def test_history_command(worker: WorkerProcess, settings: Settings) -> None:
    """Counters line and one row per execution; JSON for scripts."""
    data = webhook_automation(
        "cli-hist", scope={"type": "registry", "entity": "clihist", "registry": "model"}
    )
    assert http("POST", worker.url + "/automations", data, token=TOKEN).status == 201
    event = event_dict(event_id="cli-hist-1", entity="clihist")
    assert http("POST", worker.url + "/events", event, token=TOKEN).status == 202

    def has_row() -> str | None:
        out = cli(settings, "history", "cli-hist").stdout
        return out if "cli-hist-1" in out else None

    out = eventually(has_row, timeout=30)
    assert out.splitlines()[0].startswith("automation/cli-hist: matched 1, emitted 1")
    assert out.splitlines()[1].split()[:4] == ["TIME", "STATUS", "EVENT", "TYPE"]
    assert "PENDING" in out.splitlines()[2]
    data = serialization.loads(cli(settings, "history", "cli-hist", "--json").stdout)
    assert data["executions"][0]["event_id"] == "cli-hist-1"


def test_wrong_token_exits_1_with_a_hint(worker: WorkerProcess, settings: Settings) -> None:
    """A 403 is reported with what to fix."""
    done = cli(settings, "disable", "anything", HOOKSTREAM_API_TOKEN="wrong")
    assert done.returncode == 1
    assert "invalid API token" in done.stderr
    assert "HOOKSTREAM_API_TOKEN" in done.stderr


def test_unreachable_api_exits_3_naming_the_url(settings: Settings) -> None:
    """Connection refused names the URL tried."""
    url = f"http://127.0.0.1:{free_port()}"
    done = cli(settings, "list", "--url", url)
    assert done.returncode == 3
    assert url in done.stderr
    assert "connection refused" in done.stderr


def test_apply_falls_back_to_the_topic_when_no_api_answers(
    worker: WorkerProcess, settings: Settings, tmp_path: Path
) -> None:
    """Before any worker runs (make run, compose), apply writes the topic and says so."""
    path = write_yaml(tmp_path / "early.yaml", webhook_automation("cli-early"))
    done = cli(settings, "apply", "-f", str(path), "--url", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "automation/cli-early created"
    assert "writing the automations topic" in done.stderr
    assert settings.automations_topic in done.stderr
    assert eventually(lambda: http("GET", worker.url + "/automations/cli-early").status == 200)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_export_then_apply_changes_nothing(
    worker: WorkerProcess, settings: Settings, tmp_path: Path, fmt: str
) -> None:
    """`export` (API, or the topic when no API answers) writes what `apply -f` finds unchanged."""
    applied = cli(settings, "apply", "-f", str(ROOT / "deploy/examples/automations.yaml"))
    assert applied.returncode == 0, applied.stderr
    exported = tmp_path / f"export.{fmt}"
    done = cli(settings, "export", "-o", str(exported))
    assert done.returncode == 0, done.stderr
    again = cli(settings, "apply", "-f", str(exported))
    assert again.returncode == 0, again.stderr
    statuses = {line.rsplit(" ", 1)[1] for line in again.stdout.splitlines()}
    assert statuses == {"unchanged"}
    assert "automation/deploy-on-production unchanged" in again.stdout
    offline = cli(settings, "export", "--format", fmt, "--url", f"http://127.0.0.1:{free_port()}")
    assert offline.returncode == 0, offline.stderr
    assert "reading the automations topic" in offline.stderr
    assert offline.stdout == exported.read_text()
    one = cli(settings, "export", "deploy-on-production", "--format", fmt)
    assert "deploy-on-production" in one.stdout
    assert "train-on-new-dataset" not in one.stdout
    missing = cli(settings, "export", "no-such-automation")
    assert missing.returncode == 1
    assert "no automation no-such-automation" in missing.stderr
