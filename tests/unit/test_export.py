"""`hookstream automations export`: what it writes, `apply -f` reads back unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.cli.export import ExportFormat, export_text
from app.contract.automations import Automation, parse_automation
from app.core.loader import load_automations
from app.core.stored import same_spec, spec_json, stamp, stored_json

ROOT = Path(__file__).resolve().parents[2]

# Strings YAML 1.1 would read as something else if written bare, and template text.
AWKWARD: dict[str, Any] = {
    "id": "awkward-values",
    "name": "Ünïcode ✓ and: colons # not a comment",
    "description": "line one\nline two\n  indented",
    "event": "CREATE_ARTIFACT",
    "scope": {"type": "artifact_collection", "entity": "acme", "project": "p", "collection": "c"},
    "filter": {"$and": [{"metadata.flag": {"$in": ["yes", "no", "on", "null", "~"]}}]},
    "action": {
        "type": "queue_job",
        "queue": "q",
        "job": "acme/p/j:latest",
        "config": {
            "version": "1.0",
            "exp": "1e3",
            "date": "2026-11-26",
            "octal": "0755",
            "star": "*ref",
            "template": '${artifact_version_string} says "hi" ${artifact_metadata.x}',
            "nested": {"list": [1, 2.5, True, None, "x"]},
        },
    },
}


def stored() -> list[dict[str, Any]]:
    """The examples plus the awkward one, as the store keeps them (managed fields set)."""
    automations = [a for _, a in load_automations(ROOT / "deploy/examples/automations.yaml")]
    automations.append(parse_automation(AWKWARD))
    return [stored_json(stamp(a, None)) for a in automations]


def read_back(text: str, path: Path) -> list[Automation]:
    """What `apply -f` reads from the written file."""
    path.write_text(text)
    return [automation for _, automation in load_automations(path)]


@pytest.mark.parametrize(("fmt", "name"), [("yaml", "export.yaml"), ("json", "export.json")])
def test_export_reads_back_unchanged(fmt: ExportFormat, name: str, tmp_path: Path) -> None:
    """Every exported automation has the stored spec: apply would report it unchanged."""
    records = stored()
    back = read_back(export_text(records, fmt), tmp_path / name)
    assert [a.id for a in back] == sorted(r["id"] for r in records)
    by_id = {r["id"]: r for r in records}
    for automation in back:
        assert same_spec(automation, by_id[automation.id]), automation.id
    awkward = next(a for a in back if a.id == "awkward-values")
    assert spec_json(awkward) == spec_json(parse_automation(AWKWARD))


def test_export_leaves_out_managed_fields_and_keeps_disabled_ones(tmp_path: Path) -> None:
    """No revision or timestamps in the file; a disabled automation stays disabled."""
    text = export_text(stored(), "yaml")
    for field in ("revision:", "created_at:", "updated_at:"):
        assert field not in text
    back = {a.id: a for a in read_back(text, tmp_path / "e.yaml")}
    assert back["audit-all-aliases"].enabled is False


def test_empty_export_is_an_empty_file_to_apply(tmp_path: Path) -> None:
    """Nothing stored: a file that reads back as no automations, in both formats."""
    assert read_back(export_text([], "yaml"), tmp_path / "e.yaml") == []
    assert read_back(export_text([], "json"), tmp_path / "e.json") == []
