"""`hookstream publish` and `hookstream tail` as a person uses them, against a real worker."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable

from app import serialization
from app.contract.automations import parse_automation
from app.kafka.automations import apply_automations
from app.settings import Settings
from tests.integration.harness import ROOT, WorkerProcess, settings_env


def hookstream(
    settings: Settings, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the console script with this test's settings."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=settings_env(settings),
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
