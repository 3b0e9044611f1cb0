"""Secrets in every form receivers use, checked with the `standardwebhooks` reference library."""

from __future__ import annotations

import base64
import os
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from app.dispatch.http import AUTOMATION_ID_HEADER, PreparedRequest, prepare_webhook
from app.dispatch.secrets import SecretResolver
from app.dispatch.signing import check_signatures, decode_secret, sign_wandb

KEY = os.urandom(32)
PADDED = "whsec_" + base64.b64encode(KEY).decode()
UNPADDED = PADDED.rstrip("=")
RAW = "raw-secret-" + base64.urlsafe_b64encode(os.urandom(12)).decode()


def signed_request(secret_value: str) -> PreparedRequest:
    """The dispatcher's own signed request for a job whose secret holds `secret_value`."""
    resolver = SecretResolver(environ={"HOOKSTREAM_SECRET_HOOK": secret_value})
    job = {
        "job_id": "7f0c5a9e-job",
        "automation_id": "deploy-on-production",
        "action": {
            "url": "https://ci.example.com/hooks",
            "payload": '{"model": "acme/reg/m:v3", "alias": "production"}',
            "secret": "HOOK",
        },
    }
    return prepare_webhook(job, resolver, timestamp=int(time.time()))


def test_padding_is_optional_for_whsec_secrets() -> None:
    """`whsec_` base64 decodes to the same key with or without its `=` padding."""
    assert PADDED.endswith("=")  # 32 bytes need one padding character
    assert decode_secret(PADDED) == decode_secret(UNPADDED) == KEY
    assert decode_secret(RAW) == RAW.encode()


@pytest.mark.parametrize("secret", ["whsec_", "whsec_a", "whsec_ab*d"])
def test_broken_whsec_secrets_are_refused(secret: str) -> None:
    """An empty, truncated or non-base64 `whsec_` value is an error, not a text key."""
    with pytest.raises(ValueError, match="whsec_"):
        decode_secret(secret)


@pytest.mark.parametrize("configured", [PADDED, UNPADDED], ids=["padded", "unpadded"])
def test_library_verifies_whsec_signatures(configured: str) -> None:
    """`standardwebhooks.Webhook` with the receiver's copy of the secret accepts the request."""
    request = signed_request(configured)
    for receiver_copy in (PADDED, UNPADDED):
        payload = Webhook(receiver_copy).verify(request.body, dict(request.headers))
        assert payload == {"model": "acme/reg/m:v3", "alias": "production"}
    with pytest.raises(WebhookVerificationError):
        Webhook(base64.b64encode(os.urandom(32)).decode()).verify(
            request.body, dict(request.headers)
        )


def test_library_verifies_raw_secret_signatures() -> None:
    """A raw secret is the key as UTF-8: the library verifies it given those bytes."""
    request = signed_request(RAW)
    Webhook(RAW.encode()).verify(request.body, dict(request.headers))
    with pytest.raises(WebhookVerificationError):
        Webhook(RAW.encode() + b"x").verify(request.body, dict(request.headers))


def test_library_verifies_each_rotated_secret() -> None:
    """While rotating (new secret first, old after) either secret verifies."""
    request = signed_request(f"{UNPADDED} {RAW}")
    Webhook(PADDED).verify(request.body, dict(request.headers))
    Webhook(RAW.encode()).verify(request.body, dict(request.headers))
    assert len(request.headers["webhook-signature"].split()) == 2


def test_wandb_signature_keys_on_the_secret_text() -> None:
    """X-Wandb-Signature uses the first secret's text, never its whsec_ decoding."""
    request = signed_request(PADDED)
    assert request.headers["X-Wandb-Signature"] == sign_wandb(PADDED, request.body)
    assert request.headers[AUTOMATION_ID_HEADER] == "deploy-on-production"


def test_check_signatures_reports_each_scheme() -> None:
    """check_signatures says per scheme sent whether it verified, and why not."""
    request = signed_request(PADDED)
    headers = dict(request.headers)
    assert check_signatures(UNPADDED, headers, request.body, 300) == {
        "standard": "verified",
        "wandb": "invalid: no matching signature",  # W&B keys on the exact text
    }
    assert check_signatures(PADDED, headers, request.body, 300) == {
        "standard": "verified",
        "wandb": "verified",
    }
    assert check_signatures(RAW, headers, request.body + b" ", 300) == {
        "standard": "invalid: no matching signature",
        "wandb": "invalid: no matching signature",
    }
    assert check_signatures(PADDED, {"Content-Type": "application/json"}, b"{}", 300) == {}
