"""`hookstream publish` and `hookstream tail` as a person uses them, against a real worker."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from app import serialization
from app.contract.automations import parse_automation
from app.kafka.automations import apply_automations
from app.settings import Settings
from tests.factories import run_metric_dict, run_state_bytes
from tests.integration.harness import ROOT, WorkerProcess, settings_env


def hookstream(
    settings: Settings, *args: str, timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the console script with this test's settings (and `stdin` as its input)."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=settings_env(settings),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_publish_from_flags_then_tail_shows_the_job(
    hs_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    """The README quick start: publish an alias event by flags, tail the webhook topic."""
    asyncio.run(
        apply_automations(
            hs_settings,
            [
                parse_automation(
                    {
                        "id": "deploy",
                        "name": "deploy",
                        "event": "ADD_ARTIFACT_ALIAS",
                        "scope": {"type": "registry", "entity": "acme", "registry": "model"},
                        "filter": {"alias": "production"},
                        "action": {
                            "type": "webhook",
                            "url": "https://ci.example.com/deploy",
                            "payload": (
                                '{"model": "${artifact_version_string}", "by": "${event_author}"}'
                            ),
                        },
                    }
                )
            ],
        )
    )
    start_worker()
    published = hookstream(
        hs_settings,
        "publish",
        "--type",
        "ADD_ARTIFACT_ALIAS",
        "--entity",
        "acme",
        "--project",
        "wandb-registry-model",
        "--registry",
        "model",
        "--collection",
        "mnist-classifier",
        "--version",
        "3",
        "--alias",
        "production",
        "--author",
        "alice",
    )
    assert published.returncode == 0, published.stderr
    assert published.stdout.startswith(hs_settings.registry_events_topic)

    tailed = hookstream(
        hs_settings,
        "tail",
        hs_settings.webhook_topic,
        "--from-beginning",
        "--max",
        "1",
        "--timeout",
        "30",
    )
    assert tailed.returncode == 0, tailed.stderr
    key, _, value = tailed.stdout.strip().partition("\t")
    job = serialization.loads(value)
    assert key == "deploy"
    assert serialization.loads(job["action"]["payload"]) == {
        "model": "acme/wandb-registry-model/mnist-classifier:v3",
        "by": "alice",
    }


def test_publish_refuses_an_invalid_event_with_its_reason(hs_settings: Settings) -> None:
    """An invalid event is not sent unless --raw asks for it; the reason names the field."""
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "publish", "-"],
        cwd=ROOT,
        env=settings_env(hs_settings),
        input='{"event_id": "x", "event_type": "CREATE_ARTIFACT"}',
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "invalid event" in result.stderr
    assert "occurred_at" in result.stderr or "entity" in result.stderr
    broken = subprocess.run(
        [sys.executable, "-m", "app.cli", "publish", "-"],
        cwd=ROOT,
        env=settings_env(hs_settings),
        input="{not json",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert broken.returncode == 1
    assert "not valid JSON" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_publish_a_run_metric_by_flags_and_a_run_state_from_a_file(
    hs_settings: Settings, tmp_path: Path
) -> None:
    """`publish --type RUN_METRIC ...` and a file's RUN_STATE land on run-events, keyed
    by run path, as the contract writes them (read back with `tail`)."""
    published = hookstream(
        hs_settings,
        "publish",
        *("--type", "RUN_METRIC", "--entity", "acme", "--project", "mnist"),
        *("--run-id", "1x2y3z", "--run-name", "bright-sun-1", "--author", "alice"),
        *("--step", "120", "--metric", "loss=0.31", "--metric", "acc=0.9"),
    )
    assert published.returncode == 0, published.stderr
    # The worker's default event_id of a record without one: run path @ partition:offset.
    assert re.fullmatch(
        rf"{hs_settings.run_events_topic} <- RUN_METRIC acme/mnist/1x2y3z@\d+:0 "
        r"\(acme/mnist/1x2y3z\)\n",
        published.stdout,
    ), published.stdout
    states = tmp_path / "states.json"
    state_record = serialization.loads(run_state_bytes("finished", event_id="state-1"))
    state_record["run"] = {"id": "1x2y3z"}
    states.write_bytes(serialization.dumps([state_record]))
    from_file = hookstream(hs_settings, "publish", str(states))
    assert from_file.returncode == 0, from_file.stderr
    assert "<- RUN_STATE state-1 (acme/mnist/1x2y3z)" in from_file.stdout

    tailed = hookstream(
        hs_settings,
        *("tail", hs_settings.run_events_topic, "--from-beginning"),
        *("--max", "2", "--timeout", "30"),
    )
    assert tailed.returncode == 0, tailed.stderr
    lines = [line.partition("\t") for line in tailed.stdout.strip().splitlines()]
    assert [key for key, _, _ in lines] == ["acme/mnist/1x2y3z"] * 2
    metric, state = (serialization.loads(value) for _, _, value in lines)
    assert (metric["event_type"], metric["step"]) == ("RUN_METRIC", 120)
    assert metric["metrics"] == {"loss": 0.31, "acc": 0.9}
    assert metric["run"] == {"id": "1x2y3z", "name": "bright-sun-1", "user": "alice"}
    assert "event_id" not in metric
    assert (state["event_type"], state["state"], state["event_id"]) == (
        "RUN_STATE",
        "finished",
        "state-1",
    )


def test_publish_refuses_an_invalid_run_record_and_sends_nothing(hs_settings: Settings) -> None:
    """A RUN_METRIC whose metric is a string: exit 1 naming `metrics.loss`, and the
    run-events topic stays empty."""
    record = run_metric_dict(1, {"loss": "low"})
    refused = hookstream(hs_settings, "publish", "-", stdin=serialization.dumps_str(record))
    assert refused.returncode == 1
    assert refused.stderr.startswith("invalid run record: metrics.loss"), refused.stderr
    tailed = hookstream(
        hs_settings,
        *("tail", hs_settings.run_events_topic, "--from-beginning", "--timeout", "3"),
    )
    assert tailed.returncode == 0, tailed.stderr
    assert tailed.stdout == ""
    # --raw sends it as it is, to run-events (where the worker dead-letters it).
    raw = hookstream(hs_settings, "publish", "--raw", "-", stdin=serialization.dumps_str(record))
    assert raw.returncode == 0, raw.stderr
    sent = hookstream(
        hs_settings,
        *("tail", hs_settings.run_events_topic, "--from-beginning", "--max", "1"),
        *("--timeout", "30"),
    )
    assert serialization.loads(sent.stdout.partition("\t")[2]) == record
