"""Scenario 5: hostile automation records on the automations topic; the worker keeps going.

Records written around the API (invalid JSON, 100k-deep arrays, backreferences,
1 MB patterns, 100k-deep filters, key/id mismatches, templates that reach for
secrets) are skipped; catastrophic-but-valid regexes run in linear time on a 100 kB
adversarial value; a template repeating a large value is stopped by the render budget;
`${...}` inside event values renders literally. A canary automation keeps firing
throughout, and the worker never crashes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.contract.automations import Automation, parse_automation
from app.core.stored import stamp
from app.kafka.clients import produce
from app.lang.filters import compile_filter
from app.serialization import dumps, loads
from app.settings import Settings
from tests.faults.report import Report
from tests.faults.support import FaultWorker, apply
from tests.support import TopicReader

REGISTRY = {"type": "registry", "entity": "acme", "registry": "model"}
CATASTROPHIC = ["(a+)+$", "(.*a){20}", "(a|aa)+$", "((a*)*)*$", "(x+x+)+y", r"(\w+\s?)*$"]
ADVERSARIAL = "a" * 100_000 + "!"


def webhook(automation_id: str, payload: str, **extra: Any) -> dict[str, Any]:
    """A registry ADD_ARTIFACT_ALIAS webhook automation as a plain dict."""
    return {
        "id": automation_id,
        "name": automation_id,
        "event": "ADD_ARTIFACT_ALIAS",
        "scope": REGISTRY,
        "action": {"type": "webhook", "url": "https://ci.example.com/x", "payload": payload},
        **extra,
    }


def stamped_webhook(automation_id: str, payload: str, **extra: Any) -> Automation:
    """`webhook(...)` parsed and stamped as the store would (revision 1)."""
    return stamp(parse_automation(webhook(automation_id, payload, **extra)), None)


def deep_filter(depth: int) -> dict[str, Any]:
    """A filter nested `depth` levels of $and."""
    spec: dict[str, Any] = {"alias": "x"}
    for _ in range(depth):
        spec = {"$and": [spec]}
    return spec


def hostile_records() -> list[tuple[bytes, bytes | None]]:
    """(key, value) records no API would have accepted."""
    too_deep = dumps(webhook("deep-filter", "{}", filter=deep_filter(100)))
    return [
        (b"not-json", b"{nope"),
        (b"deep-json", b"[" * 100_000 + b"]" * 100_000),
        (b"backref", dumps(webhook("backref", "{}", filter={"alias": {"$regex": r"(a)\1"}}))),
        (b"lookahead", dumps(webhook("lookahead", "{}", filter={"alias": {"$regex": "(?=p)"}}))),
        (
            b"huge-pattern",
            dumps(webhook("huge-pattern", "{}", filter={"alias": {"$regex": "a" * 1_000_000}})),
        ),
        (b"deep-filter", too_deep),
        (
            b"wide-filter",
            dumps(
                webhook(
                    "wide-filter", "{}", filter={"$or": [{"alias": str(i)} for i in range(20_000)]}
                )
            ),
        ),
        (b"not-me", dumps(webhook("someone-else", "{}"))),
        (b"secret-template", dumps(webhook("secret-template", '{"s": "${secret.DEPLOY}"}'))),
        (b"bare-variable", dumps(webhook("bare-variable", '{"v": ${event_id}}'))),
        (b"wrong-types", dumps({"id": 7, "event": ["x"], "scope": "all", "action": None})),
        (b"tombstone-of-nothing", None),
    ]


def test_hostile_automation_records_leave_the_worker_running_and_bounded(
    fault_settings: Settings,
    start_fault_worker: Callable[..., FaultWorker],
    uid: str,
    tmp_path: Path,
    fault_report: Report,
) -> None:
    """Bad records are skipped, catastrophic regexes stay linear, injection is inert."""
    settings = fault_settings
    canary = stamped_webhook("canary", '{"e": "${event_id}"}')
    regexes = [
        stamped_webhook(
            f"regex-{i}", '{"e": "${event_id}"}', filter={"metadata.note": {"$regex": p}}
        )
        for i, p in enumerate(CATASTROPHIC)
    ]
    amplifier = stamped_webhook("amplifier", '{"a": "' + "${artifact_metadata.blob}" * 3_000 + '"}')
    injected = stamped_webhook(
        "injected", '{"note": "${artifact_metadata.note}", "author": "${event_author}"}'
    )
    apply(settings, [canary, *regexes, amplifier, injected])
    hostile = hostile_records()
    asyncio.run(produce(settings.kafka_bootstrap_servers, settings.automations_topic, hostile))
    worker = start_fault_worker(name="hostile-automations")

    base = {
        "event_type": "ADD_ARTIFACT_ALIAS",
        "occurred_at": "2026-11-26T10:00:00Z",
        "author": "mallory",
        "entity": "acme",
        "project": "wandb-registry-model",
        "registry": "model",
        "alias": "production",
    }

    def event(event_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
        artifact = {"collection": "c", "type": "model", "version": 1, "metadata": metadata}
        return {**base, "event_id": event_id, "artifact": artifact}

    injections = ["${event_id}", '", "admin": true, "x": "', "\\", "a\nb", "$${x}", '"}{"']
    events = [
        event("adversarial", {"note": ADVERSARIAL}),
        event("blob", {"blob": "x" * 30_000, "note": "plain"}),
        *(event(f"inject-{i}", {"note": value}) for i, value in enumerate(injections)),
    ]
    with TopicReader(settings.kafka_bootstrap_servers, [settings.webhook_topic]) as reader:
        started = time.monotonic()
        asyncio.run(
            produce(
                settings.kafka_bootstrap_servers,
                settings.registry_events_topic,
                [(b"acme/wandb-registry-model/c", dumps(e)) for e in events],
            )
        )
        canaries = len(events)
        assert reader.wait(
            lambda r: sum(1 for x in r.records() if x.key == b"canary") >= canaries, timeout=60
        ), worker.log_tail()
        elapsed = time.monotonic() - started
        reader.wait(lambda r: False, timeout=1.5)
        jobs = [x.json() for x in reader.records()]
    log = worker.log_path.read_text(errors="replace")

    by_automation: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        by_automation.setdefault(job["automation_id"], []).append(job)
    ratios = {p: regex_ratio(p) for p in CATASTROPHIC}
    worst = max(ratios, key=ratios.__getitem__)
    fault_report.add(
        "5. hostile automations",
        events_sent=len(events),
        jobs_expected=None,
        jobs_seen=len(jobs),
        notes=(
            f"{len(hostile)} hostile records skipped; worst catastrophic/trivial regex "
            f"cost on 100 kB = {ratios[worst]:.1f}x ({worst}); "
            f"all {len(events)} events (one 100 kB adversarial) processed in {elapsed:.1f} s; "
            "amplifier stopped by the render budget"
        ),
    )
    assert worker.alive
    assert worker.http_status("/healthz") == 200
    assert worker.http_status("/readyz") == 200
    assert "Crashed" not in log, "no agent crashed"
    skipped = log.count("skipping invalid automation record") + log.count("does not match its id")
    assert skipped == len(hostile) - 1, "each bad record skipped (and the tombstone)"
    assert len(by_automation["canary"]) == len(events)
    hostile_ids = {"backref", "lookahead", "huge-pattern", "deep-filter", "wide-filter"}
    assert not hostile_ids & by_automation.keys(), "refused automations never fire"
    assert "secret-template" not in by_automation
    for i, pattern in enumerate(CATASTROPHIC):  # the worker agrees with RE2 run here
        matcher = compile_filter({"metadata.note": {"$regex": pattern}})
        want = sorted(e["event_id"] for e in events if matcher.matches(e["artifact"]))
        got = sorted(j["event_id"] for j in by_automation.get(f"regex-{i}", []))
        assert got == want, pattern
    amplified = {j["event_id"] for j in by_automation["amplifier"]}
    assert "blob" not in amplified, "3,000 x 30 kB was never rendered"
    assert len(amplified) == len(events) - 1, "events without the large value still fire"
    assert "'amplifier' produced no job" in log
    assert "RenderLimitError" in log
    notes = {j["event_id"]: loads(j["action"]["payload"]) for j in by_automation["injected"]}
    for i, value in enumerate(injections):
        assert notes[f"inject-{i}"] == {"note": value, "author": "mallory"}
    assert max(ratios.values()) < 200, ratios


def regex_ratio(pattern: str, runs: int = 5) -> float:
    """Best-of-N time of a pattern on the adversarial value over a trivial pattern's."""
    doc = {"metadata": {"note": ADVERSARIAL}}
    hostile = compile_filter({"metadata.note": {"$regex": pattern}})
    trivial = compile_filter({"metadata.note": {"$regex": "a!"}})

    def best(matches: Callable[[Any], bool]) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            matches(doc)
            times.append(time.perf_counter() - started)
        return min(times)

    return best(hostile.matches) / max(best(trivial.matches), 1e-6)
