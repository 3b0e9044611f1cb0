"""What every `hookstream automations` command shares: the client, errors, exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from app.cli.api_client import ApiClient, ApiRequestError, ApiUnavailableError
from app.serialization import JSONDecodeError
from app.settings import Settings

__all__ = [
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "Command",
    "command_entry",
    "connect",
    "print_refusal",
    "table",
]

EXIT_REFUSED = 1
EXIT_UNREACHABLE = 3

Command = Callable[[argparse.Namespace, Settings, TextIO, TextIO], int]


def connect(args: argparse.Namespace, settings: Settings) -> ApiClient:
    """A client of the API at --url (default settings.client_url) with the token."""
    token = settings.api_token.get_secret_value() if settings.api_token else None
    return ApiClient(args.url or settings.client_url, token)


def print_refusal(exc: ApiRequestError, what: str, err: TextIO) -> None:
    """The API's reason, every refused field, and a hint for 401/403."""
    print(f"error: {what}: {exc.reason}", file=err)
    for field, reason in exc.errors:
        print(f"  {field or '(body)'}: {reason}", file=err)
    if exc.status == 401:
        print("  hint: set HOOKSTREAM_API_TOKEN to the workers' API token", file=err)
    elif exc.status == 403:
        print("  hint: HOOKSTREAM_API_TOKEN differs from the workers' token", file=err)


def table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Left-aligned columns, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
            file=out,
        )


def command_entry(command: Command) -> Callable[[argparse.Namespace], int]:
    """The CLI's `func`: read settings, run, turn API failures into messages and exit codes."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args, Settings(), sys.stdout, sys.stderr)
        except ApiUnavailableError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE
        except ApiRequestError as exc:
            target = f"automation/{args.id}" if getattr(args, "id", None) else args.action
            print_refusal(exc, target, sys.stderr)
            return EXIT_REFUSED
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        except JSONDecodeError as exc:
            print(f"error: not valid JSON: {exc}", file=sys.stderr)
            return EXIT_REFUSED

    return run
