"""`hookstream automations export`: the stored automations as a file `apply -f` reads back.

Each automation is written as its spec (`app.core.stored.spec_json`): what a user
decides, without the fields the store manages (`revision`, `created_at`, `updated_at`),
so applying the export to the same store reports every automation `unchanged`. YAML is a
multi-document stream (one `---` document per automation), JSON a list; both in id
order. Like `apply`, export reads the automations topic directly when no API answers.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, TextIO

import yaml

from app.cli.api_client import ApiUnavailableError
from app.cli.common import EXIT_REFUSED, connect
from app.contract.automations import parse_automation
from app.core.stored import spec_json
from app.errors import InvalidAutomationError
from app.serialization import dumps_str
from app.settings import Settings

__all__ = ["ExportFormat", "cmd_export", "export_text"]

ExportFormat = Literal["yaml", "json"]


def export_text(stored: Iterable[dict[str, Any]], fmt: ExportFormat) -> str:
    """Stored automation JSON (API or topic) as an `apply -f` file, in id order."""
    specs = sorted((spec_json(parse_automation(item)) for item in stored), key=lambda s: s["id"])
    if fmt == "json":
        return dumps_str(specs, indent=True) + "\n"
    header = f"# hookstream automations export: {len(specs)} automation(s)\n"
    if not specs:
        return header + "[]\n"
    return header + yaml.safe_dump_all(
        specs, sort_keys=False, allow_unicode=True, explicit_start=True, width=100
    )


def _format(args: argparse.Namespace) -> ExportFormat:
    """--format (--json meaning json), else from the output file's suffix, else YAML."""
    if args.json and not args.format:
        return "json"
    if args.format:
        return "json" if args.format == "json" else "yaml"
    if args.output and Path(args.output).suffix.lower() == ".json":
        return "json"
    return "yaml"


def _stored(args: argparse.Namespace, settings: Settings, err: TextIO) -> list[dict[str, Any]]:
    """Every stored automation, from the API or, when none answers, from the topic."""
    try:
        items: list[dict[str, Any]] = (
            connect(args, settings).call("GET", "/automations").data["items"]
        )
        return items
    except ApiUnavailableError as exc:
        from app.kafka.automations import current_automations

        print(
            f"warning: {exc}; reading the automations topic '{settings.automations_topic}' "
            f"at {settings.kafka_bootstrap_servers} directly instead",
            file=err,
        )
        return list(asyncio.run(current_automations(settings)).values())


def cmd_export(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Write every (or the named) automation to stdout or -o FILE."""
    items = _stored(args, settings, err)
    if args.ids:
        known = {item["id"] for item in items}
        unknown = [i for i in args.ids if i not in known]
        if unknown:
            print(f"error: no automation {', '.join(unknown)}", file=err)
            return EXIT_REFUSED
        items = [item for item in items if item["id"] in set(args.ids)]
    try:
        text = export_text(items, _format(args))
    except InvalidAutomationError as exc:
        # A stored record the current code no longer accepts: say which, export nothing.
        print("error: a stored automation is not valid; nothing exported", file=err)
        for field, reason in exc.errors:
            print(f"  {field}: {reason}", file=err)
        return EXIT_REFUSED
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"exported {len(items)} automation(s) to {args.output}", file=err)
    else:
        (out or sys.stdout).write(text)
    return 0
