"""The filter compiler: every operator on every field, MongoDB list semantics, limits."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.documents import filter_document
from app.errors import FilterError
from app.lang.filters import MAX_DEPTH, MAX_NODES, MAX_PATTERN_CHARS, compile_filter
from tests.factories import make_event

DOC: dict[str, Any] = {
    "alias": "production",
    "aliases": ["latest", "production"],
    "tags": ["baseline", "vision"],
    "type": "model",
    "version": 3,
    "collection": "mnist-classifier",
    "author": "alice",
    "metadata": {
        "accuracy": 0.93,
        "framework": "torch",
        "layers": [64, 128],
        "train": {"lr": 0.001, "opt": {"name": "adam"}},
        "a.b": "dotted",
        "flag": True,
        "none": None,
        "runs": [{"id": "r1"}],
    },
}


def matches(spec: dict[str, Any], doc: dict[str, Any] | None = None) -> bool:
    """Compile and match in one step."""
    return compile_filter(spec).matches(DOC if doc is None else doc)


CASES: list[tuple[dict[str, Any], bool]] = [
    # implicit equality and $eq, scalars and list elements
    ({"alias": "production"}, True),
    ({"alias": "staging"}, False),
    ({"alias": {"$eq": "production"}}, True),
    ({"aliases": "production"}, True),
    ({"aliases": {"$eq": "staging"}}, False),
    ({"aliases": ["latest", "production"]}, True),
    ({"aliases": ["production", "latest"]}, False),
    ({"tags": "vision"}, True),
    ({"type": "model"}, True),
    ({"type": "dataset"}, False),
    ({"version": 3}, True),
    ({"version": 3.0}, True),
    ({"version": "3"}, False),
    ({"version": True}, False),
    ({"collection": "mnist-classifier"}, True),
    ({"author": "alice"}, True),
    ({"author": "bob"}, False),
    ({"metadata.accuracy": 0.93}, True),
    ({"metadata.framework": "torch"}, True),
    ({"metadata.train.lr": 0.001}, True),
    ({"metadata.train.opt.name": "adam"}, True),
    ({"metadata.train.opt": {"name": "adam"}}, True),
    ({"metadata.train.opt": {"name": "sgd"}}, False),
    ({"metadata.layers": 64}, True),
    ({"metadata.layers.1": 128}, True),
    ({"metadata.layers.5": 128}, False),
    ({"metadata.runs.0.id": "r1"}, True),
    ({"metadata.a.b": "dotted"}, True),
    ({"metadata.flag": True}, True),
    ({"metadata.flag": 1}, False),
    ({"metadata.none": None}, True),
    ({"metadata.missing": None}, True),
    ({"metadata.missing.deeper": "x"}, False),
    ({"metadata.framework.x": "torch"}, False),
    # $ne: no element may equal; a missing field is not equal
    ({"alias": {"$ne": "staging"}}, True),
    ({"alias": {"$ne": "production"}}, False),
    ({"aliases": {"$ne": "production"}}, False),
    ({"aliases": {"$ne": "staging"}}, True),
    ({"version": {"$ne": "3"}}, True),
    ({"version": {"$ne": 3}}, False),
    ({"metadata.missing": {"$ne": "x"}}, True),
    ({"metadata.none": {"$ne": None}}, False),
    # $in / $nin
    ({"alias": {"$in": ["staging", "production"]}}, True),
    ({"alias": {"$in": ["staging"]}}, False),
    ({"aliases": {"$in": ["x", "latest"]}}, True),
    ({"aliases": {"$in": [["latest", "production"]]}}, True),
    ({"tags": {"$in": ["nlp"]}}, False),
    ({"version": {"$in": [1, 2, 3]}}, True),
    ({"version": {"$in": ["3"]}}, False),
    ({"type": {"$in": []}}, False),
    ({"metadata.flag": {"$in": [1]}}, False),
    ({"metadata.flag": {"$in": [True]}}, True),
    ({"metadata.missing": {"$in": [None]}}, True),
    ({"metadata.train.opt": {"$in": [{"name": "adam"}]}}, True),
    ({"alias": {"$nin": ["staging"]}}, True),
    ({"aliases": {"$nin": ["latest"]}}, False),
    ({"version": {"$nin": [3]}}, False),
    ({"collection": {"$nin": ["other"]}}, True),
    # $regex, with $options
    ({"alias": {"$regex": "^prod"}}, True),
    ({"alias": {"$regex": "^stag"}}, False),
    ({"alias": {"$regex": "^PROD"}}, False),
    ({"alias": {"$regex": "^PROD", "$options": "i"}}, True),
    ({"aliases": {"$regex": "^lat"}}, True),
    ({"tags": {"$regex": "^vis"}}, True),
    ({"type": {"$regex": "mod"}}, True),
    ({"collection": {"$regex": "classifier$"}}, True),
    ({"author": {"$regex": "^al"}}, True),
    ({"version": {"$regex": "3"}}, False),
    ({"metadata.framework": {"$regex": "^tor"}}, True),
    ({"metadata.accuracy": {"$regex": "0"}}, False),
    ({"metadata.missing": {"$regex": ".*"}}, False),
    ({"alias": {"$regex": "prod-.*"}}, False),
    # $contains: substring of a string, or of any string element
    ({"alias": {"$contains": "duct"}}, True),
    ({"alias": {"$contains": "xyz"}}, False),
    ({"aliases": {"$contains": "atest"}}, True),
    ({"tags": {"$contains": "base"}}, True),
    ({"type": {"$contains": "ode"}}, True),
    ({"collection": {"$contains": "mnist"}}, True),
    ({"author": {"$contains": "lic"}}, True),
    ({"version": {"$contains": "3"}}, False),
    ({"metadata.framework": {"$contains": "orc"}}, True),
    # $exists: null counts as present
    ({"alias": {"$exists": True}}, True),
    ({"author": {"$exists": False}}, False),
    ({"metadata.missing": {"$exists": False}}, True),
    ({"metadata.none": {"$exists": True}}, True),
    ({"metadata.train.opt.name": {"$exists": True}}, True),
    # comparisons, bracketed by type
    ({"version": {"$gt": 2}}, True),
    ({"version": {"$gt": 3}}, False),
    ({"version": {"$gte": 3}}, True),
    ({"version": {"$lt": 4}}, True),
    ({"version": {"$lte": 2}}, False),
    ({"version": {"$gte": 2, "$lt": 4}}, True),
    ({"version": {"$gt": "2"}}, False),
    ({"metadata.accuracy": {"$gte": 0.9}}, True),
    ({"metadata.accuracy": {"$lt": 0.9}}, False),
    ({"metadata.layers": {"$gt": 100}}, True),
    ({"metadata.layers": {"$gt": 200}}, False),
    ({"metadata.flag": {"$gt": 0}}, False),
    ({"metadata.framework": {"$gt": 1}}, False),
    ({"alias": {"$gt": "p"}}, True),
    ({"alias": {"$lt": "p"}}, False),
    ({"alias": {"$lt": 5}}, False),
    ({"aliases": {"$lte": "latest"}}, True),
    ({"tags": {"$gte": "w"}}, False),
    ({"type": {"$lte": "model"}}, True),
    ({"collection": {"$lt": "n"}}, True),
    ({"author": {"$gt": "b"}}, False),
    ({"metadata.missing": {"$lt": 1}}, False),
    # $all and $size
    ({"aliases": {"$all": ["latest", "production"]}}, True),
    ({"aliases": {"$all": ["latest", "staging"]}}, False),
    ({"tags": {"$all": ["baseline"]}}, True),
    ({"tags": {"$all": []}}, False),
    ({"alias": {"$all": ["production"]}}, True),
    ({"aliases": {"$size": 2}}, True),
    ({"aliases": {"$size": 3}}, False),
    ({"tags": {"$size": 2}}, True),
    ({"alias": {"$size": 1}}, False),
    ({"metadata.layers": {"$size": 2}}, True),
    # field-level $not
    ({"alias": {"$not": {"$regex": "^stag"}}}, True),
    ({"alias": {"$not": {"$eq": "production"}}}, False),
    ({"metadata.missing": {"$not": {"$eq": "x"}}}, True),
    ({"version": {"$not": {"$gt": 5}}}, True),
    # logical operators
    ({"alias": "production", "type": "model"}, True),
    ({"alias": "production", "type": "dataset"}, False),
    ({"$and": [{"alias": "production"}, {"version": 3}]}, True),
    ({"$and": [{"alias": "production"}, {"version": 4}]}, False),
    ({"$or": [{"alias": "staging"}, {"version": 3}]}, True),
    ({"$or": [{"alias": "staging"}, {"version": 4}]}, False),
    ({"$nor": [{"alias": "staging"}, {"version": 4}]}, True),
    ({"$nor": [{"alias": "staging"}, {"version": 3}]}, False),
    ({"$not": {"alias": "staging"}}, True),
    ({"$not": {"alias": "production"}}, False),
    ({"$and": []}, True),
    ({"$and": [{}]}, True),
    ({"$or": [{"$and": []}]}, True),
    ({"$or": [{"$and": [{"alias": {"$regex": "prod.*"}}]}]}, True),
    ({"$or": [{"$and": [{"alias": {"$regex": "prod-.*"}}]}]}, False),
    ({}, True),
]


@pytest.mark.parametrize(("spec", "expected"), CASES, ids=[str(c[0]) for c in CASES])
def test_operator_on_field(spec: dict[str, Any], expected: bool) -> None:
    """Each operator on each field gives MongoDB's answer."""
    assert matches(spec) is expected


