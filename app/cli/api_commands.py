"""`hookstream automations apply|export|list|get|enable|disable|delete|test|history` (API),
and `hookstream openapi export|check` for the API's checked-in OpenAPI document.

Every command talks HTTP to one worker (`--url`, default `settings.client_url`) with
the bearer token from settings (HOOKSTREAM_API_TOKEN). Output is a table or plain
lines for people and JSON (`--json`) for scripts. Exit codes: 0 done, 1 refused or
invalid input, 3 no API answered. `apply` alone falls back to writing the automations
topic directly when no API answers (it runs before the first worker in `make run` and
docker compose) and says so on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

import yaml

from app.cli.api_client import ApiResponse
from app.cli.apply import cmd_apply
from app.cli.common import EXIT_REFUSED, command_entry, connect, table
from app.cli.export import cmd_export
from app.serialization import JSONDecodeError, dumps_str, loads
from app.settings import Settings

__all__ = ["add_api_commands", "cmd_openapi"]


def _scope(scope: dict[str, Any]) -> str:
    kind = scope.get("type")
    entity = scope.get("entity", "")
    if kind == "project":
        return f"project {entity}/{scope.get('project')}"
    if kind == "registry":
        return f"registry {entity}/{scope.get('registry')}"
    parent = f"registry:{scope['registry']}" if scope.get("registry") else str(scope.get("project"))
    return f"collection {entity}/{parent}/{scope.get('collection')}"


def cmd_list(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    """List automations, filtered like GET /automations."""
    query = {
        name: value
        for name, value in (
            ("event", args.event),
            ("scope_type", args.scope_type),
            ("entity", args.entity),
            ("project", args.project),
            ("registry", args.registry),
            ("collection", args.collection),
            ("action_type", args.action_type),
            ("enabled", None if args.enabled is None else str(args.enabled).lower()),
        )
        if value is not None
    }
    items = connect(args, settings).call("GET", "/automations", query=query).data["items"]
    if args.json:
        for item in items:
            print(dumps_str(item), file=out)
        return 0
    if not items:
        print("no automations", file=out)
        return 0
    rows = [["ID", "EVENT", "SCOPE", "ACTION", "ENABLED", "REV"]]
    for item in items:
        rows.append(
            [
                item["id"],
                item["event"],
                _scope(item["scope"]),
                item["action"]["type"],
                "yes" if item.get("enabled", True) else "no",
                str(item.get("revision", 1)),
            ]
        )
    table(rows, out)
    return 0


def cmd_get(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    """One automation: YAML for people, JSON with --json."""
    data = connect(args, settings).call("GET", f"/automations/{args.id}").data
    if args.json:
        print(dumps_str(data), file=out)
    else:
        print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip(), file=out)
    return 0


def _set_enabled(args: argparse.Namespace, settings: Settings, out: TextIO, flag: bool) -> int:
    response = connect(args, settings).call("PATCH", f"/automations/{args.id}", {"enabled": flag})
    word = "enabled" if flag else "disabled"
    unchanged = response.headers.get("Hookstream-Outcome") == "unchanged"
    if args.json:
        print(dumps_str(response.data), file=out)
    else:
        print(
            f"automation/{args.id} {'unchanged (already ' + word + ')' if unchanged else word}",
            file=out,
        )
    return 0


def cmd_enable(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Enable an automation (PATCH enabled=true)."""
    return _set_enabled(args, settings, out, True)


