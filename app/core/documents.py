"""What the languages see of one event: the filter document and the template variables.

Built once per event by the pipeline (and by dry runs), then shared by every
automation the event is checked against.
"""

from __future__ import annotations

from typing import Any

from app.contract.events import Event
from app.lang.templating import TemplateVariables

__all__ = ["filter_document", "template_variables"]


def filter_document(event: Event) -> dict[str, Any]:
    """The fields a filter sees, built once per event."""
    artifact = event.artifact
    doc: dict[str, Any] = {
        "type": artifact.type,
        "version": artifact.version,
        "collection": artifact.collection,
        "aliases": artifact.aliases,
        "tags": artifact.tags,
        "metadata": artifact.metadata,
    }
    # `alias` and `tag` (the W&B SDK's ArtifactEvent fields): on an alias or tag event,
    # the alias or tag it is about; on any other event, every alias or tag the version
    # carries (on LINK_ARTIFACT, the aliases it was linked with), matched element-wise.
    alias = event.event_alias
    doc["alias"] = artifact.aliases if alias is None else alias
    tag = event.event_tag
    doc["tag"] = artifact.tags if tag is None else tag
    if event.author is not None:
        doc["author"] = event.author
    return doc


def _version(version: int | None) -> str:
    return "" if version is None else f"v{version}"


def template_variables(event: Event, previous_version: int | None = None) -> TemplateVariables:
    """Every variable of one event, computed once."""
    artifact = event.artifact
    source = event.source
    return TemplateVariables(
        {
            "event_type": event.event_type.value,
            "event_author": event.author or "",
            "entity_name": event.entity,
            "project_name": event.project,
            "artifact_collection_name": artifact.collection,
            "artifact_version": f"v{artifact.version}",
            "artifact_version_string": event.artifact_version_string,
            "alias": event.event_alias or "",
            "tag": event.event_tag or "",
            "artifact_type": artifact.type,
            "registry_name": event.registry or "",
            "event_id": event.event_id,
            "previous_version": _version(previous_version),
            "artifact_digest": artifact.digest or "",
            "occurred_at": event.occurred_at.isoformat(),
            "source_artifact_version_string": (
                ""
                if source is None
                else f"{source.entity}/{source.project}/{source.collection}:v{source.version}"
            ),
        },
        artifact.metadata,
    )