def test_none_filter_matches_everything() -> None:
    """An absent filter matches every document and is reported as empty."""
    compiled = compile_filter(None)
    assert compiled.is_empty
    assert compiled.matches({})
    assert compiled.explain({}) == []


def test_wandb_stored_empty_form_is_empty() -> None:
    """W&B's stored empty filter {"$or": [{"$and": []}]} compiles to match-all."""
    assert compile_filter({"$or": [{"$and": []}]}).is_empty


def test_filter_document_of_events() -> None:
    """`alias` is the alias of an alias event, else the version's aliases (W&B SDK field)."""
    doc = filter_document(make_event())
    assert doc["alias"] == "production"
    assert doc["version"] == 3
    assert doc["metadata"]["framework"] == "torch"
    created = make_event(
        event_type="CREATE_ARTIFACT",
        alias="production",
        author=None,
        artifact={"aliases": ["latest"]},
    )
    created_doc = filter_document(created)
    assert created_doc["alias"] == ["latest"]
    assert "author" not in created_doc
    assert not compile_filter({"alias": "production"}).matches(created_doc)
    assert compile_filter({"alias": "latest"}).matches(created_doc)


@pytest.mark.parametrize(
    ("spec", "path", "reason"),
    [
        ({"name": "x"}, "name", "unknown field 'name'"),
        ({"metadata": {"a": 1}}, "metadata", "unknown field 'metadata'"),
        ({"metadata.": 1}, "metadata.", "unknown field"),
        ({"metadata.a..b": 1}, "metadata.a..b", "unknown field"),
        ({"alias": {"$like": "x"}}, "alias.$like", "unknown operator $like"),
        ({"$where": "x"}, "$where", "unknown operator $where"),
        ({"$eq": "x"}, "$eq", "needs a field"),
        ({"alias": {"$or": []}}, "alias.$or", "top level"),
        ({"alias": {"$eq": "x", "plain": 1}}, "alias", "mixes operators"),
        ({"alias": {"$in": "x"}}, "alias.$in", "needs a list"),
        ({"alias": {"$nin": 3}}, "alias.$nin", "needs a list"),
        ({"version": {"$gt": True}}, "version.$gt", "number or a string"),
        ({"version": {"$gt": None}}, "version.$gt", "number or a string"),
        ({"version": {"$lt": [1]}}, "version.$lt", "number or a string"),
        ({"version": {"$gte": float("inf")}}, "version.$gte", "not a finite number"),
        ({"version": {"$lte": float("nan")}}, "version.$lte", "not a finite number"),
        ({"alias": {"$regex": 5}}, "alias.$regex", "string pattern"),
        ({"alias": {"$regex": r"(a)\1"}}, "alias.$regex", "refused by RE2"),
        ({"alias": {"$regex": "(?=prod)"}}, "alias.$regex", "refused by RE2"),
        ({"alias": {"$regex": "(?<!x)y"}}, "alias.$regex", "refused by RE2"),
        ({"alias": {"$regex": "a" * (MAX_PATTERN_CHARS + 1)}}, "alias.$regex", "characters, over"),
        ({"alias": {"$regex": "x", "$options": "g"}}, "alias.$options", "only i, m, s"),
        ({"alias": {"$options": "i"}}, "alias.$options", "needs $regex"),
        ({"alias": {"$contains": 1}}, "alias.$contains", "needs a string"),
        ({"alias": {"$exists": 1}}, "alias.$exists", "true or false"),
        ({"aliases": {"$size": -1}}, "aliases.$size", "non-negative integer"),
        ({"aliases": {"$size": True}}, "aliases.$size", "non-negative integer"),
        ({"aliases": {"$all": "x"}}, "aliases.$all", "needs a list"),
        ({"alias": {"$not": "x"}}, "alias.$not", "needs operators"),
        ({"$or": []}, "$or", "at least one"),
        ({"$nor": []}, "$nor", "at least one"),
        ({"$or": {"alias": "x"}}, "$or", "list of filters"),
        ({"$and": ["x"]}, "$and.0", "must be an object"),
        ({"metadata.x": float("nan")}, "metadata.x", "not a finite number"),
        ({"metadata.x": {1: 2}}, "metadata.x", "keys must be strings"),
        ({"metadata.x": object()}, "metadata.x", "unsupported value"),
    ],
)
def test_compile_errors_name_path_and_reason(spec: dict[str, Any], path: str, reason: str) -> None:
    """Every invalid filter is refused with the clause path and a readable reason."""
    with pytest.raises(FilterError) as info:
        compile_filter(spec)
    assert info.value.path == path
    assert reason in info.value.reason


