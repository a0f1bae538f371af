"""khabar: ingest Arabic and Persian news from Kafka, enrich it, and index it in Elasticsearch.

Subcommands: ``services`` (local Kafka + Elasticsearch), ``setup-indices``, ``submit``, ``run``,
``status``, ``dlq``, ``enrich``, ``eval``, ``train-ner``, ``config show`` and ``demo``.
Configuration flags override ``KHABAR_*`` variables, which override the config file.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from khabar.config import ConfigError, KhabarConfig, load_config, masked, redact_url

log = logging.getLogger("khabar")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("configuration (flags > KHABAR_* environment > config file)")
    group.add_argument("--config", metavar="FILE", help="TOML config file (default: $KHABAR_CONFIG or ./khabar.toml)")
    group.add_argument("--bootstrap-servers", dest="kafka.bootstrap_servers", metavar="HOSTS")
    group.add_argument("--topic", dest="kafka.topic")
    group.add_argument("--dlq-topic", dest="kafka.dlq_topic")
    group.add_argument("--group-id", dest="kafka.group_id")
    group.add_argument("--es-url", dest="elasticsearch.url", metavar="URL")
    group.add_argument("--index-prefix", dest="elasticsearch.index_prefix")
    group.add_argument("--chunk-size", dest="elasticsearch.chunk_size", type=int, help="documents per bulk request")


def _config(args: argparse.Namespace) -> KhabarConfig:
    overrides = {k: v for k, v in vars(args).items() if "." in k}
    return load_config(overrides, config_file=getattr(args, "config", None))


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


# --- services ---------------------------------------------------------------------------------

def _services_config(secure: bool = False) -> Any:
    from khabar.deploy.local import services

    return services.ServicesConfig.from_env(secure=secure or None)


def cmd_services(args: argparse.Namespace) -> int:
    from khabar.deploy.local import services

    scfg = _services_config(getattr(args, "secure", False))
    names = tuple(args.service) if getattr(args, "service", None) else ("kafka", "elasticsearch")
    unknown = set(names) - {"kafka", "elasticsearch"}
    if unknown:
        print(f"khabar services: unknown service {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    try:
        if args.action == "up":
            _print_json(services.up(scfg, names, timeout=args.timeout))
            if scfg.secure:
                print("secure mode: credentials and CA are in files (never printed); for clients run\n"
                      "  eval \"$(python -m khabar.deploy.local.services --secure env)\"", file=sys.stderr)
        elif args.action == "down":
            _print_json(services.down(scfg, names))
        elif args.action == "status":
            state = services.status(scfg)
            _print_json(state)
            return 0 if all(s.get("healthy") for s in state.values()) else 1
        elif args.action == "logs":
            for name in names:
                print(f"==> {name} <==")
                print(services.logs(scfg, name, lines=args.lines))
    except services.ServiceError as exc:
        print(f"khabar services {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


# --- indices, submit, run -------------------------------------------------------------------------

def cmd_setup_indices(args: argparse.Namespace) -> int:
    from khabar.connectors.elasticsearch import ensure_index_templates, open_client
    from khabar.connectors.kafka import ensure_topics

    cfg = _config(args)
    client = open_client(cfg.elasticsearch)
    try:
        names = ensure_index_templates(client, cfg.elasticsearch.index_prefix)
    finally:
        client.close()
    created = ensure_topics(cfg.kafka) if not args.no_topics else []
    print(f"index templates and indices ready: {', '.join(names)}")
    if created:
        print(f"topics created: {', '.join(created)}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from khabar import submit
    from khabar.connectors.kafka import ensure_topics, producer

    cfg = _config(args)
    defaults = {k: v for k, v in (("source", args.source), ("language", args.language)) if v}
    items = list(submit.iter_messages(args.paths, defaults=defaults))
    ensure_topics(cfg.kafka)
    prod = producer(cfg.kafka)
    try:
        summary = submit.send(items, prod, cfg.kafka.topic, total=len(items),
                              progress=None if not args.quiet else False)
    finally:
        prod.close(timeout=10)
    for error in summary.errors[:20]:
        print(f"  failed: {error.where}: {error.error}", file=sys.stderr)
    print(f"submitted {summary.sent} document(s) to {cfg.kafka.topic} at {cfg.kafka.bootstrap_servers}"
          + (f"; {summary.failed} failed" if summary.failed else ""))
    return 1 if summary.failed else 0


def cmd_run(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from khabar.pipelines.ingest import format_counters, run

    cfg = _config(args)
    _check_reachable(cfg)
    print(f"khabar ingest: {cfg.kafka.topic} @ {cfg.kafka.bootstrap_servers} -> "
          f"{cfg.elasticsearch.index_prefix}-* @ {redact_url(cfg.elasticsearch.url)} "
          f"({'bounded' if args.bounded else 'streaming; Ctrl-C stops'})", file=sys.stderr)
    try:
        result = run(cfg, bounded=args.bounded, max_records=args.max_records, beam_args=beam_args)
    except KeyboardInterrupt:
        print("khabar run: stopped; offsets of indexed documents are committed", file=sys.stderr)
        return 130
    print(f"pipeline {result.state} in {result.seconds:.1f}s")
    print(format_counters(result.counters))
    return 0 if "DONE" in result.state else 1


def run_command(cfg: KhabarConfig, *extra: str) -> list[str]:
    """The argv that runs ``khabar run`` in a child process against ``cfg``'s topics and indices.

    Only names and addresses go on the command line; credentials stay in the environment or files.

    Args:
        cfg: the configuration whose Kafka and Elasticsearch settings the child should use.
        *extra: further flags, e.g. ``"--bounded"``.
    """
    return [sys.executable, "-m", "khabar.cli", "run", *extra,
            "--bootstrap-servers", cfg.kafka.bootstrap_servers, "--topic", cfg.kafka.topic,
            "--dlq-topic", cfg.kafka.dlq_topic, "--group-id", cfg.kafka.group_id,
            "--es-url", cfg.elasticsearch.url, "--index-prefix", cfg.elasticsearch.index_prefix,
            "--chunk-size", str(cfg.elasticsearch.chunk_size)]


def _check_reachable(cfg: KhabarConfig, timeout: float = 15.0) -> None:
    """Fail fast with a clear message instead of hanging when a service is down."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    from khabar.connectors.elasticsearch import open_client

    try:
        admin = KafkaAdminClient(**cfg.kafka.client_options(), request_timeout_ms=int(timeout * 1000))
        admin.close()
    except (KafkaError, OSError) as exc:
        raise SystemExit(f"khabar: Kafka is not reachable at {cfg.kafka.bootstrap_servers} ({exc}); "
                         "start it with `khabar services up` or pass --bootstrap-servers") from None
    client = open_client(cfg.elasticsearch)
    try:
        client.cluster.health(timeout="5s")
    except Exception as exc:
        raise SystemExit(f"khabar: Elasticsearch is not reachable at {redact_url(cfg.elasticsearch.url)} "
                         f"({type(exc).__name__}); start it with `khabar services up` or pass --es-url") from None
    finally:
        client.close()


