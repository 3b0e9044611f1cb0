"""The public contract: pydantic models of the JSON Hookstream reads and writes; JSON Schemas.

One module per concept: `events` (and `parse_event`), `automations` (scopes, actions,
`parse_automation`), `jobs` (rendered actions, action jobs, `job_id`), `dead_letters` (of the
event topics), `results` (action results and the jobs' dead letters); `fields` holds the
field types they share, `timestamps` the one timestamp format, `schemas` the JSON Schema export.

Depends on nothing of Hookstream but the base modules and the filter and template languages.
"""

from __future__ import annotations

__all__: list[str] = []
