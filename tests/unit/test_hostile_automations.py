"""Hostile automations: catastrophic regexes, template injection, enormous filters and
templates that would amplify an event. Each is refused with its field and reason, or
accepted and bounded; the rule book never raises on a record written around the API."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.contract.automations import Automation, parse_automation
from app.contract.jobs import parse_action_job
from app.core.matching import AutomationIndex
from app.core.pipeline import MemoryAliasStore, Pipeline, ProcessResult, SourceInfo
from app.errors import InvalidAutomationError
from app.lang.filters import MAX_DEPTH, MAX_NODES, MAX_PATTERN_CHARS, compile_filter
from app.serialization import dumps, loads
from app.stream.automations import RuleBook
from tests.factories import ACTION_TOPICS, NOW, event_bytes, make_automation

pytestmark = pytest.mark.faults

LIMIT = 64 * 1024
SOURCE = SourceInfo("registry-events", 0, 1)
BASE: dict[str, Any] = {
    "id": "hostile",
    "name": "hostile",
    "event": "ADD_ARTIFACT_ALIAS",
    "scope": {"type": "registry", "entity": "acme", "registry": "model"},
    "action": {"type": "webhook", "url": "https://ci.example.com/x", "payload": "{}"},
}

#: Patterns that hang a backtracking engine on a long run of "a" without a match.
CATASTROPHIC = [
    "(a+)+$",
    "(.*a){20}",
    "(a|a)*b",
    "(a|aa)+$",
    "((a*)*)*$",
    "(x+x+)+y",
    "^(a+)+b",
    "(a*)*b",
    r"(\w+\s?)*$",
    "(.*){1,100}(.*){1,100}$",
    "(?:a?){50}a{50}",
    "(.*a){100}",
]
#: Patterns RE2 refuses outright (backreferences, lookaround, huge repetitions).
REFUSED = [r"(a)\1", "(?=a)a", "(?<!a)b", "(a{1,100}){1,100}$", "a{1000}{1000}", "(?P<n>a)(?P=n)"]
TRIVIAL = "a!"
ADVERSARIAL = "a" * 100_000 + "!"


def errors_of(data: dict[str, Any]) -> dict[str, str]:
    """Field -> reason of the refusal of `data`."""
    with pytest.raises(InvalidAutomationError) as info:
        parse_automation(data)
    assert info.value.errors, "a refusal names at least one field"
    return dict(info.value.errors)


def with_filter(spec: Any) -> dict[str, Any]:
    """BASE with a filter."""
    return {**BASE, "filter": spec}


def best_of(runs: int, call: Callable[[], object]) -> float:
    """The fastest of `runs` timings of `call` (noise on a shared machine only adds)."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def regex_cost_ratio(pattern: str, runs: int = 5) -> float:
    """Time to match `pattern` on the 100 kB adversarial string over a trivial pattern's."""
    doc = {"metadata": {"note": ADVERSARIAL}}
    hostile = compile_filter({"metadata.note": {"$regex": pattern}})
    trivial = compile_filter({"metadata.note": {"$regex": TRIVIAL}})
    return best_of(runs, lambda: hostile.matches(doc)) / max(
        best_of(runs, lambda: trivial.matches(doc)), 1e-6
    )


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_catastrophic_regexes_are_accepted_and_stay_linear(pattern: str) -> None:
    """RE2 runs backtracking bombs in linear time: within a small factor of a trivial scan."""
    automation = parse_automation(with_filter({"metadata.note": {"$regex": pattern}}))
    assert automation.filter is not None
    ratio = regex_cost_ratio(pattern)
    # A backtracking engine would need 2**100000 steps here; RE2 is a constant factor.
    assert ratio < 200, f"{pattern!r} costs {ratio:.0f}x a trivial pattern on 100 kB"


