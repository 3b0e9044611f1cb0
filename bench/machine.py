"""What the benchmark ran on: CPU, memory, versions, load."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

__all__ = ["Machine", "cpu_pressure", "cpu_seconds", "describe", "load_average", "rss_kib"]

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Machine:
    """The machine description written above the figures."""

    nproc: int
    memory_gib: float
    cpu_model: str
    python: str
    kafka: str
    packages: str
    kernel: str


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1024 * 1024)
    except OSError:
        pass
    return 0.0


def _kafka_version() -> str:
    try:
        out = subprocess.run(
            [sys.executable, str(ROOT / "deploy" / "kafka" / "local_kafka.py"), "version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def describe() -> Machine:
    """Describe this machine and the software under test."""
    names = ("faust-streaming", "aiokafka", "pydantic", "orjson", "uvloop")
    return Machine(
        nproc=os.cpu_count() or 0,
        memory_gib=_memory_gib(),
        cpu_model=_cpu_model(),
        python=platform.python_version(),
        kafka=_kafka_version(),
        packages=", ".join(f"{name} {version(name)}" for name in names),
        kernel=platform.release(),
    )


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    return os.getloadavg()


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB: resident now, and its peak."""
    rss = hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def cpu_pressure() -> float | None:
    """Share of the last 5 minutes some task waited for a CPU (PSI), in %; None if unknown."""
    try:
        for line in Path("/proc/pressure/cpu").read_text().splitlines():
            if line.startswith("some"):
                fields = dict(part.split("=") for part in line.split()[1:])
                return float(fields["avg300"])
    except (OSError, KeyError, ValueError):
        pass
    return None
