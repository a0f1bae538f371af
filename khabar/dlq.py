"""Dead letters: show them, and replay them to the document topic after a fix.

``khabar dlq show [--stage S] [--reason-contains TEXT] [--limit N]`` prints the dead letters as JSON
lines (payload cut to 200 characters). ``khabar dlq replay [--stage S] [--reason-contains TEXT]
[--dry-run]`` re-submits the original message of every matching dead letter that was not
replayed before to ``kafka.topic``, under its original key (the document id), so the ingest
pipeline indexes it under the same deterministic id.

What is re-submitted:

* stages ``decode``, ``parse``, ``validate``, ``enrich``: the dead letter's ``payload`` (or
  ``payload_base64``): the raw record, or for ``enrich`` the parsed message;
* stage ``index``: the dead letter's ``original_payload`` (the message that was enriched, added by
  the ingest pipeline), else the original record read back from the document topic at the
  dead letter's ``source`` topic/partition/offset while Kafka still retains it. The several index
  dead letters of one message (article, entities, quotes) re-submit it once.

Dead letters whose payload was truncated, or whose original cannot be found, are skipped and listed.

Which dead letters were replayed is kept in Kafka, in the consumer group
``{kafka.group_id}.dlq-replay`` on the DLQ topic: its committed offset is the first dead letter not
yet handled, and the commit metadata lists the replayed offsets above it as ranges (a filtered replay
leaves gaps). The commit happens only after the broker acknowledged every re-submitted message, so
a crash mid-replay re-sends at most that run's messages, which the pipeline then overwrites by id.
Kafka keeps at most ``offset.metadata.max.bytes`` (4096 by default) of metadata: when the ranges would
not fit, the replay stops early and says so; run it again after the gaps are replayed.

Example::

    khabar dlq replay --stage enrich --dry-run          # what would be re-submitted
    khabar dlq replay --stage enrich                     # after raising pipeline.enrich_timeout_s
    khabar dlq replay --reason-contains "too long"
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from khabar.config import ConfigError, KhabarConfig, load_config

STAGES = ("decode", "parse", "validate", "enrich", "index")
MAX_METADATA_CHARS = 3800  # under Kafka's default offset.metadata.max.bytes of 4096


# --- replay bookkeeping: handled offsets as a committed offset plus ranges ------------------------------

def encode_ranges(handled: Iterable[int], committed: int) -> tuple[int, str]:
    """The new committed offset and the metadata for a set of handled offsets.

    The committed offset advances over every handled offset contiguous with it; the handled offsets
    above it are written as ``"a-b,c-d"`` ranges (inclusive).

    >>> encode_ranges({0, 1, 2, 5, 6, 9}, 0)
    (3, '5-6,9-9')
    """
    offsets = sorted(o for o in set(handled) if o >= committed)
    while offsets and offsets[0] == committed:
        committed += 1
        offsets.pop(0)
    ranges: list[list[int]] = []
    for o in offsets:
        if ranges and o == ranges[-1][1] + 1:
            ranges[-1][1] = o
        else:
            ranges.append([o, o])
    return committed, ",".join(f"{a}-{b}" for a, b in ranges)


def decode_ranges(metadata: str | None) -> set[int]:
    """The handled offsets listed in commit metadata (``"a-b,c-d"``); unreadable metadata is empty."""
    out: set[int] = set()
    for part in (metadata or "").split(","):
        a, sep, b = part.strip().partition("-")
        if not sep or not a.isdigit() or not b.isdigit():
            continue
        out.update(range(int(a), int(b) + 1))
    return out


# --- selecting and re-submitting --------------------------------------------------------------------

@dataclass
class Letter:
    """One dead letter with its DLQ offset."""

    partition: int
    offset: int
    record: dict[str, Any]


@dataclass
class ReplayPlan:
    """What a replay will do: messages to send and dead letters skipped, with reasons."""

    send: list[tuple[Letter, bytes | None, bytes]] = field(default_factory=list)
    skipped: list[tuple[Letter, str]] = field(default_factory=list)
    # Index letters of a message another letter re-submits, with that letter's offset.
    duplicates: list[tuple[Letter, int]] = field(default_factory=list)


def matches(record: Mapping[str, Any], stage: str | None, reason_contains: str | None) -> bool:
    """Whether a dead letter passes the ``--stage`` and ``--reason-contains`` filters."""
    if stage and record.get("stage") != stage:
        return False
    if reason_contains:
        haystack = f"{record.get('error') or ''} {record.get('error_type') or ''}".lower()
        if reason_contains.lower() not in haystack:
            return False
    return True


def _payload_bytes(record: Mapping[str, Any], text_key: str, b64_key: str | None) -> bytes | None:
    text = record.get(text_key)
    if isinstance(text, str):
        return text.encode("utf-8")
    if b64_key and isinstance(record.get(b64_key), str):
        return base64.b64decode(record[b64_key])
    return None


def original_of(record: Mapping[str, Any], fetch: Any = None) -> tuple[bytes | None, str | None]:
    """The original message bytes of a dead letter, or ``(None, why not)``.

    Args:
        record: The dead letter.
        fetch: ``fetch(topic, partition, offset) -> bytes | None`` reading the original Kafka record,
            used for index dead letters without ``original_payload``.
    """
    if record.get("payload_truncated"):
        return None, "payload was truncated in the dead letter"
    if record.get("stage") == "index":
        payload = _payload_bytes(record, "original_payload", None)
        if payload is not None:
            return payload, None
        source = record.get("source") or {}
        if fetch is not None and source.get("topic") is not None and source.get("offset") is not None:
            payload = fetch(source["topic"], int(source.get("partition") or 0), int(source["offset"]))
            if payload is not None:
                return payload, None
            return None, f"original record {source['topic']}[{source.get('partition')}]@{source['offset']} is gone"
        return None, "no original message in the dead letter"
    payload = _payload_bytes(record, "payload", "payload_base64")
    if payload is None:
        return None, "no payload in the dead letter"
    return payload, None


def key_of(record: Mapping[str, Any]) -> bytes | None:
    """The Kafka key to re-submit under: the original record's key, else the document id.

    The original key keeps a replay on the partition of the other versions of the same document
    (so "the later one wins" still holds) and gives a message without ``id`` the same id as before.
    An index dead letter's ``document_id`` is an Elasticsearch ``_id`` (``article:entity``), never a key.
    """
    key = (record.get("source") or {}).get("key")
    if not key and record.get("stage") != "index":
        key = record.get("document_id")
    return str(key).encode("utf-8") if key else None


def plan_replay(letters: Sequence[Letter], fetch: Any = None) -> ReplayPlan:
    """Decide what to send for already-filtered dead letters (pure apart from ``fetch``)."""
    plan = ReplayPlan()
    sent_sources: dict[tuple[Any, ...], int] = {}
    for letter in letters:
        record = letter.record
        if record.get("stage") == "index":
            # One message fails as several documents (article, entities, quotes): send it once.
            source = record.get("source") or {}
            ident = (source.get("topic"), source.get("partition"), source.get("offset"),
                     None if source.get("offset") is not None else record.get("document_id"))
            ident = ident if any(v is not None for v in ident) else ("letter", letter.offset)
            if ident in sent_sources:
                plan.duplicates.append((letter, sent_sources[ident]))
                continue
            sent_sources[ident] = letter.offset
        payload, why = original_of(record, fetch)
        if payload is None:
            plan.skipped.append((letter, why or "no payload"))
        else:
            plan.send.append((letter, key_of(record), payload))
    return plan


# --- Kafka I/O ---------------------------------------------------------------------------------------

def replay_group(cfg: KhabarConfig) -> str:
    """The consumer group on the DLQ topic that records replayed dead letters."""
    return f"{cfg.kafka.group_id}.dlq-replay"


def _dlq_consumer(cfg: KhabarConfig, group: str | None) -> Any:
    from kafka import KafkaConsumer

    return KafkaConsumer(**cfg.kafka.client_options(), group_id=group, enable_auto_commit=False,
                         auto_offset_reset="earliest", client_id="khabar-dlq",
                         fetch_max_bytes=max(52_428_800, cfg.kafka.max_message_bytes),
                         max_partition_fetch_bytes=cfg.kafka.max_message_bytes)


def _read_range(consumer: Any, tp: Any, start: int, end: int, timeout_ms: int = 5000) -> list[Any]:
    consumer.seek(tp, start)
    out: list[Any] = []
    while consumer.position(tp) < end:
        batch = consumer.poll(timeout_ms=timeout_ms)
        if not batch:
            break
        for record in batch.get(tp, ()):
            if record.offset < end:
                out.append(record)
    return out


def _parse(value: bytes | None) -> dict[str, Any]:
    try:
        record = json.loads(value) if value else None
    except (ValueError, TypeError):
        record = None
    return record if isinstance(record, dict) else {"stage": "unknown", "error": "unreadable dead letter"}


def _fetcher(cfg: KhabarConfig) -> tuple[Any, Any]:
    """A ``fetch(topic, partition, offset)`` for original records, and a closer."""
    from kafka.structs import TopicPartition

    consumer = _dlq_consumer(cfg, None)

    def fetch(topic: str, partition: int, offset: int) -> bytes | None:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        if consumer.beginning_offsets([tp])[tp] > offset:
            return None
        for record in _read_range(consumer, tp, offset, offset + 1):
            if record.offset == offset:
                return record.value
        return None

    return fetch, consumer.close


@dataclass
class ReplayResult:
    """What a replay did (or, with ``dry_run``, would do)."""

    matched: int = 0
    sent: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    already_replayed: int = 0
    duplicates: int = 0
    stopped_early: bool = False
    letters: list[dict[str, Any]] = field(default_factory=list)


def replay(
    cfg: KhabarConfig,
    *,
    stage: str | None = None,
    reason_contains: str | None = None,
    dry_run: bool = False,
    timeout: float = 60.0,
) -> ReplayResult:
    """Re-submit the matching dead letters not replayed before, and record them as replayed.

    Raises:
        kafka.errors.KafkaError: Kafka unreachable or a send not acknowledged (nothing is committed).
    """
    from kafka.structs import OffsetAndMetadata, TopicPartition

    from khabar.connectors.kafka import producer

    result = ReplayResult()
    consumer = _dlq_consumer(cfg, replay_group(cfg))
    fetch, close_fetch = _fetcher(cfg)
    try:
        parts = consumer.partitions_for_topic(cfg.kafka.dlq_topic) or set()
        tps = [TopicPartition(cfg.kafka.dlq_topic, p) for p in sorted(parts)]
        if not tps:
            return result
        consumer.assign(tps)
        begin, end = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        commits: dict[Any, OffsetAndMetadata] = {}
        prod = None if dry_run else producer(cfg.kafka)
        try:
            for tp in tps:
                state = consumer.committed(tp, metadata=True)
                committed = max(state.offset if state is not None else 0, begin[tp])
                handled = decode_ranges(state.metadata if state is not None else None)
                letters = []
                for raw in _read_range(consumer, tp, committed, end[tp]):
                    if raw.offset in handled:
                        result.already_replayed += 1
                        continue
                    record = _parse(raw.value)
                    if matches(record, stage, reason_contains):
                        letters.append(Letter(tp.partition, raw.offset, record))
                result.matched += len(letters)
                plan = plan_replay(letters, fetch)
                result.skipped.extend((le.offset, why) for le, why in plan.skipped)
                result.duplicates += len(plan.duplicates)
                done = set(handled)
                futures = []
                for letter, key, payload in plan.send:
                    trial = done | {letter.offset}
                    if len(encode_ranges(trial, committed)[1]) > MAX_METADATA_CHARS:
                        result.stopped_early = True
                        break
                    done = trial
                    result.letters.append({"dlq_offset": letter.offset, "stage": letter.record.get("stage"),
                                           "key": key.decode("utf-8", "replace") if key else None,
                                           "document_id": letter.record.get("document_id"),
                                           "error": str(letter.record.get("error") or "")[:200]})
                    if prod is not None:
                        futures.append(prod.send(cfg.kafka.topic, key=key, value=payload))
                result.sent += len(futures)
                # Index letters of a message re-submitted for another letter are handled with it.
                done |= {dup.offset for dup, primary in plan.duplicates if primary in done}
                if prod is not None:
                    prod.flush(timeout=timeout)
                    for future in futures:
                        future.get(timeout=timeout)  # raises: nothing below is committed
                new_committed, metadata = encode_ranges(done, committed)
                commits[tp] = OffsetAndMetadata(new_committed, metadata, -1)
        finally:
            if prod is not None:
                prod.close(timeout=10)
        if not dry_run and commits:
            consumer.commit(offsets=commits)
        return result
    finally:
        close_fetch()
        consumer.close(autocommit=False)


# --- command line ------------------------------------------------------------------------------------

def _add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", choices=STAGES, help="only dead letters of this stage")
    parser.add_argument("--reason-contains", metavar="TEXT", help="only dead letters whose reason contains TEXT")
    group = parser.add_argument_group("configuration (flags > KHABAR_* environment > config file)")
    group.add_argument("--config", metavar="FILE", help="TOML config file (default: $KHABAR_CONFIG or ./khabar.toml)")
    group.add_argument("--bootstrap-servers", dest="kafka.bootstrap_servers", metavar="HOSTS")
    group.add_argument("--topic", dest="kafka.topic", help="document topic replays go to")
    group.add_argument("--dlq-topic", dest="kafka.dlq_topic")
    group.add_argument("--group-id", dest="kafka.group_id", help="pipeline group; replays are recorded in "
                       "GROUP.dlq-replay")


def build_parser() -> argparse.ArgumentParser:
    """The ``khabar dlq`` parser (``show`` and ``replay``)."""
    parser = argparse.ArgumentParser(prog="khabar dlq", description="Show or replay dead letters.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = sub.add_parser("show", help="print dead letters as JSON lines (payload cut to 200 characters)")
    p.add_argument("--limit", type=int, help="at most this many")
    _add_flags(p)
    p = sub.add_parser("replay", help="re-submit dead letters not replayed before to the document topic")
    p.add_argument("--dry-run", action="store_true", help="list what would be re-submitted; send and record nothing")
    _add_flags(p)
    return parser


def _show(cfg: KhabarConfig, args: argparse.Namespace) -> int:
    from khabar import ops

    shown = 0
    for letter in ops.read_dead_letters(cfg):
        if not matches(letter, args.stage, args.reason_contains):
            continue
        payload = letter.get("payload") or letter.get("payload_base64") or ""
        out = {**letter, "payload": payload[:200]}
        if isinstance(out.get("original_payload"), str):
            out["original_payload"] = out["original_payload"][:200]
        print(json.dumps(out, ensure_ascii=False, default=str))
        shown += 1
        if args.limit is not None and shown >= args.limit:
            break
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``khabar dlq show|replay``; returns the exit code (1 when some dead letters could not be replayed)."""
    args = build_parser().parse_args(argv)
    try:
        overrides = {k: v for k, v in vars(args).items() if "." in k}
        cfg = load_config(overrides, config_file=args.config)
    except ConfigError as exc:
        print(f"khabar dlq: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.action == "show":
        return _show(cfg, args)
    result = replay(cfg, stage=args.stage, reason_contains=args.reason_contains, dry_run=args.dry_run)
    for row in result.letters:
        print(json.dumps(row, ensure_ascii=False))
    verb = "would re-submit" if args.dry_run else "re-submitted"
    print(f"{verb} {len(result.letters)} message(s) to {cfg.kafka.topic} from {result.matched} matching "
          f"dead letter(s) on {cfg.kafka.dlq_topic}; {result.already_replayed} replayed before, "
          f"{result.duplicates} index dead letter(s) of a message already re-submitted, "
          f"{len(result.skipped)} skipped", file=sys.stderr)
    for offset, why in result.skipped:
        print(f"  skipped dead letter at offset {offset}: {why}", file=sys.stderr)
    if result.stopped_early:
        print("  stopped early: too many gaps to record; run the replay again", file=sys.stderr)
    return 1 if result.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
