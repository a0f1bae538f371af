"""End-to-end benchmark on real Kafka + Elasticsearch, with the peer and the raw limits in the same run.

Measures, on the same backlog of real news from ``../shared/data/news``:

* ``kafka_consume``: a bare kafka-python consumer reading the backlog (the read limit);
* ``es_bulk``: ``streaming_bulk`` of the already-enriched documents (the write limit);
* ``peer``: the loop a user would write instead: kafka-python poll -> parse -> enrich ->
  ``streaming_bulk`` with the same chunk size -> commit;
* ``pipeline``: ``khabar run --bounded`` (Beam, DirectRunner on the FnApiRunner), in its own process;
* ``latency``: ``khabar run`` streaming while documents are produced at a fixed rate; time from
  produce to searchable in Elasticsearch (p50/p95/p99);
* peak RSS of the pipeline and peer processes.

Every figure is printed with its ratio to the peer and the limits, and written as JSON.

Usage::

    python benchmarks/e2e.py --docs 2000 --rates 50 --latency-seconds 60 --out benchmarks/results/e2e.json

It starts nothing: point it at running services (``khabar services up``) with ``--bootstrap-servers``
and ``--es-url`` (defaults: the local launcher's).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NEWS = ROOT.parent / "shared" / "data" / "news"
CORPORA = {"saudinewsnet.jsonl.gz": "ar", "persian_news.jsonl.gz": "fa", "iranian_news.jsonl.gz": "fa"}


def load_news(n: int) -> list[dict[str, Any]]:
    """``n`` real articles, alternating Arabic and Persian corpora, as khabar messages."""
    per = {name: [] for name in CORPORA}
    for name in CORPORA:
        with gzip.open(NEWS / name, "rt", encoding="utf-8") as handle:
            for line in itertools.islice(handle, n):
                rec = json.loads(line)
                text = rec.get("content") or rec.get("text") or rec.get("body") or ""
                if len(text.strip()) > 200:
                    per[name].append({"text": text, "title": rec.get("title"), "source": rec.get("source") or name})
    out = []
    for i, rec in enumerate(itertools.chain.from_iterable(zip(*per.values(), strict=False))):
        if len(out) >= n:
            break
        out.append({"id": f"bench-{i:06d}", **rec})
    return out


_CREATED: list[Any] = []  # every run's config, so its topics and indices can be removed at the end


def _cfg(args: argparse.Namespace, tag: str) -> Any:
    from khabar.config import load_config

    cfg = load_config({
        "kafka.bootstrap_servers": args.bootstrap_servers, "kafka.topic": f"bench-{tag}",
        "kafka.dlq_topic": f"bench-{tag}.dlq", "kafka.group_id": f"bench-{tag}",
        "elasticsearch.url": args.es_url, "elasticsearch.index_prefix": f"bench-{tag}",
        "elasticsearch.chunk_size": args.chunk_size, "kafka.partitions": 1,
    }, environ={})
    _CREATED.append(cfg)
    return cfg


def cleanup(configs: list[Any]) -> None:
    """Delete the topics and indices the runs created: left behind, hundreds of them slow a shared node."""
    from kafka.admin import KafkaAdminClient

    from khabar.connectors.elasticsearch import open_client

    if not configs:
        return
    client = open_client(configs[0].elasticsearch)
    try:
        for cfg in configs:
            names = list(client.indices.get(index=f"{cfg.elasticsearch.index_prefix}-*", ignore_unavailable=True))
            for name in names:  # one by one: wildcard deletes are refused by default
                client.indices.delete(index=name, ignore_unavailable=True)
    finally:
        client.close()
    admin = KafkaAdminClient(**configs[0].kafka.client_options())
    try:
        existing = set(admin.list_topics())
        topics = [t for cfg in configs for t in (cfg.kafka.topic, cfg.kafka.dlq_topic) if t in existing]
        if topics:
            admin.delete_topics(topics)
    finally:
        admin.close()


def produce(cfg: Any, messages: list[dict[str, Any]]) -> float:
    from khabar import submit
    from khabar.connectors.kafka import ensure_topics, producer

    ensure_topics(cfg.kafka)
    prod = producer(cfg.kafka)
    started = time.perf_counter()
    for m in messages:
        key, value = submit.encode(m)
        prod.send(cfg.kafka.topic, key=key, value=value)
    prod.flush()
    prod.close()
    return time.perf_counter() - started


def bench_kafka_consume(cfg: Any, n: int) -> dict[str, float]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(cfg.kafka.topic, **cfg.kafka.client_options(), group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=500)
    started = time.perf_counter()
    count = 0
    while count < n:
        for records in consumer.poll(timeout_ms=1000).values():
            count += len(records)
    elapsed = time.perf_counter() - started
    consumer.close()
    return {"seconds": elapsed, "docs_per_s": n / elapsed}


def bench_es_bulk(cfg: Any, messages: list[dict[str, Any]]) -> dict[str, float]:
    from elasticsearch.helpers import streaming_bulk

    from khabar.connectors.elasticsearch import ensure_index_templates, open_client, to_es_action
    from khabar.enrich import enrich
    from khabar.pipelines.documents import article_to_requests

    requests = [r for m in messages for r in article_to_requests(enrich(m), cfg.elasticsearch.index_prefix)]
    client = open_client(cfg.elasticsearch)
    ensure_index_templates(client, cfg.elasticsearch.index_prefix)
    started = time.perf_counter()
    for ok, info in streaming_bulk(client, (to_es_action(r) for r in requests), chunk_size=cfg.elasticsearch.chunk_size,
                                   raise_on_error=False):
        if not ok:
            raise RuntimeError(info)
    elapsed = time.perf_counter() - started
    client.close()
    return {"seconds": elapsed, "docs_per_s": len(messages) / elapsed, "index_requests": len(requests)}


def _child(cmd: list[str]) -> dict[str, Any]:
    """Run a child process; return its wall time, exit code and peak RSS (from wait4)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "exit": os.waitstatus_to_exitcode(status),
            "peak_rss_mb": usage.ru_maxrss / 1024, "output": out[-2000:]}


