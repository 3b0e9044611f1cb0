"""Templates: every variable, JSON escaping, single pass, and refusal at load time."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.documents import template_variables
from app.errors import TemplateError, UnknownVariableError
from app.lang.templating import VARIABLES, compile_template, compile_tree, sample_variables
from app.serialization import loads
from tests.factories import make_event

SOURCE = {"entity": "acme", "project": "vision", "collection": "mnist", "version": 7}


def render(text: str, **event_overrides: Any) -> str:
    """Render a plain template against a factory event."""
    variables = template_variables(make_event(**event_overrides), previous_version=2)
    return compile_template(text).render(variables)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("event_type", "ADD_ARTIFACT_ALIAS"),
        ("event_author", "alice"),
        ("entity_name", "acme"),
        ("project_name", "wandb-registry-model"),
        ("artifact_collection_name", "mnist-classifier"),
        ("artifact_version", "v3"),
        ("artifact_version_string", "acme/wandb-registry-model/mnist-classifier:v3"),
        ("alias", "production"),
        ("artifact_type", "model"),
        ("registry_name", "model"),
        ("event_id", "evt-1"),
        ("previous_version", "v2"),
        ("artifact_digest", "9a1b"),
        ("occurred_at", "2026-11-26T10:00:00+00:00"),
        ("source_artifact_version_string", ""),
        ("tag", ""),
        ("artifact_metadata.framework", "torch"),
        ("artifact_metadata.accuracy", "0.93"),
    ],
)
def test_each_variable_renders(name: str, expected: str) -> None:
    """Each documented variable renders the event's value."""
    assert render(f"<${{{name}}}>") == f"<{expected}>"


def test_every_documented_variable_is_tested() -> None:
    """The parametrized list above covers every known variable."""
    tested = {
        "event_type", "event_author", "entity_name", "project_name", "artifact_collection_name",
        "artifact_version", "artifact_version_string", "alias", "artifact_type", "registry_name",
        "event_id", "previous_version", "artifact_digest", "occurred_at",
        "source_artifact_version_string", "tag",
    }  # fmt: skip
    # Run variables are tested with run events (tests/unit/test_run_pipeline.py).
    run = {"run_id", "run_name", "run_path", "run_state", "metric_name", "metric_value", "step"}
    assert tested | run == VARIABLES


def test_run_variables_render_empty_for_an_artifact_event() -> None:
    """A run variable in an artifact event's job renders empty rather than failing."""
    assert render("<${run_name}|${metric_value}>") == "<|>"


def test_empty_values_for_absent_parts() -> None:
    """Alias, author, registry, digest and previous version render empty when absent."""
    event = make_event(
        event_type="CREATE_ARTIFACT", author=None, registry=None, artifact={"digest": None}
    )
    variables = template_variables(event, None)
    for name in ("alias", "event_author", "registry_name", "artifact_digest", "previous_version"):
        assert variables[name] == "", name


def test_alias_is_empty_for_non_alias_events() -> None:
    """${alias} is empty for an event that is not ADD_ARTIFACT_ALIAS, even if it has one."""
    assert render("${alias}", event_type="CREATE_ARTIFACT") == ""


def test_source_version_string_for_links() -> None:
    """${source_artifact_version_string} names the linked source version."""
    text = render("${source_artifact_version_string}", event_type="LINK_ARTIFACT", source=SOURCE)
    assert text == "acme/vision/mnist:v7"


@pytest.mark.parametrize(
    ("key", "metadata", "expected"),
    [
        ("a", {"a": "x"}, "x"),
        ("a.b", {"a": {"b": "nested"}}, "nested"),
        ("a.b", {"a.b": "exact", "a": {"b": "nested"}}, "exact"),
        ("list.1", {"list": [1, 2]}, "2"),
        ("missing", {}, ""),
        ("a.missing", {"a": {}}, ""),
        ("n", {"n": 3}, "3"),
        ("f", {"f": 0.5}, "0.5"),
        ("b", {"b": True}, "true"),
        ("z", {"z": None}, "null"),
        ("o", {"o": {"k": [1, "v"]}}, '{"k":[1,"v"]}'),
    ],
)
def test_metadata_values(key: str, metadata: dict[str, Any], expected: str) -> None:
    """Metadata: dotted paths, exact keys first, missing empty, non-strings as JSON text."""
    assert render(f"${{artifact_metadata.{key}}}", artifact={"metadata": metadata}) == expected


def test_json_escaping_of_quotes_newlines_and_backslashes() -> None:
    """Values inserted into a JSON payload are escaped, so the payload stays valid JSON."""
    template = compile_template('{"who": "${event_author}"}', json_context=True)
    nasty = 'a "quoted"\nline \\ end'
    payload = template.render({"event_author": nasty})
    assert loads(payload) == {"who": nasty}


