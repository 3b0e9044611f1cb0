"""Signatures against the Standard Webhooks test vector and an independent implementation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.dispatch.delivery_errors import SignatureVerificationError
from app.dispatch.signing import (
    decode_secret,
    main_verify,
    sign,
    sign_wandb,
    verify,
    verify_wandb,
)

# Published Standard Webhooks / Svix test vector.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

NOW = 1_700_000_000


def independent_sig(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    """Standard Webhooks signature written from the spec, not from app code."""
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
    mac = hmac.new(key, msg_id.encode() + b"." + str(ts).encode() + b"." + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def independent_wandb(secret: str, body: bytes) -> str:
    """W&B signature as a W&B receiver computes it."""
    return base64.b64encode(
        hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    ).decode()


def headers_for(secret: str, body: bytes, ts: int = NOW, msg_id: str = "job-1") -> dict[str, str]:
    """Headers signed by the independent implementation."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": independent_sig(secret, msg_id, ts, body),
    }


def test_sign_reproduces_the_published_vector() -> None:
    """sign() yields exactly the Standard Webhooks test-vector signature."""
    key = decode_secret(VECTOR_SECRET)
    assert sign(key, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIG


def test_independent_implementation_reproduces_the_vector() -> None:
    """The test's own implementation is itself right (guards the comparison below)."""
    assert independent_sig(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIG


def test_verify_accepts_the_published_vector() -> None:
    """verify() accepts the vector's headers at its own timestamp."""
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIG,
    }
    verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TS)


@given(
    secret=st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1, max_size=40
    ).filter(lambda s: not s.startswith("whsec_")),
    msg_id=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1),
    ts=st.integers(min_value=0, max_value=2**40),
    body=st.binary(max_size=512),
)
def test_sign_matches_independent_implementation(
    secret: str, msg_id: str, ts: int, body: bytes
) -> None:
    """For any plain secret, id, timestamp and body both implementations agree."""
    assert sign(decode_secret(secret), msg_id, ts, body) == independent_sig(
        secret, msg_id, ts, body
    )


@given(key=st.binary(min_size=1, max_size=64), body=st.binary(max_size=256))
def test_whsec_keys_match_independent_implementation(key: bytes, body: bytes) -> None:
    """whsec_ secrets are base64-decoded exactly as the spec says."""
    secret = "whsec_" + base64.b64encode(key).decode()
    assert sign(secret, "id", NOW, body) == independent_sig(secret, "id", NOW, body)


def test_rotation_sends_one_signature_per_secret() -> None:
    """Several secrets give space-separated signatures, in order."""
    value = sign("new-secret old-secret", "job-1", NOW, b"{}")
    assert value.split(" ") == [
        independent_sig("new-secret", "job-1", NOW, b"{}"),
        independent_sig("old-secret", "job-1", NOW, b"{}"),
    ]


def test_sign_without_secret_is_refused() -> None:
    """An empty secret list is a programming error, not an unsigned request."""
    with pytest.raises(ValueError, match="at least one"):
        sign([], "id", NOW, b"{}")


def test_bad_whsec_secret_is_refused() -> None:
    """A whsec_ secret that is not base64 is an error, not silently used as text."""
    with pytest.raises(ValueError, match="base64"):
        decode_secret("whsec_not*base64!")


def test_verify_accepts_independent_signature() -> None:
    """A request signed by the independent implementation verifies."""
    verify("s3cret", headers_for("s3cret", b'{"a":1}'), b'{"a":1}', now=NOW)


def test_verify_headers_are_case_insensitive() -> None:
    """Header names are matched regardless of case."""
    headers = {k.upper(): v for k, v in headers_for("s3cret", b"x").items()}
    verify("s3cret", headers, b"x", now=NOW)


def test_verify_rejects_tampered_body() -> None:
    """One changed byte in the body fails verification."""
    headers = headers_for("s3cret", b'{"a":1}')
    with pytest.raises(SignatureVerificationError, match="no matching signature"):
        verify("s3cret", headers, b'{"a":2}', now=NOW)


def test_verify_rejects_wrong_secret() -> None:
    """A signature made with another secret fails."""
    with pytest.raises(SignatureVerificationError, match="no matching signature"):
        verify("other", headers_for("s3cret", b"x"), b"x", now=NOW)


def test_verify_rejects_changed_id() -> None:
    """The id is signed: swapping it fails."""
    headers = headers_for("s3cret", b"x")
    headers["webhook-id"] = "job-2"
    with pytest.raises(SignatureVerificationError):
        verify("s3cret", headers, b"x", now=NOW)


def test_verify_rejects_old_timestamp() -> None:
    """A timestamp older than the tolerance is a replay."""
    headers = headers_for("s3cret", b"x", ts=NOW - 301)
    with pytest.raises(SignatureVerificationError, match="too old"):
        verify("s3cret", headers, b"x", now=NOW)


def test_verify_rejects_future_timestamp() -> None:
    """A timestamp beyond the tolerance in the future is refused."""
    headers = headers_for("s3cret", b"x", ts=NOW + 301)
    with pytest.raises(SignatureVerificationError, match="too new"):
        verify("s3cret", headers, b"x", now=NOW)