def cmd_disable(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Disable an automation (PATCH enabled=false); it stays listed."""
    return _set_enabled(args, settings, out, False)


def cmd_delete(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Delete an automation."""
    connect(args, settings).call("DELETE", f"/automations/{args.id}")
    if args.json:
        print(dumps_str({"id": args.id, "status": "deleted"}), file=out)
    else:
        print(f"automation/{args.id} deleted", file=out)
    return 0


def _read_json_file(path: str) -> Any:
    """One JSON value, or the JSON lines of a file of run records (as a list)."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    try:
        return loads(text)
    except JSONDecodeError:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2:
            raise
        return [loads(line) for line in lines]


def _print_records(records: list[dict[str, Any]], out: TextIO) -> None:
    for record in records:
        where = record["run_path"]
        if record.get("step") is not None:
            where += f" step {record['step']}"
        if record.get("state"):
            where += f" {record['state']}"
        fires = "fires" if record["fired"] else "does not fire"
        print(f"  record {record['index']} {record['event_type']} {where}: {fires}", file=out)
        for reason in record["reasons"]:
            print(f"    - {reason}", file=out)


def _print_dry_run(data: dict[str, Any], out: TextIO) -> None:
    verdict = "MATCHED" if data["matched"] else "NOT MATCHED"
    records = data.get("records")
    if records is not None:
        # A run automation: the verdict of each run record, in order.
        origin = "generated example" if data["event_generated"] else "given"
        print(
            f"automation/{data['automation_id']}: {verdict} ({origin} {len(records)} run records)",
            file=out,
        )
        _print_records(records, out)
    else:
        origin = "generated example event" if data["event_generated"] else "given event"
        print(
            f"automation/{data['automation_id']}: {verdict} ({origin} {data['event']['event_id']})",
            file=out,
        )
    for reason in data["reasons"]:
        print(f"  - {reason}", file=out)
    for note in data["notes"]:
        print(f"  note: {note}", file=out)
    if data["job"] is not None:
        print(f"job -> {data['topic']}:", file=out)
        print(dumps_str(data["job"], indent=True), file=out)


def cmd_test(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Dry-run a stored automation (ID) or one from a file (-f); nothing is emitted."""
    if (args.id is None) == (args.file is None):
        print("error: give an automation ID or -f FILE (not both)", file=err)
        return EXIT_REFUSED
    body: dict[str, Any] = {}
    if args.event:
        body["event"] = _read_json_file(args.event)
    if args.file:
        from app.core.loader import load_automation_documents

        documents = load_automation_documents(args.file)
        if len(documents) != 1:
            print(
                f"error: {args.file} holds {len(documents)} automations; test takes one", file=err
            )
            return EXIT_REFUSED
        body["automation"] = documents[0][1]
        path = "/automations/test"
    else:
        path = f"/automations/{args.id}/test"
    data = connect(args, settings).call("POST", path, body).data
    if args.json:
        print(dumps_str(data), file=out)
    else:
        _print_dry_run(data, out)
    return 0


def _detail(entry: dict[str, Any]) -> str:
    parts = []
    if entry.get("http_status") is not None:
        parts.append(f"HTTP {entry['http_status']}")
    for key in ("error", "reason"):
        if entry.get(key):
            parts.append(str(entry[key]))
    return "; ".join(parts)


def cmd_history(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    """The last executions and the counters of one automation."""
    query = {"limit": str(args.limit)} if args.limit else None
    response: ApiResponse = connect(args, settings).call(
        "GET", f"/automations/{args.id}/history", query=query
    )
    data = response.data
    if args.json:
        print(dumps_str(data), file=out)
        return 0
    c = data["counters"]
    print(
        f"automation/{args.id}: matched {c['matched']}, emitted {c['emitted']}, "
        f"finished {c['finished']}, failed {c['failed']}, "
        f"last fired {c['last_fired_at'] or 'never'}",
        file=out,
    )
    if not data["executions"]:
        print("no executions", file=out)
        return 0
    rows = [["TIME", "STATUS", "EVENT", "TYPE", "JOB", "ATTEMPTS", "DETAIL"]]
    for entry in data["executions"]:
        rows.append(
            [
                entry["created_at"],
                entry["status"],
                entry["event_id"],
                entry.get("event_type") or "",
                entry["job_id"],
                str(entry.get("attempts", 0)),
                _detail(entry),
            ]
        )
    table(rows, out)
    return 0


def _common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--url", help="API base URL (default: HOOKSTREAM_API_URL or web host:port)")
    parser.add_argument("--json", action="store_true", help="JSON for scripts")
    return parser


def cmd_openapi(args: argparse.Namespace) -> int:
    """Write docs/openapi.json, or check that it is current."""
    from app.api.openapi import OPENAPI_PATH, check_openapi, export_openapi

    if args.action == "check":
        if check_openapi():
            return 0
        print(
            f"stale or missing: {OPENAPI_PATH} (run `hookstream openapi export`)", file=sys.stderr
        )
        return 1
    print(export_openapi())
    return 0


def add_api_commands(sub: Any) -> None:
    """Add `automations` (and its subcommands) and `openapi` to the CLI's subparsers."""
    p = sub.add_parser("openapi", help="the management API's OpenAPI document")
    p.add_argument("action", choices=["export", "check"])
    p.set_defaults(func=cmd_openapi)

    autos = sub.add_parser("automations", help="manage automations through the API")
    actions = autos.add_subparsers(dest="action", required=True)

    p = _common(actions.add_parser("apply", help="create or update from a file or folder"))
    p.add_argument("-f", "--file", required=True, help="YAML/JSON file or a folder of them")
    p.set_defaults(func=command_entry(cmd_apply))

    p = _common(actions.add_parser("export", help="write automations as a file apply -f reads"))
    p.add_argument("ids", nargs="*", metavar="ID", help="only these (default: all)")
    p.add_argument("-o", "--output", help="file to write (default: stdout)")
    p.add_argument(
        "--format", choices=["yaml", "json"], help="default: from -o's suffix, else yaml"
    )
    p.set_defaults(func=command_entry(cmd_export))

    p = _common(actions.add_parser("list", help="list automations"))
    p.add_argument("--event", help="event type")
    p.add_argument("--scope-type", choices=["project", "registry", "artifact_collection", "entity"])
    p.add_argument("--entity")
    p.add_argument("--project")
    p.add_argument("--registry")
    p.add_argument("--collection")
    p.add_argument(
        "--action-type", choices=["webhook", "notification", "queue_job", "kafka", "no_op"]
    )
    state = p.add_mutually_exclusive_group()
    state.add_argument("--enabled", dest="enabled", action="store_const", const=True)
    state.add_argument("--disabled", dest="enabled", action="store_const", const=False)
    p.set_defaults(func=command_entry(cmd_list), enabled=None)

    for name, func, text in (
        ("get", cmd_get, "show one automation"),
        ("enable", cmd_enable, "enable an automation"),
        ("disable", cmd_disable, "disable an automation (it stays listed)"),
        ("delete", cmd_delete, "delete an automation"),
    ):
        p = _common(actions.add_parser(name, help=text))
        p.add_argument("id")
        p.set_defaults(func=command_entry(func))

    p = _common(actions.add_parser("test", help="dry run: would it fire, and why not"))
    p.add_argument("id", nargs="?", help="a stored automation")
    p.add_argument("-f", "--file", help="an automation file instead (it need not exist)")
    p.add_argument(
        "--event",
        help="event JSON file, - for stdin; for a run automation a run record, a JSON array "
        "or JSON lines of them (default: a generated example)",
    )
    p.set_defaults(func=command_entry(cmd_test))

    p = _common(actions.add_parser("history", help="last executions and counters"))
    p.add_argument("id")
    p.add_argument("--limit", type=int, default=None)
    p.set_defaults(func=command_entry(cmd_history))
