"""``${name}`` substitution for action templates: no code, no expressions, one pass.

Variables (W&B names):

- ``event_type``: the event's type, e.g. ``ADD_ARTIFACT_ALIAS`` (a legacy ``LINK_MODEL``
  event renders as ``LINK_ARTIFACT``)
- ``event_author``: the event's ``author``, empty when absent
- ``entity_name``, ``project_name``, ``artifact_collection_name``, ``artifact_type``
- ``artifact_version``: ``v3``
- ``artifact_version_string``: ``entity/project/collection:v3``
- ``alias``: the alias added or removed (``ADD_ARTIFACT_ALIAS``, ``REMOVE_ARTIFACT_ALIAS``),
  empty for other events
- ``tag``: the tag added or removed (``ADD_ARTIFACT_TAG``, ``REMOVE_ARTIFACT_TAG``), empty
  for other events
- ``artifact_metadata.<KEY>``: a metadata value; ``KEY`` may be a dotted path into
  nested objects (an exact top-level key containing dots wins), a numeric segment
  indexes a list; a missing key renders empty; a non-string value renders as JSON text
- ``registry_name``: empty for project events
- ``event_id``

Hookstream additions:

- ``previous_version``: for ``ADD_ARTIFACT_ALIAS``, the version the alias pointed to
  before (``v2``), empty when the alias is new to the collection; for
  ``REMOVE_ARTIFACT_ALIAS``, the version the alias pointed to when it was removed;
  empty for other events
- ``artifact_digest``: empty when the producer sent none
- ``occurred_at``: the event time, ISO 8601
- ``source_artifact_version_string``: for ``LINK_ARTIFACT``, the linked source
  version (``entity/project/collection:v7``); empty otherwise

A name not listed here is refused as an unknown variable.

Rendering is bounded: variables carry a ``budget`` of characters that every render
using them may still insert; past it, RenderLimitError. A template referencing a large
metadata value thousands of times therefore fails fast instead of building gigabytes.

``$${`` writes a literal ``${``. A value that contains ``${x}`` is inserted as-is,
never expanded again. In a JSON context (webhook and kafka payloads) every variable
must sit inside a JSON string and its value is JSON-string-escaped, so a rendered
payload is valid JSON whatever the event holds. In a single-line context (HTTP
header values) control characters in values are replaced by spaces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from app.errors import RenderLimitError, TemplateError, UnknownVariableError
from app.lang.filters import MISSING, metadata_value
from app.serialization import dumps

__all__ = [
    "METADATA_PREFIX",
    "VARIABLES",
    "Renderer",
    "Template",
    "TemplateVariables",
    "compile_template",
    "compile_tree",
    "sample_variables",
]

METADATA_PREFIX = "artifact_metadata."

VARIABLES: frozenset[str] = frozenset(
    {
        "event_type",
        "event_author",
        "entity_name",
        "project_name",
        "artifact_collection_name",
        "artifact_version",
        "artifact_version_string",
        "alias",
        "tag",
        "artifact_type",
        "registry_name",
        "event_id",
        "previous_version",
        "artifact_digest",
        "occurred_at",
        "source_artifact_version_string",
        # Run events (issue 14): the run, and the metric value that fired.
        "run_id",
        "run_name",
        "run_path",
        "run_state",
        "metric_name",
        "metric_value",
        "step",
    }
)

_MAX_TEMPLATE_CHARS = 100_000
_METADATA_KEY = re.compile(r"[^\x00-\x1f\x7f${}]+")
_CONTROL = {c: " " for c in (*range(0x20), 0x7F)}


def _json_escape(value: str) -> str:
    return dumps(value)[1:-1].decode()


def _single_line(value: str) -> str:
    return value.translate(_CONTROL)


class Template:
    """A template split once into literal text and variable names."""

    __slots__ = ("_escape", "_literals", "_names", "text", "variables")

    def __init__(
        self,
        text: str,
        literals: tuple[str, ...],
        names: tuple[str, ...],
        escape: Callable[[str], str] | None,
    ) -> None:
        self.text = text
        self._literals = literals
        self._names = names
        self._escape = escape
        self.variables: frozenset[str] = frozenset(names)

    def render(self, variables: Mapping[str, str]) -> str:
        """Substitute every variable once; a missing one renders empty.

        Raises RenderLimitError when the variables' ``budget`` (if any) runs out.
        """
        literals = self._literals
        names = self._names
        if not names:
            return literals[0]
        escape = self._escape
        budget: int | None = getattr(variables, "budget", None)
        parts = [literals[0]]
        for i, name in enumerate(names):
            try:
                value = variables[name]
            except KeyError:
                value = ""
            text = escape(value) if escape is not None else value
            if budget is not None:
                budget -= len(text)
                if budget < 0:
                    raise RenderLimitError(
                        f"rendering inserts more than the limit of characters per job "
                        f"(stopped at ${{{name}}})"
                    )
            parts.append(text)
            parts.append(literals[i + 1])
        if budget is not None:
            # Mapping has no budget; the TemplateVariables that carry one (read above) take it back.
            variables.budget = budget  # type: ignore[attr-defined]
        return "".join(parts)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def _split(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    literals: list[str] = []
    names: list[str] = []
    buf: list[str] = []
    i = 0
    while True:
        j = text.find("$", i)
        if j < 0:
            buf.append(text[i:])
            break
        if text.startswith("$${", j):
            buf.append(text[i:j])
            buf.append("${")
            i = j + 3
        elif text.startswith("${", j):
            end = text.find("}", j + 2)
            if end < 0:
                raise TemplateError(f"unterminated '${{' at position {j}")
            if end == j + 2:
                raise TemplateError(f"empty variable name '${{}}' at position {j}")
            buf.append(text[i:j])
            literals.append("".join(buf))
            buf = []
            names.append(text[j + 2 : end])
            i = end + 1
        else:
            buf.append(text[i : j + 1])
            i = j + 1
    literals.append("".join(buf))
    return tuple(literals), tuple(names)


def _known(name: str) -> bool:
    if name in VARIABLES:
        return True
    if name.startswith(METADATA_PREFIX):
        key = name[len(METADATA_PREFIX) :]
        return bool(_METADATA_KEY.fullmatch(key)) and "" not in key.split(".")
    return False


def _check_json_positions(literals: tuple[str, ...], names: tuple[str, ...]) -> None:
    # A JSON-escaped value is safe only inside a string and not right after a backslash.
    in_string = False
    pending = 0  # characters still owed to an escape sequence
    for index, literal in enumerate(literals):
        for ch in literal:
            if pending:
                if pending == -1:
                    pending = 4 if ch == "u" else 0
                else:
                    pending -= 1
            elif in_string:
                if ch == "\\":
                    pending = -1
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
        if index < len(names):
            name = names[index]
            if not in_string:
                raise TemplateError(
                    f'${{{name}}} must be inside a JSON string (write "${{{name}}}")'
                )
            if pending:
                raise TemplateError(f"${{{name}}} must not follow an unfinished escape sequence")


@lru_cache(maxsize=4096)
def compile_template(
    text: str, *, json_context: bool = False, single_line: bool = False
) -> Template:
    """Compile a template; raises TemplateError (UnknownVariableError) naming each problem."""
    if len(text) > _MAX_TEMPLATE_CHARS:
        raise TemplateError(f"template is {len(text)} characters, over {_MAX_TEMPLATE_CHARS}")
    if single_line and ("\r" in text or "\n" in text):
        raise TemplateError("must not contain CR or LF")
    literals, names = _split(text)
    unknown = sorted({name for name in names if not _known(name)})
    if unknown:
        raise UnknownVariableError(unknown)
    if json_context:
        _check_json_positions(literals, names)
    escape: Callable[[str], str] | None = None
    if json_context:
        escape = _json_escape
    elif single_line:
        escape = _single_line
    return Template(text, literals, names, escape)


Renderer = Callable[[Mapping[str, str]], Any]


def _tree(value: Any) -> tuple[bool, Renderer]:
    # Returns (constant, renderer) so constant subtrees are built once, not per event.
    if isinstance(value, str):
        template = compile_template(value)
        if template.variables:
            return False, template.render
        return True, lambda variables: value
    if isinstance(value, Mapping):
        items = [(key, *_tree(item)) for key, item in value.items()]
        if all(constant for _, constant, _ in items):
            fixed = {key: render({}) for key, _, render in items}
            return True, lambda variables: fixed
        pairs = [(key, render) for key, _, render in items]
        return False, lambda variables: {key: render(variables) for key, render in pairs}
    if isinstance(value, list | tuple):
        parts = [_tree(item) for item in value]
        if all(constant for constant, _ in parts):
            fixed_list = [render({}) for _, render in parts]
            return True, lambda variables: fixed_list
        renders = [render for _, render in parts]
        return False, lambda variables: [render(variables) for render in renders]
    return True, lambda variables: value


def compile_tree(value: Any) -> Renderer:
    """Compile every string of a JSON-like structure as a template; returns its renderer."""
    return _tree(value)[1]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return dumps(value).decode()


class TemplateVariables(dict[str, str]):
    """Variables of one event; ``artifact_metadata.*`` keys are resolved on first use.

    ``budget``: characters renders may still insert (None: unlimited); the pipeline
    sets it before rendering each job.
    """

    __slots__ = ("_metadata", "_sample", "budget")

    def __init__(
        self, values: dict[str, str], metadata: Mapping[str, Any], *, sample: str | None = None
    ) -> None:
        super().__init__(values)
        self._metadata = metadata
        self._sample = sample
        self.budget: int | None = None

    def __missing__(self, key: str) -> str:
        if not key.startswith(METADATA_PREFIX):
            if key in VARIABLES:
                # A variable of another kind of event (a run variable in an artifact
                # event's job, or the reverse) renders empty.
                return ""
            raise KeyError(key)
        if self._sample is not None:
            value = self._sample
        else:
            found = metadata_value(self._metadata, key[len(METADATA_PREFIX) :])
            value = "" if found is MISSING else _text(found)
        self[key] = value
        return value


# Sample values start with a character that is never a valid JSON escape and hold
# characters that need escaping, so a misplaced variable fails the load-time check.
_SAMPLE = 'sample "value" \\ ${x}'


def sample_variables() -> TemplateVariables:
    """Variables used to check templates when an automation loads."""
    return TemplateVariables(dict.fromkeys(VARIABLES, _SAMPLE), {}, sample=_SAMPLE)