@pytest.mark.parametrize("pattern", REFUSED)
def test_patterns_re2_cannot_run_are_refused_with_field_and_reason(pattern: str) -> None:
    """Backreferences, lookaround and oversized repetitions are refused at load, by field."""
    errors = errors_of(with_filter({"alias": {"$regex": pattern}}))
    assert list(errors) == ["filter.alias.$regex"]
    assert "refused by RE2" in errors["filter.alias.$regex"]


def test_a_one_megabyte_pattern_is_refused_by_length() -> None:
    """A 1 MB pattern is refused before RE2 sees it, naming its size."""
    errors = errors_of(with_filter({"alias": {"$regex": "a" * 1_000_000}}))
    assert errors == {
        "filter.alias.$regex": f"pattern is 1000000 characters, over {MAX_PATTERN_CHARS}"
    }


def deep_and(depth: int) -> dict[str, Any]:
    """{"$and": [{"$and": [... {"alias": "x"} ...]}]}, built without recursion."""
    spec: dict[str, Any] = {"alias": "x"}
    for _ in range(depth):
        spec = {"$and": [spec]}
    return spec


@pytest.mark.parametrize("depth", [MAX_DEPTH, 1_000, 100_000])
def test_deep_filters_are_refused_with_the_depth_reason(depth: int) -> None:
    """Filters nested past the limit (up to 100k levels) are refused, never a RecursionError."""
    errors = errors_of(with_filter(deep_and(depth)))
    (field, reason), *_ = errors.items()
    assert field.startswith("filter.$and")
    assert f"more than {MAX_DEPTH} levels" in reason