def test_json_injection_cannot_add_keys() -> None:
    """A value crafted to close the string cannot add JSON keys."""
    template = compile_template('{"alias": "${alias}"}', json_context=True)
    payload = template.render({"alias": 'x", "admin": true, "y": "'})
    assert loads(payload) == {"alias": 'x", "admin": true, "y": "'}


def test_single_pass_no_reexpansion() -> None:
    """A value containing ${x} is inserted literally, never expanded again."""
    template = compile_template("${alias}|${event_id}")
    assert template.render({"alias": "${event_id}", "event_id": "E"}) == "${event_id}|E"
    json_template = compile_template('{"a": "${alias}"}', json_context=True)
    assert loads(json_template.render({"alias": "${event_id}"})) == {"a": "${event_id}"}


def test_metadata_injection_is_not_expanded() -> None:
    """Metadata holding ${...} text is rendered as that text."""
    assert (
        render("${artifact_metadata.k}", artifact={"metadata": {"k": "${event_id}"}})
        == "${event_id}"
    )


def test_dollar_escape_and_lone_dollars() -> None:
    """$${ writes a literal ${; other $ characters are plain text."""
    assert (
        compile_template("cost $5 $${alias} ${alias}$").render({"alias": "A"})
        == "cost $5 ${alias} A$"
    )


def test_unknown_variable_is_refused_with_its_name() -> None:
    """An unknown variable is refused at compile time, naming it."""
    with pytest.raises(UnknownVariableError) as info:
        compile_template("${artifact_name} and ${tags} and ${alias}")
    assert info.value.names == ["artifact_name", "tags"]
    assert "${artifact_name}" in str(info.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("${alias", "unterminated"),
        ("${}", "empty variable name"),
        ("${artifact_metadata.}", "unknown variable"),
        ("${artifact_metadata.a..b}", "unknown variable"),
        ("${ alias }", "unknown variable"),
    ],
)
def test_syntax_errors(text: str, reason: str) -> None:
    """Malformed templates are refused with a reason."""
    with pytest.raises(TemplateError, match=reason):
        compile_template(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"v": ${artifact_version}}', "inside a JSON string"),
        ("${alias}", "inside a JSON string"),
        ('{"a": "\\${alias}"}', "unfinished escape"),
        ('{"a": "\\u00${alias}"}', "unfinished escape"),
    ],
)
def test_json_templates_keep_variables_inside_strings(text: str, reason: str) -> None:
    """In a JSON payload a variable must sit inside a string, not after a backslash."""
    with pytest.raises(TemplateError, match=reason):
        compile_template(text, json_context=True)


def test_json_template_after_escaped_quote_is_inside_string() -> None:
    """An escaped quote does not end the string: the variable is still inside it."""
    template = compile_template('{"a": "say \\"${alias}\\""}', json_context=True)
    assert loads(template.render({"alias": 'x"y'})) == {"a": 'say "x"y"'}


def test_single_line_context() -> None:
    """Header templates refuse CR/LF and replace control characters in values."""
    with pytest.raises(TemplateError, match="CR or LF"):
        compile_template("a\r\nb", single_line=True)
    template = compile_template("v=${alias}", single_line=True)
    assert template.render({"alias": "x\r\nInjected: 1"}) == "v=x  Injected: 1"


def test_missing_variable_renders_empty() -> None:
    """Rendering with a mapping lacking a variable gives an empty value, not an error."""
    assert compile_template("<${alias}>").render({}) == "<>"


def test_compile_tree_renders_strings_and_keeps_other_values() -> None:
    """compile_tree renders every string of a structure and leaves numbers and nulls."""
    tree = compile_tree({"a": ["${alias}", 1, None], "b": {"c": "v${artifact_version}"}, "d": True})
    assert tree({"alias": "prod", "artifact_version": "v3"}) == {
        "a": ["prod", 1, None],
        "b": {"c": "vv3"},
        "d": True,
    }


def test_compile_tree_refuses_unknown_variables() -> None:
    """compile_tree refuses an unknown variable anywhere in the structure."""
    with pytest.raises(UnknownVariableError):
        compile_tree({"a": [{"b": "${nope}"}]})


def test_sample_variables_cover_every_name() -> None:
    """The load-time sample has a value for every variable and for metadata keys."""
    sample = sample_variables()
    assert set(sample) == VARIABLES
    assert sample["artifact_metadata.anything.at.all"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_any_value_keeps_json_payload_valid(alias: str, author: str) -> None:
    """Whatever the values, a JSON payload renders to valid JSON holding them exactly."""
    template = compile_template(
        '{"alias": "${alias}", "n": ["${event_author}", "x${alias}y"]}', json_context=True
    )
    safe_alias = alias.encode("utf-8", "replace").decode()
    safe_author = author.encode("utf-8", "replace").decode()
    payload = template.render({"alias": safe_alias, "event_author": safe_author})
    assert loads(payload) == {"alias": safe_alias, "n": [safe_author, f"x{safe_alias}y"]}
