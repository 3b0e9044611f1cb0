"""The fault suite's figures: collected by the tests, written as JSON, rendered as a table.

Render a written report::

    .venv/bin/python -m tests.faults.report build/faults-report.json
"""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import serialization

__all__ = ["COLUMNS", "Report", "render"]

COLUMNS = (
    ("scenario", "scenario"),
    ("events_sent", "events sent"),
    ("jobs_expected", "jobs expected"),
    ("jobs_seen", "jobs seen"),
    ("lost", "lost"),
    ("duplicates", "duplicates"),
    ("dead_letters", "dead letters"),
    ("recovery_seconds", "recovery (s)"),
    ("worker_stops", "worker stops"),
    ("notes", "notes"),
)


class Report:
    """Scenario figures of one session, merged into the JSON file at `path` on write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.scenarios: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def add(self, scenario: str, **figures: Any) -> None:
        """Record (or replace) one scenario's figures."""
        with self._lock:
            self.scenarios[scenario] = {"scenario": scenario, **figures}

    def write(self) -> None:
        """Merge into the JSON file (other scenarios of earlier runs are kept) and render."""
        if not self.scenarios:
            return
        existing: dict[str, Any] = {}
        if self.path.exists():
            try:
                existing = serialization.loads(self.path.read_bytes())
            except (OSError, serialization.JSONDecodeError):
                existing = {}
        scenarios = dict(existing.get("scenarios", {}))
        scenarios.update(self.scenarios)
        data = {"written_at": datetime.now(UTC).isoformat(), "scenarios": scenarios}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(serialization.dumps(data, sort_keys=True, indent=True))
        self.path.with_suffix(".md").write_text(render(data))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("|", "\\|")


def render(data: dict[str, Any]) -> str:
    """A Markdown table of every scenario, in name order."""
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for name in sorted(data.get("scenarios", {})):
        row = data["scenarios"][name]
        lines.append("| " + " | ".join(_cell(row.get(key)) for key, _ in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Print the table of a report file."""
    path = Path(argv[0]) if argv else Path("build/faults-report.json")
    sys.stdout.write(render(serialization.loads(path.read_bytes())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