def test_filter_must_be_an_object() -> None:
    """A filter that is not an object is refused."""
    with pytest.raises(FilterError, match="must be an object"):
        compile_filter(["alias"])  # type: ignore[arg-type]  # the wrong type is the test


def test_depth_limit() -> None:
    """A filter nested deeper than MAX_DEPTH is refused."""
    spec: dict[str, Any] = {"alias": "x"}
    for _ in range(MAX_DEPTH):
        spec = {"$not": spec}
    with pytest.raises(FilterError, match="nested too deeply"):
        compile_filter(spec)


def test_node_limit() -> None:
    """A filter with more than MAX_NODES nodes is refused."""
    with pytest.raises(FilterError, match="too large"):
        compile_filter({"alias": {"$in": [str(i) for i in range(MAX_NODES + 1)]}})
    with pytest.raises(FilterError, match="too large"):
        compile_filter({"$or": [{"alias": str(i)} for i in range(MAX_NODES)]})


def test_catastrophic_pattern_finishes_fast() -> None:
    """(a+)+$ against 100,000 a's and a '!' finishes in linear time (RE2)."""
    compiled = compile_filter({"metadata.text": {"$regex": "(a+)+$"}})
    doc = {"metadata": {"text": "a" * 100_000 + "!"}}
    start = time.perf_counter()
    assert not compiled.matches(doc)
    assert time.perf_counter() - start < 0.5


