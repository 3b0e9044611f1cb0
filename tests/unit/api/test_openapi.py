"""The OpenAPI document: the checked-in copy is current, complete and self-consistent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.api.openapi import OPENAPI_PATH, build_openapi, check_openapi, openapi_bytes
from app.api.routes import _ROUTES
from app.serialization import loads


def refs(node: Any) -> Iterator[str]:
    """Every $ref in a JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_checked_in_copy_is_current() -> None:
    """docs/openapi.json equals the built document; regenerate with `hookstream openapi export`."""
    assert check_openapi(), "docs/openapi.json is stale: run `hookstream openapi export`"
    assert loads(OPENAPI_PATH.read_bytes()) == build_openapi()


def test_every_route_is_documented_with_its_methods() -> None:
    """Each registered API route appears in paths with the methods its view implements."""
    paths = build_openapi()["paths"]
    for path, view in _ROUTES:
        assert path in paths, path
        for method in ("get", "post", "put", "patch", "delete"):
            if method in vars(view) and not (path.endswith("{automation_id}") and method == "post"):
                assert method in paths[path], (path, method)
    assert "post" in paths["/automations/test"]


def test_every_reference_resolves_and_writes_declare_the_bearer_scheme() -> None:
    """No dangling $ref; every POST/PUT/PATCH/DELETE is secured and documents 401 and 403,
    except webhook ingest, which the sender's signature secures (`security: []`, 401)."""
    document = build_openapi()
    schemas = document["components"]["schemas"]
    for ref in refs(document):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas, ref
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path.startswith("/ingest/"):
                assert operation["security"] == [], (path, method)
                assert "401" in operation["responses"], (path, method)
            elif method in ("post", "put", "patch", "delete"):
                assert operation["security"] == [{"bearer": []}], (path, method)
                assert {"401", "403"} <= set(operation["responses"]), (path, method)


def test_document_bytes_are_stable() -> None:
    """Sorted keys and a trailing newline, so the checked-in copy diffs cleanly."""
    raw = openapi_bytes()
    assert raw.endswith(b"}\n")
    assert loads(raw)["openapi"] == "3.1.0"
