"""The `hookstream` command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import serialization
from app.cli.api_commands import add_api_commands
from app.cli.publish import (
    RUN_STATES,
    UsageError,
    is_run_record,
    key_value,
    metric_flag,
    run_record_from_flags,
)
from app.contract.events import EventType
from app.contract.runs import RUN_RECORD_TYPES
from app.contract.timestamps import iso_z
from app.dispatch.signing import add_secret_arguments
from app.errors import HookstreamError
from app.settings import Settings

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[2]


def _settings() -> Settings:
    return Settings()


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the event worker in the foreground."""
    from app.stream.worker import run_worker

    settings = _settings()
    if args.port is not None:
        settings = settings.model_copy(update={"web_port": args.port})
    run_worker(settings)
    return 0


def cmd_dispatch(args: argparse.Namespace) -> int:
    """Run a webhook or notification dispatcher in the foreground."""
    from app.dispatch.run import run_dispatcher

    settings = _settings()
    if args.port is not None:
        settings = settings.model_copy(update={"web_port": args.port})
    return run_dispatcher(settings, args.kind)


def cmd_topics_create(args: argparse.Namespace) -> int:
    """Create every topic of the contract (existing ones are left alone)."""
    from app.kafka.admin import ensure_topics

    created = asyncio.run(ensure_topics(_settings()))
    print(f"created: {', '.join(created)}" if created else "all topics exist")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Offline evaluation: automations x events -> action jobs on stdout."""
    from app.core.evaluate import run_evaluate

    return run_evaluate(
        Path(args.automations),
        Path(args.events),
        sys.stdout,
        sys.stderr,
        explain=args.explain,
        runs=args.runs,
    )


def cmd_schemas(args: argparse.Namespace) -> int:
    """Export or check the JSON Schemas of every topic payload."""
    from app.contract.schemas import check_schemas, export_schemas

    directory = Path(args.dir)
    if args.action == "check":
        stale = check_schemas(directory)
        for name in stale:
            print(f"stale or missing: {directory / name}", file=sys.stderr)
        return 1 if stale else 0
    for path in export_schemas(directory):
        print(path)
    return 0


def _event_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    metadata = key_value(args.metadata)
    event: dict[str, Any] = {
        "event_id": args.event_id or str(uuid.uuid4()),
        "event_type": args.type,
        "occurred_at": iso_z(datetime.now(UTC)),
        "entity": args.entity,
        "project": args.project,
        "artifact": {
            "collection": args.collection,
            "type": args.artifact_type,
            "version": args.version,
            "digest": args.digest,
            "aliases": args.aliases or ([args.alias] if args.alias else []),
            "tags": args.tags or [],
            "metadata": metadata,
        },
    }
    for field in ("author", "registry", "alias", "tag"):
        if getattr(args, field):
            event[field] = getattr(args, field)
    if args.type in ("LINK_ARTIFACT", "LINK_MODEL"):
        entity, _, rest = (
            args.source or f"{args.entity}/{args.project}/{args.collection}:v{args.version}"
        ).partition("/")
        project, _, rest = rest.partition("/")
        collection, _, version = rest.partition(":v")
        event["source"] = {
            "entity": entity,
            "project": project,
            "collection": collection,
            "version": int(version or 0),
        }
    return event


def cmd_publish(args: argparse.Namespace) -> int:
    """Publish events and run records (a JSON file, JSON lines, or one built from flags)."""
    settings = _settings()
    if args.file:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        stripped = text.strip()
        try:
            if stripped.startswith("["):
                raws = [serialization.dumps(e) for e in serialization.loads(stripped)]
            elif "\n" in stripped and not stripped.startswith("{\n"):
                raws = [line.encode() for line in stripped.splitlines() if line.strip()]
            else:
                raws = [serialization.dumps(serialization.loads(stripped))]
        except serialization.JSONDecodeError as exc:
            if not args.raw:
                print(f"invalid event: {args.file} is not valid JSON ({exc})", file=sys.stderr)
                return 1
            raws = [stripped.encode()]
    elif args.type in RUN_RECORD_TYPES:
        try:
            raws = [serialization.dumps(run_record_from_flags(args))]
        except UsageError as exc:
            print(exc, file=sys.stderr)
            return 2
    else:
        if not (args.type and args.entity and args.project and args.collection):
            print(
                "publish needs FILE, or --type, --entity, --project and --collection",
                file=sys.stderr,
            )
            return 2
        raws = [serialization.dumps(_event_from_flags(args))]
    return asyncio.run(_publish(settings, raws, topic=args.topic, raw_ok=args.raw))


async def _publish(
    settings: Settings, raws: list[bytes], *, topic: str | None, raw_ok: bool
) -> int:
    """Valid events and run records through the producer library, nothing unless every
    one is valid; with --raw, invalid ones as they are (run records to run-events)."""
    from app.contract.events import Event, parse_event
    from app.contract.runs import RunMetricRecord, RunStateRecord, parse_run_record
    from app.kafka.clients import produce
    from app.producer import AsyncProducer

    valid: list[tuple[Event | RunMetricRecord | RunStateRecord, dict[str, Any]]] = []
    invalid: dict[str, list[tuple[bytes | None, bytes | None]]] = {}
    for number, raw in enumerate(raws, 1):
        run = is_run_record(raw)
        parse = parse_run_record if run else parse_event
        try:
            valid.append(parse(raw, settings.max_event_bytes))
        except HookstreamError as exc:
            if not raw_ok:
                where = f"record {number}: " if len(raws) > 1 else ""
                print(f"invalid {'run record' if run else 'event'}: {where}{exc}", file=sys.stderr)
                return 1
            default = settings.run_events_topic if run else settings.artifact_events_topic
            invalid.setdefault(topic or default, []).append((None, raw))
    async with AsyncProducer(settings, client_id="hookstream-publish") as producer:
        for parsed, obj in valid:
            if isinstance(parsed, Event):
                sent = await producer.publish(obj, topic=topic)
                print(
                    f"{sent.topic} <- {sent.event_type} {sent.event_id} ({parsed.collection_path})"
                )
                continue
            sent = await producer.publish_run(obj, topic=topic)
            # Without an event_id, the worker's own: run path @ partition:offset.
            event_id = sent.event_id or f"{parsed.run_path}@{sent.partition}:{sent.offset}"
            print(f"{sent.topic} <- {sent.event_type} {event_id} ({parsed.run_path})")
    for destination, records in invalid.items():
        await produce(settings.kafka_bootstrap_servers, destination, records)
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    """Print records of a topic as they arrive."""
    from app.cli.tail import tail

    try:
        return asyncio.run(
            tail(
                _settings(),
                args.topic,
                from_beginning=args.from_beginning,
                max_records=args.max,
                timeout=args.timeout,
            )
        )
    except KeyboardInterrupt:
        return 0


def cmd_verify_signature(args: argparse.Namespace) -> int:
    """Check a received webhook's signature (for receivers and for debugging)."""
    from app.dispatch.signing import main_verify

    return main_verify(args.args)


