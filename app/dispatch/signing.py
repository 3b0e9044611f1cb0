"""Webhook signatures: Standard Webhooks (`webhook-signature`) and W&B (`X-Wandb-Signature`)."""

# Standard Webhooks signs ``f"{id}.{timestamp}.{body}"`` with HMAC-SHA256 and sends
# ``v1,<base64>``; several space-separated signatures are sent while a secret is
# rotated. A secret written ``whsec_<base64>`` is base64-decoded to its key bytes, with
# or without its `=` padding (as the Standard Webhooks libraries do); any other secret
# is raw: its UTF-8 bytes are the key (the libraries' `bytes` secret, or JavaScript's
# `{format: "raw"}`), because a bare string has no reliable mark of being base64.
#
# W&B sends the base64 HMAC-SHA256 of the body alone, keyed with the secret's text
# as UTF-8 (W&B receivers do ``hmac.new(secret.encode(), body, sha256)``), so that
# key is never ``whsec_``-decoded.
#
# A secret source value may hold several secrets separated by whitespace (newest
# first): all of them sign `webhook-signature`; the first signs `X-Wandb-Signature`.

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from app.dispatch.delivery_errors import SignatureVerificationError
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

WEBHOOK_ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
WANDB_SIGNATURE_HEADER = "X-Wandb-Signature"
DEFAULT_TOLERANCE_SECONDS = 300

_WHSEC = "whsec_"

#: A key as bytes, secret text (whitespace-separated for rotation), or a list of either.
SecretInput = bytes | str | Sequence[bytes | str]


def decode_secret(value: str) -> bytes:
    """Key bytes of one secret: `whsec_<base64>` (padding optional) is decoded, else UTF-8."""
    if not value.startswith(_WHSEC):
        return value.encode("utf-8")
    encoded = value[len(_WHSEC) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("a whsec_ secret must be base64 after the prefix") from exc
    if not key:
        raise ValueError("a whsec_ secret must not be empty after the prefix")
    return key


def parse_secrets(value: str) -> list[str]:
    """Split a secret source value into its secrets (whitespace-separated, newest first)."""
    return value.split()


def _keys(secrets: SecretInput) -> list[bytes]:
    """Normalise every accepted secret form to a list of Standard Webhooks keys."""
    if isinstance(secrets, bytes):
        return [secrets]
    if isinstance(secrets, str):
        return [decode_secret(s) for s in parse_secrets(secrets)]
    keys: list[bytes] = []
    for item in secrets:
        keys.extend(_keys(item))
    return keys


def _wandb_keys(secrets: SecretInput) -> list[bytes]:
    """Normalise secrets to W&B keys: secret text as UTF-8, never whsec_-decoded."""
    if isinstance(secrets, bytes):
        return [secrets]
    if isinstance(secrets, str):
        return [s.encode("utf-8") for s in parse_secrets(secrets)]
    keys: list[bytes] = []
    for item in secrets:
        keys.extend(_wandb_keys(item))
    return keys


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """Base64 HMAC-SHA256 over `id.timestamp.body`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


def sign(secrets: SecretInput, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,<base64>` per key, space-separated."""
    keys = _keys(secrets)
    if not keys:
        raise ValueError("at least one secret is needed to sign")
    return " ".join(f"v1,{_digest(key, msg_id, timestamp, body)}" for key in keys)


def sign_wandb(secret: bytes | str, body: bytes) -> str:
    """The `X-Wandb-Signature` value: base64 HMAC-SHA256 of the body."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode("ascii")


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    """Header lookup is case-insensitive."""
    return {name.lower(): value for name, value in headers.items()}


def verify(
    secrets: SecretInput,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check Standard Webhooks headers; raise SignatureVerificationError if not authentic."""
    keys = _keys(secrets)
    if not keys:
        raise SignatureVerificationError("no secret to verify with")
    lowered = _lower(headers)
    msg_id = lowered.get(WEBHOOK_ID_HEADER)
    raw_ts = lowered.get(TIMESTAMP_HEADER)
    raw_sigs = lowered.get(SIGNATURE_HEADER)
    if not msg_id or raw_ts is None or raw_sigs is None:
        raise SignatureVerificationError(
            f"missing {WEBHOOK_ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header"
        )
    raw_ts = raw_ts.strip()
    if not raw_ts.isascii() or not raw_ts.isdigit():
        raise SignatureVerificationError("webhook-timestamp is not an integer")
    timestamp = int(raw_ts)
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise SignatureVerificationError("webhook-timestamp is too old")
    if timestamp > current + tolerance:
        raise SignatureVerificationError("webhook-timestamp is too new")
    offered = [
        sig.removeprefix("v1,").encode("ascii", "replace")
        for sig in raw_sigs.split()
        if sig.startswith("v1,")
    ]
    # Compare every pair (no early exit) so the time does not say which one matched.
    matched = False
    for key in keys:
        expected = _digest(key, msg_id, timestamp, body).encode("ascii")
        for candidate in offered:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureVerificationError("no matching signature")


def verify_wandb(secrets: SecretInput, signature: str | None, body: bytes) -> None:
    """Check an `X-Wandb-Signature` value; raise SignatureVerificationError if wrong."""
    keys = _wandb_keys(secrets)
    if not keys:
        raise SignatureVerificationError("no secret to verify with")
    if not signature:
        raise SignatureVerificationError(f"missing {WANDB_SIGNATURE_HEADER} header")
    candidate = signature.strip().encode("ascii", "replace")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(sign_wandb(key, body).encode("ascii"), candidate)
    if not matched:
        raise SignatureVerificationError("no matching signature")


def check_signatures(
    secrets: SecretInput, headers: Mapping[str, str], body: bytes, tolerance: float
) -> dict[str, str]:
    """Per scheme sent ("standard", "wandb"): "verified" or "invalid: <reason>".

    A scheme whose header is absent is left out, so `{}` means an unsigned request.
    """
    lowered = _lower(headers)
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
    lowered = _lower(headers)
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
