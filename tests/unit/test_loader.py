"""Loading automations from YAML/JSON files and folders, and events from JSON lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.loader import iter_event_lines, iter_records, load_automations, load_events
from app.errors import InvalidAutomationError, InvalidEventError
from app.serialization import dumps
from tests.factories import event_bytes

ONE = """
id: a1
name: A
event: ADD_ARTIFACT_ALIAS
scope: {type: registry, entity: acme, registry: model}
action: {type: no_op}
"""


def doc(automation_id: str) -> dict[str, object]:
    """A minimal valid automation document."""
    return {
        "id": automation_id,
        "name": automation_id,
        "event": "ADD_ARTIFACT_ALIAS",
        "scope": {"type": "registry", "entity": "acme", "registry": "model"},
        "action": {"type": "no_op"},
    }


def ids(path: Path) -> list[str]:
    """Ids of the automations loaded from a path."""
    return [automation.id for _, automation in load_automations(path)]


def test_single_yaml_document(tmp_path: Path) -> None:
    """One YAML document is one automation, located by its file."""
    path = tmp_path / "a.yaml"
    path.write_text(ONE)
    [(location, automation)] = load_automations(path)
    assert location == str(path)
    assert automation.id == "a1"


def test_multi_document_yaml_and_lists(tmp_path: Path) -> None:
    """Several YAML documents, one of them a list, all load in order."""
    path = tmp_path / "many.yml"
    path.write_text(
        ONE + "---\n- " + dumps(doc("b1")).decode() + "\n- " + dumps(doc("b2")).decode() + "\n"
    )
    assert ids(path) == ["a1", "b1", "b2"]
    locations = [location for location, _ in load_automations(path)]
    assert locations[1] == f"{path} document 2 item 1"


def test_json_document_list_and_json_lines(tmp_path: Path) -> None:
    """A JSON object, a JSON list and JSON lines all load."""
    single = tmp_path / "one.json"
    single.write_bytes(dumps(doc("j1")))
    listed = tmp_path / "list.json"
    listed.write_bytes(dumps([doc("j2"), doc("j3")]))
    lines = tmp_path / "lines.jsonl"
    lines.write_bytes(dumps(doc("l1")) + b"\n\n" + dumps(doc("l2")) + b"\n")
    as_json = tmp_path / "lines.json"
    as_json.write_bytes(dumps(doc("m1")) + b"\n" + dumps(doc("m2")) + b"\n")
    assert ids(single) == ["j1"]
    assert ids(listed) == ["j2", "j3"]
    assert ids(lines) == ["l1", "l2"]
    assert ids(as_json) == ["m1", "m2"]
    assert [loc for loc, _ in load_automations(lines)] == [f"{lines} line 1", f"{lines} line 3"]


def test_folder_loads_known_files_in_order(tmp_path: Path) -> None:
    """A folder contributes its YAML/JSON files by name; hidden and other files are skipped."""
    (tmp_path / "b.yaml").write_text(ONE)
    (tmp_path / "a.json").write_bytes(dumps(doc("a0")))
    (tmp_path / ".hidden.yaml").write_text("not: [valid")
    (tmp_path / "notes.txt").write_text("ignored")
    assert ids(tmp_path) == ["a0", "a1"]


def test_errors_name_file_document_and_field(tmp_path: Path) -> None:
    """Invalid documents are all reported with file, document index and field."""
    path = tmp_path / "bad.yaml"
    bad = dict(doc("ok"), id="Bad Id")
    path.write_text(
        ONE + "---\n" + dumps(bad).decode() + "\n---\n" + dumps(dict(doc("x"), colour=1)).decode()
    )
    with pytest.raises(InvalidAutomationError) as info:
        load_automations(path)
    fields = [field for field, _ in info.value.errors]
    assert fields == [f"{path} document 2: id", f"{path} document 3: colour"]


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    """The same id twice is refused, naming both places."""
    path = tmp_path / "dup.jsonl"
    path.write_bytes(dumps(doc("d")) + b"\n" + dumps(doc("d")) + b"\n")
    with pytest.raises(InvalidAutomationError, match="duplicate id 'd'") as info:
        load_automations(path)
    assert "line 1" in info.value.errors[0][1]


def test_unparseable_files(tmp_path: Path) -> None:
    """Broken YAML and broken JSON lines are refused with the location."""
    yaml_path = tmp_path / "broken.yaml"
    yaml_path.write_text("id: [unclosed\n")
    with pytest.raises(InvalidAutomationError, match="not valid YAML"):
        load_automations(yaml_path)
    lines = tmp_path / "broken.jsonl"
    lines.write_text('{"id": 1}\n{nope\n')
    with pytest.raises(InvalidAutomationError, match="line 2"):
        load_automations(lines)


def test_missing_file_raises_oserror(tmp_path: Path) -> None:
    """A missing file is an OSError for the caller to report."""
    with pytest.raises(FileNotFoundError, match=r"absent\.yaml"):
        load_automations(tmp_path / "absent.yaml")


def test_event_lines(tmp_path: Path) -> None:
    """Event files are read as JSON lines, skipping blank lines, numbering from 1."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(event_bytes() + b"\r\n\n" + event_bytes(event_id="e2") + b"\n")
    assert [number for number, _ in iter_event_lines(path)] == [1, 3]
    assert [event.event_id for event in load_events(path)] == ["evt-1", "e2"]


def test_load_events_names_the_bad_line(tmp_path: Path) -> None:
    """load_events refuses an invalid event, naming its line."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(event_bytes() + b"\n[]\n")
    with pytest.raises(InvalidEventError, match="line 2: not a JSON object"):
        load_events(path)


def test_iter_records_reads_json_lines_or_one_array(tmp_path: Path) -> None:
    """One JSON array is read element by element; anything else as JSON lines."""
    array = tmp_path / "records.json"
    array.write_text('  [{"a": 1},\n {"b": [2]}, 3]')
    assert list(iter_records(array)) == [
        ("record", 1, b'{"a":1}'), ("record", 2, b'{"b":[2]}'), ("record", 3, b"3"),
    ]  # fmt: skip
    lines = tmp_path / "records.jsonl"
    lines.write_text('[1, 2]\n{"a": 1}\n\n{"b": 2}\n')
    assert list(iter_records(lines)) == [
        ("line", 1, b"[1, 2]"), ("line", 2, b'{"a": 1}'), ("line", 4, b'{"b": 2}'),
    ]  # fmt: skip
