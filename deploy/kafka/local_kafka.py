#!/usr/bin/env python3
"""A local Apache Kafka (KRaft, one combined broker+controller) run from Maven Central jars.

No Docker needed: Java 17+ and Maven resolve the pinned Kafka of ``pom.xml`` into a
cache outside the repository, format KRaft storage once and start ``kafka.Kafka`` on
127.0.0.1. Every command is idempotent: ``up`` on a running broker is a no-op, and a
stale pid file or an unusable data folder is cleaned up instead of breaking the start.

Usage::

    local_kafka.py up [--port 9092]          start (or reuse) and wait until ready
    local_kafka.py down [--port 9092]        stop the broker on that port
    local_kafka.py status [--port 9092]      exit 0 when running and ready
    local_kafka.py run [--port 9092] -- CMD  start unless running, run CMD with
                                             KAFKA_BOOTSTRAP_SERVERS set, stop only
                                             a broker this call started

Environment: ``HOOKSTREAM_KAFKA_PORT`` (default 9092), ``HOOKSTREAM_KAFKA_CACHE``
(default ``$XDG_CACHE_HOME/hookstream`` or ``~/.cache/hookstream``),
``HOOKSTREAM_KAFKA_HEAP`` (default ``512m``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LOG4J = HERE / "log4j2.properties"
MAVEN_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def kafka_version() -> str:
    """The pinned Kafka version, read from pom.xml (its only home)."""
    node = ET.parse(POM).getroot().find("m:properties/m:kafka.version", MAVEN_NS)
    if node is None or not node.text:
        raise SystemExit(f"no kafka.version property in {POM}")
    return node.text.strip()


def cache_root() -> Path:
    """Where jars and broker state live: outside the repository."""
    if env := os.environ.get("HOOKSTREAM_KAFKA_CACHE"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "hookstream"


def libs_dir() -> Path:
    """The resolved jars of the pinned version (filled once, then reused)."""
    return cache_root() / f"kafka-{kafka_version()}" / "libs"


def run_dir(port: int) -> Path:
    """State of the broker on one port: config, data, logs, pid."""
    return cache_root() / f"broker-{port}"


def jars_resolved() -> bool:
    """Whether the jars of the pinned version are in the cache (so starting downloads nothing)."""
    return (libs_dir() / ".complete").exists()


def resolve_jars() -> Path:
    """Resolve Kafka and its runtime dependencies from Maven Central into the cache."""
    libs = libs_dir()
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise SystemExit(
            "mvn not found: install Java 17+ and Maven, or set KAFKA_BOOTSTRAP_SERVERS"
        )
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"resolving Apache Kafka {kafka_version()} from Maven Central into {libs} ...", flush=True
    )
    started = time.monotonic()
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={tmp}",
        "-DincludeScope=runtime",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"mvn failed ({proc.returncode}) resolving Kafka jars")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    marker.write_text(kafka_version())
    print(f"resolved {len(list(libs.glob('*.jar')))} jars in {time.monotonic() - started:.1f}s")
    return libs


def java_cmd(libs: Path, heap: str, *args: str) -> list[str]:
    """A java command line over the cached jars."""
    java = shutil.which("java")
    if java is None:
        raise SystemExit("java not found: install Java 17+")
    return [
        java,
        f"-Xmx{heap}",
        f"-Xms{heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        "-XX:TieredStopAtLevel=1",  # C1 only: faster start, ample speed for a dev broker
        "-Xshare:auto",
        "-cp",
        f"{libs}/*",
        *args,
    ]


def write_config(port: int, controller_port: int) -> Path:
    """Write server.properties for a single combined node on loopback."""
    rd = run_dir(port)
    (rd / "logs").mkdir(parents=True, exist_ok=True)
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(rd / "data"),
        "num.partitions": "4",
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
        # One node: internal topics cannot have more than one replica.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": "24",
        "log.segment.bytes": str(64 * 1024 * 1024),
        # No message.max.bytes: the broker keeps Kafka's stock 1 MiB, as docker compose
        # and most clusters do, so the tests see what Hookstream's own topic configs
        # (max.message.bytes per topic, app/kafka/admin.py) must provide (issue 18).
    }
    path = rd / "server.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def read_pid(port: int) -> int | None:
    """The pid of a live broker on this port, or None (a stale pid file is removed)."""
    pid_file = run_dir(port) / "kafka.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
        cmdline = (
            Path(f"/proc/{pid}/cmdline").read_bytes() if Path("/proc").exists() else b"kafka.Kafka"
        )
    except (OSError, ProcessLookupError):
        cmdline = b""
    if b"kafka.Kafka" not in cmdline:
        pid_file.unlink(missing_ok=True)
        return None
    return pid


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _metadata_ok(bootstrap: str) -> bool:
    from aiokafka import AIOKafkaClient  # the venv has it; imported late so --help works anywhere

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await client.bootstrap()  # sends a Metadata request and reads the answer
        return bool(client.cluster.brokers())
    except Exception:
        return False
    finally:
        await client.close()


def broker_ready(port: int) -> bool:
    """Whether the broker answers a Metadata request."""
    if not port_open(port):
        return False
    return asyncio.run(_metadata_ok(f"127.0.0.1:{port}"))


def format_storage(libs: Path, config: Path, heap: str) -> None:
    """Format KRaft storage once (kept across restarts so topics survive)."""
    data = run_dir(int(config.parent.name.split("-")[-1])) / "data"
    if (data / "meta.properties").exists():
        return
    shutil.rmtree(data, ignore_errors=True)
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    cmd = java_cmd(
        libs, "256m", "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit("formatting KRaft storage failed")


def start(port: int, controller_port: int, heap: str, timeout: float) -> bool:
    """Start the broker unless it runs; return True when this call started it."""
    started_at = time.monotonic()
    if read_pid(port) is not None:
        if wait_ready(port, timeout):
            print(f"kafka already running on 127.0.0.1:{port}")
            return False
        raise SystemExit(
            f"a broker runs on {port} but does not answer; see {run_dir(port) / 'logs'}"
        )
    if port_open(port):
        if broker_ready(port):
            # A broker we did not start (another checkout, a system service): use it.
            print(f"a Kafka broker already answers on 127.0.0.1:{port}; using it")
            return False
        raise SystemExit(f"port {port} is taken by another program; set HOOKSTREAM_KAFKA_PORT")
    libs = resolve_jars()
    for attempt in (1, 2):
        config = write_config(port, controller_port)
        format_storage(libs, config, heap)
        logs = run_dir(port) / "logs"
        out = (logs / "stdout.log").open("ab")
        cmd = java_cmd(
            libs,
            heap,
            f"-Dlog4j2.configurationFile={LOG4J}",
            f"-Dkafka.logs.dir={logs}",
            "kafka.Kafka",
            str(config),
        )
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        (run_dir(port) / "kafka.pid").write_text(str(proc.pid))
        if wait_ready(port, timeout, proc):
            print(
                f"kafka {kafka_version()} ready on 127.0.0.1:{port} in "
                f"{time.monotonic() - started_at:.1f}s (pid {proc.pid})"
            )
            return True
        stop(port, quiet=True)
        if attempt == 1:
            # A data folder from another version or a crashed format: start afresh once.
            print(
                "broker did not come up; wiping its data folder and trying once more",
                file=sys.stderr,
            )
            shutil.rmtree(run_dir(port) / "data", ignore_errors=True)
    raise SystemExit(
        f"kafka did not start; its log: {run_dir(port) / 'logs' / 'server.log'} "
        f"and {run_dir(port) / 'logs' / 'stdout.log'}"
    )


def wait_ready(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Poll until the broker answers metadata, the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if broker_ready(port):
            return True
        time.sleep(0.3)
    return False


def stop(port: int, quiet: bool = False) -> None:
    """Stop the broker on this port (SIGTERM, then SIGKILL after 30 s)."""
    pid = read_pid(port)
    if pid is None:
        if not quiet:
            print(f"no local kafka running on {port}")
        return
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        _reap(pid)
        time.sleep(0.2)
    else:
        os.killpg(pid, signal.SIGKILL)
    (run_dir(port) / "kafka.pid").unlink(missing_ok=True)
    if not quiet:
        print(f"kafka on {port} stopped")


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status", "run", "jars", "version"])
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("HOOKSTREAM_KAFKA_PORT", "9092"))
    )
    parser.add_argument("--controller-port", type=int, default=0, help="default: port + 1")
    parser.add_argument("--timeout", type=float, default=90.0)
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" is the command for `run`; argparse's REMAINDER would also
    # swallow our own options when they follow the subcommand.
    rest: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1 :]
    args = parser.parse_args(argv)
    heap = os.environ.get("HOOKSTREAM_KAFKA_HEAP", "512m")
    controller_port = args.controller_port or args.port + 1
    if args.command == "version":
        print(kafka_version())
    elif args.command == "jars":
        print(resolve_jars())
    elif args.command == "up":
        start(args.port, controller_port, heap, args.timeout)
    elif args.command == "down":
        stop(args.port)
    elif args.command == "status":
        ok = broker_ready(args.port)
        print(f"kafka on 127.0.0.1:{args.port}: {'ready' if ok else 'not running'}")
        return 0 if ok else 1
    elif args.command == "run":
        if not rest:
            parser.error("run needs a command after --")
        mine = start(args.port, controller_port, heap, args.timeout)
        env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{args.port}")
        try:
            return subprocess.call(rest, env=env)
        except KeyboardInterrupt:
            return 130
        finally:
            if mine:
                stop(args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
