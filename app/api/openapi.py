"""The management API's OpenAPI 3.1 document, built from the models it serves.

`docs/openapi.json` is a checked-in copy (`hookstream openapi export` rewrites it;
a unit test fails when it is stale). Schemas come from pydantic: automations and
events (and lists of automations, so one schema serves both) as accepted (validation
mode), everything else as written.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app import __version__
from app.api.bodies import (
    AdHocDryRun,
    AutomationList,
    DeliveryAccepted,
    DryRun,
    DryRunResult,
    ErrorBody,
    EventAccepted,
)
from app.api.query import LIST_PARAMETERS
from app.contract.automations import Automation
from app.contract.events import Event
from app.core.history import AutomationHistory
from app.serialization import dumps

__all__ = ["OPENAPI_PATH", "build_openapi", "check_openapi", "export_openapi", "openapi_bytes"]

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"

_MODELS: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
    (Automation, "validation"),
    (Event, "validation"),
    (AutomationList, "validation"),
    (DryRun, "validation"),
    (AdHocDryRun, "validation"),
    (DryRunResult, "serialization"),
    (EventAccepted, "serialization"),
    (DeliveryAccepted, "serialization"),
    (AutomationHistory, "serialization"),
    (ErrorBody, "serialization"),
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json(_ref("ErrorBody"))}


def _ok(description: str, name: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": _json(_ref(name))}
    if headers:
        out["headers"] = headers
    return out


_ID = {"name": "automation_id", "in": "path", "required": True, "schema": {"type": "string"}}
_SECURED: list[dict[str, list[str]]] = [{"bearer": []}]


def _ingest(summary: str, operation: str, description: str) -> dict[str, Any]:
    """A webhook ingest route: signed by the sender, no bearer token."""
    return {
        "post": {
            "summary": summary,
            "description": description,
            "operationId": operation,
            "security": [],
            "requestBody": {"required": True, "content": {"application/json": {}}},
            "responses": {
                "200": _ok(
                    "a repeat delivery, or one with no Hookstream event", "DeliveryAccepted"
                ),
                "202": _ok("the event written to Kafka", "DeliveryAccepted"),
                "400": _error("not JSON, not an object, or empty"),
                "401": _error("bad or missing signature, stale timestamp, or no secret set"),
                "413": _error("over max_event_bytes"),
                "422": _error("a field the mapping needs is missing or invalid"),
                "503": _error(
                    "Kafka did not take the event, or the event's partition has no owner, "
                    "is moving, or its worker did not answer"
                ),
            },
        }
    }


_AUTH_ERRORS = {
    "401": _error("no or malformed Authorization header (a token is configured)"),
    "403": _error("wrong token, or (no token configured) a client beyond loopback"),
}
_OUTCOME = {
    "Hookstream-Outcome": {
        "description": "created, updated or unchanged",
        "schema": {"type": "string", "enum": ["created", "updated", "unchanged", "deleted"]},
    },
    "Hookstream-Applied": {
        "description": "'false' when this worker had not read the write back within "
        "api_write_wait_seconds (the write is durable regardless)",
        "schema": {"type": "string"},
    },
}
_LOADING = _error("automations are still loading (Retry-After)")
_BAD_BODY = _error("body not JSON or not an object")
_TOO_LARGE = _error("body over the size limit")
_INVALID = _error("invalid automation: `errors` names each field")
_NOT_FOUND = _error("no automation with this id")
# PUT and PATCH of one automation answer alike.
_CHANGE_RESPONSES = {
    "200": _ok("updated or unchanged", "Automation", _OUTCOME),
    "400": _BAD_BODY,
    **_AUTH_ERRORS,
    "404": _NOT_FOUND,
    "413": _TOO_LARGE,
    "422": _INVALID,
}
_MERGE_PATCH = {
    "application/merge-patch+json": {
        "schema": {
            "type": "object",
            "description": "JSON Merge Patch (RFC 7396) of an automation; null removes a field",
        }
    },
    "application/json": {"schema": {"type": "object"}},
}


def _paths() -> dict[str, Any]:
    list_params = [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in LIST_PARAMETERS.items()
    ]
    write = {"security": _SECURED}
    return {
        "/automations": {
            "get": {
                "summary": "List automations (enabled and disabled)",
                "operationId": "listAutomations",
                "parameters": list_params,
                "responses": {
                    "200": _ok("the automations, by id", "AutomationList"),
                    "400": _error("unknown query parameter or bad value"),
                    "503": _LOADING,
                },
            },
            "post": {
                "summary": "Create an automation",
                "operationId": "createAutomation",
                **write,
                "requestBody": {"required": True, "content": _json(_ref("Automation"))},
                "responses": {
                    "201": _ok("created (revision 1)", "Automation", _OUTCOME),
                    "400": _BAD_BODY,
                    **_AUTH_ERRORS,
                    "409": _error("an automation with this id exists"),
                    "413": _TOO_LARGE,
                    "422": _INVALID,
                    "503": _LOADING,
                },
            },
        },
        "/automations/{automation_id}": {
            "parameters": [_ID],
            "get": {
                "summary": "Get one automation",
                "operationId": "getAutomation",
                "responses": {"200": _ok("the automation", "Automation"), "404": _NOT_FOUND},
            },
            "put": {
                "summary": "Replace an automation (revision + 1 unless unchanged)",
                "operationId": "replaceAutomation",
                **write,
                "requestBody": {"required": True, "content": _json(_ref("Automation"))},
                "responses": _CHANGE_RESPONSES,
            },
            "patch": {
                "summary": 'Partly change an automation, e.g. {"enabled": false}',
                "operationId": "patchAutomation",
                **write,
                "requestBody": {"required": True, "content": _MERGE_PATCH},
                "responses": _CHANGE_RESPONSES,
            },
            "delete": {
                "summary": "Delete an automation (tombstone on the automations topic)",
                "operationId": "deleteAutomation",
                **write,
                "responses": {"204": {"description": "deleted"}, **_AUTH_ERRORS, "404": _NOT_FOUND},
            },
        },
        "/automations/test": {
            "post": {
                "summary": "Dry-run an automation given in the body; nothing is emitted",
                "description": "An automation whose id is 'test' is still read with GET "
                "/automations/test; only POST means the dry run.",
                "operationId": "testAdHocAutomation",
                **write,
                "requestBody": {"required": True, "content": _json(_ref("AdHocDryRun"))},
                "responses": {
                    "200": _ok("match, reasons, rendered job", "DryRunResult"),
                    "400": _BAD_BODY,
                    **_AUTH_ERRORS,
                    "413": _TOO_LARGE,
                    "422": _error(
                        "invalid automation or event (fields under automation. or event.)"
                    ),
                },
            },
        },
        "/automations/{automation_id}/test": {
            "parameters": [_ID],
            "post": {
                "summary": "Dry-run a stored automation; nothing is emitted",
                "operationId": "testAutomation",
                **write,
                "requestBody": {"required": False, "content": _json(_ref("DryRun"))},
                "responses": {
                    "200": _ok("match, reasons, rendered job", "DryRunResult"),
                    "400": _BAD_BODY,
                    **_AUTH_ERRORS,
                    "404": _NOT_FOUND,
                    "413": _TOO_LARGE,
                    "422": _error("invalid event"),
                },
            },
        },
        "/automations/{automation_id}/history": {
            "parameters": [_ID],
            "get": {
                "summary": "Last executions and counters (any worker answers)",
                "operationId": "automationHistory",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1},
                    }
                ],
                "responses": {
                    "200": _ok(
                        "newest first",
                        "AutomationHistory",
                        {
                            "Hookstream-Served-By": {
                                "description": "the worker holding this automation's partition",
                                "schema": {"type": "string"},
                            }
                        },
                    ),
                    "400": _error("bad limit"),
                    "404": _NOT_FOUND,
                    "503": _error("partition being reassigned, or its worker did not answer"),
                },
            },
        },
        "/events": {
            "post": {
                "summary": "Ingest an event over HTTP",
                "description": "Validated like the workers validate Kafka messages, then "
                "produced to registry-events (registry present) or artifact-events, keyed by "
                "collection path, as received. A CloudEvent (binary-mode ce- headers, or "
                "application/cloudevents+json) is unwrapped first: its data is the event.",
                "operationId": "ingestEvent",
                **write,
                "requestBody": {"required": True, "content": _json(_ref("Event"))},
                "responses": {
                    "202": _ok("written to Kafka", "EventAccepted"),
                    "400": _error("not JSON, not an object, or empty"),
                    **_AUTH_ERRORS,
                    "413": _error("over max_event_bytes"),
                    "422": _error("invalid fields or unknown event type"),
                    "503": _error("Kafka did not take the event"),
                },
            },
        },
        "/ingest/mlflow": _ingest(
            "Ingest an MLflow 3 webhook delivery",
            "ingestMlflow",
            "X-MLflow-Signature (v1, HMAC-SHA256 of delivery_id.timestamp.body with "
            "ingest_mlflow_secret), X-MLflow-Timestamp within 5 minutes. The delivery id is "
            "the idempotency key: a retry publishes nothing new (docs/contract.md).",
        ),
        "/ingest/wandb": _ingest(
            "Ingest a W&B automation's webhook",
            "ingestWandb",
            "X-Wandb-Signature (base64 HMAC-SHA256 of the body with ingest_wandb_secret); "
            "the body is the payload template of docs/contract.md.",
        ),
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "responses": {
                    "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}
                },
            },
        },
    }


def build_openapi() -> dict[str, Any]:
    """The whole document as a dict."""
    _, top = models_json_schema(_MODELS, ref_template="#/components/schemas/{model}")
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Hookstream management API",
            "version": __version__,
            "description": "Automations, dry runs, HTTP event ingest and execution history, "
            "served by every Hookstream worker (docs/api.md).",
        },
        "paths": _paths(),
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "HOOKSTREAM_API_TOKEN; required for every POST, PUT, "
                    "PATCH and DELETE when configured",
                }
            },
        },
    }


@lru_cache(maxsize=1)
def openapi_bytes() -> bytes:
    """The document as file bytes: sorted keys, indented, trailing newline."""
    return dumps(build_openapi(), sort_keys=True, indent=True) + b"\n"


def export_openapi(path: Path = OPENAPI_PATH) -> Path:
    """Write the document to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(openapi_bytes())
    return path


def check_openapi(path: Path = OPENAPI_PATH) -> bool:
    """Whether the checked-in copy equals the document the code builds."""
    return path.is_file() and path.read_bytes() == openapi_bytes()