def test_a_filter_just_inside_the_depth_limit_is_accepted() -> None:
    """Depth is a limit, not a ban: moderately nested filters still compile and match."""
    automation = parse_automation(with_filter(deep_and(MAX_DEPTH // 2 - 1)))
    assert compile_filter(automation.filter).matches({"alias": "x"})


@pytest.mark.parametrize(
    "spec",
    [
        {"$or": [{"alias": f"a{i}"} for i in range(5_000)]},
        {"alias": {"$in": list(range(1_000_000))}},
        {"metadata.k": {"$eq": {"deep": list(range(5_000))}}},
        {f"metadata.k{i}": i for i in range(5_000)},
    ],
    ids=["5k alternatives", "1M-element $in", "5k-element operand", "5k fields"],
)
def test_wide_filters_are_refused_by_the_node_budget(spec: dict[str, Any]) -> None:
    """Enormous filters are refused by the node budget, with a field and reason, quickly."""
    started = time.perf_counter()
    errors = errors_of(with_filter(spec))
    elapsed = time.perf_counter() - started
    assert any(f"more than {MAX_NODES} nodes" in reason for reason in errors.values())
    assert all(field.startswith("filter") for field in errors)
    print(f"refused in {elapsed * 1e3:.1f} ms")


INJECTIONS = [
    "${event_id}",
    "$${event_id}",
    '", "admin": true, "x": "',
    '"}{"',
    "\\",
    '\\"',
    "line\nbreak\r\nX-Injected: 1",
    "\u0000\u001f\u007f",
    "${artifact_metadata.note}",
    "}}{{7*7}}{% raw %}",
]


def pipeline(*automations: Automation) -> Pipeline:
    """A pipeline over these automations, small event limit, fixed clock."""
    return Pipeline(AutomationIndex(automations), ACTION_TOPICS, LIMIT, lambda: NOW)


def run(p: Pipeline, raw: bytes) -> ProcessResult:
    """Process one message with a fresh alias store."""
    return p.process(raw, aliases=MemoryAliasStore(), source=SOURCE)


@pytest.mark.parametrize("value", INJECTIONS)
def test_template_injection_through_event_values_is_inert(value: str) -> None:
    """Values with `${...}`, quotes, backslashes or newlines render literally, once, safely."""
    p = pipeline(
        make_automation(
            id="hook",
            action={
                "type": "webhook",
                "url": "https://ci.example.com/x",
                "payload": '{"note": "${artifact_metadata.note}", "id": "${event_id}"}',
                "headers": {"X-Note": "${artifact_metadata.note}"},
            },
        ),
        make_automation(
            id="queue",
            action={
                "type": "queue_job",
                "queue": "q",
                "job": "j",
                "config": {"note": "${artifact_metadata.note}", "nested": ["${event_id}"]},
            },
        ),
    )
    result = run(p, event_bytes(event_id="evt-1", artifact={"metadata": {"note": value}}))
    assert result.failures == []
    jobs = {out.automation_id: loads(out.value) for out in result.outbounds}
    payload = loads(jobs["hook"]["action"]["payload"])
    assert payload == {"note": value, "id": "evt-1"}, "the payload keeps exactly its two keys"
    header = jobs["hook"]["action"]["headers"]["X-Note"]
    assert "\r" not in header, "no header splitting"
    assert "\n" not in header, "no header splitting"
    assert jobs["queue"]["action"]["config"] == {"note": value, "nested": ["evt-1"]}
    for out in result.outbounds:
        parse_action_job(out.value)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ('{"v": ${artifact_version}}', "must be inside a JSON string"),
        ('{"v": "\\${artifact_version}"}', "must not follow an unfinished escape"),
        ('{"v": "${env.HOME}"}', "unknown variable"),
        ('{"v": "${secret.DEPLOY}"}', "unknown variable"),
        ('{"v": "${__class__}"}', "unknown variable"),
        ('{"v": "${artifact_metadata.${event_id}}"}', "unknown variable"),
        ('{"v": "${artifact_version"}', "unknown variable"),
        ('{"v": "${artifact_version', "unterminated"),
        ('{"v": "${}"}', "empty variable name"),
        ('{"v": "x"', "not valid JSON"),
        ("{" * 2_000 + "}" * 2_000, "not valid JSON"),
        ('{"v": "' + "x" * 100_001 + '"}', "over 100000"),
    ],
)
def test_injection_in_templates_is_refused_at_load(payload: str, reason: str) -> None:
    """Templates that could break out of JSON or name anything but a variable are refused."""
    errors = errors_of({**BASE, "action": {**BASE["action"], "payload": payload}})
    assert list(errors) == ["action.payload"]
    assert reason in errors["action.payload"]


@pytest.mark.parametrize(
    ("action", "field"),
    [
        ({"headers": {"X-A": "a\r\nX-Injected: 1"}}, "action.headers.X-A"),
        ({"headers": {"Bad Header": "v"}}, "action.headers.Bad Header.[key]"),
        ({"url": "https://user:pw@ci.example.com/x"}, "action.url"),
        ({"secret": "s3cr3t-value-not-a-name"}, "action.secret"),
    ],
)
def test_hostile_webhook_fields_are_refused_with_their_field(
    action: dict[str, Any], field: str
) -> None:
    """Header splitting, bad header names, URL credentials and secret values are refused."""
    errors = errors_of({**BASE, "action": {**BASE["action"], **action}})
    assert field in errors, errors
    assert "s3cr3t-value" not in " ".join(errors.values()), "a refusal never echoes a secret"


def amplifier(times: int, note_key: str = "note") -> Automation:
    """A webhook whose payload repeats a metadata value `times` times."""
    return make_automation(
        id="amplifier",
        action={
            "type": "webhook",
            "url": "https://ci.example.com/x",
            "payload": '{"a": "' + f"${{artifact_metadata.{note_key}}}" * times + '"}',
        },
    )


def test_a_template_repeating_a_large_value_stops_at_the_render_budget() -> None:
    """3,000 copies of a 30 kB value would be 90 MB; rendering stops at the budget instead."""
    helper = make_automation(id="helper")
    p = pipeline(amplifier(3_000), helper)
    raw = event_bytes(artifact={"metadata": {"note": "x" * 30_000}})
    started = time.perf_counter()
    result = run(p, raw)
    elapsed = time.perf_counter() - started
    assert [out.automation_id for out in result.outbounds] == ["helper"], "the others still fire"
    ((automation_id, reason),) = result.failures
    assert automation_id == "amplifier"
    assert "RenderLimitError" in reason
    assert "${artifact_metadata.note}" in reason
    print(f"refused after {elapsed * 1e3:.1f} ms")


def test_a_rendered_job_over_the_record_limit_is_refused_not_sent() -> None:
    """A job whose escaping pushes it past the record limit is a failure, not a crashed send."""
    p = pipeline(amplifier(3))
    raw = event_bytes(artifact={"metadata": {"note": '"' * 25_000}})
    assert len(raw) < LIMIT
    result = run(p, raw)
    assert result.outbounds == []
    ((automation_id, reason),) = result.failures
    assert automation_id == "amplifier"
    assert "JobTooLargeError" in reason
    assert "record limit" in reason


def test_a_few_references_to_a_large_value_still_render() -> None:
    """The budget is generous: two copies of a value near the event limit render fine."""
    p = pipeline(amplifier(2))
    result = run(p, event_bytes(artifact={"metadata": {"note": "y" * (LIMIT - 2_000)}}))
    assert result.failures == []
    assert len(loads(loads(result.outbounds[0].value)["action"]["payload"])["a"]) == 2 * (
        LIMIT - 2_000
    )


HYPOTHESIS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def rulebook() -> RuleBook:
    """A rule book over an empty index (no Kafka: only `apply` is used)."""
    return RuleBook(AutomationIndex())


@HYPOTHESIS
@given(st.binary(max_size=2048), st.one_of(st.none(), st.binary(max_size=32)))
def test_rule_book_never_raises_on_arbitrary_records(value: bytes, key: bytes | None) -> None:
    """Any bytes on the automations topic are skipped and counted, never raised."""
    book = rulebook()
    book.apply(key, value)
    assert len(book.index) == 0
    assert book.invalid_records == 1


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)