# --- status, dlq ------------------------------------------------------------------------------------

def cmd_status(args: argparse.Namespace) -> int:
    from khabar import ops
    from khabar.connectors.elasticsearch import open_client

    cfg = _config(args)
    _check_reachable(cfg)
    client = open_client(cfg.elasticsearch)
    try:
        lag = ops.consumer_lag(cfg)
        counts = ops.index_counts(cfg, client)
    finally:
        client.close()
    letters = ops.read_dead_letters(cfg)
    if args.json:
        _print_json({"lag": lag, "indices": counts, "dead_letters": ops.dead_letter_summary(letters)})
        return 0
    print(f"consumer group {cfg.kafka.group_id} on {cfg.kafka.topic}:")
    for row in lag:
        print(f"  partition {row['partition']}: end {row['end_offset']}, committed {row['committed']}, "
              f"lag {row['lag']}")
    print("documents per index:")
    for name, count in counts.items():
        print(f"  {name:<28} {'missing' if count is None else count}")
    print(f"dead letters on {cfg.kafka.dlq_topic}: {len(letters)}")
    for stage, reason, n in ops.dead_letter_summary(letters):
        print(f"  {stage:<10} {reason:<40} {n}")
    return 0


def cmd_dlq(argv: Sequence[str]) -> int:
    from khabar.dlq import main as dlq_main

    return dlq_main(list(argv))


# --- enrich, eval, train-ner ---------------------------------------------------------------------

def cmd_enrich(args: argparse.Namespace) -> int:
    from khabar.enrich import run_enrich, tune_gc

    tune_gc()
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        return run_enrich(args.paths, out, pretty=args.pretty, link_stories=not args.no_stories)
    finally:
        if args.output:
            out.close()


