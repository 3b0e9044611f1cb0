"""app.kafka.admin.topic_specs: the compacted topics get configs under which compaction runs."""

from __future__ import annotations

from app.kafka.admin import topic_specs
from app.settings import Settings


def test_compacted_topics_roll_segments_so_the_cleaner_gets_to_them() -> None:
    """Automations and both table changelogs: compact, lag 0, segment and dirty-ratio bounds."""
    settings = Settings(
        changelog_segment_ms=60_000,
        changelog_segment_bytes=8 * 1024 * 1024,
        changelog_min_cleanable_dirty_ratio=0.25,
    )
    specs = {spec.name: spec for spec in topic_specs(settings)}
    compacted = {
        name for name, spec in specs.items() if spec.configs.get("cleanup.policy") == "compact"
    }
    assert compacted == {
        settings.automations_topic,
        settings.alias_pointers_topic,
        settings.history_changelog_topic,
        settings.run_state_changelog_topic,
    }
    for name in compacted:
        # The changelogs also carry their record limit (issue 18, test_poison_records).
        configs = {k: v for k, v in specs[name].configs.items() if k != "max.message.bytes"}
        assert configs == {
            "cleanup.policy": "compact",
            "min.compaction.lag.ms": "0",
            "segment.ms": "60000",
            "segment.bytes": str(8 * 1024 * 1024),
            "min.cleanable.dirty.ratio": "0.25",
        }, name


def test_the_deliveries_changelog_is_compacted_and_deletes_past_the_expiry() -> None:
    """ingest-deliveries: compact,delete with retention.ms the entries' expiry, so the
    broker keeps no delivery longer than the worker would use it."""
    settings = Settings(ingest_deliveries_ttl_seconds=3600)
    [spec] = [s for s in topic_specs(settings) if s.name == settings.deliveries_changelog_topic]
    assert spec.partitions == settings.topic_partitions
    assert spec.configs["cleanup.policy"] == "compact,delete"
    assert spec.configs["retention.ms"] == "3600000"
    assert spec.configs["min.compaction.lag.ms"] == "0"
    assert settings.deliveries_changelog_topic in settings.reserved_topics


def test_default_store_is_rocksdb_and_segments_close_within_minutes() -> None:
    """The default store persists tables; default segments close in at most an hour."""
    fields = Settings.model_fields
    assert fields["store"].default == "rocksdb://"
    assert fields["changelog_segment_ms"].default <= 3_600_000
    assert fields["changelog_segment_bytes"].default < 1024 * 1024 * 1024