@HYPOTHESIS
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "id": JSON | st.just("hostile"),
            "name": JSON,
            "event": JSON | st.sampled_from(["ADD_ARTIFACT_ALIAS", "CREATE_ARTIFACT"]),
            "scope": JSON,
            "filter": JSON,
            "action": JSON,
            "enabled": JSON,
            "revision": JSON,
        },
    )
)
def test_rule_book_never_raises_on_arbitrary_automation_objects(data: dict[str, Any]) -> None:
    """JSON objects shaped like automations with arbitrary field values never raise."""
    book = rulebook()
    book.apply(b"hostile", dumps(data))
    assert len(book.index) + book.invalid_records == 1


@pytest.mark.parametrize(
    "value",
    [
        b"[" * 100_000 + b"]" * 100_000,
        dumps(with_filter({"metadata.x": {"$regex": "(a+)+\\1"}})),
        dumps(with_filter(deep_and(30))).replace(b'"alias"', b'"$where"'),
        dumps({**BASE, "id": "other-id"}),
        dumps({**BASE, "action": {**BASE["action"], "payload": '{"v": ${event_id}}'}}),
        b'{"id": "hostile", "id": "hostile2"}',
        b"\xff\xfe",
    ],
    ids=[
        "deep JSON",
        "backreference",
        "unknown operator",
        "key mismatch",
        "bad template",
        "dup",
        "bytes",
    ],
)
def test_rule_book_skips_hand_made_hostile_records(value: bytes) -> None:
    """Hostile records written around the API are skipped and counted; good ones still load."""
    book = rulebook()
    book.apply(b"hostile", value)
    good = make_automation(id="good")
    book.apply(b"good", dumps(good.model_dump(mode="json")))
    assert book.invalid_records == 1
    assert [c.id for c in book.index] == ["good"]