def _flags(cfg: Any) -> list[str]:
    from khabar.cli import run_command

    return run_command(cfg)[4:]  # the flags after "python -m khabar.cli run"


def _count(cfg: Any, kind: str = "articles") -> int:
    from khabar.connectors.elasticsearch import open_client

    client = open_client(cfg.elasticsearch)
    try:
        index = cfg.elasticsearch.index(kind)
        client.indices.refresh(index=index)
        return int(client.count(index=index)["count"])
    finally:
        client.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def bench_latency(args: argparse.Namespace, messages: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    """Streaming pipeline; produce at ``rate`` docs/s; time from produce to searchable."""
    from khabar import submit
    from khabar.connectors.elasticsearch import open_client
    from khabar.connectors.kafka import ensure_topics, producer

    cfg = _cfg(args, f"lat{int(rate)}-{uuid.uuid4().hex[:6]}")
    ensure_topics(cfg.kafka)
    proc = subprocess.Popen([sys.executable, "-m", "khabar.cli", "run", *_flags(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = open_client(cfg.elasticsearch)
    index = cfg.elasticsearch.index("articles")
    # Warm up: wait until the pipeline indexes a first document, so start-up is not counted as latency.
    prod = producer(cfg.kafka, linger_ms=0)
    warm = {"id": "warm-up", "text": messages[0]["text"]}
    prod.send(cfg.kafka.topic, *reversed(submit.encode(warm)))
    prod.flush()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if client.indices.exists(index=index) and client.count(index=index)["count"] >= 1:
            break
        time.sleep(0.2)
    total = int(rate * args.latency_seconds)
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set() or len(seen) < len(sent):
            pending = [i for i in list(sent) if i not in seen][:2000]
            if pending:
                res = client.search(index=index, size=len(pending), source=False, query={"ids": {"values": pending}})
                now = time.monotonic()
                for hit in res["hits"]["hits"]:
                    seen.setdefault(hit["_id"], now)
            if stop.is_set() and time.monotonic() > stop_deadline:
                return
            time.sleep(0.05)

    stop_deadline = float("inf")
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    for i in range(total):
        target = started + i / rate
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        msg = {**messages[i % len(messages)], "id": f"lat-{i:06d}"}
        key, value = submit.encode(msg)
        prod.send(cfg.kafka.topic, key=key, value=value)
        prod.flush()
        sent[msg["id"]] = time.monotonic()
    stop_deadline = time.monotonic() + 60
    stop.set()
    watcher.join()
    proc.terminate()
    proc.wait(timeout=30)
    client.close()
    prod.close()
    lat = [seen[i] - sent[i] for i in sent if i in seen]
    return {"rate": rate, "sent": len(sent), "searchable": len(lat),
            "p50_s": _percentile(lat, 50), "p95_s": _percentile(lat, 95), "p99_s": _percentile(lat, 99),
            "max_s": max(lat) if lat else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--rates", default="50", help="comma-separated offered rates for the latency run (docs/s)")
    parser.add_argument("--latency-seconds", type=float, default=60)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--es-url", default="http://127.0.0.1:9200")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "e2e.json"))
    parser.add_argument("--keep", action="store_true", help="keep the runs' topics and indices")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    finally:
        if not args.keep:
            cleanup(_CREATED)


def _run(args: argparse.Namespace) -> int:

    messages = load_news(args.docs)
    n = len(messages)
    tag = uuid.uuid4().hex[:6]
    results: dict[str, Any] = {
        "docs": n, "chunk_size": args.chunk_size,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    print(f"backlog: {n} real articles (ar/fa alternating), chunk size {args.chunk_size}")

    limit_cfg = _cfg(args, f"limit-{tag}")
    results["produce_s"] = produce(limit_cfg, messages)
    results["kafka_consume"] = bench_kafka_consume(limit_cfg, n)
    print(f"kafka consume only:  {results['kafka_consume']['docs_per_s']:.0f} docs/s")
    results["es_bulk"] = bench_es_bulk(limit_cfg, messages)
    print(f"es bulk only:        {results['es_bulk']['docs_per_s']:.0f} docs/s "
          f"({results['es_bulk']['index_requests']} index requests)")

    peer_cfg = _cfg(args, f"peer-{tag}")
    produce(peer_cfg, messages)
    peer = _child([sys.executable, str(Path(__file__).with_name("peer.py")), *_flags(peer_cfg), "--expect", str(n)])
    peer["docs_per_s"] = n / peer["seconds"]
    peer["indexed"] = _count(peer_cfg)
    results["peer"] = peer
    print(f"peer (kafka-python loop): {peer['docs_per_s']:.1f} docs/s, peak RSS {peer['peak_rss_mb']:.0f} MiB, "
          f"indexed {peer['indexed']}")

    pipe_cfg = _cfg(args, f"pipe-{tag}")
    produce(pipe_cfg, messages)
    pipe = _child([sys.executable, "-m", "khabar.cli", "run", "--bounded", *_flags(pipe_cfg)])
    pipe["docs_per_s"] = n / pipe["seconds"]
    pipe["indexed"] = _count(pipe_cfg)
    results["pipeline"] = pipe
    print(f"pipeline (Beam):      {pipe['docs_per_s']:.1f} docs/s, peak RSS {pipe['peak_rss_mb']:.0f} MiB, "
          f"indexed {pipe['indexed']}")
    results["ratios"] = {
        "pipeline_vs_peer": pipe["docs_per_s"] / peer["docs_per_s"],
        "pipeline_vs_kafka_consume": pipe["docs_per_s"] / results["kafka_consume"]["docs_per_s"],
        "pipeline_vs_es_bulk": pipe["docs_per_s"] / results["es_bulk"]["docs_per_s"],
        "peer_vs_kafka_consume": peer["docs_per_s"] / results["kafka_consume"]["docs_per_s"],
    }
    for name, value in results["ratios"].items():
        print(f"  {name:<28} {value:.3f}")
    if not args.skip_latency:
        results["latency"] = []
        for rate in (float(r) for r in args.rates.split(",")):
            lat = bench_latency(args, messages, rate)
            results["latency"].append(lat)
            print(f"latency at {rate:.0f} docs/s: p50 {lat['p50_s']:.2f}s p95 {lat['p95_s']:.2f}s "
                  f"p99 {lat['p99_s']:.2f}s ({lat['searchable']}/{lat['sent']} searchable)")
    results["bench_process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for key in ("peer", "pipeline"):
        results[key].pop("output", None) if results[key]["exit"] == 0 else None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