def test_regex_on_non_ascii_text() -> None:
    """Regexes work on non-ASCII strings and do not crash on lone surrogates."""
    compiled = compile_filter({"alias": {"$regex": "^prod-é$"}})
    assert compiled.matches({"alias": "prod-é"})
    assert not compiled.matches({"alias": "prod-\ud800"})


def test_explain_names_path_operator_actual_and_operand() -> None:
    """explain says which clause failed, with the field's value and the compared value."""
    compiled = compile_filter({"alias": {"$regex": "^prod"}})
    assert compiled.explain({"alias": "staging"}) == [
        'filter.alias: alias is "staging", which fails $regex "^prod"'
    ]
    assert compiled.explain({"alias": "production"}) == []


def test_explain_missing_field_and_nested_clauses() -> None:
    """explain reports a missing field and every failed alternative of an $or."""
    compiled = compile_filter({"$or": [{"author": "bob"}, {"version": {"$gt": 5}}]})
    reasons = compiled.explain({"version": 3})
    assert reasons[0] == "filter.$or: none of the 2 alternatives matched"
    assert 'filter.$or.0.author: author is missing, which fails $eq "bob"' in reasons
    assert "filter.$or.1.version: version is 3, which fails $gt 5" in reasons


def test_explain_nor_and_not() -> None:
    """explain reports a $nor alternative that matched and a negated filter that matched."""
    nor = compile_filter({"$nor": [{"alias": "production"}]})
    assert nor.explain(DOC) == ["filter.$nor.0.alias: matched, but $nor requires that it does not"]
    negated = compile_filter({"$not": {"alias": "production"}})
    assert negated.explain(DOC) == ["filter.$not: the negated filter matched"]


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 10)
    | st.floats(-10, 10, allow_nan=False)
    | st.sampled_from(["", "a", "prod", "production", "latest"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2)
    ),
    max_leaves=6,
)
FIELD = st.sampled_from(["alias", "aliases", "version", "metadata.x", "metadata.x.y"])


