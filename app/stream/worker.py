"""Assemble the worker: Faust app, topics, tables, agents, rule book, web views.

The event path is the Faust agent of app.stream.agents; the rule state lives in Faust
tables (app.stream.aliases, app.stream.automations, app.stream.history_table).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, cast

import faust
import mode.loop
from faust.types import TP
from prometheus_client import CollectorRegistry

from app.api.routes import define_api
from app.core.limits import RecordLimits
from app.core.matching import AutomationIndex
from app.core.pipeline import Pipeline
from app.core.run_pipeline import RunPipeline, RunRules
from app.kafka.admin import check_automations_topic, ensure_topics, record_limits
from app.serialization import dumps
from app.settings import Settings
from app.stream.acks import OrderedAcks
from app.stream.agents import EventPath, define_event_agent
from app.stream.aliases import AliasState, TableAliasPointers, define_alias_table
from app.stream.automations import (
    NamedChangelogGlobalTable,
    RuleBook,
    define_automations_table,
)
from app.stream.deliveries import (
    DeliveryGuard,
    DeliveryLedger,
    define_delivery_purge,
    define_delivery_table,
)
from app.stream.flushes import ChangelogSend, StateFlush, flush_on_revoke
from app.stream.health import define_health_views
from app.stream.history_table import define_history
from app.stream.lag import LagGauge, define_lag_timer
from app.stream.metrics import WorkerMetrics
from app.stream.offsets import on_rebalance_complete
from app.stream.runs import RunPath, TableRunStore, define_run_agent, define_run_table
from app.stream.topics import raw_topic
from app.stream.transport import install as install_transport
from app.stream.tuning import faust_settings, tune_gc

__all__ = ["Hookstream", "create_worker", "run_worker"]

log = logging.getLogger(__name__)

# Changelog records Faust's producer buffer may hold before streams wait (issue 14).
RUN_STATE_BUFFER = 50_000


class Hookstream:
    """One worker process: everything an agent or a view needs, built once."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        limits: RecordLimits | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = WorkerMetrics(self.registry, per_automation=settings.metrics_per_automation)
        self.index = AutomationIndex()
        # Run automations (issue 14), kept in step with the index by _on_rule_change.
        self.run_rules = RunRules()
        self.rulebook = RuleBook(self.index, on_change=self._on_rule_change)
        self.pipeline = Pipeline.from_settings(
            self.index, settings, clock=lambda: datetime.now(UTC), limits=limits
        )
        self.app = faust.App(
            settings.app_id,
            broker=settings.broker_url,
            store=settings.store,
            autodiscover=False,
            datadir=str(settings.data_dir),
            web_enabled=True,
            web_host=settings.web_host,
            web_port=settings.web_port,
            # What other workers call to reach this one (history requests are forwarded).
            canonical_url=settings.advertised_url,
            topic_partitions=settings.topic_partitions,
            topic_replication_factor=settings.topic_replication_factor,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=settings.broker_session_timeout_seconds,
            broker_heartbeat_interval=settings.broker_heartbeat_interval_seconds,
            # Tables recover from their changelog; a standby replica doubles the
            # changelog reads for no gain on the one-or-two-worker deployments we test.
            table_standby_replicas=0,
            GlobalTable=NamedChangelogGlobalTable,
            **faust_settings(settings),
        )
        # Before any topic or agent: a record aiokafka cannot decode must not stop the worker.
        install_transport(self.app)
        self.lag_gauge = LagGauge(self.metrics.consumer_lag)
        # Children exist from the start so increase() sees the first dead letter.
        for topic in (settings.registry_events_topic, settings.artifact_events_topic):
            self.metrics.dead_letters.labels(topic)
            self.metrics.alias_pointers_dropped.labels(topic)
            self.metrics.repeated_deliveries_dropped.labels(topic)
        self.automations = define_automations_table(
            self.app, settings.automations_topic, self.rulebook
        )
        self.alias_table = define_alias_table(self.app, settings.topic_partitions)
        # One alias state for both agents: an event on either topic may move a pointer.
        self.alias_state = AliasState(self.alias_table)
        self.alias_flush = StateFlush(
            seconds=settings.alias_flush_seconds,
            collect=self.alias_state.flush,
            persisted=self.alias_state.persisted,
            send=self._changelog_send(self.alias_table),
        )
        flush_on_revoke(self.app, self.alias_flush, self.alias_state.forget)
        # Webhook deliveries written (issue 17): one event per delivery across workers.
        self.deliveries = DeliveryLedger(
            define_delivery_table(self.app, settings.topic_partitions),
            self.metrics.repeated_deliveries_dropped,
            ttl=settings.ingest_deliveries_ttl_seconds,
            cap=settings.ingest_deliveries_per_partition,
        )
        define_delivery_purge(self.app, self.deliveries)
        history_topic = settings.action_results_topic if settings.history_enabled else None
        # One agent per event topic, each with its own acknowledgement chain.
        self.event_paths: dict[str, EventPath] = {}
        self.event_agents: dict[str, Any] = {}
        for name in (settings.registry_events_topic, settings.artifact_events_topic):
            path = EventPath(
                pipeline=self.pipeline,
                aliases=TableAliasPointers(self.alias_state),
                state=self.alias_flush,
                send=self._queue,
                acks=OrderedAcks(self._on_refused),
                metrics=self.metrics,
                dlq_topic=settings.dlq_topic,
                history_topic=history_topic,
                deliveries=DeliveryGuard(self.deliveries),
            )
            self.event_paths[name] = path
            self.event_agents[name] = define_event_agent(
                self.app, self._raw_topic(name), path, self.rulebook.ready.wait
            )
        # Run events (issue 14): their agent and the run-state table.
        self.metrics.dead_letters.labels(settings.run_events_topic)
        # Table changelog records wait in Faust's producer buffer, and every stream stops
        # while it holds more than `max_messages` (100): a run-state flush of thousands
        # of runs then stalled consumption in 100-record steps (S5). The flush is bounded
        # by the runs changed in an interval, so the buffer may hold that many.
        self.app.producer.buffer.max_messages = RUN_STATE_BUFFER
        self.run_table = define_run_table(self.app, settings.topic_partitions)
        self.run_path = RunPath(
            runs=RunPipeline(self.pipeline, self.run_rules),
            store=TableRunStore(self.run_table),
            send=self._queue,
            acks=OrderedAcks(self._on_refused),
            metrics=self.metrics,
            dlq_topic=settings.dlq_topic,
            retention_seconds=settings.run_state_retention_seconds,
            flush_seconds=settings.run_state_flush_seconds,
            send_changelog=self._changelog_send(self.run_table),
            history_topic=history_topic,
        )
        self.run_agent = define_run_agent(
            self.app,
            self._raw_topic(settings.run_events_topic),
            self.run_path,
            self.rulebook.ready.wait,
        )
        self._crash: asyncio.Future[None] | None = None
        # Every topic an agent reads (table changelogs are Faust's own business).
        stream_topics = frozenset(
            {
                settings.registry_events_topic,
                settings.artifact_events_topic,
                settings.action_results_topic,
                settings.run_events_topic,
            }
        )
        on_rebalance_complete(self.app, stream_topics)
        define_health_views(self.app, self.readiness, self.registry)
        self.history = define_history(self.app, settings, self.pipeline.limits)
        self.api = define_api(
            self.app,
            settings,
            index=self.index,
            rulebook=self.rulebook,
            history=self.history,
            deliveries=self.deliveries,
        )
        define_lag_timer(self.app, self.lag, self.lag_gauge)

    def _raw_topic(self, name: str) -> Any:
        return raw_topic(self.app, name, self.settings.topic_partitions)

    async def readiness(self) -> dict[str, bool]:
        """The checks behind /readyz."""
        return {
            "partitions_assigned": self._assigned(),
            "automations_loaded": self.rulebook.ready.is_set(),
            "broker_reachable": await self._ping(),
        }

    def _assigned(self) -> bool:
        app = self.app
        return bool(
            not app.rebalancing
            # TableManagerT's stubs omit `recovery` (faust's TableManager has it).
            and cast(Any, app.tables).recovery.completed.is_set()
            and app.consumer.assignment()
        )

    async def _ping(self, timeout: float = 2.0) -> bool:
        """Whether the broker answers an offsets request now."""
        tp = TP(self.settings.automations_topic, 0)
        try:
            await asyncio.wait_for(self.app.consumer.earliest_offsets(tp), timeout)
        except Exception:  # any failure means "not reachable"; /readyz reports it
            return False
        return True

    def _on_refused(self, exc: BaseException) -> None:
        if self._crash is not None:
            return
        # Kafka refused a record after its retries: the batch stays unacked (Faust
        # commits nothing of it) and the worker stops, so a restart processes it again.
        self._crash = asyncio.ensure_future(self.app.crash(exc))

    async def _queue(
        self, topic: str, value: bytes, key: bytes | None, headers: Any
    ) -> Awaitable[Any]:
        return await self.app.producer.send(topic, key, value, None, None, headers)

    def _changelog_send(self, table: Any) -> ChangelogSend:
        """Direct sends to a table's changelog, on the worker's producer."""
        topic = table.changelog_topic.get_topic_name()
        producer = self.app.producer

        async def send(partition: int, key: str, value: bytes | None) -> Awaitable[Any]:
            # The table's str keys are JSON on its changelog (Faust's key codec for str).
            return await producer.send(topic, dumps(key), value, partition, None, None)

        return send

    async def lag(self) -> dict[TP, int]:
        """End offset minus acknowledged offset for each assigned event partition."""
        consumer = self.app.consumer
        topics = {
            self.settings.registry_events_topic,
            self.settings.artifact_events_topic,
            self.settings.run_events_topic,
        }
        tps = sorted(tp for tp in consumer.assignment() if tp.topic in topics)
        if not tps:
            return {}
        ends = await consumer.highwaters(*tps)
        chains = [*(path.acks for path in self.event_paths.values()), self.run_path.acks]
        acked = {tp: n for acks in chains for tp, n in acks.acked.items()}
        return {tp: max(ends.get(tp, 0) - acked.get((tp.topic, tp.partition), 0), 0) for tp in tps}

    def _on_rule_change(self, automation_id: str, present: bool) -> None:
        self.metrics.automations_loaded.set(len(self.index))
        compiled = self.index.get(automation_id) if present else None
        if compiled is not None:
            self.run_rules.upsert(compiled)
        else:
            self.run_rules.remove(automation_id)


