"""The decisions behind one event per webhook delivery (app.core.deliveries)."""

from __future__ import annotations

from app.core.deliveries import (
    DELIVERY_HEADER,
    Recorded,
    delivery_of,
    is_repeat,
    to_evict,
    to_record,
)

DAY = 86_400.0
AT = Recorded("registry-events", 2, 10, 1000.0)


def test_the_delivery_header_names_the_event_id_whatever_the_header_form() -> None:
    """str or bytes keys, list or mapping; no header, another header or an empty value:
    no delivery (nothing is looked up)."""
    assert delivery_of([(DELIVERY_HEADER, b"mlflow-d1")]) == "mlflow-d1"
    assert delivery_of([(b"other", b"x"), (DELIVERY_HEADER.encode(), b"wandb-1")]) == "wandb-1"
    assert delivery_of({DELIVERY_HEADER: b"mlflow-d2"}) == "mlflow-d2"
    assert delivery_of(None) is None
    assert delivery_of([]) is None
    assert delivery_of([("ce_id", b"mlflow-d1")]) is None
    assert delivery_of([(DELIVERY_HEADER, b"")]) is None
    assert delivery_of([(DELIVERY_HEADER, b"\xff\xfe")]) is None


def test_a_later_offset_is_a_repeat_the_same_offset_is_a_replay() -> None:
    """Recorded at 10: offset 11 repeats it; 10 again is the record reprocessed after a
    restart (not dropped); an earlier offset is not dropped either (it becomes the record)."""
    assert is_repeat(AT, "registry-events", 11, now=1001.0, ttl=DAY)
    assert not is_repeat(AT, "registry-events", 10, now=1001.0, ttl=DAY)
    assert not is_repeat(AT, "registry-events", 9, now=1001.0, ttl=DAY)
    assert not is_repeat(None, "registry-events", 11, now=1001.0, ttl=DAY)


def test_a_delivery_first_written_to_the_other_topic_is_a_repeat() -> None:
    """Offsets of two topics do not compare: the copy on the other topic is dropped."""
    assert is_repeat(AT, "artifact-events", 3, now=1001.0, ttl=DAY)


def test_an_expired_record_is_forgotten() -> None:
    """Past the ttl the record no longer drops anything, and a new write replaces it."""
    later = AT.at + DAY
    assert not is_repeat(AT, "registry-events", 11, now=later, ttl=DAY)
    new = Recorded("registry-events", 2, 11, later)
    assert to_record(AT, new, ttl=DAY) == new


def test_the_earliest_offset_is_kept() -> None:
    """Whoever records first, the earliest write stays, so the later copy is dropped."""
    earlier = Recorded("registry-events", 2, 4, 1002.0)
    later = Recorded("registry-events", 2, 12, 1002.0)
    assert to_record(None, later, ttl=DAY) == later
    assert to_record(AT, earlier, ttl=DAY) == earlier
    assert to_record(AT, later, ttl=DAY) is None
    assert to_record(AT, Recorded("artifact-events", 2, 1, 1002.0), ttl=DAY) is None


def test_records_survive_their_json_and_junk_reads_as_none() -> None:
    """The table value round-trips; anything else is no record."""
    assert Recorded.from_json(AT.to_json()) == AT
    assert Recorded.from_json(None) is None
    assert Recorded.from_json({"topic": "t"}) is None
    assert Recorded.from_json({"topic": "t", "partition": "x", "offset": 1, "at": 1}) is None
    assert Recorded.from_json([1, 2]) is None


def test_eviction_takes_expired_unreadable_and_the_oldest_past_the_cap() -> None:
    """Per partition at most `cap` live entries stay, the newest; expired ones and junk go."""
    entries: list[tuple[str, Recorded | None]] = [
        ("old", Recorded("t", 0, 1, 0.0)),
        ("a", Recorded("t", 0, 2, 500.0)),
        ("b", Recorded("t", 0, 3, 600.0)),
        ("c", Recorded("t", 0, 4, 700.0)),
        ("other-partition", Recorded("t", 1, 1, 200.0)),
        ("junk", None),
    ]
    gone = to_evict(entries, now=1000.0, ttl=900.0, cap=2)
    assert sorted(gone, key=str) == sorted([("old", 0), ("junk", None), ("a", 0)], key=str)
    assert to_evict(entries[1:5], now=1000.0, ttl=900.0, cap=10) == []