def test_verify_accepts_edge_of_tolerance() -> None:
    """Exactly 300 s old is still inside the window."""
    verify("s3cret", headers_for("s3cret", b"x", ts=NOW - 300), b"x", now=NOW)


def test_verify_rejects_non_integer_timestamp() -> None:
    """A non-numeric timestamp is refused before any HMAC."""
    headers = headers_for("s3cret", b"x")
    headers["webhook-timestamp"] = "12.5"
    with pytest.raises(SignatureVerificationError, match="integer"):
        verify("s3cret", headers, b"x", now=NOW)


def test_verify_rejects_missing_headers() -> None:
    """A request without the signature header is refused."""
    headers = headers_for("s3cret", b"x")
    del headers["webhook-signature"]
    with pytest.raises(SignatureVerificationError, match="missing"):
        verify("s3cret", headers, b"x", now=NOW)


def test_verify_accepts_any_rotated_secret() -> None:
    """A receiver holding either the old or the new secret accepts a rotated request."""
    sig = sign("new old", "job-1", NOW, b"x")
    headers = {"webhook-id": "job-1", "webhook-timestamp": str(NOW), "webhook-signature": sig}
    verify("old", headers, b"x", now=NOW)
    verify("new", headers, b"x", now=NOW)
    with pytest.raises(SignatureVerificationError):
        verify("neither", headers, b"x", now=NOW)


def test_verify_receiver_with_several_secrets() -> None:
    """A receiver that knows several secrets accepts a request signed by any one."""
    verify(["a", "b", "c"], headers_for("b", b"x"), b"x", now=NOW)


def test_verify_ignores_unknown_signature_versions() -> None:
    """A v1a (asymmetric) entry next to a good v1 does not break verification."""
    headers = headers_for("s3cret", b"x")
    headers["webhook-signature"] = "v1a,AAAA " + headers["webhook-signature"]
    verify("s3cret", headers, b"x", now=NOW)


def test_wandb_signature_matches_w_and_b_receiver() -> None:
    """X-Wandb-Signature is base64 HMAC-SHA256 of the body keyed by the secret text."""
    assert sign_wandb("whsec_abc", b'{"x":1}') == independent_wandb("whsec_abc", b'{"x":1}')


def test_verify_wandb_accepts_and_rejects() -> None:
    """verify_wandb accepts a right signature and rejects a tampered body."""
    sig = independent_wandb("tok", b"body")
    verify_wandb("tok", sig, b"body")
    with pytest.raises(SignatureVerificationError):
        verify_wandb("tok", sig, b"bodY")


def test_verify_wandb_missing_header() -> None:
    """An absent X-Wandb-Signature is refused with its reason."""
    with pytest.raises(SignatureVerificationError, match="missing"):
        verify_wandb("tok", None, b"body")


def test_main_verify_valid_from_file(tmp_path: Path) -> None:
    """The CLI exits 0 for a valid request read from a file with the secret from env."""
    body = tmp_path / "body.json"
    body.write_bytes(b'{"a":1}')
    h = headers_for("s3cret", b'{"a":1}')
    err = io.StringIO()
    code = main_verify(
        ["--body", str(body), "--secret-env", "HOOK", "--now", str(NOW)]
        + [arg for k, v in h.items() for arg in ("-H", f"{k}: {v}")],
        environ={"HOOK": "s3cret"},
        stderr=err,
    )
    assert code == 0
    assert "valid (standard)" in err.getvalue()


def test_main_verify_invalid_from_stdin(tmp_path: Path) -> None:
    """The CLI exits 1 for a tampered body read from stdin, with headers from a file."""
    headers_file = tmp_path / "headers.txt"
    h = headers_for("s3cret", b"orig")
    headers_file.write_text("HTTP/1.1 200 OK\n" + "".join(f"{k}: {v}\n" for k, v in h.items()))
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cret\n")
    err = io.StringIO()
    code = main_verify(
        ["--headers-file", str(headers_file), "--secret-file", str(secret_file), "--now", str(NOW)],
        environ={},
        stdin=io.BytesIO(b"tampered"),
        stderr=err,
    )
    assert code == 1
    assert "no matching signature" in err.getvalue()


def test_main_verify_wandb_scheme(tmp_path: Path) -> None:
    """Without webhook-signature the CLI checks X-Wandb-Signature (JSON headers file)."""
    headers_file = tmp_path / "headers.json"
    headers_file.write_text('{{"X-Wandb-Signature": "{}"}}'.format(independent_wandb("tok", b"b")))
    code = main_verify(
        ["--headers-file", str(headers_file), "--secret", "tok"],
        environ={},
        stdin=io.BytesIO(b"b"),
        stderr=io.StringIO(),
    )
    assert code == 0


def test_main_verify_usage_errors() -> None:
    """No secret, or a missing env variable, is a usage error (exit 2)."""
    err = io.StringIO()
    assert main_verify([], environ={}, stdin=io.BytesIO(b""), stderr=err) == 2
    assert "at least one" in err.getvalue()
    assert main_verify(["--secret-env", "NOPE"], environ={}, stdin=io.BytesIO(b""), stderr=err) == 2