def cmd_eval(argv: Sequence[str]) -> int:
    from khabar.evaluate import main as eval_main

    return eval_main(list(argv))


def cmd_feeds(argv: Sequence[str]) -> int:
    from khabar.feeds import main as feeds_main

    return feeds_main(list(argv))


def cmd_dashboards(argv: Sequence[str]) -> int:
    from khabar.dashboards import main as dashboards_main

    return dashboards_main(list(argv))


def cmd_train_ner(argv: Sequence[str]) -> int:
    from khabar.ner_train import main as train_main

    return train_main(list(argv))


def cmd_config(args: argparse.Namespace) -> int:
    _print_json(masked(_config(args)))
    return 0


# --- demo ----------------------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    """Start local services, submit the samples, ingest them, and show what was indexed."""
    from khabar import ops
    from khabar.connectors.elasticsearch import open_client

    started = time.monotonic()
    if not args.no_services:
        from khabar.deploy.local import services

        scfg = _services_config()
        print("starting local Kafka and Elasticsearch (first run downloads them; a few minutes)…", file=sys.stderr)
        try:
            services.up(scfg, ("kafka", "elasticsearch"))
        except services.ServiceError as exc:
            print(f"khabar demo: {exc}", file=sys.stderr)
            return 1
        overrides = {"kafka.bootstrap_servers": scfg.bootstrap_servers, "elasticsearch.url": scfg.es_url}
        for key, value in overrides.items():
            if getattr(args, key, None) is None:
                setattr(args, key, value)
    cfg = _config(args)
    submit_args = argparse.Namespace(**vars(args), paths=[args.samples], source=None, language=None, quiet=True)
    if cmd_submit(submit_args) != 0:
        return 1
    from khabar.pipelines.ingest import format_counters, run

    result = run(cfg, bounded=True)
    print(f"\ningest pipeline {result.state} in {result.seconds:.1f}s")
    print(format_counters(result.counters))
    client = open_client(cfg.elasticsearch)
    try:
        counts = ops.index_counts(cfg, client)
        print("\nindexed:")
        for name, count in counts.items():
            print(f"  {name:<28} {count}")
        print("\ntop entities (articles · mentions):")
        for row in ops.top_entities(cfg, client, size=12):
            counts = f"{row['articles']:>2} · {row['mentions']:>3}"
            print(f"  {counts}  {row['type'] or '':<4} {row['id']:<40} {row['name']}")
        quotes = ops.sample_quotes(cfg, client)
        print("\nquotes:")
        for q in quotes:
            speaker = q.get("speaker_name") or q.get("speaker_text") or "?"
            via = f" (via {q['via_name']})" if q.get("via_name") else ""
            text = (q.get("text") or "").replace("\n", " ")
            print(f"  [{q['article_id']}] {q.get('kind')}, {speaker}{via}, {q.get('stance') or '-'}: "
                  f"{text[:90]}{'…' if len(text) > 90 else ''}")
    finally:
        client.close()
    print(f"\ndone in {time.monotonic() - started:.0f}s. Next: `curl '{redact_url(cfg.elasticsearch.url)}/"
          f"{cfg.elasticsearch.index('quotes')}/_search?pretty'`, `khabar status`, "
          f"`khabar enrich --pretty {args.samples}`; `khabar services down` stops the services.")
    return 0