def create_worker(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    limits: RecordLimits | None = None,
) -> Hookstream:
    """Build a worker; topics must exist (see app.kafka.admin.ensure_topics).

    `limits` are the topics' record limits as the broker reports them
    (app.kafka.admin.record_limits); without, the ones Hookstream creates topics with.
    """
    return Hookstream(settings, registry=registry, limits=limits)


def run_worker(settings: Settings) -> None:
    """Create topics, then run the worker in the foreground until Ctrl-C."""
    # uvloop runs the event loop's own work (callbacks, futures, sockets) in C: about
    # a tenth of a Faust worker's CPU. Chosen before the first loop is created.
    if settings.uvloop:
        with contextlib.suppress(ImportError):
            mode.loop.use("uvloop")
    created = asyncio.run(ensure_topics(settings))
    if created:
        print(f"created topics: {', '.join(created)}")
    asyncio.run(check_automations_topic(settings))
    limits = asyncio.run(record_limits(settings))
    hs = create_worker(settings, limits=limits)
    print(f"Hookstream worker: web at http://{settings.web_host}:{settings.web_port}/", flush=True)
    worker = faust.Worker(hs.app, loglevel=settings.log_level, quiet=True)
    # Faust's terminal spinner (on at log level WARNING and above) sets the root logger
    # to DEBUG, so every aiokafka/Faust debug() call builds a LogRecord: about 7% of the
    # CPU in a profile. Without it the level is what settings.log_level says.
    worker.spinner = None
    # Everything built so far (modules, models, the app) lives as long as the process:
    # frozen, it is no longer walked by every full collection (measured: a 66 ms pause
    # over ~97,000 objects became 6 ms, out of the event-to-job latency).
    gc.freeze()
    tune_gc(settings)
    worker.execute_from_commandline()
