"""`make run` (`hookstream up`) on the real broker: the example event ends verified and FINISHED."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from app import serialization
from tests.integration.harness import ROOT, produce_events, settings_env
from tests.support import eventually, free_ports, isolated_settings

EXAMPLES = ROOT / "deploy" / "examples"
EXAMPLE_PORT = 6069  # the receiver port the example automations name


def up_process(make_pid: int) -> int | None:
    """The pid of `hookstream up` under `make run` (the recipe's shell execs it)."""
    children = Path(f"/proc/{make_pid}/task/{make_pid}/children")
    for pid in children.read_text().split() if children.exists() else []:
        if b"up" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
            return int(pid)
    return None


def get_json(url: str) -> Any:
    """GET a JSON document."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return serialization.loads(response.read())


def test_up_delivers_the_example_event_verified_and_finished(
    kafka_bootstrap: str, uid: str, tmp_path: Path
) -> None:
    """`make run` with the examples: the receiver verifies the delivery; history says FINISHED."""
    port = free_ports(4)
    settings = isolated_settings(kafka_bootstrap, uid, tmp_path, web_port=port)
    automations = tmp_path / "automations.yaml"
    text = (EXAMPLES / "automations.yaml").read_text()
    assert f"http://127.0.0.1:{EXAMPLE_PORT}/hooks/deploy" in text
    automations.write_text(text.replace(f":{EXAMPLE_PORT}/", f":{port + 3}/"))
    # `make run` as a user runs it (the loopback setting is the Makefile's own), with this
    # test's settings; a parent make's jobserver flags are not this one's.
    env = {k: v for k, v in settings_env(settings).items() if k not in ("MAKEFLAGS", "MFLAGS")}
    env.pop("HOOKSTREAM_DISPATCH__ALLOW_LOOPBACK", None)
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as sink:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"RUN_AUTOMATIONS={automations}"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def up_or_gone() -> bool:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            return "all parts are up" in log_path.read_text()

        eventually(up_or_gone, timeout=180, every=0.5)
        log = log_path.read_text()
        for part, offset in (("worker", 0), ("webhook", 1), ("notification", 2), ("receiver", 3)):
            url = f"http://127.0.0.1:{port + offset}"
            assert any(f"| {part} " in ln and url in ln for ln in log.splitlines()), part
        assert "development secrets written to" in log
        lines = (EXAMPLES / "events.jsonl").read_text().splitlines()
        examples = {e["event_id"]: e for e in map(serialization.loads, filter(None, lines))}
        produce_events(settings, settings.registry_events_topic, [examples["evt-0002-alias-prod"]])
        # The example notification's channel is the receiver too (a generated dev secret).
        produce_events(settings, settings.artifact_events_topic, [examples["evt-0004-alias-qc"]])

        def delivery() -> str | None:
            lines = log_path.read_text().splitlines()
            hits = [ln for ln in lines if "POST /hooks/deploy" in ln]
            return hits[0] if hits else None

        line = eventually(delivery, timeout=60)
        assert "-> 200 verified" in line
        assert "automation=deploy-on-production" in line
        log = log_path.read_text()
        assert "webhook-signature: verified" in log
        assert "X-Wandb-Signature: verified" in log
        assert '"model": "acme/wandb-registry-model/mnist-classifier:v3"' in log
        history_url = f"http://127.0.0.1:{port}/automations/deploy-on-production/history"

        def finished() -> dict[str, Any] | None:
            executions = get_json(history_url)["executions"]
            done = [e for e in executions if e["status"] == "FINISHED"]
            return done[0] if done else None

        execution = eventually(finished, timeout=60)
        assert execution["event_id"] == "evt-0002-alias-prod"
        assert f"id={execution['job_id']}" in line
        # What the receiver saved verifies by hand too, with the generated secret's file.
        saved = settings.data_dir / "deliveries"
        headers_file = next(
            path
            for path in sorted(saved.glob("*.headers.json"))
            if execution["job_id"] in path.read_text()
        )
        body_file = saved / headers_file.name.replace(".headers.json", ".body")
        secret_file = settings.data_dir / "dev-secrets" / "DEPLOY_HOOK_SECRET"
        check = subprocess.run(
            [
                *(sys.executable, "-m", "app.cli", "verify-signature"),
                *("--secret-file", str(secret_file)),
                *("--headers-file", str(headers_file), "--body", str(body_file)),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )
        assert check.returncode == 0, check.stderr
        assert check.stderr.strip() == "valid (standard)"
        notified = eventually(
            lambda: "POST /notifications/SLACK_DATA_TEAM -> 200 unsigned" in log_path.read_text(),
            timeout=60,
        )
        assert notified
        assert "passed its quality check" in log_path.read_text()
    finally:
        # SIGTERM to `hookstream up` alone (make's child): it stops every part, make exits 0.
        up = up_process(proc.pid)
        if up is not None:
            os.kill(up, signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        started = time.monotonic()
        code = proc.wait(timeout=90)
    log = log_path.read_text()
    assert code == 0, log[-3000:]
    assert time.monotonic() - started < 60
    for part in ("worker", "webhook", "notification", "receiver"):
        assert f"{part} exited with code 0" in log
