"""Read automations (YAML or JSON files, or a folder of them) and events (JSON lines).

An automations file holds one document, a list, several YAML documents, or JSON
lines. `.json` is read as JSON (then JSON lines), `.jsonl`/`.ndjson` as JSON lines,
anything else as YAML (then JSON lines). A folder contributes its `.yaml`, `.yml`,
`.json`, `.jsonl` and `.ndjson` files in name order, hidden files excluded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from app.contract.automations import Automation, parse_automation
from app.contract.events import Event, parse_event
from app.errors import InvalidAutomationError, InvalidEventError
from app.serialization import JSONDecodeError, dumps, loads

__all__ = [
    "AUTOMATION_SUFFIXES",
    "iter_event_lines",
    "iter_records",
    "load_automation_documents",
    "load_automations",
    "load_events",
]

AUTOMATION_SUFFIXES = (".yaml", ".yml", ".json", ".jsonl", ".ndjson")
_JSON_LINES = (".jsonl", ".ndjson")


def _json_lines(text: str, name: str) -> list[tuple[str, Any]]:
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                out.append((f"{name} line {number}", loads(line)))
            except JSONDecodeError as exc:
                raise InvalidAutomationError(
                    [(f"{name} line {number}", f"not valid JSON: {exc}")]
                ) from None
    return out


def _flatten(location: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, list):
        return [(f"{location} item {i + 1}", item) for i, item in enumerate(value)]
    return [(location, value)]


def _read(path: Path) -> list[tuple[str, Any]]:
    name = str(path)
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix in _JSON_LINES:
        return _json_lines(text, name)
    if suffix == ".json":
        try:
            return _flatten(name, loads(text))
        except JSONDecodeError:
            return _json_lines(text, name)
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        try:
            return _json_lines(text, name)
        except InvalidAutomationError:
            raise InvalidAutomationError([(name, f"not valid YAML: {exc}")]) from None
    if len(documents) == 1:
        return _flatten(name, documents[0])
    out: list[tuple[str, Any]] = []
    for i, doc in enumerate(documents):
        out.extend(_flatten(f"{name} document {i + 1}", doc))
    return out


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(
            p
            for p in path.iterdir()
            if p.is_file()
            and not p.name.startswith(".")
            and p.suffix.lower() in AUTOMATION_SUFFIXES
        )
    return [path]


def load_automation_documents(path: str | Path) -> list[tuple[str, Any]]:
    """Every automation document as (location, raw value), unvalidated; raises OSError."""
    out: list[tuple[str, Any]] = []
    for file in _files(Path(path)):
        out.extend(_read(file))
    return out


def load_automations(path: str | Path) -> list[tuple[str, Automation]]:
    """Validated automations as (location, automation); raises InvalidAutomationError or OSError.

    Every invalid document is reported at once, each field error prefixed with its
    location (file, then document, item or line); duplicate ids are refused too.
    """
    loaded: list[tuple[str, Automation]] = []
    errors: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for location, document in load_automation_documents(path):
        try:
            automation = parse_automation(document)
        except InvalidAutomationError as exc:
            errors.extend(
                (f"{location}: {field}" if field else location, reason)
                for field, reason in exc.errors
            )
            continue
        if automation.id in seen:
            errors.append(
                (
                    f"{location}: id",
                    f"duplicate id '{automation.id}' (also in {seen[automation.id]})",
                )
            )
            continue
        seen[automation.id] = location
        loaded.append((location, automation))
    if errors:
        raise InvalidAutomationError(errors)
    return loaded


def iter_event_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes) of every non-blank line of a JSON-lines file; raises OSError."""
    with Path(path).open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if stripped:
                yield number, stripped


def iter_records(path: str | Path) -> Iterator[tuple[str, int, bytes]]:
    """("line", number, raw) of a JSON-lines file, or ("record", number, raw) of each
    element of a file holding one JSON array (numbered from 1); raises OSError."""
    with Path(path).open("rb") as handle:
        head = handle.read(1)
        while head.isspace():
            head = handle.read(1)
        if head == b"[":
            try:
                items = loads(head + handle.read())
            except JSONDecodeError:
                items = None  # not one array: read as JSON lines (its first line is one)
            if isinstance(items, list):
                for number, item in enumerate(items, start=1):
                    yield "record", number, dumps(item)
                return
    for number, raw in iter_event_lines(path):
        yield "line", number, raw


def load_events(path: str | Path, max_bytes: int = 1024 * 1024) -> list[Event]:
    """Every event of a JSON-lines file; raises InvalidEventError naming the first bad line."""
    events = []
    for number, raw in iter_event_lines(path):
        try:
            event, _ = parse_event(raw, max_bytes)
        except InvalidEventError as exc:
            raise InvalidEventError(f"line {number}: {exc.reason}", code=exc.code) from None
        events.append(event)
    return events
