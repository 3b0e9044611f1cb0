"""`hookstream up` as `make run` starts it: the example event ends verified and FINISHED."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from app import serialization
from tests.integration.harness import ROOT, produce_events, settings_env
from tests.support import eventually, isolated_settings

EXAMPLES = ROOT / "deploy" / "examples"
EXAMPLE_PORT = 6069  # the receiver port the example automations name


def free_block(size: int) -> int:
    """The first of `size` consecutive ports free on loopback."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + size > 65535:
            continue
        sockets = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise AssertionError("no block of free ports")


def get_json(url: str) -> Any:
    """GET a JSON document."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return serialization.loads(response.read())


def test_up_delivers_the_example_event_verified_and_finished(
    kafka_bootstrap: str, uid: str, tmp_path: Path
) -> None:
    """`up` with the examples: the receiver verifies the delivery; history says FINISHED."""
    port = free_block(4)
    settings = isolated_settings(kafka_bootstrap, uid, tmp_path, web_port=port)
    automations = tmp_path / "automations.yaml"
    text = (EXAMPLES / "automations.yaml").read_text()
    assert f"http://127.0.0.1:{EXAMPLE_PORT}/hooks/deploy" in text
    automations.write_text(text.replace(f":{EXAMPLE_PORT}/", f":{port + 3}/"))
    env = {**settings_env(settings), "HOOKSTREAM_DISPATCH__ALLOW_LOOPBACK": "true"}
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "up", "--automations", str(automations)],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        eventually(lambda: "all parts are up" in log_path.read_text(), timeout=180, every=0.5)
        log = log_path.read_text()
        for part, offset in (("worker", 0), ("webhook", 1), ("notification", 2), ("receiver", 3)):
            url = f"http://127.0.0.1:{port + offset}"
            assert any(f"| {part} " in ln and url in ln for ln in log.splitlines()), part
        assert "development secrets written to" in log
        event = next(
            serialization.loads(line)
            for line in (EXAMPLES / "events.jsonl").read_text().splitlines()
            if '"evt-0002-alias-prod"' in line
        )
        produce_events(settings, settings.registry_events_topic, [event])

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
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        started = time.monotonic()
        code = proc.wait(timeout=90)
    log = log_path.read_text()
    assert code == 0, log[-3000:]
    assert time.monotonic() - started < 60
    for part in ("worker", "webhook", "notification", "receiver"):
        assert f"{part} exited with code 0" in log
