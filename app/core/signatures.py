"""Webhook signatures, pure functions: Standard Webhooks, W&B and MLflow 3.

The dispatchers sign with them (app.dispatch.signing re-exports them) and the ingest
views verify with them (app.api.ingest), so they live below both.
"""

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

# MLflow 3 signs ``f"{delivery_id}.{timestamp}.{payload}"`` with HMAC-SHA256 keyed with
# the secret's UTF-8 bytes (mlflow.webhooks.delivery._generate_hmac_signature) and sends
# ``v1,<base64>`` in X-MLflow-Signature: Standard Webhooks' digest with a raw key.

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

from app.errors import SignatureVerificationError

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "MLFLOW_DELIVERY_ID_HEADER",
    "MLFLOW_SIGNATURE_HEADER",
    "MLFLOW_TIMESTAMP_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WANDB_SIGNATURE_HEADER",
    "WEBHOOK_ID_HEADER",
    "SecretInput",
    "decode_secret",
    "lower_headers",
    "parse_secrets",
    "sign",
    "sign_wandb",
    "verify",
    "verify_mlflow",
    "verify_wandb",
]

MLFLOW_SIGNATURE_HEADER = "X-MLflow-Signature"
MLFLOW_TIMESTAMP_HEADER = "X-MLflow-Timestamp"
MLFLOW_DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
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


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
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
    names = (WEBHOOK_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
    _verify_signed(_keys(secrets), names, headers, body, tolerance, now)


def verify_mlflow(
    secrets: SecretInput,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """Check an MLflow 3 delivery's headers; its delivery id, or SignatureVerificationError."""
    names = (MLFLOW_DELIVERY_ID_HEADER, MLFLOW_TIMESTAMP_HEADER, MLFLOW_SIGNATURE_HEADER)
    return _verify_signed(_wandb_keys(secrets), names, headers, body, tolerance, now)


def _verify_signed(
    keys: list[bytes],
    names: tuple[str, str, str],
    headers: Mapping[str, str],
    body: bytes,
    tolerance: float,
    now: float | None,
) -> str:
    """`v1,` signatures over `id.timestamp.body` (headers `names`); the id, or raise."""
    if not keys:
        raise SignatureVerificationError("no secret to verify with")
    id_header, ts_header, sig_header = names
    lowered = lower_headers(headers)
    msg_id = lowered.get(id_header.lower())
    raw_ts = lowered.get(ts_header.lower())
    raw_sigs = lowered.get(sig_header.lower())
    if not msg_id or raw_ts is None or raw_sigs is None:
        raise SignatureVerificationError(f"missing {id_header}, {ts_header} or {sig_header} header")
    timestamp = _check_timestamp(raw_ts, ts_header, tolerance, now)
    if not _any_match(keys, msg_id, timestamp, body, raw_sigs):
        raise SignatureVerificationError("no matching signature")
    return msg_id


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


def _check_timestamp(raw_ts: str, header: str, tolerance: float, now: float | None) -> int:
    """The timestamp header as an int; raise unless within `tolerance` seconds of now."""
    raw_ts = raw_ts.strip()
    if not raw_ts.isascii() or not raw_ts.isdigit():
        raise SignatureVerificationError(f"{header} is not an integer")
    timestamp = int(raw_ts)
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise SignatureVerificationError(f"{header} is too old")
    if timestamp > current + tolerance:
        raise SignatureVerificationError(f"{header} is too new")
    return timestamp


def _any_match(keys: list[bytes], msg_id: str, timestamp: int, body: bytes, sigs: str) -> bool:
    """True when a `v1,` signature of `sigs` is one key's; compares every pair (no early
    exit) so the time does not say which one matched."""
    offered = [
        sig.removeprefix("v1,").encode("ascii", "replace")
        for sig in sigs.split()
        if sig.startswith("v1,")
    ]
    matched = False
    for key in keys:
        expected = _digest(key, msg_id, timestamp, body).encode("ascii")
        for candidate in offered:
            matched |= hmac.compare_digest(expected, candidate)
    return matched