def _doc(field: str, value: Any) -> dict[str, Any]:
    """A document holding `value` at `field` (metadata.* goes under metadata)."""
    if field.startswith("metadata."):
        return {"metadata": {"x": value}}
    return {field: value}


@settings(max_examples=300, deadline=None)
@given(FIELD, JSON, JSON)
def test_ne_is_not_eq(field: str, operand: Any, value: Any) -> None:
    """$ne is exactly the negation of $eq, whatever the types."""
    doc = _doc(field, value)
    eq = compile_filter({field: {"$eq": operand}}).matches(doc)
    ne = compile_filter({field: {"$ne": operand}}).matches(doc)
    assert eq is not ne


@settings(max_examples=300, deadline=None)
@given(FIELD, st.lists(JSON, max_size=4), JSON)
def test_nin_is_not_in_and_in_is_any_eq(field: str, operands: list[Any], value: Any) -> None:
    """$nin negates $in, and $in equals an $or of $eq."""
    doc = _doc(field, value)
    inside = compile_filter({field: {"$in": operands}}).matches(doc)
    assert compile_filter({field: {"$nin": operands}}).matches(doc) is not inside
    assert inside is any(compile_filter({field: {"$eq": x}}).matches(doc) for x in operands)


OPERATORS = st.sampled_from(
    ["$gt", "$gte", "$lt", "$lte", "$regex", "$contains", "$size", "$exists"]
)


@settings(max_examples=300, deadline=None)
@given(FIELD, JSON)
def test_matching_never_raises_and_explain_agrees(field: str, value: Any) -> None:
    """On any value, every operator answers without raising; explain is empty iff matching."""
    specs: list[dict[str, Any]] = [
        {field: {"$gt": 1}},
        {field: {"$lte": "m"}},
        {field: {"$regex": "^p"}},
        {field: {"$contains": "a"}},
        {field: {"$size": 1}},
        {field: {"$exists": True}},
        {field: {"$all": ["a", 1]}},
        {field: {"$not": {"$in": [None, "prod"]}}},
    ]
    doc = _doc(field, value)
    for spec in specs:
        compiled = compile_filter(spec)
        assert (compiled.explain(doc) == []) is compiled.matches(doc)
