"""Webhook signatures: Standard Webhooks (`webhook-signature`) and W&B (`X-Wandb-Signature`)."""

# The signatures themselves are app.core.signatures (the ingest views verify with them).

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from app.core.signatures import (
    DEFAULT_TOLERANCE_SECONDS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WANDB_SIGNATURE_HEADER,
    WEBHOOK_ID_HEADER,
    SecretInput,
    decode_secret,
    lower_headers,
    parse_secrets,
    sign,
    sign_wandb,
    verify,
    verify_wandb,
)
from app.errors import SignatureVerificationError
from app.serialization import JSONDecodeError, loads

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WANDB_SIGNATURE_HEADER",
    "WEBHOOK_ID_HEADER",
    "SecretInput",
    "add_secret_arguments",
    "check_signatures",
    "decode_secret",
    "gather_secrets",
    "main_verify",
    "parse_secrets",
    "sign",
    "sign_wandb",
    "verify",
    "verify_wandb",
]


def check_signatures(
    secrets: SecretInput, headers: Mapping[str, str], body: bytes, tolerance: float
) -> dict[str, str]:
    """Per scheme sent ("standard", "wandb"): "verified" or "invalid: <reason>".

    A scheme whose header is absent is left out, so `{}` means an unsigned request.
    """
    lowered = lower_headers(headers)
    wandb_header = WANDB_SIGNATURE_HEADER.lower()
    verdicts: dict[str, str] = {}
    for scheme, header in (("standard", SIGNATURE_HEADER), ("wandb", wandb_header)):
        if header not in lowered:
            continue
        try:
            if scheme == "standard":
                verify(secrets, lowered, body, tolerance=tolerance)
            else:
                verify_wandb(secrets, lowered[wandb_header], body)
        except SignatureVerificationError as exc:
            verdicts[scheme] = f"invalid: {exc.reason}"
        except ValueError as exc:  # a whsec_ secret that is not base64
            verdicts[scheme] = f"invalid: {exc}"
        else:
            verdicts[scheme] = "verified"
    return verdicts


def gather_secrets(
    values: Sequence[str],
    env_vars: Sequence[str],
    files: Sequence[str],
    environ: Mapping[str, str],
) -> list[str]:
    """Secret values given inline, by environment variable and by file; ValueError if unset."""
    secrets = list(values)
    for var in env_vars:
        if var not in environ:
            raise ValueError(f"environment variable {var} is not set")
        secrets.append(environ[var])
    secrets.extend(Path(p).read_text("utf-8").strip() for p in files)
    return secrets


# --- `hookstream verify-signature` ---------------------------------------------------------


def add_secret_arguments(parser: argparse.ArgumentParser) -> None:
    """`--secret-env`, `--secret-file` and `--secret`, the inputs of `gather_secrets`."""
    for flag, metavar, text in (
        ("--secret-env", "VAR", "environment variable holding the secret(s) (repeatable)"),
        ("--secret-file", "PATH", "file holding the secret(s) (repeatable)"),
        ("--secret", "VALUE", "a secret value (visible to other users in ps)"),
    ):
        parser.add_argument(flag, action="append", default=[], metavar=metavar, help=text)


def _parser() -> argparse.ArgumentParser:
    """Arguments of `hookstream verify-signature`."""
    parser = argparse.ArgumentParser(
        prog="hookstream verify-signature",
        description=(
            "Check that a received webhook was signed by Hookstream. Exit 0 when valid, "
            "1 when not, 2 on a usage error. Prefer --secret-env or --secret-file: "
            "a --secret value is visible to other users in the process list."
        ),
    )
    parser.add_argument(
        "--body", default="-", help="file holding the raw request body ('-' = stdin, default)"
    )
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a received header (repeatable)",
    )
    parser.add_argument(
        "--headers-file", help="headers as 'Name: value' lines (e.g. curl -D) or a JSON object"
    )
    add_secret_arguments(parser)
    parser.add_argument(
        "--scheme",
        choices=("auto", "standard", "wandb"),
        default="auto",
        help="auto: webhook-signature if present, else X-Wandb-Signature",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE_SECONDS,
        help="accepted clock difference in seconds (Standard Webhooks only; default 300)",
    )
    parser.add_argument("--now", type=float, help="verify as of this Unix time (for replays)")
    return parser


def _parse_header_lines(text: str) -> dict[str, str]:
    """Headers from a JSON object or from `Name: value` lines."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = loads(stripped)
        except JSONDecodeError as exc:
            raise ValueError(f"headers file is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("headers JSON must be an object")
        return {str(k): str(v) for k, v in data.items()}
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("HTTP/"):
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
    return headers


def main_verify(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdin: IO[bytes] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Entry of `hookstream verify-signature`; returns the exit code (0 valid, 1 invalid)."""
    err = stderr if stderr is not None else sys.stderr
    env = os.environ if environ is None else environ
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        if args.body == "-":
            body = (stdin if stdin is not None else sys.stdin.buffer).read()
        else:
            body = Path(args.body).read_bytes()
        headers: dict[str, str] = {}
        if args.headers_file:
            headers.update(_parse_header_lines(Path(args.headers_file).read_text("utf-8")))
        headers.update(_parse_header_lines("\n".join(args.header)))
        secrets = gather_secrets(args.secret, args.secret_env, args.secret_file, env)
        if not secrets:
            raise ValueError("give at least one --secret-env, --secret-file or --secret")
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    lowered = lower_headers(headers)
    scheme = args.scheme
    if scheme == "auto":
        scheme = "standard" if SIGNATURE_HEADER in lowered else "wandb"
    try:
        if scheme == "standard":
            verify(secrets, headers, body, tolerance=args.tolerance, now=args.now)
        else:
            verify_wandb(secrets, lowered.get(WANDB_SIGNATURE_HEADER.lower()), body)
    except SignatureVerificationError as exc:
        print(f"invalid ({scheme}): {exc.reason}", file=err)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=err)
        return 2
    print(f"valid ({scheme})", file=err)
    return 0