def cmd_listen(args: argparse.Namespace) -> int:
    """Run a local webhook receiver that verifies and prints every delivery."""
    import os

    from app.cli.listen import Listener, serve
    from app.dispatch.secrets import SecretResolver
    from app.dispatch.signing import gather_secrets, parse_secrets

    if not 200 <= args.status <= 599:
        print("error: --status must be an HTTP status from 200 to 599", file=sys.stderr)
        return 2
    settings = _settings()
    # Secret names resolve exactly as the dispatchers resolve them (folder, then
    # HOOKSTREAM_SECRET_<NAME>), so `listen` and `dispatch` agree without copying values.
    resolver = SecretResolver.from_settings(settings.dispatch, os.environ)
    try:
        secrets = gather_secrets(args.secret, args.secret_env, args.secret_file, os.environ)
        for name in args.secret_name:
            secrets.extend(s.get_secret_value() for s in resolver.resolve_many(name))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    options = ("status", "forward_to", "require_signature", "tolerance")
    listener = Listener(
        [one for value in secrets for one in parse_secrets(value)],
        sys.stdout,
        as_json=args.json,
        save_dir=Path(args.save) if args.save else None,
        **{name: getattr(args, name) for name in options},
    )
    asyncio.run(serve(listener, args.host, args.port))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """Run the worker, both dispatchers and a local receiver until Ctrl-C."""
    from app.cli.up import run_up

    settings = _settings()
    if args.port is not None:
        settings = settings.model_copy(update={"web_port": args.port})
    automations = Path(args.automations) if args.automations else None
    return run_up(
        settings, automations, args.receiver_port, sys.stdout, receiver_status=args.receiver_status
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="hookstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("worker", help="run the event worker")
    p.add_argument("--port", type=int, default=None, help="web port (default: settings)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "up", help="run the worker, both dispatchers and a local receiver (Ctrl-C stops all)"
    )
    p.add_argument("--automations", help="apply this automations file or folder first")
    p.add_argument("--port", type=int, default=None, help="worker port (default: settings)")
    p.add_argument(
        "--receiver-port", type=int, default=None, help="receiver port (default: worker port + 3)"
    )
    p.add_argument(
        "--receiver-status", type=int, default=200, help="status the receiver answers (try 503)"
    )
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("dispatch", help="run a webhook or notification dispatcher")
    p.add_argument("kind", choices=["webhook", "notification"])
    p.add_argument("--port", type=int, default=None, help="web port (default: settings)")
    p.set_defaults(func=cmd_dispatch)

    topics = sub.add_parser("topics", help="manage topics").add_subparsers(
        dest="action", required=True
    )
    topics.add_parser("create", help="create every topic").set_defaults(func=cmd_topics_create)

    add_api_commands(sub)

    p = sub.add_parser("evaluate", help="offline: automations x events -> action jobs")
    p.add_argument("--automations", required=True)
    p.add_argument(
        "--events", required=True, help="JSON lines or one JSON array: events and run records"
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="one JSON object per record: each automation fires or not, why not, its job",
    )
    p.add_argument(
        "--runs",
        action="store_true",
        help="read every record as a run record (run-events), whatever its event_type",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("schemas", help="JSON Schemas of every topic payload")
    p.add_argument("action", choices=["export", "check"])
    p.add_argument("--dir", default=str(ROOT / "schemas"))
    p.set_defaults(func=cmd_schemas)

    p = sub.add_parser("publish", help="publish an event or a run record")
    p.add_argument(
        "file",
        nargs="?",
        help="JSON, JSON array or JSON lines file of events and run records, - for stdin",
    )
    p.add_argument(
        "--type", choices=[*(t.value for t in EventType), "LINK_MODEL", *RUN_RECORD_TYPES]
    )
    p.add_argument("--entity")
    p.add_argument("--project")
    p.add_argument("--event-id", help="the record's event_id (its jobs' idempotency key)")
    p.add_argument("--run-id", help="RUN_METRIC, RUN_STATE: the run's id")
    p.add_argument("--run-name", help="the run's display name")
    p.add_argument("--step", type=int, help="RUN_METRIC: the step logged")
    p.add_argument(
        "--metric",
        action="append",
        type=metric_flag,
        metavar="NAME=VALUE",
        help="RUN_METRIC: a logged metric (repeat for several)",
    )
    p.add_argument("--state", type=str.lower, choices=RUN_STATES, help="RUN_STATE: the new state")
    p.add_argument(
        "--config", action="append", metavar="KEY=VALUE", help="the run's config (run records)"
    )
    p.add_argument("--registry")
    p.add_argument("--collection")
    p.add_argument("--version", type=int, default=0)
    p.add_argument("--alias")
    p.add_argument("--tag", help="the tag added or removed (tag events)")
    p.add_argument("--aliases", nargs="*")
    p.add_argument("--tags", nargs="*", help="the artifact's tags; a run record's run tags")
    p.add_argument("--artifact-type", default="model")
    p.add_argument("--digest", default="0" * 32)
    p.add_argument("--author", help="the event's author; a run record's run user")
    p.add_argument("--source", help="entity/project/collection:vN of a linked version")
    p.add_argument("--metadata", action="append", metavar="KEY=VALUE")
    p.add_argument("--topic", help="override the topic")
    p.add_argument("--raw", action="store_true", help="send even when invalid (to try the DLQ)")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("tail", help="print a topic's records")
    p.add_argument("topic")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--max", type=int, default=None)
    p.add_argument("--timeout", type=float, default=None, help="stop after this many idle seconds")
    p.set_defaults(func=cmd_tail)
    p = sub.add_parser(
        "listen", help="a local webhook receiver that verifies and prints deliveries"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6069)
    p.add_argument(
        "--secret-name",
        action="append",
        default=[],
        metavar="NAME",
        help="a secret name, resolved as the dispatchers do (secrets_dir, HOOKSTREAM_SECRET_NAME)",
    )
    add_secret_arguments(p)
    p.add_argument(
        "--status", type=int, default=200, help="status to answer (e.g. 503 to try retries)"
    )
    p.add_argument("--forward-to", metavar="URL", help="pass every delivery on to this URL")
    p.add_argument(
        "--require-signature", action="store_true", help="answer 401 to unsigned deliveries"
    )
    p.add_argument("--tolerance", type=float, default=300.0, help="timestamp tolerance (s)")
    p.add_argument("--json", action="store_true", help="one JSON object per delivery")
    p.add_argument(
        "--save", metavar="DIR", help="keep each body and its headers (for verify-signature)"
    )
    p.set_defaults(func=cmd_listen)
    p = sub.add_parser(
        "verify-signature",
        add_help=False,
        help="verify a webhook signature (see verify-signature --help)",
    )
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_verify_signature)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["verify-signature"]:
        # Its own parser takes every flag, --help included.
        from app.dispatch.signing import main_verify

        return main_verify(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except HookstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
