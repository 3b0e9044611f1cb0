"""`hookstream up`: its plan (ports, secrets, network warnings) and the supervisor's life cycle."""

from __future__ import annotations

import asyncio
import io
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli.up import Child, Ports, Supervisor, dev_secrets, plan_children, refused_urls
from app.contract.automations import Automation
from app.core.loader import load_automations
from app.dispatch.signing import decode_secret
from app.settings import Settings
from tests.support import free_ports, wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples" / "automations.yaml"

# A child that reports SIGTERM and exits 0, as the real children do.
POLITE = (
    "import signal, sys, time\n"
    "def bye(*_):\n"
    "    print('{name} got SIGTERM', flush=True); sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, bye)\n"
    "print('{name} running', flush=True)\n"
    "time.sleep(60)\n"
)


def examples() -> list[Automation]:
    """The shipped example automations."""
    return [automation for _, automation in load_automations(EXAMPLES)]


def polite(name: str) -> Child:
    """A toy child named `name`."""
    return Child(name, (sys.executable, "-c", POLITE.format(name=name)), {})


def test_ports_follow_the_worker_port_and_report_busy_ones() -> None:
    """Dispatchers and receiver take the three ports after the worker's; busy ones are named."""
    ports = Ports.from_settings(Settings(web_port=17000))
    assert (ports.worker, ports.webhook, ports.notification, ports.receiver) == (
        17000,
        17001,
        17002,
        17003,
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        assert Ports(taken, taken, taken, taken).busy("127.0.0.1") == [taken] * 4


def test_dev_secrets_are_generated_once_and_private(tmp_path: Path) -> None:
    """Missing secrets of the examples are written 0600; a channel points at the receiver."""
    settings = Settings(data_dir=tmp_path / "data")
    folder, generated, missing = dev_secrets(settings, examples(), {}, "http://127.0.0.1:6069")
    assert folder == tmp_path / "data" / "dev-secrets"
    assert generated == [
        "DEPLOY_HOOK_SECRET",
        "DEPLOY_HOOK_TOKEN",
        "SLACK_DATA_TEAM",
        "SLACK_MODEL_REVIEW",
    ]
    assert missing == []
    secret = (folder / "DEPLOY_HOOK_SECRET").read_text().strip()
    assert len(decode_secret(secret)) == 32
    assert (folder / "SLACK_DATA_TEAM").read_text().strip() == (
        "http://127.0.0.1:6069/notifications/SLACK_DATA_TEAM"
    )
    assert stat.S_IMODE((folder / "DEPLOY_HOOK_TOKEN").stat().st_mode) == 0o600
    again = dev_secrets(settings, examples(), {}, "http://127.0.0.1:6069")
    assert again == (folder, [], [])
    assert (folder / "DEPLOY_HOOK_SECRET").read_text().strip() == secret


def test_configured_secrets_are_used_not_generated(tmp_path: Path) -> None:
    """An operator's secret (env or folder) is kept; with a folder, nothing is generated."""
    env = {"HOOKSTREAM_SECRET_DEPLOY_HOOK_SECRET": "raw-operator-secret"}
    settings = Settings(data_dir=tmp_path / "data")
    _, generated, _ = dev_secrets(settings, examples(), env, "http://x")
    assert "DEPLOY_HOOK_SECRET" not in generated
    own = tmp_path / "own"
    own.mkdir()
    with_dir = Settings(data_dir=tmp_path / "d2", dispatch={"secrets_dir": str(own)})
    folder, generated, missing = dev_secrets(with_dir, examples(), env, "http://x")
    assert (folder, generated) == (own, [])
    assert missing == ["DEPLOY_HOOK_TOKEN", "SLACK_DATA_TEAM", "SLACK_MODEL_REVIEW"]
    assert list(own.iterdir()) == []


def test_loopback_examples_are_refused_unless_allowed() -> None:
    """By default the dispatchers would refuse the examples' local URL, and `up` says so."""
    refused = refused_urls(Settings(), examples())
    assert refused == [
        "deploy-on-production: http://127.0.0.1:6069/hooks/deploy: "
        "refused by network policy: http:// is not allowed (https only)"
    ]
    assert refused_urls(Settings(dispatch={"allow_loopback": True}), examples()) == []


def test_plan_gives_each_child_its_port_and_the_secret_folder(tmp_path: Path) -> None:
    """Four children; each gets its own web port, the receiver the signing secret's name."""
    settings = Settings(web_port=17000)
    children = plan_children(
        settings,
        Ports.from_settings(settings),
        {"PATH": "/bin"},
        secrets_dir=tmp_path,
        receiver_secret_names=["DEPLOY_HOOK_SECRET"],
    )
    by_name = {child.name: child for child in children}
    assert list(by_name) == ["receiver", "worker", "webhook", "notification"]
    assert by_name["webhook"].argv[-2:] == ("dispatch", "webhook")
    assert by_name["notification"].env["HOOKSTREAM_WEB_PORT"] == "17002"
    assert by_name["receiver"].url == "http://127.0.0.1:17003"
    assert by_name["receiver"].argv[-2:] == ("--secret-name", "DEPLOY_HOOK_SECRET")
    for child in children:
        assert child.env["HOOKSTREAM_DISPATCH__SECRETS_DIR"] == str(tmp_path)
        assert child.env["PATH"] == "/bin"


async def test_one_death_stops_the_others_and_fails() -> None:
    """A child that exits on its own stops the rest (SIGTERM) and `up` exits 1."""
    out = io.StringIO()
    dying = Child("dying", (sys.executable, "-c", "import time; time.sleep(1); exit(3)"), {})
    code = await Supervisor([polite("steady"), dying], out, grace_seconds=10).run()
    log = out.getvalue()
    assert code == 1
    assert "dying exited with code 3; stopping the others" in log
    assert "steady got SIGTERM" in log
    assert "steady exited with code 0" in log


async def test_stop_request_stops_all_receiver_last() -> None:
    """One stop request (a Ctrl-C) stops every child, the receiver after the others; exit 0."""
    out = io.StringIO()
    supervisor = Supervisor([polite("receiver"), polite("worker")], out, grace_seconds=10)
    run = asyncio.create_task(supervisor.run())
    for _ in range(100):
        if out.getvalue().count("running") == 2:
            break
        await asyncio.sleep(0.1)
    supervisor.request_stop()
    assert await run == 0
    log = out.getvalue()
    assert log.index("worker got SIGTERM") < log.index("receiver got SIGTERM")
    assert "all parts are up" in log


async def test_a_child_ignoring_sigterm_is_killed() -> None:
    """After the grace period a child that does not stop is killed, not waited for forever."""
    stubborn = Child(
        "stubborn",
        (
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('running', flush=True); time.sleep(60)",
        ),
        {},
    )
    out = io.StringIO()
    supervisor = Supervisor([stubborn], out, grace_seconds=0.5)
    run = asyncio.create_task(supervisor.run())
    for _ in range(100):
        if "running" in out.getvalue():
            break
        await asyncio.sleep(0.1)
    supervisor.request_stop()
    assert await asyncio.wait_for(run, 20) == 0
    assert "did not stop within 0.5s: killed" in out.getvalue()


def test_up_refuses_unreadable_or_invalid_automations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing or invalid automations file stops `up` with the reason, before any child."""
    from app.cli.main import main

    assert main(["up", "--automations", str(tmp_path / "missing.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nevent: NOT_AN_EVENT\n")
    assert main(["up", "--automations", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "invalid automations, nothing started" in err
    assert "event" in err


async def test_a_command_that_cannot_start_stops_the_started_ones() -> None:
    """A missing executable fails `up` and the children already started are stopped."""
    out = io.StringIO()
    missing = Child("missing", ("/nonexistent/hookstream-binary",), {})
    code = await Supervisor([polite("first"), missing], out, grace_seconds=10).run()
    log = out.getvalue()
    assert code == 1
    assert "cannot start missing" in log
    assert "first exited with code" in log


def running(pid: int) -> bool:
    """Whether a process runs (a zombie nobody reaped yet has stopped running)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"


def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    """SIGKILL of `up` itself leaves no child behind (Linux parent-death signal)."""
    pid_file = tmp_path / "child.pid"
    child_code = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    script = (
        "import asyncio, sys\n"
        "from app.cli.up import Child, Supervisor\n"
        f"child = Child('c', (sys.executable, '-c', {child_code!r}), {{}})\n"
        "asyncio.run(Supervisor([child], sys.stdout).run())\n"
    )
    supervisor = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        assert wait_for(lambda: pid_file.exists() and pid_file.read_text() != "", 20, 0.1)
        child_pid = int(pid_file.read_text())
        supervisor.kill()
        supervisor.wait(10)
        assert wait_for(lambda: not running(child_pid), 10, 0.1)
    finally:
        supervisor.kill()


def test_up_without_a_broker_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No broker at the configured address: a clear error, exit 1, no child started."""
    from app.cli.main import main

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # nothing listens there once the probe is closed
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{closed}")
    monkeypatch.setenv("HOOKSTREAM_WEB_PORT", str(free_ports(4)))
    assert main(["up", "--automations", str(EXAMPLES)]) == 1
    captured = capsys.readouterr()
    assert f"error: Kafka at 127.0.0.1:{closed}" in captured.err
    assert "nothing started" in captured.err
    assert "receiver" not in captured.out
