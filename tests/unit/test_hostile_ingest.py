"""Hostile webhook deliveries: the mapping and the signature checks refuse them with a
reason and a 4xx status, and never raise anything else (so a view never answers 500)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.api.events import event_error_status
from app.core.cloudevents import from_http, from_kafka
from app.core.ingest import Ingested, mlflow_event, wandb_event
from app.core.signatures import verify_mlflow, verify_wandb
from app.errors import InvalidEventError, SignatureVerificationError
from app.serialization import dumps

pytestmark = pytest.mark.faults

LIMIT = 64 * 1024
RECEIVED = datetime(2026, 12, 1, tzinfo=UTC)
HYPOTHESIS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
MLFLOW_KINDS = st.sampled_from(
    [
        ("model_version_alias", "created"),
        ("model_version_alias", "deleted"),
        ("model_version_tag", "set"),
        ("model_version_tag", "deleted"),
        ("model_version", "created"),
        ("registered_model", "created"),
        ("webhook", "exploded"),
    ]
)
FIELDS = st.dictionaries(
    st.sampled_from(["name", "version", "alias", "key", "value", "tags", "source", "run_id"]),
    JSON,
    max_size=8,
)
WANDB_FIELDS = st.dictionaries(
    st.sampled_from(
        [
            "event_type",
            "artifact_version_string",
            "entity_name",
            "project_name",
            "artifact_collection_name",
            "alias",
            "tag",
            "event_author",
            "artifact_type",
            "occurred_at",
        ]
    ),
    JSON | st.sampled_from(["ADD_ARTIFACT_ALIAS", "a/b/c:v1", "LINK_MODEL", "wandb-registry-x"]),
    max_size=10,
)


def outcome(call: Any) -> int:
    """200/202 for a mapped delivery; the refusal's HTTP status otherwise."""
    try:
        result = call()
    except InvalidEventError as exc:
        return event_error_status(exc.code) if exc.reason else 500
    assert isinstance(result, Ingested)
    assert (result.event is None) == (result.raw is None)
    assert result.event is not None or result.ignored
    return 202 if result.event is not None else 200


def mlflow(body: bytes) -> int:
    """An MLflow body through the mapping."""
    return outcome(
        lambda: mlflow_event(
            body, "d-1", received_at=RECEIVED, entity="e", registry="r", max_bytes=LIMIT
        )
    )


def wandb(body: bytes) -> int:
    """A W&B body through the mapping."""
    return outcome(lambda: wandb_event(body, received_at=RECEIVED, max_bytes=LIMIT, bucket=0))


@HYPOTHESIS
@given(st.binary(max_size=512))
def test_arbitrary_bytes_are_refused_with_a_4xx(raw: bytes) -> None:
    """Bytes that are no delivery: 400/413/422 from both mappings, nothing else raised."""
    assert mlflow(raw) in {200, 202, 400, 413, 422}
    assert wandb(raw) in {200, 202, 400, 413, 422}


@HYPOTHESIS
@given(MLFLOW_KINDS, FIELDS | JSON, JSON)
def test_mlflow_envelopes_with_hostile_data_map_or_are_refused(
    kind: tuple[str, str], data: Any, timestamp: Any
) -> None:
    """Known and unknown events with any data and timestamp: mapped, or 4xx with a reason."""
    body = dumps({"entity": kind[0], "action": kind[1], "timestamp": timestamp, "data": data})
    assert mlflow(body) in {200, 202, 400, 422}


@HYPOTHESIS
@given(WANDB_FIELDS)
def test_wandb_payloads_with_hostile_fields_map_or_are_refused(payload: dict[str, Any]) -> None:
    """Any mix of the template's fields: mapped, or 422 with a reason."""
    assert wandb(dumps(payload)) in {202, 400, 422}


def test_oversized_and_deep_deliveries_are_413_and_422() -> None:
    """Past the limit: 413; nested past the event depth: 422 (the POST /events rules)."""
    assert mlflow(b"{" + b" " * LIMIT + b"}") == 413
    deep: Any = {}
    for _ in range(100):
        deep = {"x": deep}
    body = dumps({"entity": "model_version", "action": "created", "data": deep})
    assert mlflow(body) == 422


@HYPOTHESIS
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "X-MLflow-Delivery-Id",
                "X-MLflow-Timestamp",
                "X-MLflow-Signature",
                "x-mlflow-timestamp",
            ]
        ),
        st.text(max_size=40),
    )
)
def test_hostile_mlflow_headers_only_fail_verification(headers: dict[str, str]) -> None:
    """Any header values (non-ASCII, huge numbers, no `v1,`): SignatureVerificationError."""
    with pytest.raises(SignatureVerificationError):
        verify_mlflow("secret", headers, b"{}", now=time.time())


@HYPOTHESIS
@given(st.text(max_size=80) | st.none())
def test_hostile_wandb_signatures_only_fail_verification(signature: str | None) -> None:
    """Any X-Wandb-Signature value that is not the body's HMAC: SignatureVerificationError."""
    with pytest.raises(SignatureVerificationError):
        verify_wandb("secret", signature, b"{}")


def refusal(call: Any) -> str:
    """ "" when `call` gives event bytes; the reason when it refuses with InvalidEventError."""
    try:
        out = call()
    except InvalidEventError as exc:
        return exc.reason if exc.reason else "<no reason>"
    return "" if isinstance(out, bytes) else "<not bytes>"


CE_HEADERS = st.dictionaries(
    st.sampled_from(
        ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type", "ce_x"]
    ),
    st.binary(max_size=30) | st.sampled_from([b"1.0", b"0.3", b"application/cloudevents+json"]),
    max_size=7,
)


@HYPOTHESIS
@given(CE_HEADERS, st.binary(max_size=200) | JSON.map(dumps))
def test_hostile_cloudevents_on_kafka_are_refused_with_a_reason(
    headers: dict[str, bytes], value: bytes
) -> None:
    """Any ce_ headers and value: the event bytes, or InvalidEventError (a dead letter)."""
    reason = refusal(lambda: from_kafka(headers, value))
    assert reason == "" or reason.startswith(("not a CloudEvent", "CloudEvent data")), reason


@HYPOTHESIS
@given(CE_HEADERS, st.binary(max_size=200))
def test_hostile_cloudevents_over_http_are_refused_with_a_reason(
    headers: dict[str, bytes], body: bytes
) -> None:
    """The same over HTTP (ce- headers): bytes out or InvalidEventError, nothing else."""
    text = {k.replace("ce_", "ce-"): v.decode("latin-1") for k, v in headers.items()}
    reason = refusal(lambda: from_http(text, body))
    assert reason == "" or reason.startswith(("not a CloudEvent", "CloudEvent data")), reason