# --- parser ---------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="khabar", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--log-json", action="store_true", help="log structured JSON lines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("services", help="start, stop and inspect local Kafka and Elasticsearch (no Docker)")
    p.add_argument("action", choices=["up", "down", "status", "logs"])
    p.add_argument("service", nargs="*", help="kafka and/or elasticsearch (default: both)")
    p.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for health (up)")
    p.add_argument("--lines", type=int, default=50, help="log lines to show (logs)")
    p.add_argument("--secure", action="store_true",
                   help="TLS + auth: Elasticsearch security and Kafka SASL_SSL (SCRAM), own home and ports")
    p.set_defaults(func=cmd_services)

    p = sub.add_parser("setup-indices", help="apply index templates and create indices and topics (idempotent)")
    _add_config_flags(p)
    p.add_argument("--no-topics", action="store_true", help="do not create the Kafka topics")
    p.set_defaults(func=cmd_setup_indices)

    p = sub.add_parser("submit", help="send files, folders, JSON lines or stdin to the Kafka topic")
    p.add_argument("paths", nargs="+", help=".txt (one article each), .json, .jsonl[.gz], folders, or - for stdin")
    p.add_argument("--source", help="source name added to messages that have none")
    p.add_argument("--language", help="language added to messages that have none")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_config_flags(p)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("run", help="run the ingest pipeline; extra flags go to Beam (--runner, --streaming, ...)")
    p.add_argument("--bounded", action="store_true", help="stop at the end offsets seen at start")
    p.add_argument("--max-records", type=int, help="with --bounded: at most this many records per partition")
    _add_config_flags(p)
    p.set_defaults(func=cmd_run, beam=True)

    p = sub.add_parser("status", help="consumer lag, documents per index, dead letters by stage and reason")
    p.add_argument("--json", action="store_true")
    _add_config_flags(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("dlq", help="show or replay dead letters (khabar dlq show|replay --help)", add_help=False)
    p.set_defaults(passthrough=cmd_dlq)

    p = sub.add_parser("enrich", help="enrich JSON lines or .txt files without any server")
    p.add_argument("paths", nargs="+", help=".jsonl / .txt files, folders, or - for stdin")
    p.add_argument("--pretty", action="store_true", help="indented JSON for humans")
    p.add_argument("-o", "--output", help="write here instead of stdout")
    p.add_argument("--no-stories", action="store_true",
                   help="write each article as soon as it is enriched (constant memory), without linking "
                        "stories, copies and reuse within the set")
    p.set_defaults(func=cmd_enrich)

    p = sub.add_parser("feeds", help="poll RSS/Atom feeds and send new items to Kafka (khabar feeds --help)",
                       add_help=False)
    p.set_defaults(passthrough=cmd_feeds)

    p = sub.add_parser("dashboards", help="install the Kibana dashboards (khabar dashboards install --help)",
                       add_help=False)
    p.set_defaults(passthrough=cmd_dashboards)

    p = sub.add_parser("eval", help="score enrich output against a gold file (khabar eval --help)", add_help=False)
    p.set_defaults(passthrough=cmd_eval)

    p = sub.add_parser("train-ner", help="train the NER models (khabar train-ner --help)", add_help=False)
    p.set_defaults(passthrough=cmd_train_ner)

    p = sub.add_parser("config", help="show the effective configuration, secrets masked")
    p.add_argument("action", choices=["show"])
    _add_config_flags(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("demo", help="start local services, ingest the sample articles, show the result")
    p.add_argument("--samples", default="tests/fixtures/samples", help="folder of sample articles")
    p.add_argument("--no-services", action="store_true", help="use already running Kafka/Elasticsearch")
    _add_config_flags(p)
    p.set_defaults(func=cmd_demo)
    return parser


def _drop_optional_dependency_noise(record: logging.LogRecord) -> bool:
    # Beam warns at import time that Google Cloud client libraries are missing; khabar does not use them.
    return not str(record.msg).startswith("apitools not found")


def _setup_logging(verbose: bool, as_json: bool) -> None:
    level = logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        class _Json(logging.Formatter):
            def format(self, record: logging.LogRecord) -> str:
                return json.dumps({"time": self.formatTime(record), "level": record.levelname,
                                   "logger": record.name, "message": record.getMessage()}, ensure_ascii=False)

        handler.setFormatter(_Json())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_drop_optional_dependency_noise)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Beam logs noisy optional-dependency warnings at import time.
    logging.getLogger("apache_beam").setLevel(logging.ERROR if not verbose else logging.INFO)
    logging.getLogger("kafka").setLevel(logging.CRITICAL if not verbose else logging.WARNING)
    logging.getLogger("elastic_transport").setLevel(logging.ERROR if not verbose else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``khabar`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # eval and train-ner own their flags; hand them the rest of the line untouched.
    passthrough = {"eval": cmd_eval, "train-ner": cmd_train_ner, "feeds": cmd_feeds, "dashboards": cmd_dashboards,
                   "dlq": cmd_dlq}
    for i, word in enumerate(argv):
        if word in passthrough:
            _setup_logging("-v" in argv[:i] or "--verbose" in argv[:i], "--log-json" in argv[:i])
            return passthrough[word](argv[i + 1:])
        if not word.startswith("-"):
            break
    args, rest = parser.parse_known_args(argv)
    _setup_logging(args.verbose, args.log_json)
    if rest and not getattr(args, "beam", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if getattr(args, "beam", False):
            return args.func(args, rest)
        return args.func(args)
    except ConfigError as exc:
        print(f"khabar: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
