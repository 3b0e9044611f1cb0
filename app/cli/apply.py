"""`hookstream automations apply -f FILE_OR_FOLDER`: declarative and idempotent, like kubectl.

Each automation is created (POST), configured (PUT) or left unchanged (same spec as
stored, not rewritten). When no API answers, apply writes the automations topic
directly with the same logic (it runs before the first worker in `make run` and the
compose `apply` service) and says so on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any, TextIO

from app.cli.api_client import ApiClient, ApiRequestError, ApiUnavailableError
from app.cli.common import EXIT_REFUSED, connect, print_refusal
from app.contract.automations import Automation
from app.errors import InvalidAutomationError
from app.serialization import dumps_str
from app.settings import Settings

__all__ = ["cmd_apply"]


def _report(automation_id: str, status: str, revision: int, as_json: bool, out: TextIO) -> None:
    if as_json:
        print(dumps_str({"id": automation_id, "status": status, "revision": revision}), file=out)
    else:
        print(f"automation/{automation_id} {status}", file=out)


def _apply_direct(
    settings: Settings, automations: list[Automation], as_json: bool, out: TextIO
) -> int:
    from app.kafka.automations import apply_automations

    results = asyncio.run(apply_automations(settings, automations))
    for result in results:
        status = "configured" if result.status == "updated" else result.status
        _report(result.id, status, result.revision, as_json, out)
    return 0


def _apply_one(
    client: ApiClient, automation: Automation, old: dict[str, Any] | None
) -> tuple[str, int]:
    from app.core.stored import same_spec, spec_json

    if old is not None and same_spec(automation, old):
        return "unchanged", int(old.get("revision", 1))
    if old is None:
        response = client.request("POST", "/automations", spec_json(automation))
        if response.status != 409:
            return "created", int(response.raise_for_status().data["revision"])
        # Created by someone else since the list: replace it like a changed one.
    response = client.call("PUT", f"/automations/{automation.id}", spec_json(automation))
    outcome = response.headers.get("Hookstream-Outcome", "updated")
    return ("unchanged" if outcome == "unchanged" else "configured"), int(response.data["revision"])


def cmd_apply(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Declarative apply: create new, replace changed, leave unchanged ones alone."""
    from app.core.loader import load_automations

    try:
        automations = [automation for _, automation in load_automations(Path(args.file))]
    except InvalidAutomationError as exc:
        print(f"error: {args.file}: invalid automations, nothing applied", file=err)
        for field, reason in exc.errors:
            print(f"  {field}: {reason}", file=err)
        return EXIT_REFUSED
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror or exc}", file=err)
        return EXIT_REFUSED
    client = connect(args, settings)
    try:
        listing = client.call("GET", "/automations")
    except ApiUnavailableError as exc:
        print(
            f"warning: {exc}; writing the automations topic '{settings.automations_topic}' "
            f"at {settings.kafka_bootstrap_servers} directly instead",
            file=err,
        )
        return _apply_direct(settings, automations, args.json, out)
    current = {item["id"]: item for item in listing.data["items"]}
    code = 0
    for automation in automations:
        try:
            status, revision = _apply_one(client, automation, current.get(automation.id))
        except ApiRequestError as exc:
            print_refusal(exc, f"automation/{automation.id} not applied", err)
            code = EXIT_REFUSED
            continue
        _report(automation.id, status, revision, args.json, out)
    return code
